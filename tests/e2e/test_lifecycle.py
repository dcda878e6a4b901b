"""One run lifecycle for the job and for ``ecom run``: the job's notebooks run in job order (one task each, sharing the
job run id) leave the same ``pipeline_runs`` record as ``run_pipeline`` (what ``ecom run`` calls) on the same input;
a failing task records ``failed`` naming its step and fails the notebook; a repair run of the failed tasks
completes the run; a second job run with nothing new is ``unchanged``; ``full_refresh`` reaches bronze."""

from __future__ import annotations

import shutil

import pytest

from ecom_lakehouse.config import load_config
from ecom_lakehouse.errors import EcomError
from ecom_lakehouse.io.tables import Lakehouse
from ecom_lakehouse.run.history import latest_run
from ecom_lakehouse.run.lifecycle import BRONZE, GOLD, SILVER_ORDERS, run_pipeline
from ecom_lakehouse.tools.notebook import NotebookError, run_notebook
from tests.conftest import REPO_ROOT, SAMPLE_DIR

NOTEBOOKS = ("01_bronze_ingest.py", "02_silver_dimensions.py", "03_silver_orders.py", "04_gold_aggregates.py")


def _schemas(prefix: str) -> dict[str, str]:
    return {f"{layer}_schema": f"{prefix}_{layer}" for layer in ("bronze", "silver", "gold")}


def _run_job(spark, root, schemas, run_id, notebooks=NOTEBOOKS, **params):
    spark.conf.set("ecom.lakehouse.root", str(root))
    widgets = {"catalog": "spark_catalog", "input_path": str(SAMPLE_DIR), "run_id": run_id, **schemas, **params}
    for name in notebooks:
        run_notebook(spark, REPO_ROOT / "notebooks" / name, widgets)


def _history(lakehouse, run_id):
    runs = lakehouse.read("silver", "runs").where(f"run_id = '{run_id}'").orderBy("recorded_at").collect()
    return [r.asDict(recursive=True) for r in runs]


def _comparable(record, schemas):
    """A run record with the schema names taken out of the table names, and without times and ids."""

    def plain(table):
        for layer, schema in schemas.items():
            table = table.replace(f".{schema}.", f".{layer.removesuffix('_schema')}.")
        return table

    return {
        "status": record["status"],
        "input_path": record["input_path"],
        "full_refresh": record["full_refresh"],
        "rows": {plain(t): n for t, n in record["rows"].items()},
        "steps": sorted(record["seconds"]),
        "reconciliation": record["reconciliation"],
        "rule_counts": record["rule_counts"],
        "changed": record["changed"],
        "plan": record["plan"],
    }


def _statuses(history):
    statuses = [r["status"] for r in history]
    return [s for i, s in enumerate(statuses) if i == 0 or statuses[i - 1] != s]


@pytest.fixture(scope="module")
def both(spark, tmp_path_factory):
    """The sample through ``run_pipeline`` and through the job's notebooks, into two lakehouses."""
    cli_schemas, job_schemas = _schemas("lc_cli"), _schemas("lc_job")
    cli = Lakehouse.open(spark, load_config().with_overrides(**cli_schemas), tmp_path_factory.mktemp("lc_cli"))
    cli_run = run_pipeline(cli, str(SAMPLE_DIR))
    job_root = tmp_path_factory.mktemp("lc_job")
    _run_job(spark, job_root, job_schemas, "1001")
    job = Lakehouse.open(spark, load_config().with_overrides(**job_schemas), job_root)
    return {"cli": cli, "cli_run_id": cli_run.run_id, "cli_schemas": cli_schemas,
            "job": job, "job_root": job_root, "job_schemas": job_schemas}  # fmt: skip


