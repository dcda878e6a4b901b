"""The pipeline's steps, each reading its inputs and writing its tables (the edges around the pure transforms).

:mod:`ecom_lakehouse.run.lifecycle` runs them, for ``ecom run`` and for the job's notebooks alike.

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
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from pyspark.sql import DataFrame, SparkSession

from ecom_lakehouse import gold
from ecom_lakehouse.bronze import SOURCE_SHA256, to_bronze
from ecom_lakehouse.errors import SourceError
from ecom_lakehouse.io import sources
from ecom_lakehouse.io.tables import Lakehouse, cached
from ecom_lakehouse.quality.expectations import filter_quarantined
from ecom_lakehouse.silver import to_quarantine
from ecom_lakehouse.silver.customers import build_customers, checked_customers
from ecom_lakehouse.silver.orders import build_orders_enriched, checked_orders
from ecom_lakehouse.silver.products import build_products, checked_products
from ecom_lakehouse.spark import on_databricks

if TYPE_CHECKING:
    from ecom_lakehouse.run.lifecycle import PipelineRun

log = logging.getLogger(__name__)

_READERS: dict[str, Callable] = {
    "orders": sources.read_orders,
    "customers": sources.read_customers,
    "products": sources.read_products,
}
DIMENSIONS = ("customers", "products")


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
    log.debug("input %.1f MiB: %d shuffle partitions", total / 2**20, partitions)
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


def ingest_bronze(lakehouse: Lakehouse, input_path: str, run: PipelineRun) -> set[str]:
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
        with run.table_step(table) as rows:
            raw_df = _READERS[dataset](lakehouse.spark, to_read)
            bronze_df = to_bronze(raw_df, run.run_id, ingested_at, fingerprints)
            write = lakehouse.append if incremental else lakehouse.overwrite
            rows.append(write(bronze_df, "bronze", dataset))
        run.changed.add(dataset)
    return set(run.changed)


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


def build_silver_dimensions(lakehouse: Lakehouse, run: PipelineRun) -> None:
    """Bronze customers and products -> silver customers and products (+ their quarantined records)."""
    with (
        cached(checked_customers(lakehouse.read("bronze", "customers"))) as customers,
        cached(checked_products(lakehouse.read("bronze", "products"))) as products,
    ):
        _write_silver(lakehouse, run, "customers", build_customers(customers), None)
        _write_silver(lakehouse, run, "products", build_products(products), None)
        _write_quarantine(lakehouse, run, {"customers": customers, "products": products})


def build_silver_orders(lakehouse: Lakehouse, run: PipelineRun) -> None:
    """Bronze orders + silver dimensions -> silver orders_enriched by MERGE on row_id (+ quarantined lines)."""
    checked = checked_orders(
        lakehouse.read("bronze", "orders"), lakehouse.read("silver", "customers"), lakehouse.read("silver", "products")
    )
    with cached(checked) as checked:
        _write_silver(lakehouse, run, "orders", build_orders_enriched(checked), "row_id")
        _write_quarantine(lakehouse, run, {"orders": checked})


def build_gold(lakehouse: Lakehouse, run: PipelineRun) -> None:
    """Silver orders_enriched -> gold profit_aggregate (with its table comment)."""
    with run.table_step(lakehouse.config.table("gold", "profit")) as rows:
        rows.append(lakehouse.overwrite(gold.aggregate_profit(lakehouse.read("silver", "orders")), "gold", "profit"))
    lakehouse.comment("gold", "profit", gold.TABLE_COMMENT)
