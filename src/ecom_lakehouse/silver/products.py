"""Silver products: exactly one row per Product ID.

The export repeats some Product IDs on two rows with different names and prices. The row kept is chosen by a
deterministic rule that does not depend on file order or partitioning: the smallest
(product_name, unit_price, state, category, sub_category), nulls last. ``source_rows`` counts the rows
collapsed, and ``has_conflicting_duplicates`` is true when they disagreed on any attribute. ``unit_price_min`` and
``unit_price_max`` keep the range of the collapsed rows' prices (each row is the product's price in one state): the
``price_out_of_scale`` rule compares an order line's price with the highest, not with the one row kept.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from ecom_lakehouse.quality.expectations import WARNINGS, filter_valid, with_quality_results
from ecom_lakehouse.silver import trimmed, with_quarantine_record, with_raw_struct

UNIT_PRICE_TYPE = "decimal(20,8)"
_ATTRIBUTES = ("product_name", "unit_price", "state", "category", "sub_category")


def with_typed_products(df: DataFrame) -> DataFrame:
    """Bronze product rows -> typed columns (names with non-breaking spaces normalised), ``_raw`` kept."""
    return df.transform(with_raw_struct).select(
        "_raw",
        trimmed("product_id").alias("product_id"),
        trimmed("category").alias("category"),
        trimmed("sub_category").alias("sub_category"),
        F.regexp_replace(trimmed("product_name"), r"\s+", " ").alias("product_name"),
        trimmed("state").alias("state"),
        trimmed("price_per_product").try_cast(UNIT_PRICE_TYPE).alias("unit_price"),
    )


def checked_products(bronze_df: DataFrame) -> DataFrame:
    """Bronze products with typed columns and ``_errors``/``_warnings``."""
    return (
        bronze_df.transform(with_typed_products)
        .transform(with_quality_results("products"))
        .transform(with_quarantine_record)
    )


def collapse_duplicate_products(df: DataFrame) -> DataFrame:
    """One row per product_id by the module's rule, with ``source_rows``, ``has_conflicting_duplicates`` and the
    ``unit_price_min``/``unit_price_max`` of its rows (nulls ignored)."""
    by_id = Window.partitionBy("product_id")
    ranked = Window.partitionBy("product_id").orderBy(*[F.col(c).asc_nulls_last() for c in _ATTRIBUTES])
    variants = F.size(F.collect_set(F.struct(*_ATTRIBUTES)).over(by_id))
    return (
        df.withColumn("source_rows", F.count(F.lit(1)).over(by_id))
        .withColumn("has_conflicting_duplicates", variants > 1)
        .withColumn("unit_price_min", F.min("unit_price").over(by_id))
        .withColumn("unit_price_max", F.max("unit_price").over(by_id))
        .withColumn("_pick", F.row_number().over(ranked))
        .where(F.col("_pick") == 1)
        .drop("_pick")
    )


def build_products(checked_df: DataFrame) -> DataFrame:
    """The silver products table from :func:`checked_products` output."""
    return (
        checked_df.transform(filter_valid)
        .transform(collapse_duplicate_products)
        .select(
            "product_id", "category", "sub_category", "product_name", "state", "unit_price",
            "unit_price_min", "unit_price_max", "source_rows", "has_conflicting_duplicates",
            F.col(WARNINGS).alias("quality_flags"),
            F.col("_raw._source_file").alias("_source_file"),
            F.col("_raw._run_id").alias("_run_id"),
        )
    )  # fmt: skip
