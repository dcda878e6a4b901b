"""Silver: typed, cleaned and enriched tables built from bronze by pure ``DataFrame -> DataFrame`` transforms."""

from __future__ import annotations

from collections.abc import Callable

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from ecom_lakehouse.quality.expectations import ERRORS

UNKNOWN = "Unknown"
METADATA_COLUMNS = ("_source_file", "_source_row", "_ingested_at", "_run_id", "_source_sha256", "_corrupt_record")


def with_raw_struct(df: DataFrame) -> DataFrame:
    """Pack every bronze column into ``_raw`` (kept for quarantine) next to themselves."""
    return df.withColumn("_raw", F.struct(*[F.col(f"`{c}`") for c in df.columns]))


def trimmed(name: str) -> Column:
    """The raw string column trimmed, with blanks as null."""
    value = F.trim(F.regexp_replace(F.col(f"_raw.`{name}`"), "\u00a0", " "))
    return F.when(value != "", value)


def with_quarantine_record(df: DataFrame) -> DataFrame:
    """After the checks: keep the raw record as JSON (``_record``) only where it goes to quarantine, and slim
    ``_raw`` down to the ingestion metadata, so the rows that flow on (and get cached) stay narrow."""
    fields = df.select("_raw.*").columns
    record_fields = [c for c in fields if c not in METADATA_COLUMNS or c == "_corrupt_record"]
    metadata = [c for c in METADATA_COLUMNS if c in fields and c != "_corrupt_record"]
    record = F.to_json(F.struct(*[F.col(f"_raw.`{c}`") for c in record_fields]))
    return df.withColumn("_record", F.when(F.size(ERRORS) > 0, record)).withColumn(
        "_raw", F.struct(*[F.col(f"_raw.`{c}`").alias(c) for c in metadata])
    )


def to_quarantine(dataset: str) -> Callable[[DataFrame], DataFrame]:
    """Curried transform: rows carrying ``_errors`` (after :func:`with_quarantine_record`) -> quarantine records.

    Order lines also keep their Row ID and content hash, so an incremental run finds the records a new file
    corrects or duplicates. (A record's flags are not kept: a quarantined record is not used.)
    """

    def transform(df: DataFrame) -> DataFrame:
        source_row = F.col("_raw._source_row") if "_source_row" in df.select("_raw.*").columns else F.lit(None)
        has_line_key = "_content_hash" in df.columns
        return df.select(
            F.lit(dataset).alias("dataset"),
            F.col(ERRORS).alias("reasons"),
            F.col("_record").alias("record"),
            F.col("_raw._source_file").alias("source_file"),
            source_row.cast("int").alias("source_row"),
            F.col("_raw._run_id").alias("run_id"),
            F.col("_raw._ingested_at").alias("ingested_at"),
            (F.col("row_id") if has_line_key else F.lit(None)).cast("bigint").alias("row_id"),
            (F.col("_content_hash") if has_line_key else F.lit(None)).cast("string").alias("content_hash"),
        )

    return transform
