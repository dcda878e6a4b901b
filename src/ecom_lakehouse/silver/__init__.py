"""Silver: typed, cleaned and enriched tables built from bronze by pure ``DataFrame -> DataFrame`` transforms."""

from __future__ import annotations

from collections.abc import Callable

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from ecom_lakehouse.expectations import ERRORS, WARNINGS

UNKNOWN = "Unknown"
METADATA_COLUMNS = ("_source_file", "_source_row", "_ingested_at", "_run_id", "_corrupt_record")


def with_raw_struct(df: DataFrame) -> DataFrame:
    """Pack every bronze column into ``_raw`` (kept for quarantine) next to themselves."""
    return df.withColumn("_raw", F.struct(*[F.col(f"`{c}`") for c in df.columns]))


def trimmed(name: str) -> Column:
    """The raw string column trimmed, with blanks as null."""
    value = F.trim(F.regexp_replace(F.col(f"_raw.`{name}`"), "\u00a0", " "))
    return F.when(value != "", value)


def to_quarantine(dataset: str) -> Callable[[DataFrame], DataFrame]:
    """Curried transform: rows carrying ``_errors`` -> quarantine records (raw record as JSON plus reasons)."""

    def transform(df: DataFrame) -> DataFrame:
        raw_fields = [c for c in df.select("_raw.*").columns if c not in METADATA_COLUMNS or c == "_corrupt_record"]
        source_row = F.col("_raw._source_row") if "_source_row" in df.select("_raw.*").columns else F.lit(None)
        return df.select(
            F.lit(dataset).alias("dataset"),
            F.col(ERRORS).alias("reasons"),
            F.col(WARNINGS).alias("warnings"),
            F.to_json(F.struct(*[F.col(f"_raw.`{c}`") for c in raw_fields])).alias("record"),
            F.col("_raw._source_file").alias("source_file"),
            source_row.cast("int").alias("source_row"),
            F.col("_raw._run_id").alias("run_id"),
            F.col("_raw._ingested_at").alias("ingested_at"),
        )

    return transform
