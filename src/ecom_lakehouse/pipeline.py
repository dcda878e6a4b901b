"""The pipeline's steps, each reading its inputs and writing its tables (the edges around the pure transforms).

The notebooks call exactly these functions, one step per notebook; ``ecom run`` calls them in order.

Reruns are idempotent and incremental: bronze remembers each source file it ingested by path and content hash
(``_source_file``, ``_source_sha256``) and reads only content it has not ingested yet; order files are appended,
so a new file adds only its lines and a corrected file's lines supersede the earlier copies; ``orders_enriched`` is
brought up to date with a MERGE on the line key that rewrites only the lines that changed. A run with nothing new
changes no table. Every write is one atomic Delta commit, so a run that dies midway leaves each table at a
consistent version and the next run completes the work.
"""

from __future__ import annotations

import logging
import math
import os
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from ecom_lakehouse import gold, runs, sources
from ecom_lakehouse.bronze import SOURCE_SHA256, to_bronze
from ecom_lakehouse.config import load_config
from ecom_lakehouse.errors import ReconciliationError, SourceError
from ecom_lakehouse.expectations import filter_quarantined
from ecom_lakehouse.silver import to_quarantine
from ecom_lakehouse.silver.customers import build_customers, checked_customers
from ecom_lakehouse.silver.orders import build_orders_enriched, checked_orders
from ecom_lakehouse.silver.products import build_products, checked_products
from ecom_lakehouse.spark import on_databricks
from ecom_lakehouse.storage import Lakehouse

log = logging.getLogger(__name__)

_READERS: dict[str, Callable] = {
    "orders": sources.read_orders,
    "customers": sources.read_customers,
    "products": sources.read_products,
}
WIDGETS = ("catalog", "bronze_schema", "silver_schema", "gold_schema")
DIMENSIONS = ("customers", "products")


def open_from_widgets(spark: SparkSession, widgets: object) -> Lakehouse:
    """The lakehouse named by a notebook's widgets (``catalog`` and the three schema names).

    Args:
        spark: the session.
        widgets: ``dbutils.widgets`` on Databricks, or the local runner's stand-in.
    """
    values = {name: widgets.get(name) for name in WIDGETS}  # type: ignore[attr-defined]
    return Lakehouse.open(spark, load_config().with_overrides(**values))


def new_run_id() -> str:
    """A sortable, unique run id: UTC timestamp plus a random suffix."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


@dataclass
class RunLog:
    """Rows written per table and seconds per step, in order, and what changed in this run."""

    run_id: str
    full_refresh: bool = False
    input_path: str | None = None
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    steps: list[tuple[str, int, float]] = field(default_factory=list)
    changed: set[str] = field(default_factory=set)

    @contextmanager
    def step(self, table: str) -> Iterator[list[int]]:
        """Time a step; the body appends the rows it wrote to the yielded list."""
        log.info("%s: running", table)
        started = time.perf_counter()
        rows: list[int] = []
        yield rows
        seconds = time.perf_counter() - started
        self.steps.append((table, sum(rows), seconds))
        log.info("%s: %d rows in %.1f s", table, sum(rows), seconds)

    def rows(self) -> dict[str, int]:
        """Rows written per table by the steps so far."""
        return {table: rows for table, rows, _ in self.steps}

    def state(self, status: str, **fields: object) -> dict[str, object]:
        """The run as a ``pipeline_runs`` record."""
        ended = None if status == runs.RUNNING else datetime.now(UTC)
        return {"run_id": self.run_id, "started_at": self.started_at, "ended_at": ended, "status": status,
                "input_path": self.input_path, "rows": self.rows(), **fields}  # fmt: skip

    def summary(self, spark: SparkSession) -> DataFrame:
        """The steps so far as a DataFrame (table, rows, seconds), for a notebook's final display."""
        return spark.createDataFrame(
            [(t, r, round(s, 1)) for t, r, s in self.steps], "table string, rows long, seconds double"
        )


# Raw bytes per shuffle partition locally: small inputs get a few partitions (less scheduling), large ones enough
# that no partition outgrows the driver's heap when cached.
BYTES_PER_SHUFFLE_PARTITION = 96 * 1024 * 1024


def size_shuffle_partitions(spark: SparkSession, files: list[str]) -> int | None:
    """Locally, set ``spark.sql.shuffle.partitions`` from the input size (4 to 256; ``ECOM_SHUFFLE_PARTITIONS``
    wins). On Databricks the cluster's settings and adaptive execution decide. Returns the value set, if any."""
    if on_databricks() or os.environ.get("ECOM_SHUFFLE_PARTITIONS") or any(sources.is_remote(f) for f in files):
        return None
    total = sum(os.path.getsize(f) for f in files)
    partitions = min(256, max(4, math.ceil(total / BYTES_PER_SHUFFLE_PARTITION)))
    spark.conf.set("spark.sql.shuffle.partitions", str(partitions))
    log.info("input %.1f MiB: %d shuffle partitions", total / 2**20, partitions)
    return partitions


