"""The job's entry point: each notebook of the job is one task that calls :func:`run_task` for its step.

The widgets (job parameters) are declared here, once, for every notebook; Databricks shows them in each notebook
when the call declares them.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession

from ecom_lakehouse.config import load_config
from ecom_lakehouse.errors import EcomError
from ecom_lakehouse.io.tables import Lakehouse
from ecom_lakehouse.run.lifecycle import BRONZE, resume_run, run_step, start_run

# The bundle's catalog variable defaults to the same value (tests/unit/test_bundle.py checks).
DATABRICKS_DEFAULT_CATALOG = "main"


def widget_defaults() -> dict[str, str]:
    """Every job parameter a notebook reads, with the default Databricks shows before a value is given."""
    schemas = load_config().schemas
    return {
        "catalog": DATABRICKS_DEFAULT_CATALOG,
        "bronze_schema": schemas["bronze"],
        "silver_schema": schemas["silver"],
        "gold_schema": schemas["gold"],
        "input_path": "",
        # Where the orders stream keeps its checkpoint (a Unity Catalog volume path on Databricks); empty: the
        # local lakehouse's _checkpoints folder.
        "checkpoint_location": "",
        "full_refresh": "false",
        "run_id": "",
    }


def _flag(value: str, name: str) -> bool:
    text = (value or "").strip().lower()
    if text not in ("", "true", "false", "1", "0", "yes", "no"):
        raise EcomError(f"widget {name}={value!r}: expected true or false")
    return text in ("true", "1", "yes")


def open_from_widgets(spark: SparkSession, widgets: object) -> Lakehouse:
    """The lakehouse named by a notebook's widgets (``catalog`` and the three schema names)."""
    names = ("catalog", "bronze_schema", "silver_schema", "gold_schema")
    values = {name: widgets.get(name) for name in names}  # type: ignore[attr-defined]
    return Lakehouse.open(spark, load_config().with_overrides(**values))


def run_task(spark: SparkSession, dbutils: object, step: str) -> DataFrame:
    """A job task (one notebook): declare the widgets, run ``step`` of the run named by the ``run_id`` widget.

    The bronze task starts the run (``input_path``, ``full_refresh``); the others resume it. Without a ``run_id``
    (a notebook run by hand) the step is a run of its own: bronze starts one, another step runs unconditionally.

    Args:
        spark: the notebook's session.
        dbutils: the notebook's ``dbutils`` (its widgets are used).
        step: one of :data:`STEPS`.

    Returns:
        The tables this task wrote (table, rows, seconds), for ``display``.
    """
    widgets = dbutils.widgets  # type: ignore[attr-defined]
    for name, default in widget_defaults().items():
        widgets.text(name, default)
    lakehouse = open_from_widgets(spark, widgets)
    run_id = widgets.get("run_id").strip()
    if step == BRONZE:
        full_refresh = _flag(widgets.get("full_refresh"), "full_refresh")
        run = start_run(
            lakehouse, widgets.get("input_path"), run_id or None, full_refresh=full_refresh,
            checkpoint_location=widgets.get("checkpoint_location"),
        )  # fmt: skip
    elif run_id:
        run = resume_run(lakehouse, run_id)
    else:
        run = start_run(lakehouse, widgets.get("input_path"), checkpoint_location=widgets.get("checkpoint_location"))
    run_step(run, step, record_progress=True)
    return run.summary(spark)
