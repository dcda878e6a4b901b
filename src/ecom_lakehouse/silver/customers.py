"""Silver customers: one row per Customer ID, with a repaired name, a normalised phone and a 5-digit postal code."""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from ecom_lakehouse.quality.expectations import WARNINGS, filter_valid, with_quality_results
from ecom_lakehouse.silver import trimmed, with_quarantine_record, with_raw_struct
from ecom_lakehouse.silver.names import clean_customer_name
from ecom_lakehouse.silver.phones import normalize_phone, phone_extension


def pad_postal_code(raw: Column) -> Column:
    """Zero-pad an all-digit postal code of 1 to 5 digits to 5 (numeric cells lost the leading zeros).

    Other values (ZIP+4, foreign codes) are kept as they came, trimmed.
    """
    value = F.trim(raw)
    return F.when(value.rlike(r"^[0-9]{1,5}$"), F.lpad(value, 5, "0")).otherwise(F.when(value != "", value))


def with_typed_customers(df: DataFrame) -> DataFrame:
    """Bronze customer rows -> typed, cleaned columns, ``_raw`` kept, and ``_id_rank`` for duplicates."""
    first_seen = Window.partitionBy("customer_id").orderBy("_raw._source_file", "_raw._source_row")
    return (
        df.transform(with_raw_struct)
        .select(
            "_raw",
            trimmed("customer_id").alias("customer_id"),
            clean_customer_name(F.col("_raw.customer_name")).alias("customer_name"),
            F.col("_raw.customer_name").alias("customer_name_raw"),
            trimmed("email").alias("email"),
            normalize_phone(F.col("_raw.phone")).alias("phone"),
            phone_extension(F.col("_raw.phone")).alias("phone_extension"),
            F.col("_raw.phone").alias("phone_raw"),
            trimmed("address").alias("address"),
            trimmed("segment").alias("segment"),
            trimmed("country").alias("country"),
            trimmed("city").alias("city"),
            trimmed("state").alias("state"),
            pad_postal_code(F.col("_raw.postal_code")).alias("postal_code"),
            trimmed("region").alias("region"),
        )
        .withColumn("_id_rank", F.row_number().over(first_seen))
    )


def _silver_columns(df: DataFrame) -> DataFrame:
    return df.select(
        "customer_id", "customer_name", "customer_name_raw", "email", "phone", "phone_extension", "phone_raw",
        "address", "segment", "country", "city", "state", "postal_code", "region",
        F.array_contains(WARNINGS, "name_missing").alias("is_name_missing"),
        F.coalesce(F.col("customer_name") != F.trim(F.col("customer_name_raw")), F.lit(False)).alias(
            "is_name_repaired"
        ),
        F.array_contains(WARNINGS, "phone_unusable").alias("is_phone_unusable"),
        F.col(WARNINGS).alias("quality_flags"),
        F.col("_raw._source_file").alias("_source_file"),
        F.col("_raw._source_row").alias("_source_row"),
        F.col("_raw._run_id").alias("_run_id"),
    )  # fmt: skip


def checked_customers(bronze_df: DataFrame) -> DataFrame:
    """Bronze customers with typed columns and ``_errors``/``_warnings`` (split with filter_valid/quarantined)."""
    return (
        bronze_df.transform(with_typed_customers)
        .transform(with_quality_results("customers"))
        .transform(with_quarantine_record)
    )


def build_customers(checked_df: DataFrame) -> DataFrame:
    """The silver customers table from :func:`checked_customers` output: valid rows only."""
    return checked_df.transform(filter_valid).transform(_silver_columns)
