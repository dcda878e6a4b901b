"""The pipeline's steps, each reading its inputs and writing its tables (the edges around the pure transforms).

:mod:`ecom_lakehouse.run.lifecycle` runs them, for ``ecom run`` and for the job's notebooks alike.

Reruns are idempotent and incremental: order files arrive through a stream that finds each new file once (its
checkpoint) and bronze remembers every file it ingested by path and content hash (``_source_file``,
``_source_sha256``), so only new content is read; order files are appended, so a new file adds only its lines and a
re-issued export's lines supersede the earlier copies; ``orders_enriched`` is brought up to date with a MERGE on the
line key that rewrites only the lines that changed. A run with nothing new changes no table. Every write is one atomic
Delta commit, so a run that dies midway leaves each table at a consistent version and the next run completes the
work.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from ecom_lakehouse import gold
from ecom_lakehouse.bronze import RUN_ID, SOURCE_SHA256, to_bronze
from ecom_lakehouse.errors import SourceError
from ecom_lakehouse.io import arrivals, sources
from ecom_lakehouse.io.tables import Lakehouse, cached
from ecom_lakehouse.quality.expectations import filter_quarantined
from ecom_lakehouse.run.state import PipelineRun
from ecom_lakehouse.silver import incremental, to_quarantine
from ecom_lakehouse.silver.customers import build_customers, checked_customers
from ecom_lakehouse.silver.orders import build_orders_enriched, checked_orders
from ecom_lakehouse.silver.products import build_products, checked_products
from ecom_lakehouse.spark import on_databricks

log = logging.getLogger(__name__)

_READERS: dict[str, Callable] = {
    "customers": sources.read_customers,
    "products": sources.read_products,
}
DIMENSIONS = ("customers", "products")


# Raw bytes per shuffle partition locally: small inputs get a few partitions (less scheduling), large ones enough
# that no partition outgrows the driver's heap when cached.
BYTES_PER_SHUFFLE_PARTITION = 96 * 1024 * 1024
# Below this much data, Spark evaluating expressions directly beats generating and compiling Java for every query
# (whole-stage code generation: the real export's run took 8.9 s instead of 13.5 s without it, a 3-line input 8.0 s
# instead of 15.4 s, on a warm local server); above it, compiled code pays for itself.
SMALL_DATA_BYTES = 16 * 1024 * 1024
SMALL_DATA_SETTINGS = {"spark.sql.codegen.wholeStage": "false", "spark.sql.codegen.factoryMode": "NO_CODEGEN"}


def size_for_input(spark: SparkSession, files: list[str]) -> int | None:
    """Locally, size the session for the input: ``spark.sql.shuffle.partitions`` from its size (4 to 256;
    ``ECOM_SHUFFLE_PARTITIONS`` wins) and :func:`size_for_data`. On Databricks (or files read by remote compute) the
    compute's own settings decide. Returns the input's bytes when it sized anything."""
    if on_databricks() or any(sources.through_spark(spark, f) for f in files):
        return None
    total = sum(os.path.getsize(f) for f in files)
    if not os.environ.get("ECOM_SHUFFLE_PARTITIONS"):
        partitions = min(256, max(4, math.ceil(total / BYTES_PER_SHUFFLE_PARTITION)))
        spark.conf.set("spark.sql.shuffle.partitions", str(partitions))
        log.debug("input %.1f MiB: %d shuffle partitions", total / 2**20, partitions)
    size_for_data(spark, total)
    return total


def size_for_data(spark: SparkSession, size_bytes: int) -> None:
    """Interpreted evaluation for small data (:data:`SMALL_DATA_SETTINGS`), Spark's defaults otherwise."""
    for key, value in SMALL_DATA_SETTINGS.items():
        if size_bytes < SMALL_DATA_BYTES:
            spark.conf.set(key, value)
        else:
            spark.conf.unset(key)


def _ingested_hashes(lakehouse: Lakehouse, dataset: str) -> set[str]:
    # A dimension's bronze holds its current snapshot only, so going back to an earlier snapshot's content is a change.
    if not lakehouse.exists("bronze", dataset):
        return set()
    bronze = lakehouse.read("bronze", dataset)
    if SOURCE_SHA256 not in bronze.columns:
        return set()
    return {r[0] for r in bronze.select(SOURCE_SHA256).distinct().collect()}


