"""Which order lines a run must check again, so that checking only those gives what checking all of bronze gives.

A line's silver row (or its quarantine record) depends on its own current version, on the other current copies of
its Row ID (duplicates, conflicts), on the current lines with identical content (``duplicate_line_other_row_id``)
and on the dimension rows of its customer and product. So the lines to check again are:

- the Row IDs of the new bronze lines (new lines, and corrections: a later ingestion supersedes earlier copies);
- the lines whose dimension rows changed what they took from them (``_dimension_hash``), when the dimensions were
  rebuilt;
- every current line whose content hash is one of those lines' hashes, old or new: identical lines are judged
  together. This set is closed: all current lines sharing a hash with it are in it.

Silver ``orders_enriched`` keeps ``_content_hash`` and ``_dimension_hash``; the quarantine keeps ``row_id`` and
``content_hash`` for order lines. Checking these lines with the one transform (:func:`silver.orders.checked_orders`)
on the bronze rows of their Row IDs gives exactly the rows a full rebuild would give them; every other line is
unchanged by construction.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from ecom_lakehouse.silver.orders import content_hash, dimension_hash, enrich_with_dimensions, with_typed_orders

ROW_ID = "row_id"


def line_key(raw_row_id: str = "row_id") -> F.Column:
    """A bronze line's Row ID as silver types it (trimmed text to BIGINT; null when it is not an integer)."""
    return F.trim(F.col(raw_row_id)).try_cast("bigint")


def changed_by_dimensions(silver_df: DataFrame, customers_df: DataFrame, products_df: DataFrame) -> DataFrame:
    """Row IDs of silver lines whose customer or product rows now give them something else (``row_id``)."""
    current = silver_df.select(ROW_ID, "customer_id", "product_id", "_dimension_hash").transform(
        enrich_with_dimensions(customers_df, products_df)
    )
    return current.where(dimension_hash() != F.col("_dimension_hash")).select(ROW_ID)


def lines_to_check(
    new_bronze_df: DataFrame, silver_df: DataFrame, quarantine_df: DataFrame, dimension_changed_df: DataFrame | None
) -> DataFrame:
    """The Row IDs to check again (``row_id``, distinct; see the module docstring).

    Args:
        new_bronze_df: the bronze order lines this run ingested.
        silver_df: silver orders_enriched before this run.
        quarantine_df: the quarantined order records before this run.
        dimension_changed_df: :func:`changed_by_dimensions` when the dimensions were rebuilt, else None.
    """
    typed_new = new_bronze_df.transform(with_typed_orders).select(ROW_ID, content_hash().alias("_hash"))
    seeds = typed_new.where(F.col(ROW_ID).isNotNull()).select(ROW_ID)
    if dimension_changed_df is not None:
        seeds = seeds.unionByName(dimension_changed_df.select(ROW_ID))
    seeds = seeds.distinct()
    stored = silver_df.select(ROW_ID, F.col("_content_hash").alias("_hash")).unionByName(
        quarantine_df.where(F.col(ROW_ID).isNotNull()).select(ROW_ID, F.col("content_hash").alias("_hash"))
    )
    hashes = typed_new.select("_hash").unionByName(stored.join(seeds, ROW_ID, "left_semi").select("_hash")).distinct()
    identical = stored.join(hashes, "_hash", "left_semi").select(ROW_ID)
    return seeds.unionByName(identical).distinct()
