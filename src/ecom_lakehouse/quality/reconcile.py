"""Reconciliation: every source record is accounted for exactly once and the profit totals agree, checked on every
run; a break fails the run with its figures."""

from __future__ import annotations

import logging

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from ecom_lakehouse.errors import ReconciliationError
from ecom_lakehouse.io.tables import Lakehouse

log = logging.getLogger(__name__)


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
    log.debug("reconciled: %s", ", ".join(f"{k}={v}" for k, v in figures.items()))
    return figures
