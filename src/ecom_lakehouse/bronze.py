"""Bronze: the sources as they came, with Delta-safe column names and ingestion metadata.

Column names are made Delta-safe one way only, :func:`to_delta_safe_name`: lower case, every run of characters
other than letters and digits becomes one underscore, no leading or trailing underscore
(``Row ID`` -> ``row_id``, ``Sub-Category`` -> ``sub_category``, ``Price per product`` -> ``price_per_product``).
Columns that start with ``_`` are pipeline metadata and keep their name.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from urllib.parse import unquote

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

_NOT_ALNUM = re.compile(r"[^0-9a-z]+")
# Paths are matched without their scheme and percent-decoded: Spark may report file:/, dbfs:/ (Unity Catalog
# volumes) or s3a:// where the listing said /Volumes/... or s3://, and _metadata.file_path percent-encodes what a URI
# must (a space is %20) where Python's as_uri() also encodes '=' (ingest_date%3D...).
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:(?://)?")


def file_key(path: str) -> str:
    """A file's path as bronze matches it: no scheme, percent-escapes decoded (a '+' stays a '+')."""
    return unquote(_SCHEME.sub("", path))


def _file_key_column(column: str) -> Column:
    without_scheme = F.regexp_replace(F.col(column), _SCHEME.pattern, "")
    return F.try_url_decode(F.regexp_replace(without_scheme, r"\+", "%2B"))  # url_decode reads '+' as a space


INGESTED_AT = "_ingested_at"
RUN_ID = "_run_id"
SOURCE_SHA256 = "_source_sha256"


def to_delta_safe_name(name: str) -> str:
    """The Delta-safe snake_case form of a source column name.

    Args:
        name: the column name as it appears in the source.

    Returns:
        The name in lower snake_case.
    """
    if name.startswith("_"):
        return name
    safe = _NOT_ALNUM.sub("_", name.strip().lower()).strip("_")
    if not safe:
        raise ValueError(f"column name {name!r} has no letters or digits")
    return safe


def with_delta_safe_columns(df: DataFrame) -> DataFrame:
    """Rename every column with :func:`to_delta_safe_name`, refusing names that would collide."""
    renamed = [to_delta_safe_name(c) for c in df.columns]
    clashes = {n for n in renamed if renamed.count(n) > 1}
    if clashes:
        raise ValueError(f"source columns collide after renaming: {sorted(clashes)} from {df.columns}")
    return df.toDF(*renamed)


def with_ingestion_metadata(run_id: str, ingested_at: datetime) -> Callable[[DataFrame], DataFrame]:
    """Curried transform adding ``_run_id`` and ``_ingested_at`` (``_source_file`` comes from the reader).

    Args:
        run_id: identifier of the pipeline run that ingested the rows.
        ingested_at: ingestion time (UTC).

    Returns:
        A ``DataFrame -> DataFrame`` function for ``df.transform``.
    """

    def transform(df: DataFrame) -> DataFrame:
        return df.withColumn(INGESTED_AT, F.lit(ingested_at).cast("timestamp")).withColumn(RUN_ID, F.lit(run_id))

    return transform


def with_source_fingerprint(fingerprints: dict[str, str]) -> Callable[[DataFrame], DataFrame]:
    """Curried transform adding ``_source_sha256``, the content hash of the row's ``_source_file``.

    Bronze remembers what it ingested through this pair: a file whose (path, hash) is already in bronze is
    not read again; a changed file is.
    """

    def transform(df: DataFrame) -> DataFrame:
        pairs = [F.lit(x) for path, sha in sorted(fingerprints.items()) for x in (file_key(path), sha)]
        return df.withColumn(SOURCE_SHA256, F.element_at(F.create_map(*pairs), _file_key_column("_source_file")))

    return transform


def to_bronze(
    df: DataFrame, run_id: str, ingested_at: datetime, fingerprints: dict[str, str] | None = None
) -> DataFrame:
    """Raw source rows -> bronze rows: safe column names plus ingestion metadata."""
    out = df.transform(with_delta_safe_columns).transform(with_ingestion_metadata(run_id, ingested_at))
    return out.transform(with_source_fingerprint(fingerprints)) if fingerprints is not None else out