def ingest_bronze(lakehouse: Lakehouse, input_path: str, run: PipelineRun) -> set[str]:
    """Ingest new or changed source files under ``input_path`` into bronze, as they came.

    Orders arrive through the stream (:mod:`ecom_lakehouse.io.arrivals`): the new files are appended, each exactly
    once. Customers and products are full snapshots read in batch: when any of their files is new or changed, their
    bronze table is replaced by the current files. With ``run.full_refresh`` every bronze table is rebuilt from the
    current files (the stream starts over with a new checkpoint).

    Returns:
        The datasets whose bronze table changed (also added to ``run.changed``).
    """
    if not input_path.strip():
        raise SourceError("input_path is empty: pass the folder or URI holding the raw orders, customers and products")
    lakehouse.ensure_schemas()
    found = sources.discover_sources(lakehouse.spark, input_path, lakehouse.config)
    size_for_input(lakehouse.spark, [f for files in found.values() for f in files])
    ingested_at = datetime.now(UTC)
    concurrently(
        lambda: _ingest_orders(lakehouse, input_path, run, ingested_at, found["orders"]),
        *(lambda d=dataset: _ingest_snapshot(lakehouse, d, found[d], run, ingested_at) for dataset in DIMENSIONS),
    )
    return set(run.changed)


def concurrently(*work: Callable[[], object]) -> list[object]:
    """Run independent steps at once and return their results in order; the first failure is raised once all ended.

    Writes of different tables are independent; on a small input most of each one is waiting on the driver
    (planning, the Delta commit, the log), which overlaps even on two cores.
    """
    if len(work) <= 1:
        return [step() for step in work]
    with ThreadPoolExecutor(max_workers=len(work)) as pool:
        futures = [pool.submit(step) for step in work]
    for future in futures:
        if future.exception() is not None:
            raise future.exception()  # type: ignore[misc]
    return [future.result() for future in futures]


def _ingest_orders(
    lakehouse: Lakehouse, input_path: str, run: PipelineRun, ingested_at: datetime, listed: list[str]
) -> None:
    """The order files the stream finds and bronze does not hold yet, appended in one commit (see io.arrivals)."""
    table = lakehouse.config.table("bronze", "orders")
    local = {f: os.path.getsize(f) for f in listed if not sources.through_spark(lakehouse.spark, f)}
    if empty := [f for f, size in local.items() if size == 0]:  # Spark's file sources list no empty file
        raise SourceError(f"{empty[0]}: empty file, no order records")
    first_stream = not lakehouse.exists("bronze", "files")
    checkpoint = run.checkpoint or arrivals.checkpoint(lakehouse, arrivals.default_location(lakehouse) or "", "initial")
    if run.full_refresh:
        arrivals.reset_log(lakehouse)
    pattern = lakehouse.config.sources["orders"].pattern.pattern
    arrivals.record_arrivals(lakehouse, input_path, pattern, run.run_id, checkpoint)
    held = {} if run.full_refresh else arrivals.ingested(lakehouse)
    events = arrivals.read_log(lakehouse)
    for path in arrivals.rewritten(events, held, {sources.file_uri(f): size for f, size in local.items()}):
        log.warning("%s changed after it was ingested and is not read again: upload a corrected export as a new "
                    "file (a new ingest_date= folder)", path)  # fmt: skip
    todo = arrivals.pending(events, held)
    if not todo:
        log.info("%s: no new order file, nothing to ingest", table)
        return
    fingerprints = sources.file_fingerprints(lakehouse.spark, [a.path for a in todo])
    keep, skipped = arrivals.decide(todo, {a.path: fingerprints[sources.file_uri(a.path)] for a in todo}, held)
    for arrival, reason in skipped:
        log.info("%s: not ingested, %s", arrival.path, reason)
    if skipped:
        arrivals.record_skipped(lakehouse, skipped, run.run_id)
    if first_stream and held:
        log.info("%s: the orders stream starts now; the %d files bronze holds are not read again, %d older or "
                 "duplicate files are skipped", table, len(held), len(skipped))  # fmt: skip
    if not keep:
        return
    with run.table_step(table) as rows:
        raw_df = sources.read_orders(lakehouse.spark, [a.path for a in keep])
        bronze_df = to_bronze(raw_df, run.run_id, ingested_at, fingerprints)
        write = lakehouse.overwrite if run.full_refresh else lakehouse.append
        rows.append(write(bronze_df, "bronze", "orders"))
    run.changed.add("orders")


