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


def order_lines(bronze_orders_df: DataFrame) -> DataFrame:
    """Bronze order lines in all (``lines``) and those a later ingestion corrected (``superseded``, the rule of
    ``filter_current_versions``), counted in one pass on two narrow columns rather than the full rows: one row."""
    row_id = F.trim(F.col("row_id")).try_cast("bigint")
    per_version = bronze_orders_df.groupBy(row_id.alias("id"), "_ingested_at").count()
    latest = F.max("_ingested_at").over(Window.partitionBy("id"))
    older = F.col("id").isNotNull() & (F.col("_ingested_at") < F.col("_latest"))
    return per_version.withColumn("_latest", latest).agg(
        F.coalesce(F.sum("count"), F.lit(0)).alias("lines"),
        F.coalesce(F.sum(F.when(older, F.col("count"))), F.lit(0)).alias("superseded"),
    )


def _figures(df: DataFrame, **values: Column) -> DataFrame:
    """One aggregate of a table giving several figures, as rows of (figure, value)."""
    names = list(values)
    aggregated = df.agg(*[F.coalesce(values[k], F.lit(0)).cast(_FIGURE).alias(f"_{i}") for i, k in enumerate(names)])
    pairs = F.map_from_arrays(F.array(*map(F.lit, names)), F.array(*[F.col(f"_{i}") for i in range(len(names))]))
    return aggregated.select(F.explode(pairs).alias("figure", "value"))


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
    count = F.count(F.lit(1))
    quarantined = {f"{d}.quarantined": F.count_if(F.col("dataset") == d) for d in ("orders", "customers", "products")}
    parts = [  # one aggregate per table
        _figures(order_lines(read("bronze", "orders")), **{"orders.bronze": F.first("lines"),
                                                           "orders.superseded": F.first("superseded")}),
        _figures(read("silver", "orders"), **{"orders.silver": count, "profit.silver": F.sum("profit")}),
        _figures(read("silver", "quarantine"), **quarantined),
        _figures(read("bronze", "customers"), **{"customers.bronze": count}),
        _figures(read("silver", "customers"), **{"customers.silver": count}),
        _figures(read("bronze", "products"), **{"products.bronze": count}),
        _figures(read("silver", "products"), **{"products.silver_source_rows": F.sum("source_rows")}),
        _figures(read("gold", "profit"), **{"profit.gold": F.sum("profit")}),
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