def test_the_job_leaves_the_record_ecom_run_leaves(both):
    cli_history = _history(both["cli"], both["cli_run_id"])
    job_history = _history(both["job"], "1001")
    assert _statuses(cli_history) == _statuses(job_history) == ["running", "succeeded"]
    cli_final, job_final = cli_history[-1], job_history[-1]
    assert _comparable(job_final, both["job_schemas"]) == _comparable(cli_final, both["cli_schemas"])
    assert job_final["input_path"] == str(SAMPLE_DIR)
    assert job_final["step"] == GOLD and job_final["error"] is None
    assert set(job_final["seconds"]) == {"bronze", "silver_dimensions", "silver_orders", "gold"}
    rows = _comparable(job_final, both["job_schemas"])["rows"]
    assert rows["spark_catalog.bronze.orders_raw"] == 3000  # every table the run wrote, with its rows
    assert rows["spark_catalog.silver.orders_enriched"] == 2994
    assert rows["spark_catalog.silver.quarantine[orders]"] == 6
    assert job_final["reconciliation"]["orders.bronze"] == "3000"
    # each task handed the run on to the next one: one progress record per task before the last
    assert [r["step"] for r in job_history] == [None, BRONZE, "silver_dimensions", SILVER_ORDERS, GOLD]
    assert all(r["started_at"] == job_history[0]["started_at"] for r in job_history)


def test_a_second_job_run_with_nothing_new_is_unchanged(spark, both):
    versions = both["job"].version("gold", "profit")
    _run_job(spark, both["job_root"], both["job_schemas"], "1002")
    record = latest_run(both["job"], "1002")
    assert record["status"] == "unchanged" and record["plan"] == []
    assert both["job"].version("gold", "profit") == versions
    assert [r["status"] for r in _history(both["job"], "1002")] == ["running", "unchanged"]


def test_a_failing_task_records_failed_naming_it_and_a_repair_run_completes(spark, tmp_path):
    schemas = _schemas("lc_fail")
    _run_job(spark, tmp_path / "lh", schemas, "2001", notebooks=NOTEBOOKS[:2])
    products = tmp_path / "lh" / "lc_fail_silver" / "products"
    products.rename(tmp_path / "products_moved")  # silver products disappear between two tasks
    with pytest.raises(NotebookError, match=r"03_silver_orders\.py cell"):
        _run_job(spark, tmp_path / "lh", schemas, "2001", notebooks=NOTEBOOKS[2:3])
    lakehouse = Lakehouse.open(spark, load_config().with_overrides(**schemas), tmp_path / "lh")
    failed = latest_run(lakehouse, "2001")
    assert failed["status"] == "failed" and failed["step"] == SILVER_ORDERS
    assert "products" in failed["error"] and failed["ended_at"] is not None
    assert failed["rows"]["spark_catalog.lc_fail_bronze.orders_raw"] == 3000  # what the earlier tasks wrote

    # Databricks' "repair run" re-runs the failed task and its successors under the same run id.
    shutil.move(tmp_path / "products_moved", products)
    _run_job(spark, tmp_path / "lh", schemas, "2001", notebooks=NOTEBOOKS[2:])
    done = latest_run(lakehouse, "2001")
    assert done["status"] == "succeeded" and done["error"] is None
    assert done["reconciliation"]["orders.silver"] == "2994"
    assert _statuses(_history(lakehouse, "2001")) == ["running", "failed", "running", "succeeded"]


def test_full_refresh_reaches_bronze_and_a_run_left_running_is_abandoned(spark, tmp_path):
    schemas = _schemas("lc_full")
    _run_job(spark, tmp_path / "lh", schemas, "3001", notebooks=NOTEBOOKS[:1])  # the job dies after bronze
    _run_job(spark, tmp_path / "lh", schemas, "3002", full_refresh="true")
    lakehouse = Lakehouse.open(spark, load_config().with_overrides(**schemas), tmp_path / "lh")
    assert latest_run(lakehouse, "3001")["status"] == "abandoned"
    record = latest_run(lakehouse, "3002")
    assert record["status"] == "succeeded" and record["full_refresh"] is True
    assert record["rows"]["spark_catalog.lc_full_bronze.orders_raw"] == 3000  # rebuilt, not appended
    assert lakehouse.read("bronze", "orders").count() == 3000
    with pytest.raises(EcomError, match="full_refresh='maybe': expected true or false"):
        _run_job(spark, tmp_path / "lh", schemas, "3003", notebooks=NOTEBOOKS[:1], full_refresh="maybe")