def _ingest_snapshot(
    lakehouse: Lakehouse, dataset: str, files: list[str], run: PipelineRun, ingested_at: datetime
) -> None:
    """A dimension's bronze replaced by its current files when any of them is new or changed."""
    fingerprints = sources.file_fingerprints(lakehouse.spark, files)
    known = set() if run.full_refresh else _ingested_hashes(lakehouse, dataset)
    table = lakehouse.config.table("bronze", dataset)
    if all(fingerprints[sources.file_uri(f)] in known for f in files):
        log.info("%s: no new or changed file, nothing to ingest", table)
        return
    with run.table_step(table) as rows:
        raw_df = _READERS[dataset](lakehouse.spark, files)
        rows.append(lakehouse.overwrite(to_bronze(raw_df, run.run_id, ingested_at, fingerprints), "bronze", dataset))
    run.changed.add(dataset)


def _write_silver(
    lakehouse: Lakehouse, run: PipelineRun, dataset: str, silver_df: DataFrame, merge_key: str | None
) -> None:
    with run.table_step(lakehouse.config.table("silver", dataset)) as rows:
        if merge_key and not run.full_refresh:
            changes = lakehouse.merge(silver_df, "silver", dataset, merge_key, "_row_hash")
            log.debug("%s: merge %s", lakehouse.config.table("silver", dataset), changes)
            rows.append(sum(changes.values()))
        else:
            rows.append(lakehouse.overwrite(silver_df, "silver", dataset))


def _write_quarantine(lakehouse: Lakehouse, run: PipelineRun, checked: dict[str, DataFrame]) -> None:
    """One commit for the quarantined records of the datasets a step checked (their earlier records replaced)."""
    datasets = ", ".join(checked)
    with run.table_step(f"{lakehouse.config.table('silver', 'quarantine')}[{datasets}]") as rows:
        frames = [df.transform(filter_quarantined).transform(to_quarantine(d)) for d in checked for df in [checked[d]]]
        quarantined = frames[0]
        for frame in frames[1:]:
            quarantined = quarantined.unionByName(frame)
        only_these = "dataset IN (" + ", ".join(f"'{d}'" for d in checked) + ")"
        rows.append(lakehouse.overwrite(quarantined, "silver", "quarantine", replace_where=only_these))


def dimensions_current(lakehouse: Lakehouse) -> bool:
    """Silver customers and products exist with the columns this version writes (else they are rebuilt)."""
    return lakehouse.exists("silver", "customers") and _has_columns(
        lakehouse, ("silver", "products"), ["unit_price_min", "unit_price_max"]
    )


def build_silver_dimensions(lakehouse: Lakehouse, run: PipelineRun) -> None:
    """Bronze customers and products -> silver customers and products (+ their quarantined records)."""
    with (
        cached(checked_customers(lakehouse.read("bronze", "customers"))) as customers,
        cached(checked_products(lakehouse.read("bronze", "products"))) as products,
    ):
        concurrently(
            lambda: _write_silver(lakehouse, run, "customers", build_customers(customers), None),
            lambda: _write_silver(lakehouse, run, "products", build_products(products), None),
            lambda: _write_quarantine(lakehouse, run, {"customers": customers, "products": products}),
        )


# Silver orders_enriched keeps its change data feed: gold is brought up to date from the rows that changed.
CHANGE_FEED = {"delta.enableChangeDataFeed": "true"}
# A silver table written before these columns existed cannot be updated line by line: it is rebuilt once.
_INCREMENTAL_COLUMNS = {
    ("silver", "orders"): {"_content_hash", "_dimension_hash"},
    ("silver", "quarantine"): {"row_id"},
}


def build_silver_orders(lakehouse: Lakehouse, run: PipelineRun) -> None:
    """Bronze orders + silver dimensions -> silver orders_enriched and the quarantined lines.

    Incrementally (the previous run finished): only the lines :func:`silver.incremental.lines_to_check` names are
    checked again and merged. Otherwise every bronze line is checked and the table brought level by a MERGE that
    rewrites only the lines that changed (or rebuilt when its columns changed).
    """
    customers, products = lakehouse.read("silver", "customers"), lakehouse.read("silver", "products")
    if run.incremental and all(
        lakehouse.exists(*table) and columns <= set(lakehouse.read(*table).columns)
        for table, columns in _INCREMENTAL_COLUMNS.items()
    ):
        _update_silver_orders(lakehouse, run, customers, products)
        return
    checked = checked_orders(lakehouse.read("bronze", "orders"), customers, products)
    with cached(checked) as checked:
        silver_df = build_orders_enriched(checked)
        same_columns = lakehouse.exists("silver", "orders") and lakehouse.read("silver", "orders").columns == list(
            silver_df.columns
        )

        def write_orders() -> None:
            with run.table_step(lakehouse.config.table("silver", "orders")) as rows:
                if same_columns and not run.full_refresh:
                    rows.append(sum(lakehouse.merge(silver_df, "silver", "orders", "row_id", "_row_hash").values()))
                else:
                    rows.append(lakehouse.overwrite(silver_df, "silver", "orders", properties=CHANGE_FEED))

        concurrently(write_orders, lambda: _write_quarantine(lakehouse, run, {"orders": checked}))