def _ingested_hashes(lakehouse: Lakehouse, dataset: str) -> set[str]:
    # Orders bronze holds every file ever ingested; a dimension's bronze holds its current snapshot only, so
    # going back to an earlier snapshot's content is a change too.
    if not lakehouse.exists("bronze", dataset):
        return set()
    bronze = lakehouse.read("bronze", dataset)
    if SOURCE_SHA256 not in bronze.columns:
        return set()
    return {r[0] for r in bronze.select(SOURCE_SHA256).distinct().collect()}


def ingest_bronze(lakehouse: Lakehouse, input_path: str, run: RunLog) -> set[str]:
    """Ingest new or changed source files under ``input_path`` into bronze, as they came.

    Order files are appended (a file whose content was already ingested, under any name, is skipped). Customers
    and products are full snapshots: when any of their files is new or changed, their bronze table is replaced by
    the current files. With ``run.full_refresh`` every bronze table is rebuilt from the current files.

    Returns:
        The datasets whose bronze table changed (also added to ``run.changed``).
    """
    if not input_path.strip():
        raise SourceError("input_path is empty: pass the folder or URI holding the raw orders, customers and products")
    lakehouse.ensure_schemas()
    found = sources.discover_sources(lakehouse.spark, input_path, lakehouse.config)
    size_shuffle_partitions(lakehouse.spark, [f for files in found.values() for f in files])
    ingested_at = datetime.now(UTC)
    for dataset, files in found.items():
        fingerprints = sources.file_fingerprints(lakehouse.spark, files)
        # Content already ingested under any name (e.g. re-uploaded under a new ingest_date=) is not read again.
        known = set() if run.full_refresh else _ingested_hashes(lakehouse, dataset)
        new = [f for f in files if fingerprints[sources.file_uri(f)] not in known]
        table = lakehouse.config.table("bronze", dataset)
        if not new:
            log.info("%s: no new or changed file, nothing to ingest", table)
            continue
        incremental = dataset == "orders" and not run.full_refresh
        to_read = new if incremental else files
        with run.step(table) as rows:
            raw_df = _READERS[dataset](lakehouse.spark, to_read)
            bronze_df = to_bronze(raw_df, run.run_id, ingested_at, fingerprints)
            write = lakehouse.append if incremental else lakehouse.overwrite
            rows.append(write(bronze_df, "bronze", dataset))
        run.changed.add(dataset)
    return set(run.changed)


def _write_with_quarantine(
    lakehouse: Lakehouse,
    run: RunLog,
    dataset: str,
    checked_df: DataFrame,
    build: Callable[[DataFrame], DataFrame],
    merge_key: str | None = None,
) -> None:
    checked_df = checked_df.persist()
    try:
        with run.step(lakehouse.config.table("silver", dataset)) as rows:
            silver_df = build(checked_df)
            if merge_key and not run.full_refresh:
                changes = lakehouse.merge(silver_df, "silver", dataset, merge_key, "_row_hash")
                log.info("%s: merge %s", lakehouse.config.table("silver", dataset), changes)
                rows.append(sum(changes.values()))
            else:
                rows.append(lakehouse.overwrite(silver_df, "silver", dataset))
        with run.step(f"{lakehouse.config.table('silver', 'quarantine')}[{dataset}]") as rows:
            quarantined = checked_df.transform(filter_quarantined).transform(to_quarantine(dataset))
            only_this = f"dataset = '{dataset}'"
            rows.append(lakehouse.overwrite(quarantined, "silver", "quarantine", replace_where=only_this))
    finally:
        checked_df.unpersist()


def build_silver_dimensions(lakehouse: Lakehouse, run: RunLog) -> None:
    """Bronze customers and products -> silver customers and products (+ their quarantined records)."""
    _write_with_quarantine(
        lakehouse, run, "customers", checked_customers(lakehouse.read("bronze", "customers")), build_customers
    )
    _write_with_quarantine(
        lakehouse, run, "products", checked_products(lakehouse.read("bronze", "products")), build_products
    )


def build_silver_orders(lakehouse: Lakehouse, run: RunLog) -> None:
    """Bronze orders + silver dimensions -> silver orders_enriched by MERGE on row_id (+ quarantined lines)."""
    checked = checked_orders(
        lakehouse.read("bronze", "orders"), lakehouse.read("silver", "customers"), lakehouse.read("silver", "products")
    )
    _write_with_quarantine(lakehouse, run, "orders", checked, build_orders_enriched, merge_key="row_id")


def build_gold(lakehouse: Lakehouse, run: RunLog) -> dict[str, object]:
    """Silver orders_enriched -> gold profit_aggregate, then reconcile the layers and record the run."""
    with run.step(lakehouse.config.table("gold", "profit")) as rows:
        rows.append(lakehouse.overwrite(gold.aggregate_profit(lakehouse.read("silver", "orders")), "gold", "profit"))
    lakehouse.comment("gold", "profit", gold.TABLE_COMMENT)
    figures = reconcile(lakehouse)
    reconciliation = {k: str(v) for k, v in figures.items()}
    state = run.state(runs.SUCCEEDED, reconciliation=reconciliation, rule_counts=runs.rule_counts(lakehouse))
    runs.record_run(lakehouse, state)
    return figures


