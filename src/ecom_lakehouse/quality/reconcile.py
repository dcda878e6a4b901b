"""Reconciliation: every source record is accounted for exactly once and the profit totals agree, checked on every
run; a break fails the run with its figures."""

from __future__ import annotations

import logging

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from ecom_lakehouse.errors import ReconciliationError
from ecom_lakehouse.io.tables import Lakehouse

log = logging.getLogger(__name__)


_FIGURE = "decimal(38,2)"  # every figure, counts and profit totals alike, fits exactly


def superseded_lines(bronze_orders_df: DataFrame) -> DataFrame:
    """Bronze order lines that a later ingestion corrected (the rule of ``filter_current_versions``), counted on
    two narrow columns rather than the full rows: one row, ``value``."""
    row_id = F.trim(F.col("row_id")).try_cast("bigint")
    per_version = bronze_orders_df.where(row_id.isNotNull()).groupBy(row_id.alias("id"), "_ingested_at").count()
    latest = F.max("_ingested_at").over(Window.partitionBy("id"))
    older = per_version.withColumn("_latest", latest).where(F.col("_ingested_at") < F.col("_latest"))
    return older.agg(F.coalesce(F.sum("count"), F.lit(0)).alias("value"))


def _figure(name: str, df: DataFrame, value: Column) -> DataFrame:
    return df.agg(F.coalesce(value, F.lit(0)).cast(_FIGURE).alias("value")).select(F.lit(name).alias("figure"), "value")


def reconcile(lakehouse: Lakehouse) -> dict[str, object]:
    """Check that every source record is accounted for exactly once and profit totals agree; raise if not.

    - orders: bronze lines = silver lines + quarantined lines + lines superseded by a later corrected file;
    - customers: bronze rows = silver rows + quarantined rows;
    - products: bronze rows = rows collapsed into silver (``source_rows``) + quarantined rows;
    - profit: total in silver orders_enriched = total in gold.

    Every figure comes from one query (one round trip to the compute, whatever the number of tables).

    Returns:
        The figures compared.

    Raises:
        ReconciliationError: naming the check that broke and its figures.
    """
    read = lakehouse.read
    quarantine = read("silver", "quarantine")
    silver_orders = read("silver", "orders")
    count = F.count(F.lit(1))
    parts = [
        _figure("orders.bronze", read("bronze", "orders"), count),
        superseded_lines(read("bronze", "orders")).select(F.lit("orders.superseded"), F.col("value").cast(_FIGURE)),
        _figure("orders.silver", silver_orders, count),
        _figure("customers.bronze", read("bronze", "customers"), count),
        _figure("customers.silver", read("silver", "customers"), count),
        _figure("products.bronze", read("bronze", "products"), count),
        _figure("products.silver_source_rows", read("silver", "products"), F.sum("source_rows")),
        _figure("profit.silver", silver_orders, F.sum("profit")),
        _figure("profit.gold", read("gold", "profit"), F.sum("profit")),
        *(_figure(f"{d}.quarantined", quarantine.where(F.col("dataset") == d), count)
          for d in ("orders", "customers", "products")),
    ]  # fmt: skip
    union = parts[0]
    for part in parts[1:]:
        union = union.unionAll(part)
    values = {row[0]: row[1] for row in union.collect()}
    order = ("orders.bronze", "orders.superseded", "orders.silver", "orders.quarantined", "customers.bronze",
             "customers.silver", "customers.quarantined", "products.bronze", "products.silver_source_rows",
             "products.quarantined", "profit.silver", "profit.gold")  # fmt: skip
    figures: dict[str, object] = {k: values[k] if k.startswith("profit.") else int(values[k]) for k in order}
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
