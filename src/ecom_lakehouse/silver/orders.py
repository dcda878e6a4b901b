"""Silver orders_enriched: one row per order line (Row ID), typed and enriched with customer and product.

- Dates are parsed with the export's exact format ``d/M/yyyy``; ``year`` is the Order Date's year.
- Money is DECIMAL: ``sales`` (the source ``Price``, the line's sales amount) and ``profit`` rounded half-up
  to 2 decimals.
- Every line counts once: joins are left joins against dimensions that hold one row per key, and a missing
  customer or product is labelled ``Unknown`` and flagged rather than dropped.
"""

from __future__ import annotations

from collections.abc import Callable

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from ecom_lakehouse.quality.expectations import WARNINGS, filter_valid, with_quality_results
from ecom_lakehouse.silver import UNKNOWN, trimmed, with_quarantine_record, with_raw_struct

DATE_FORMAT = "d/M/yyyy"
MONEY = "decimal(18,2)"
_EXACT = "decimal(38,10)"  # parse exactly, then round once
CONTENT_COLUMNS = (
    "order_id", "order_date", "ship_date", "ship_mode", "customer_id", "product_id",
    "quantity", "sales", "discount", "profit",
)  # fmt: skip
# What a line takes from the dimensions (the enrichment and what the checks read): a line whose dimension rows change
# these is re-enriched.
DIMENSION_COLUMNS = (
    "customer_name", "country", "segment", "region", "is_customer_known",
    "product_name", "category", "sub_category", "unit_price", "unit_price_max", "is_product_known",
)  # fmt: skip


def content_hash() -> Column:
    """SHA-256 of a typed line's content (every field but the Row ID): identical lines have the same hash."""
    return F.sha2(F.to_json(F.struct(*CONTENT_COLUMNS)), 256)


def dimension_hash() -> Column:
    """SHA-256 of what an enriched line took from the dimensions (:data:`DIMENSION_COLUMNS`)."""
    return F.sha2(F.to_json(F.struct(*DIMENSION_COLUMNS)), 256)


def parse_date(raw: Column) -> Column:
    """``d/M/yyyy`` text -> DATE, null when it does not match that exact format."""
    text = F.trim(raw)
    return F.when(text.rlike(r"^[0-9]{1,2}/[0-9]{1,2}/[0-9]{4}$"), F.try_to_timestamp(text, F.lit(DATE_FORMAT))).cast(
        "date"
    )


def to_money(raw: Column) -> Column:
    """Number text -> DECIMAL(18,2), rounded half-up; null when not a plain number (e.g. ``12%``)."""
    return F.round(F.trim(raw).try_cast(_EXACT), 2).try_cast(MONEY)


def with_typed_orders(df: DataFrame) -> DataFrame:
    """Bronze order rows -> typed columns, ``_raw`` kept for quarantine."""
    return df.transform(with_raw_struct).select(
        "_raw",
        trimmed("row_id").try_cast("bigint").alias("row_id"),
        trimmed("order_id").alias("order_id"),
        parse_date(F.col("_raw.order_date")).alias("order_date"),
        parse_date(F.col("_raw.ship_date")).alias("ship_date"),
        trimmed("ship_mode").alias("ship_mode"),
        trimmed("customer_id").alias("customer_id"),
        trimmed("product_id").alias("product_id"),
        trimmed("quantity").try_cast("int").alias("quantity"),
        to_money(F.col("_raw.price")).alias("sales"),
        trimmed("discount").try_cast("decimal(6,4)").alias("discount"),
        to_money(F.col("_raw.profit")).alias("profit"),
    )


def with_superseded_flag(df: DataFrame) -> DataFrame:
    """Add ``_is_superseded``: a later-ingested file carries the same Row ID, so this copy was corrected.

    Versions are ingestion runs: copies ingested in the same run are duplicates (see the line-key expectations),
    not corrections. Rows without a Row ID are never superseded.
    """
    version = F.col("_raw._ingested_at")
    latest = F.max(version).over(Window.partitionBy("row_id"))
    return df.withColumn("_is_superseded", F.col("row_id").isNotNull() & (version < latest))


def filter_current_versions(df: DataFrame) -> DataFrame:
    """Typed bronze lines without the copies that later files corrected."""
    return df.transform(with_superseded_flag).where(~F.col("_is_superseded")).drop("_is_superseded")


