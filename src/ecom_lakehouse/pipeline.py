"""The pipeline's steps, each reading its inputs and writing its tables (the edges around the pure transforms).

The notebooks call exactly these functions, one step per notebook; ``ecom run`` calls them in order.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from ecom_lakehouse import gold, sources
from ecom_lakehouse.bronze import to_bronze
from ecom_lakehouse.config import load_config
from ecom_lakehouse.errors import ReconciliationError, SourceError
from ecom_lakehouse.expectations import filter_quarantined
from ecom_lakehouse.silver import to_quarantine
from ecom_lakehouse.silver.customers import build_customers, checked_customers
from ecom_lakehouse.silver.orders import build_orders_enriched, checked_orders
from ecom_lakehouse.silver.products import build_products, checked_products
from ecom_lakehouse.storage import Lakehouse

log = logging.getLogger(__name__)

_READERS: dict[str, Callable] = {
    "orders": sources.read_orders,
    "customers": sources.read_customers,
    "products": sources.read_products,
}


WIDGETS = ("catalog", "bronze_schema", "silver_schema", "gold_schema")


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
    """Rows written per table and seconds per step, in order."""

    run_id: str
    steps: list[tuple[str, int, float]] = field(default_factory=list)

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

    def summary(self, spark: SparkSession) -> DataFrame:
        """The steps so far as a DataFrame (table, rows, seconds), for a notebook's final display."""
        return spark.createDataFrame(
            [(t, r, round(s, 1)) for t, r, s in self.steps], "table string, rows long, seconds double"
        )


def ingest_bronze(lakehouse: Lakehouse, input_path: str, run: RunLog) -> None:
    """Read every source under ``input_path`` and overwrite the bronze tables with it, as it came."""
    if not input_path.strip():
        raise SourceError("input_path is empty: pass the folder or URI holding the raw orders, customers and products")
    lakehouse.ensure_schemas()
    found = sources.discover_sources(lakehouse.spark, input_path, lakehouse.config)
    ingested_at = datetime.now(UTC)
    for dataset, files in found.items():
        with run.step(lakehouse.config.table("bronze", dataset)) as rows:
            raw_df = _READERS[dataset](lakehouse.spark, files)
            rows.append(lakehouse.overwrite(to_bronze(raw_df, run.run_id, ingested_at), "bronze", dataset))


def _write_with_quarantine(
    lakehouse: Lakehouse, run: RunLog, dataset: str, checked_df: DataFrame, build: Callable[[DataFrame], DataFrame]
) -> None:
    checked_df = checked_df.persist()
    try:
        with run.step(lakehouse.config.table("silver", dataset)) as rows:
            rows.append(lakehouse.overwrite(build(checked_df), "silver", dataset))
        with run.step(f"{lakehouse.config.table('silver', 'quarantine')}[{dataset}]") as rows:
            quarantined = checked_df.transform(filter_quarantined).transform(to_quarantine(dataset))
            rows.append(
                lakehouse.overwrite(quarantined, "silver", "quarantine", replace_where=f"dataset = '{dataset}'")
            )
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
    """Bronze orders + silver dimensions -> silver orders_enriched (+ quarantined order records)."""
    checked = checked_orders(
        lakehouse.read("bronze", "orders"), lakehouse.read("silver", "customers"), lakehouse.read("silver", "products")
    )
    _write_with_quarantine(lakehouse, run, "orders", checked, build_orders_enriched)


def build_gold(lakehouse: Lakehouse, run: RunLog) -> None:
    """Silver orders_enriched -> gold profit_aggregate, then reconcile the layers."""
    with run.step(lakehouse.config.table("gold", "profit")) as rows:
        rows.append(lakehouse.overwrite(gold.aggregate_profit(lakehouse.read("silver", "orders")), "gold", "profit"))
    reconcile(lakehouse)


def reconcile(lakehouse: Lakehouse) -> dict[str, object]:
    """Check that no order line was lost or double-counted and profit totals agree; raise if not.

    Returns:
        The figures compared.

    Raises:
        ReconciliationError: bronze rows != silver + quarantined rows, or silver profit != gold profit.
    """
    bronze_rows = lakehouse.read("bronze", "orders").count()
    silver = lakehouse.read("silver", "orders").agg(F.count(F.lit(1)), F.sum("profit")).first()
    quarantined = lakehouse.read("silver", "quarantine").where(F.col("dataset") == "orders").count()
    gold_profit = lakehouse.read("gold", "profit").agg(F.sum("profit")).first()[0]
    figures = {
        "bronze_order_lines": bronze_rows,
        "silver_order_lines": silver[0],
        "quarantined_order_lines": quarantined,
        "silver_profit": silver[1],
        "gold_profit": gold_profit,
    }
    if bronze_rows != silver[0] + quarantined:
        raise ReconciliationError(
            f"order lines do not reconcile: bronze {bronze_rows} != silver {silver[0]} + quarantined {quarantined}"
        )
    if silver[1] != gold_profit:
        raise ReconciliationError(f"profit does not reconcile: silver {silver[1]} != gold {gold_profit}")
    log.info("reconciled: %s", ", ".join(f"{k}={v}" for k, v in figures.items()))
    return figures


def run_all(lakehouse: Lakehouse, input_path: str, run_id: str | None = None) -> RunLog:
    """Every layer in order: bronze, silver dimensions, silver orders, gold (reconciled)."""
    run = RunLog(run_id or new_run_id())
    log.info("run %s: input %s", run.run_id, input_path)
    ingest_bronze(lakehouse, input_path, run)
    build_silver_dimensions(lakehouse, run)
    build_silver_orders(lakehouse, run)
    build_gold(lakehouse, run)
    return run
