"""Gold: profit aggregated at (year, category, sub_category, customer_id, customer_name)."""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from ecom_lakehouse.quality.expectations import anomalies_for

GRAIN = ("year", "category", "sub_category", "customer_id", "customer_name")
PROFIT_TYPE = "decimal(28,2)"
SUMS = ["profit", "anomaly_lines", "anomaly_profit"]  # the columns an incremental run adds to (with order_lines)

TABLE_COMMENT = (
    "Profit (USD) by order year, product category and sub-category, and customer; one row per combination. "
    "Built from ecom_silver.orders_enriched: every valid order line counted once; lines whose product or customer "
    "is not in the source dimensions are under 'Unknown'."
)
COLUMN_COMMENTS = {
    "year": "Calendar year of the order date",
    "category": "Product category (Furniture, Office Supplies, Technology; Unknown when the product is missing)",
    "sub_category": "Product sub-category (Unknown when the product is missing)",
    "customer_id": "Customer ID from the orders export",
    "customer_name": "Cleaned customer name; Unknown when the customer or its name is missing",
    "profit": "Sum of the order lines' profit, each rounded half-up to 2 decimals (exact DECIMAL)",
    "order_lines": "Number of order lines summed",
    "anomaly_lines": "Order lines among them flagged as a value anomaly (quality_flags); kept and counted in profit",
    "anomaly_profit": "Profit carried by those flagged lines (part of profit, exact DECIMAL)",
}


def aggregate_profit(orders_enriched_df: DataFrame) -> DataFrame:
    """Sum profit (DECIMAL, exact) and count order lines at the gold grain; columns carry their comments.

    Args:
        orders_enriched_df: silver orders_enriched.

    Returns:
        One row per (year, category, sub_category, customer_id, customer_name).
    """
    flagged = _is_anomaly()
    aggregated = orders_enriched_df.groupBy(*GRAIN).agg(
        F.sum("profit").cast(PROFIT_TYPE).alias("profit"),
        F.count(F.lit(1)).alias("order_lines"),
        F.count(F.when(flagged, 1)).alias("anomaly_lines"),
        F.coalesce(F.sum(F.when(flagged, F.col("profit"))), F.lit(0)).cast(PROFIT_TYPE).alias("anomaly_profit"),
    )
    return aggregated.select(*[F.col(c).alias(c, metadata={"comment": COLUMN_COMMENTS[c]}) for c in aggregated.columns])


_SIGNS = {"insert": 1, "update_postimage": 1, "delete": -1, "update_preimage": -1}


def profit_changes(changes_df: DataFrame) -> DataFrame:
    """Silver orders_enriched's row changes (its change data feed) -> what they add to each gold row: signed profit
    and order-line count per grain key; keys the changes leave as they were are dropped.

    Adding these to gold gives exactly :func:`aggregate_profit` of the changed silver (DECIMAL sums are exact).
    """
    sign = F.create_map(*[F.lit(x) for kind, value in _SIGNS.items() for x in (kind, value)])[F.col("_change_type")]
    signed = changes_df.withColumn("_sign", sign).where(F.col("_sign").isNotNull())
    flagged = F.when(_is_anomaly(), F.col("_sign")).otherwise(0)
    return (
        signed.groupBy(*GRAIN)
        .agg(
            F.sum(F.col("profit") * F.col("_sign")).cast(PROFIT_TYPE).alias("profit"),
            F.sum("_sign").cast("long").alias("order_lines"),
            F.sum(flagged).cast("long").alias("anomaly_lines"),
            F.sum(F.col("profit") * flagged).cast(PROFIT_TYPE).alias("anomaly_profit"),
        )
        .where(
            (F.col("order_lines") != 0)
            | (F.col("profit") != 0)
            | (F.col("anomaly_lines") != 0)
            | (F.col("anomaly_profit") != 0)
        )
    )


def _is_anomaly() -> F.Column:
    """The line carries a value-anomaly flag (the rules that declare an effect)."""
    reasons = [e.reason for e in anomalies_for("orders")]
    return F.exists("quality_flags", lambda flag: flag.isin(reasons))
