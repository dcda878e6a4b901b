"""Gold: profit aggregated at (year, category, sub_category, customer_id, customer_name)."""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

GRAIN = ("year", "category", "sub_category", "customer_id", "customer_name")
PROFIT_TYPE = "decimal(28,2)"


def aggregate_profit(orders_enriched_df: DataFrame) -> DataFrame:
    """Sum profit (DECIMAL, exact) and count order lines at the gold grain.

    Args:
        orders_enriched_df: silver orders_enriched.

    Returns:
        One row per (year, category, sub_category, customer_id, customer_name).
    """
    return orders_enriched_df.groupBy(*GRAIN).agg(
        F.sum("profit").cast(PROFIT_TYPE).alias("profit"),
        F.count(F.lit(1)).alias("order_lines"),
    )