def _update_silver_orders(lakehouse: Lakehouse, run: PipelineRun, customers: DataFrame, products: DataFrame) -> None:
    bronze = lakehouse.read("bronze", "orders")
    new_bronze = bronze.where(F.col(RUN_ID) == run.run_id)
    silver = lakehouse.read("silver", "orders")
    quarantine = lakehouse.read("silver", "quarantine").where(F.col("dataset") == "orders")
    dimensions_rebuilt = run.plan is not None and "silver_dimensions" in run.plan
    by_dimensions = incremental.changed_by_dimensions(silver, customers, products) if dimensions_rebuilt else None
    with cached(incremental.lines_to_check(new_bronze, silver, quarantine, by_dimensions)) as scope:
        keys = scope.select(F.col("row_id").alias("_line_key"))
        to_check = (
            bronze.withColumn("_line_key", incremental.line_key())
            .join(keys, "_line_key", "left_semi")
            .drop("_line_key")
            .unionByName(new_bronze.where(incremental.line_key().isNull()))
        )
        with cached(checked_orders(to_check, customers, products)) as checked:
            table = lakehouse.config.table("silver", "orders")

            def merge_orders() -> None:
                with run.table_step(table) as rows:
                    silver_df = build_orders_enriched(checked)
                    changes = lakehouse.merge_in_scope(silver_df, "silver", "orders", "row_id", "_row_hash", scope)
                    log.debug("%s: incremental merge %s", table, changes)
                    rows.append(sum(changes.values()))

            def merge_quarantine() -> None:
                with run.table_step(f"{lakehouse.config.table('silver', 'quarantine')}[orders]") as rows:
                    quarantined = checked.transform(filter_quarantined).transform(to_quarantine("orders"))
                    where = "t.dataset = 'orders'"
                    replaced = lakehouse.replace_in_scope(quarantined, "silver", "quarantine", "row_id", scope, where)
                    rows.append(sum(replaced.values()))

            concurrently(merge_orders, merge_quarantine)


def build_gold(lakehouse: Lakehouse, run: PipelineRun) -> None:
    """Silver orders_enriched -> gold profit_aggregate (with its table comment).

    Incrementally, when gold was last built from silver at ``run.base_versions``: the silver rows changed since then
    (the change data feed) are added to gold with their signs, in one MERGE; without a change, gold is not written.
    Otherwise gold is rebuilt from silver.
    """
    table = lakehouse.config.table("gold", "profit")
    base = (run.base_versions or {}).get(SILVER_ORDERS_VERSION)
    if run.incremental and base is not None and _has_columns(lakehouse, ("gold", "profit"), gold.SUMS):
        current = lakehouse.version("silver", "orders")
        try:
            with run.table_step(table) as rows:
                if current != base:
                    delta = gold.profit_changes(lakehouse.changes("silver", "orders", base))
                    merged = lakehouse.merge_sums(delta, "gold", "profit", list(gold.GRAIN), gold.SUMS, "order_lines")
                    log.debug("%s: merge %s", table, merged)
                    rows.append(sum(merged.values()))
            return
        except Exception as exc:  # only a missing change feed (a table older than it) falls back to a rebuild
            if "change data" not in str(exc).lower() and "CHANGE_DATA" not in str(exc):
                raise
            log.info("%s: silver has no change feed since version %s; rebuilding gold", table, base)
    with run.table_step(table) as rows:
        profit_df = gold.aggregate_profit(lakehouse.read("silver", "orders"))
        rows.append(lakehouse.overwrite(profit_df, "gold", "profit", comment=gold.TABLE_COMMENT))


def _has_columns(lakehouse: Lakehouse, table: tuple[str, str], columns: list[str]) -> bool:
    """The table exists with these columns (a table written by an older version may lack some: it is rebuilt)."""
    return lakehouse.exists(*table) and set(columns) <= set(lakehouse.read(*table).columns)


SILVER_ORDERS_VERSION = "silver.orders"  # the key of silver orders' version in a run's versions
