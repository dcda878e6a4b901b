"""Edge of the pipeline: find the raw source files and read them, exactly as they came, into DataFrames.

Every column is read as a string (the sources mix types: Discount is 0 or 0.2, phones are text or numbers),
so bronze keeps the source text and silver does all typing. Each row carries ``_source_file``; Excel rows
also carry ``_source_row`` (the sheet row number) so errors can name the record.
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterable, Iterator
from datetime import date, datetime, time
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from ecom_lakehouse.config import PipelineConfig
from ecom_lakehouse.errors import SourceError

log = logging.getLogger(__name__)

ORDER_FIELDS = (
    "Row ID", "Order ID", "Order Date", "Ship Date", "Ship Mode", "Customer ID",
    "Product ID", "Quantity", "Price", "Discount", "Profit",
)  # fmt: skip
CUSTOMER_FIELDS = (
    "Customer ID", "Customer Name", "email", "phone", "address", "Segment",
    "Country", "City", "State", "Postal Code", "Region",
)  # fmt: skip
PRODUCT_FIELDS = ("Product ID", "Category", "Sub-Category", "Product Name", "State", "Price per product")
CORRUPT_RECORD = "_corrupt_record"
SOURCE_FILE = "_source_file"
SOURCE_ROW = "_source_row"

_REMOTE = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:/")  # s3://, s3a://, dbfs:/, abfss://
_INGEST_DATE = re.compile(r"/ingest_date=(\d{4}-\d{2}-\d{2})/")


def is_remote(path: str) -> bool:
    """True for URIs (s3://, dbfs:/, ...) that must be listed and read through Spark/Hadoop."""
    return bool(_REMOTE.match(path)) and not path.startswith("file:")


def discover_sources(spark: SparkSession, input_path: str, config: PipelineConfig) -> dict[str, list[str]]:
    """Find the raw files of each dataset under ``input_path`` by the file-name patterns in conf/.

    Args:
        spark: the session (used to list remote locations).
        input_path: a local directory or file, or a URI such as ``s3://bucket/raw/``.
        config: supplies the per-dataset patterns.

    Returns:
        dataset name -> sorted list of file paths; every dataset has at least one file. Where files sit in
        ``ingest_date=YYYY-MM-DD`` folders (the layout ``ecom upload`` writes), only the newest date's files.
        Hidden files and folders starting with ``_`` or ``.`` (``_manifests/``) are skipped.

    Raises:
        SourceError: the input does not exist, or a dataset has no file.
    """
    files = _list_files(spark, input_path)
    found: dict[str, list[str]] = {dataset: [] for dataset in config.sources}
    unrecognised = []
    base = input_path.rstrip("/") if is_remote(input_path) else str(Path(input_path.removeprefix("file:")).resolve())
    for path in files:
        relative = path[len(base) :] if path.startswith(base) else path.rsplit("/", 1)[-1]
        name = path.rstrip("/").rsplit("/", 1)[-1]
        if any(part.startswith((".", "_")) for part in relative.split("/") if part):
            continue  # hidden files, _manifests/, _SUCCESS, ...
        matches = [spec.dataset for spec in config.sources.values() if spec.matches(name)]
        if matches:
            found[matches[0]].append(path)
        else:
            unrecognised.append(name)
    if unrecognised:
        log.warning("ignoring files that match no source pattern in conf/pipeline.yml: %s", ", ".join(unrecognised))
    missing = [dataset for dataset, paths in found.items() if not paths]
    if missing:
        patterns = "; ".join(f"{d}: {config.sources[d].pattern.pattern}" for d in missing)
        raise SourceError(f"{input_path}: no source file for {', '.join(missing)} (expected names matching {patterns})")
    return {dataset: newest_partition(sorted(paths)) for dataset, paths in found.items()}


def newest_partition(paths: list[str]) -> list[str]:
    """Keep only the files of the newest ``ingest_date=YYYY-MM-DD`` partition (the uploader's layout).

    Files outside any ``ingest_date=`` folder are all kept when no file is in one.
    """
    dates = {path: match.group(1) for path in paths if (match := _INGEST_DATE.search(path))}
    if not dates:
        return paths
    newest = max(dates.values())
    return [path for path in paths if dates.get(path) == newest]


def _list_files(spark: SparkSession, input_path: str) -> list[str]:
    if not is_remote(input_path):
        root = Path(input_path.removeprefix("file:"))
        if root.is_file():
            return [str(root.resolve())]
        if not root.is_dir():
            raise SourceError(f"{input_path}: input path does not exist")
        return [str(p.resolve()) for p in sorted(root.rglob("*")) if p.is_file()]
    jvm = spark.sparkContext._jvm  # type: ignore[attr-defined]
    hpath = jvm.org.apache.hadoop.fs.Path(input_path)
    fs = hpath.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())  # type: ignore[attr-defined]
    if not fs.exists(hpath):
        raise SourceError(f"{input_path}: input path does not exist")
    iterator = fs.listFiles(hpath, True)
    out = []
    while iterator.hasNext():
        out.append(iterator.next().getPath().toString())
    return out


def _string_schema(fields: Iterable[str], *, corrupt: bool = False) -> T.StructType:
    struct = T.StructType([T.StructField(name, T.StringType(), True) for name in fields])
    return struct.add(CORRUPT_RECORD, T.StringType(), True) if corrupt else struct


def _first_char(spark: SparkSession, path: str) -> str:
    if is_remote(path):
        row = spark.read.text(path).where(F.trim("value") != "").first()
        text = row[0] if row else ""
    else:
        with open(path.removeprefix("file:"), "rb") as handle:
            text = handle.read(4096).decode("utf-8", errors="replace")
    return text.lstrip("\ufeff \t\r\n")[:1]