def count_superseded(bronze_orders_df: DataFrame) -> int:
    """Bronze order lines that a later ingestion corrected (the rule of ``filter_current_versions``), counted on
    two narrow columns rather than the full rows."""
    row_id = F.trim(F.col("row_id")).try_cast("bigint")
    per_version = bronze_orders_df.where(row_id.isNotNull()).groupBy(row_id.alias("id"), "_ingested_at").count()
    latest = F.max("_ingested_at").over(Window.partitionBy("id"))
    older = per_version.withColumn("_latest", latest).where(F.col("_ingested_at") < F.col("_latest"))
    return int(older.agg(F.sum("count")).first()[0] or 0)


def reconcile(lakehouse: Lakehouse) -> dict[str, object]:
    """Check that every source record is accounted for exactly once and profit totals agree; raise if not.

    - orders: bronze lines = silver lines + quarantined lines + lines superseded by a later corrected file;
    - customers: bronze rows = silver rows + quarantined rows;
    - products: bronze rows = rows collapsed into silver (``source_rows``) + quarantined rows;
    - profit: total in silver orders_enriched = total in gold.

    Returns:
        The figures compared.

    Raises:
        ReconciliationError: naming the check that broke and its figures.
    """
    quarantine = lakehouse.read("silver", "quarantine").groupBy("dataset").count().collect()
    quarantined = {r["dataset"]: r["count"] for r in quarantine}
    bronze_orders = lakehouse.read("bronze", "orders")
    silver_orders = lakehouse.read("silver", "orders").agg(F.count(F.lit(1)), F.sum("profit")).first()
    figures: dict[str, object] = {
        "orders.bronze": bronze_orders.count(),
        "orders.superseded": None,
        "orders.silver": silver_orders[0],
        "orders.quarantined": quarantined.get("orders", 0),
        "customers.bronze": lakehouse.read("bronze", "customers").count(),
        "customers.silver": lakehouse.read("silver", "customers").count(),
        "customers.quarantined": quarantined.get("customers", 0),
        "products.bronze": lakehouse.read("bronze", "products").count(),
        "products.silver_source_rows": lakehouse.read("silver", "products").agg(F.sum("source_rows")).first()[0] or 0,
        "products.quarantined": quarantined.get("products", 0),
        "profit.silver": silver_orders[1],
        "profit.gold": lakehouse.read("gold", "profit").agg(F.sum("profit")).first()[0],
    }
    figures["orders.superseded"] = count_superseded(bronze_orders)
    checks = [
        ("orders", figures["orders.bronze"],
         figures["orders.silver"] + figures["orders.quarantined"] + figures["orders.superseded"]),
        ("customers", figures["customers.bronze"], figures["customers.silver"] + figures["customers.quarantined"]),
        ("products", figures["products.bronze"],
         figures["products.silver_source_rows"] + figures["products.quarantined"]),
        ("profit", figures["profit.silver"], figures["profit.gold"]),
    ]  # fmt: skip
    for name, left, right in checks:
        if left != right:
            detail = ", ".join(f"{k}={v}" for k, v in figures.items() if k.startswith(name))
            raise ReconciliationError(f"{name} do not reconcile: {left} != {right} ({detail})")
    log.info("reconciled: %s", ", ".join(f"{k}={v}" for k, v in figures.items()))
    return figures


def run_all(lakehouse: Lakehouse, input_path: str, run_id: str | None = None, *, full_refresh: bool = False) -> RunLog:
    """Every layer in order: bronze, silver dimensions, silver orders, gold (reconciled), recorded in pipeline_runs.

    When no source file is new or changed and the previous run succeeded, nothing is rewritten.
    """
    run = RunLog(run_id or new_run_id(), full_refresh=full_refresh, input_path=input_path)
    log.info("run %s: input %s%s", run.run_id, input_path, " (full refresh)" if full_refresh else "")
    lakehouse.ensure_schemas()
    runs.mark_abandoned_runs(lakehouse)
    previous = runs.latest_run(lakehouse)
    runs.record_run(lakehouse, run.state(runs.RUNNING))
    try:
        changed = ingest_bronze(lakehouse, input_path, run)
        complete = previous is not None and previous["status"] in (runs.SUCCEEDED, runs.SKIPPED)
        if not changed and complete and lakehouse.exists("gold", "profit"):
            log.info("nothing new since run %s: silver and gold unchanged", previous["run_id"])
            runs.record_run(lakehouse, run.state(runs.SKIPPED))
            return run
        if full_refresh or not complete or changed & set(DIMENSIONS) or not lakehouse.exists("silver", "customers"):
            build_silver_dimensions(lakehouse, run)
        build_silver_orders(lakehouse, run)
        build_gold(lakehouse, run)
    except BaseException as exc:
        runs.record_run(lakehouse, run.state(runs.FAILED, error=f"{exc.__class__.__name__}: {exc}"[:2000]))
        raise
    return run
