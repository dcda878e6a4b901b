"""The ``pipeline_runs`` table: an append-only log of run states (status, rows written per table, seconds per step,
the count per data-quality rule, the reconciliation figures), and the data-quality report ``ecom quality`` prints.

A run's state is its newest record. The states: ``running`` (recorded when the run starts and, in the Databricks
job, after each task), then ``succeeded``, ``failed`` (with the step and the error), ``unchanged`` (nothing new was
found) or ``abandoned`` (recorded by the next run for a run that never finished).
"""

from __future__ import annotations

from datetime import UTC, datetime

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from ecom_lakehouse.io.tables import Lakehouse

RUNS_SCHEMA = (
    "run_id string, recorded_at timestamp, started_at timestamp, ended_at timestamp, status string, "
    "input_path string, error string, rows map<string,bigint>, rule_counts map<string,bigint>, "
    "reconciliation map<string,string>, full_refresh boolean, step string, seconds map<string,double>, "
    "changed array<string>, plan array<string>, incremental boolean, base_versions map<string,bigint>, "
    "versions map<string,bigint>, checkpoint string"
)
RUNNING, SUCCEEDED, FAILED, UNCHANGED, ABANDONED = "running", "succeeded", "failed", "unchanged", "abandoned"
FINISHED = (SUCCEEDED, UNCHANGED)  # the tables are complete and reconciled
_COLUMNS = [c.split(" ")[0] for c in RUNS_SCHEMA.split(", ")]


def _latest_states(lakehouse: Lakehouse) -> DataFrame:
    # The table is an append-only log of run states (appends are cheap, atomic and never conflict); a run's state
    # is its newest record.
    newest_first = Window.partitionBy("run_id").orderBy(F.col("recorded_at").desc())
    return (
        lakehouse.read("silver", "runs")
        .withColumn("_n", F.row_number().over(newest_first))
        .where(F.col("_n") == 1)
        .drop("_n")
    )


def latest_run(
    lakehouse: Lakehouse, run_id: str | None = None, *, built_tables: bool = False, other_than: str | None = None
) -> dict | None:
    """The newest run (or the given one) as a dict, None when there is none.

    Args:
        lakehouse: where the table lives.
        run_id: a specific run.
        built_tables: skip runs that found nothing new (``unchanged``): the newest run that wrote the tables.
        other_than: leave this run out (a run looking for the one before it).
    """
    if not lakehouse.exists("silver", "runs"):
        return None
    runs = _latest_states(lakehouse)
    if run_id:
        runs = runs.where(F.col("run_id") == run_id)
    if other_than:
        runs = runs.where(F.col("run_id") != other_than)
    if built_tables:
        runs = runs.where(F.col("status") != UNCHANGED)
    row = runs.orderBy(F.col("started_at").desc(), F.col("run_id").desc()).first()
    return row.asDict(recursive=True) if row else None


def record_run(lakehouse: Lakehouse, state: dict[str, object]) -> None:
    """Append a run's current state (the columns of :data:`RUNS_SCHEMA`; ``recorded_at`` is set here)."""
    record_runs(lakehouse, [state])


def record_runs(lakehouse: Lakehouse, states: list[dict[str, object]]) -> None:
    """Append several run states in one Delta commit."""
    now = datetime.now(UTC)
    rows = [tuple({**state, "recorded_at": now}.get(c) for c in _COLUMNS) for state in states]
    lakehouse.append(lakehouse.spark.createDataFrame(rows, RUNS_SCHEMA), "silver", "runs", count=False)


def mark_abandoned_runs(lakehouse: Lakehouse, current_run_id: str) -> int:
    """Runs still ``running`` when another one starts never finished (their process ended, or only some of their
    steps ran): record them as ``abandoned``. One run at a time is the rule (the lock locally, the job's
    ``max_concurrent_runs: 1`` on Databricks), so another run still ``running`` is not alive."""
    if not lakehouse.exists("silver", "runs"):
        return 0
    stale = _latest_states(lakehouse).where((F.col("status") == RUNNING) & (F.col("run_id") != current_run_id))
    rows = [row.asDict(recursive=True) for row in stale.collect()]
    if rows:
        now = datetime.now(UTC)
        error = "the run never finished: its process ended, or only some of its steps ran"
        record_runs(lakehouse, [{**state, "status": ABANDONED, "ended_at": now, "error": error} for state in rows])
    return len(rows)