def read_orders(spark: SparkSession, files: list[str]) -> DataFrame:
    """Read order files: each is a JSON array (pretty-printed like the export) or JSON Lines.

    A malformed record is not dropped: it arrives with its text in ``_corrupt_record`` and null fields.

    Args:
        spark: the session.
        files: order file paths.

    Returns:
        One row per order line, all fields as strings, plus ``_corrupt_record`` and ``_source_file``.
    """
    schema = _string_schema(ORDER_FIELDS, corrupt=True)
    arrays = [f for f in files if _first_char(spark, f) == "["]
    lines = [f for f in files if f not in arrays]
    frames = []
    for group, multiline in ((arrays, True), (lines, False)):
        if group:
            frames.append(
                spark.read.schema(schema)
                .option("multiLine", multiline)
                .option("mode", "PERMISSIVE")
                .option("columnNameOfCorruptRecord", CORRUPT_RECORD)
                .json(group)
                .withColumn(SOURCE_FILE, F.col("_metadata.file_path"))
            )
    result = frames[0]
    for frame in frames[1:]:
        result = result.unionByName(frame)
    return result


def read_products(spark: SparkSession, files: list[str]) -> DataFrame:
    """Read product CSV files (RFC 4180: ``""`` escapes a quote; quoted fields may hold commas or newlines).

    Args:
        spark: the session.
        files: product file paths.

    Returns:
        One row per CSV record, all fields as strings, plus ``_corrupt_record`` and ``_source_file``.
    """
    _require_header(spark, files, PRODUCT_FIELDS)
    return (
        spark.read.schema(_string_schema(PRODUCT_FIELDS, corrupt=True))
        .option("header", True)
        .option("multiLine", True)
        .option("quote", '"')
        .option("escape", '"')  # RFC 4180; Spark's default escape is a backslash
        .option("mode", "PERMISSIVE")
        .option("columnNameOfCorruptRecord", CORRUPT_RECORD)
        .option("encoding", "UTF-8")
        .csv(files)
        .withColumn(SOURCE_FILE, F.col("_metadata.file_path"))
    )


def _require_header(spark: SparkSession, files: list[str], expected: tuple[str, ...]) -> None:
    for path in files:
        first = spark.read.text(path).first() if is_remote(path) else None
        if first is not None:
            header = first[0]
        else:
            with open(path.removeprefix("file:"), encoding="utf-8-sig", errors="replace") as handle:
                header = handle.readline()
        columns = [c.strip().strip('"') for c in header.lstrip("\ufeff").rstrip("\r\n").split(",")]
        missing = [c for c in expected if c not in columns]
        if missing:
            raise SourceError(f"{path}: header lacks required column(s) {', '.join(missing)}")
        if columns[: len(expected)] != list(expected):
            raise SourceError(f"{path}: header columns {columns} are not in the expected order {list(expected)}")


def read_customers(spark: SparkSession, files: list[str]) -> DataFrame:
    """Read customer workbooks (.xlsx): the first sheet, header on its first non-empty row.

    Cells become strings without reinterpretation: numeric phones stay digits (``7185624866``), integral floats
    lose the ``.0`` Excel adds, dates become ISO text. Entirely blank rows are not records and are skipped.

    Args:
        spark: the session.
        files: workbook paths.

    Returns:
        One row per sheet row, all fields as strings, plus ``_source_file`` and ``_source_row``.
    """
    rows: list[tuple[str | None, ...]] = []
    for path in files:
        rows.extend(_read_workbook(spark, path))
    schema = _string_schema((*CUSTOMER_FIELDS, SOURCE_FILE)).add(SOURCE_ROW, T.IntegerType(), False)
    return spark.createDataFrame(rows, schema)


def _read_workbook(spark: SparkSession, path: str) -> list[tuple]:
    from openpyxl import load_workbook

    if is_remote(path):
        content = spark.read.format("binaryFile").load(path).select("content").first()[0]
        source: io.BytesIO | str = io.BytesIO(bytes(content))
    else:
        source = path.removeprefix("file:")
    try:
        workbook = load_workbook(source, read_only=True, data_only=True)
    except Exception as exc:
        raise SourceError(f"{path}: not a readable .xlsx workbook ({exc.__class__.__name__}: {exc})") from exc
    try:
        sheet = workbook.worksheets[0]
        values = sheet.iter_rows(values_only=True)
        header_row, header = _find_header(values)
        missing = [c for c in CUSTOMER_FIELDS if c not in header]
        if missing:
            raise SourceError(f"{path}: sheet {sheet.title!r} lacks required column(s) {', '.join(missing)}")
        positions = [header.index(c) for c in CUSTOMER_FIELDS]
        uri = _file_uri(path)
        out = []
        for row_number, cells in enumerate(values, start=header_row + 1):
            if all(c is None or (isinstance(c, str) and not c.strip()) for c in cells):
                continue
            padded = tuple(cells) + (None,) * (len(header) - len(cells))
            out.append((*(_cell_text(padded[i]) for i in positions), uri, row_number))
        return out
    finally:
        workbook.close()


def _find_header(values: Iterator[tuple]) -> tuple[int, list[str]]:
    """The first non-empty row: its number and its cells as names (the iterator is left after it)."""
    for number, cells in enumerate(values, start=1):
        if any(c is not None and str(c).strip() for c in cells):
            return number, [str(c).strip() if c is not None else "" for c in cells]
    return 0, []


def _file_uri(path: str) -> str:
    return path if is_remote(path) or path.startswith("file:") else Path(path).resolve().as_uri()


def _cell_text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    return str(value)
