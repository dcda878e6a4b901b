"""The ``pipeline_runs`` table: one row per run with its status, rows written per table, the count per
data-quality rule and the reconciliation figures; and the data-quality report ``ecom quality`` prints."""

from __future__ import annotations

from datetime import UTC, datetime

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from ecom_lakehouse.expectations import EXPECTATIONS
from ecom_lakehouse.storage import Lakehouse

RUNS_SCHEMA = (
    "run_id string, recorded_at timestamp, started_at timestamp, ended_at timestamp, status string, "
    "input_path string, error string, rows map<string,bigint>, rule_counts map<string,bigint>, "
    "reconciliation map<string,string>"
)
RUNNING, SUCCEEDED, FAILED, SKIPPED, ABANDONED = "running", "succeeded", "failed", "unchanged", "abandoned"
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


def latest_run(lakehouse: Lakehouse, run_id: str | None = None, *, built_tables: bool = False) -> dict | None:
    """The newest run (or the given one) as a dict, None when there is none.

    Args:
        lakehouse: where the table lives.
        run_id: a specific run.
        built_tables: skip runs that found nothing new (``unchanged``): the newest run that wrote the tables.
    """
    if not lakehouse.exists("silver", "runs"):
        return None
    runs = _latest_states(lakehouse)
    if run_id:
        runs = runs.where(F.col("run_id") == run_id)
    if built_tables:
        runs = runs.where(F.col("status") != SKIPPED)
    row = runs.orderBy(F.col("started_at").desc(), F.col("run_id").desc()).first()
    return row.asDict(recursive=True) if row else None


def record_run(lakehouse: Lakehouse, state: dict[str, object]) -> None:
    """Append a run's current state (the columns of :data:`RUNS_SCHEMA`; ``recorded_at`` is set here)."""
    row = {**state, "recorded_at": datetime.now(UTC)}
    row_df = lakehouse.spark.createDataFrame([tuple(row.get(c) for c in _COLUMNS)], RUNS_SCHEMA)
    lakehouse.append(row_df, "silver", "runs")


def mark_abandoned_runs(lakehouse: Lakehouse) -> int:
    """Runs still ``running`` when a new one starts under the lock died midway: record them as ``abandoned``."""
    if not lakehouse.exists("silver", "runs"):
        return 0
    stale = _latest_states(lakehouse).where(F.col("status") == RUNNING).collect()
    for row in stale:
        state = row.asDict(recursive=True)
        record_run(lakehouse, {**state, "status": ABANDONED, "ended_at": datetime.now(UTC),
                               "error": "the process ended before the run finished"})  # fmt: skip
    return len(stale)


def rule_counts(lakehouse: Lakehouse) -> dict[str, int]:
    """Records per declared rule in the current tables (``dataset.reason`` -> count), zero for rules not hit."""
    counts = {f"{e.dataset}.{e.reason}": 0 for e in EXPECTATIONS}
    frames: list[DataFrame] = [
        lakehouse.read("silver", "quarantine").select("dataset", F.explode("reasons").alias("reason"))
    ]
    for dataset in ("customers", "products", "orders"):
        frames.append(
            lakehouse.read("silver", dataset).select(
                F.lit(dataset).alias("dataset"), F.explode("quality_flags").alias("reason")
            )
        )
    union = frames[0]
    for frame in frames[1:]:
        union = union.unionByName(frame)
    for row in union.groupBy("dataset", "reason").count().collect():
        counts[f"{row.dataset}.{row.reason}"] = row["count"]
    return counts


def quality_report(run: dict) -> str:
    """Plain-text data-quality report of one run."""
    by_key = {f"{e.dataset}.{e.reason}": e for e in EXPECTATIONS}
    lines = [
        f"run {run['run_id']}: {run['status']}",
        f"  started {run['started_at']}, ended {run.get('ended_at') or '-'}, input {run.get('input_path') or '-'}",
    ]
    if run.get("error"):
        lines.append(f"  error: {run['error']}")
    lines += ["", "rows written per table:"]
    lines += [f"  {table:<55} {rows:>10}" for table, rows in sorted((run.get("rows") or {}).items())]
    lines += ["", "reconciliation:"]
    lines += [f"  {k:<55} {v:>10}" for k, v in sorted((run.get("reconciliation") or {}).items())]
    lines += ["", f"  {'rule':<40} {'severity':<10} {'records':>8}  description"]
    for key, count in sorted((run.get("rule_counts") or {}).items()):
        rule = by_key.get(key)
        severity, description = (rule.severity.value, rule.description) if rule else ("?", "")
        lines.append(f"  {key:<40} {severity:<10} {count:>8}  {description}")
    return "\n".join(lines) + "\n"