def with_line_key_stats(df: DataFrame) -> DataFrame:
    """Add the columns the line-key expectations read.

    ``_row_id_variants``: distinct contents seen under the line's Row ID; ``_row_id_rank``: the copy's position
    (by source file, then content); ``_same_content_lines``: distinct Row IDs carrying identical content.
    """
    content = content_hash()
    by_row_id = Window.partitionBy("row_id")
    has_key = F.col("row_id").isNotNull()
    return (
        df.withColumn("_content_hash", content)
        .withColumn("_row_id_variants", F.when(has_key, F.size(F.collect_set("_content_hash").over(by_row_id))))
        .withColumn(
            "_row_id_rank",
            F.when(has_key, F.row_number().over(by_row_id.orderBy("_raw._source_file", "_content_hash"))),
        )
        .withColumn("_same_content_lines", F.size(F.collect_set("row_id").over(Window.partitionBy("_content_hash"))))
    )


def _enrich_with_dimension(
    dim_df: DataFrame, key: str, labelled: tuple[str, ...], extra: tuple[str, ...], known_flag: str
) -> Callable[[DataFrame], DataFrame]:
    # A left join against one row per key (never multiplies a line); a missing key is labelled Unknown and flagged.
    dim = dim_df.select(key, *labelled, *extra, F.lit(True).alias(known_flag))

    def transform(df: DataFrame) -> DataFrame:
        joined = df.join(F.broadcast(dim), key, "left")
        return joined.withColumn(known_flag, F.coalesce(known_flag, F.lit(False))).withColumns(
            {c: F.coalesce(c, F.lit(UNKNOWN)) for c in labelled}
        )

    return transform


def enrich_with_dimensions(customers_df: DataFrame, products_df: DataFrame) -> Callable[[DataFrame], DataFrame]:
    """Both enrichments (:func:`enrich_with_customers`, :func:`enrich_with_products`) in order."""

    def transform(df: DataFrame) -> DataFrame:
        return df.transform(enrich_with_customers(customers_df)).transform(enrich_with_products(products_df))

    return transform


def enrich_with_customers(customers_df: DataFrame) -> Callable[[DataFrame], DataFrame]:
    """Curried left join on customer_id adding customer_name, country, segment, region and is_customer_known.

    Args:
        customers_df: silver customers, one row per customer_id.
    """
    labelled = ("customer_name", "country", "segment", "region")
    return _enrich_with_dimension(customers_df, "customer_id", labelled, (), "is_customer_known")


def enrich_with_products(products_df: DataFrame) -> Callable[[DataFrame], DataFrame]:
    """Curried left join on product_id adding category, sub_category, product_name, unit_price, unit_price_max (the
    highest of the product's listed prices, which ``price_out_of_scale`` reads) and is_product_known.

    Args:
        products_df: silver products, one row per product_id.
    """
    labelled = ("category", "sub_category", "product_name")
    prices = ("unit_price", "unit_price_max")
    return _enrich_with_dimension(products_df, "product_id", labelled, prices, "is_product_known")


def checked_orders(bronze_df: DataFrame, customers_df: DataFrame, products_df: DataFrame) -> DataFrame:
    """Bronze orders typed, enriched and checked, with ``_errors``/``_warnings``: every current line once
    (a line corrected by a later file appears in its latest version only)."""
    return (
        bronze_df.transform(with_typed_orders)
        .transform(filter_current_versions)
        .transform(with_line_key_stats)
        .transform(enrich_with_dimensions(customers_df, products_df))
        .transform(with_quality_results("orders"))
        .transform(with_quarantine_record)
    )


def select_orders_enriched(df: DataFrame) -> DataFrame:
    """The silver orders_enriched columns from checked, valid rows."""
    return df.select(
        "row_id", "order_id", "order_date", "ship_date", F.year("order_date").alias("year"), "ship_mode",
        "customer_id", "customer_name", "country", "segment", "region",
        "product_id", "product_name", "category", "sub_category",
        "quantity", "sales", "discount", "profit",
        "is_customer_known", "is_product_known",
        F.col(WARNINGS).alias("quality_flags"),
        F.col("_raw._source_file").alias("_source_file"),
        F.col("_raw._run_id").alias("_run_id"),
        "_content_hash",
        dimension_hash().alias("_dimension_hash"),
    ).transform(with_row_hash)  # fmt: skip


def with_row_hash(df: DataFrame) -> DataFrame:
    """Add ``_row_hash`` over the business columns and what the line took from the dimensions, so a MERGE rewrites
    only lines that changed (a product's new price changes no visible column, but what the checks read)."""
    hashed = [c for c in df.columns if not c.startswith("_") or c == "_dimension_hash"]
    return df.withColumn("_row_hash", F.sha2(F.to_json(F.struct(*hashed)), 256))


def build_orders_enriched(checked_df: DataFrame) -> DataFrame:
    """The silver orders_enriched table from :func:`checked_orders` output: valid lines only."""
    return checked_df.transform(filter_valid).transform(select_orders_enriched)
