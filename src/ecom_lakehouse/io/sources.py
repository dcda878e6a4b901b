"""Edge of the pipeline: find the raw source files and read them, exactly as they came, into DataFrames.

Every column is read as a string (the sources mix types: Discount is 0 or 0.2, phones are text or numbers),
so bronze keeps the source text and silver does all typing. Each row carries ``_source_file``; Excel rows
also carry ``_source_row`` (the sheet row number) so errors can name the record.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
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
from ecom_lakehouse.fields import CUSTOMER_FIELDS, ORDER_FIELDS, PRODUCT_FIELDS

log = logging.getLogger(__name__)

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
        log.info("ignoring files that match no source pattern in conf/pipeline.yml: %s", ", ".join(unrecognised))
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
    return list_remote_files(spark, input_path)


def list_remote_files(spark: SparkSession, uri: str) -> list[str]:
    """Every file under a URI (``s3://``, ``dbfs:/``, ...), listed by Spark's ``binaryFile`` source without reading
    any content: it works wherever Spark reads files, Spark Connect (serverless, standard access mode) included.

    Spark's file listing already leaves out names starting with ``_`` or ``.``.

    Raises:
        SourceError: the location does not exist.
    """
    try:
        rows = (
            spark.read.format("binaryFile")
            .option("recursiveFileLookup", "true")
            .load(uri)
            .select("path")  # no ``content``: the source then reads no file
            .collect()
        )
    except Exception as exc:
        if "PATH_NOT_FOUND" in str(exc) or "does not exist" in str(exc):
            raise SourceError(f"{uri}: input path does not exist") from exc
        raise
    return sorted(row.path for row in rows)


def _string_schema(fields: Iterable[str], *, corrupt: bool = False) -> T.StructType:
    struct = T.StructType([T.StructField(name, T.StringType(), True) for name in fields])
    return struct.add(CORRUPT_RECORD, T.StringType(), True) if corrupt else struct


def _head_text(spark: SparkSession, path: str, size: int = 1 << 20) -> str:
    if is_remote(path):
        return "\n".join(row[0] for row in spark.read.text(path).limit(50).collect())
    with open(_local(path), "rb") as handle:
        return handle.read(size).decode("utf-8", errors="replace")


def _local(path: str) -> str:
    return path.removeprefix("file:") if not path.startswith("file://") else path.removeprefix("file://")


def _first_record(path: str, head: str) -> tuple[bool, dict[str, object] | None]:
    """Whether the file is a JSON array, and its first parseable record (None when there is none to read)."""
    text = head.lstrip("\ufeff \t\r\n")
    if not text:
        raise SourceError(f"{path}: empty file, no order records")
    decoder = json.JSONDecoder()
    if text[0] == "[":
        try:
            first, _ = decoder.raw_decode(text[1:].lstrip())
        except ValueError:
            return True, None
        return True, first if isinstance(first, dict) else None
    for line in text.splitlines()[:50]:
        try:
            first = json.loads(line.lstrip("\ufeff"))
        except ValueError:
            continue
        if isinstance(first, dict):
            return False, first
    return False, None


def _validate_array(path: str) -> None:
    """A JSON array file is one JSON value: if it does not parse, say where (no record of it can be trusted)."""
    if is_remote(path):
        return
    try:
        with open(_local(path), encoding="utf-8-sig") as handle:
            json.load(handle)
    except UnicodeDecodeError as exc:
        raise SourceError(f"{path}: not UTF-8 text (byte {exc.start}): re-export the file as UTF-8") from exc
    except json.JSONDecodeError as exc:
        raise SourceError(
            f"{path}: not valid JSON at line {exc.lineno} column {exc.colno} ({exc.msg}); truncated or malformed export"
        ) from exc


def read_orders(spark: SparkSession, files: list[str]) -> DataFrame:
    """Read order files: each is a JSON array (pretty-printed like the export) or JSON Lines.

    The schema is explicit (no inference pass): the known fields as strings, plus any extra field found in a file's
    first record (schema drift: kept in bronze). A file whose first record lacks a known field fails the run,
    naming the file and the field. A JSON Lines record that does not parse is not dropped: it arrives with its text
    in ``_corrupt_record``; a JSON array that does not parse fails the run with the position of the error.

    Args:
        spark: the session.
        files: order file paths.

    Returns:
        One row per order line, all fields as strings, plus ``_corrupt_record`` and ``_source_file``.
    """
    arrays, lines, extra = [], [], []
    for path in files:
        is_array, first = _first_record(path, _head_text(spark, path))
        if is_array:
            _validate_array(path)
        if first is not None:
            missing = [f for f in ORDER_FIELDS if f not in first]
            if missing:
                raise SourceError(f"{path}: required field(s) {', '.join(missing)} missing from the records")
            extra += [k for k in first if k not in ORDER_FIELDS and k not in extra]
        (arrays if is_array else lines).append(path)
    schema = _string_schema((*ORDER_FIELDS, *extra), corrupt=True)
    frames = [
        spark.read.schema(schema)
        .option("multiLine", multiline)
        .option("mode", "PERMISSIVE")
        .option("columnNameOfCorruptRecord", CORRUPT_RECORD)
        .json(group)
        .withColumn(SOURCE_FILE, F.col("_metadata.file_path"))
        for group, multiline in ((arrays, True), (lines, False))
        if group
    ]
    result = frames[0]
    for frame in frames[1:]:
        result = result.unionByName(frame)
    return result


def read_products(spark: SparkSession, files: list[str]) -> DataFrame:
    """Read product CSV files (RFC 4180: ``""`` escapes a quote; quoted fields may hold commas or newlines).

    Column names come from each file's header: the required columns must be there, extra ones are kept (schema
    drift). Local files are first checked as UTF-8 RFC 4180 (an unbalanced quote would otherwise swallow the
    rest of the file into one field): a violation fails the run naming the file and line.

    Args:
        spark: the session.
        files: product file paths.

    Returns:
        One row per CSV record, all fields as strings, plus ``_corrupt_record`` and ``_source_file``.
    """
    frames = []
    for path in files:
        header = _csv_header(spark, path, PRODUCT_FIELDS)
        frames.append(
            spark.read.schema(_string_schema(header, corrupt=True))
            .option("header", True)
            .option("multiLine", True)
            .option("quote", '"')
            .option("escape", '"')  # RFC 4180; Spark's default escape is a backslash
            .option("mode", "PERMISSIVE")
            .option("columnNameOfCorruptRecord", CORRUPT_RECORD)
            .option("encoding", "UTF-8")
            .csv(path)
            .withColumn(SOURCE_FILE, F.col("_metadata.file_path"))
        )
    result = frames[0]
    for frame in frames[1:]:
        result = result.unionByName(frame, allowMissingColumns=True)
    return result


def _csv_header(spark: SparkSession, path: str, required: tuple[str, ...]) -> list[str]:
    text = _head_text(spark, path) if is_remote(path) else _validated_csv_text(path)
    rows = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    header = [c.strip() for c in next(rows, [])]
    if not header or header == [""]:
        raise SourceError(f"{path}: empty file, no CSV header")
    missing = [c for c in required if c not in header]
    if missing:
        raise SourceError(f"{path}: header lacks required column(s) {', '.join(missing)}")
    duplicated = sorted({c for c in header if header.count(c) > 1})
    if duplicated:
        raise SourceError(f"{path}: header repeats column(s) {', '.join(duplicated)}")
    return header


def _validated_csv_text(path: str) -> str:
    try:
        with open(_local(path), encoding="utf-8", newline="") as handle:
            text = handle.read()
    except UnicodeDecodeError as exc:
        raise SourceError(f"{path}: not UTF-8 text (byte {exc.start}): re-export the file as UTF-8") from exc
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")), strict=True)
    try:
        width = len(next(reader, []))
        for row in reader:
            if row and len(row) != width:
                raise SourceError(
                    f"{path}: record at line {reader.line_num} has {len(row)} fields, the header has {width}"
                )
    except csv.Error as exc:
        raise SourceError(f"{path}: malformed CSV near line {reader.line_num}: {exc} (unbalanced quote?)") from exc
    return text


def read_customers(spark: SparkSession, files: list[str]) -> DataFrame:
    """Read customer workbooks (.xlsx): the first sheet holding the required columns, header on its first
    non-empty row; extra columns are kept (schema drift).

    Cells become strings without reinterpretation: numeric phones stay digits (``7185624866``), integral floats
    lose the ``.0`` Excel adds, dates become ISO text. Entirely blank rows are not records and are skipped.

    Args:
        spark: the session.
        files: workbook paths.

    Returns:
        One row per sheet row, all fields as strings, plus ``_source_file`` and ``_source_row``.
    """
    columns: list[str] = list(CUSTOMER_FIELDS)
    records: list[dict[str, object]] = []
    for path in files:
        header, rows = _read_workbook(spark, path)
        columns += [c for c in header if c not in columns]
        records += rows
    schema = _string_schema((*columns, SOURCE_FILE)).add(SOURCE_ROW, T.IntegerType(), False)
    return spark.createDataFrame([tuple(r.get(c) for c in schema.names) for r in records], schema)


def _read_workbook(spark: SparkSession, path: str) -> tuple[list[str], list[dict[str, object]]]:
    from openpyxl import load_workbook

    if is_remote(path):
        content = spark.read.format("binaryFile").load(path).select("content").first()[0]
        source: io.BytesIO | str = io.BytesIO(bytes(content))
    else:
        source = _local(path)
    try:
        workbook = load_workbook(source, read_only=True, data_only=True)
    except Exception as exc:
        raise SourceError(f"{path}: not a readable .xlsx workbook ({exc.__class__.__name__}: {exc})") from exc
    try:
        first_missing = None
        for sheet in workbook.worksheets:
            values = sheet.iter_rows(values_only=True)
            header_row, header = _find_header(values)
            missing = [c for c in CUSTOMER_FIELDS if c not in header]
            if not missing:
                return header, _sheet_records(values, header, header_row, file_uri(path))
            first_missing = first_missing or (sheet.title, missing)
        title, missing = first_missing or ("", list(CUSTOMER_FIELDS))
        raise SourceError(f"{path}: sheet {title!r} lacks required column(s) {', '.join(missing)}")
    finally:
        workbook.close()


def _sheet_records(values: Iterator[tuple], header: list[str], header_row: int, uri: str) -> list[dict[str, object]]:
    named = [(i, name) for i, name in enumerate(header) if name]
    records = []
    for row_number, cells in enumerate(values, start=header_row + 1):
        if all(c is None or (isinstance(c, str) and not c.strip()) for c in cells):
            continue
        record: dict[str, object] = {name: _cell_text(cells[i]) if i < len(cells) else None for i, name in named}
        record[SOURCE_FILE] = uri
        record[SOURCE_ROW] = row_number
        records.append(record)
    return records


def _find_header(values: Iterator[tuple]) -> tuple[int, list[str]]:
    """The first non-empty row: its number and its cells as names (the iterator is left after it)."""
    for number, cells in enumerate(values, start=1):
        if any(c is not None and str(c).strip() for c in cells):
            return number, [str(c).strip() if c is not None else "" for c in cells]
    return 0, []


def file_uri(path: str) -> str:
    """The URI Spark reports for a file in ``_metadata.file_path`` (``file:/abs/path`` locally)."""
    if is_remote(path) or path.startswith("file:"):
        return path
    return Path(path).resolve().as_uri().replace("file:///", "file:/", 1)


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


def file_fingerprints(spark: SparkSession, files: list[str]) -> dict[str, str]:
    """SHA-256 of each file's content, keyed by :func:`file_uri` (how bronze rows name their file).

    Local files are hashed in Python, streaming; remote ones through Spark's binaryFile source.
    """
    prints = {}
    for path in files:
        if is_remote(path):
            row = spark.read.format("binaryFile").load(path).select(F.sha2("content", 256)).first()
            prints[file_uri(path)] = row[0]
        else:
            digest = hashlib.sha256()
            with open(_local(path), "rb") as handle:
                for block in iter(lambda h=handle: h.read(1 << 20), b""):
                    digest.update(block)
            prints[file_uri(path)] = digest.hexdigest()
    return prints
