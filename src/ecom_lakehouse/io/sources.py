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
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import TYPE_CHECKING

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from ecom_lakehouse.config import PipelineConfig
from ecom_lakehouse.errors import SourceError
from ecom_lakehouse.fields import CUSTOMER_FIELDS, ORDER_FIELDS, PRODUCT_FIELDS
from ecom_lakehouse.spark import sees_local_files

if TYPE_CHECKING:
    import fastexcel
    import pyarrow as pa

log = logging.getLogger(__name__)

CORRUPT_RECORD = "_corrupt_record"
SOURCE_FILE = "_source_file"
SOURCE_ROW = "_source_row"

_REMOTE = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:/")  # s3://, s3a://, dbfs:/, abfss://
_INGEST_DATE = re.compile(r"/ingest_date=(\d{4}-\d{2}-\d{2})/")


def is_remote(path: str) -> bool:
    """True for URIs (s3://, dbfs:/, ...) that must be listed and read through Spark/Hadoop."""
    return bool(_REMOTE.match(path)) and not path.startswith("file:")


def through_spark(spark: SparkSession, path: str) -> bool:
    """The file is listed and read by Spark rather than by this process: a URI, or any path when the compute is
    another machine (a Spark Connect endpoint, Databricks Connect) that sees its files, not ours."""
    return is_remote(path) or not sees_local_files(spark)


def shared_path(spark: SparkSession, path: str) -> str:
    """``path`` as the compute must see it: a relative local path made absolute from this process's directory.

    The local server is another process with its own working directory, so a relative ``--input`` handed to it (the
    orders stream, anything Spark lists) would name another folder. URIs, absolute paths and paths read by compute
    on another machine (which sees its own files, not ours) are left as they are.
    """
    local = path.removeprefix("file:")
    if not path.strip() or is_remote(path) or not sees_local_files(spark) or Path(local).is_absolute():
        return path
    return str(Path(local).absolute())


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
    remote = through_spark(spark, input_path)
    base = _REMOTE.sub("", input_path.rstrip("/")) if remote else str(Path(input_path.removeprefix("file:")).resolve())
    for path in files:
        key = _REMOTE.sub("", path)
        relative = key[len(base) :] if key.startswith(base) else path.rsplit("/", 1)[-1]
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
    if not through_spark(spark, input_path):
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
    if through_spark(spark, path):
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
    in ``_corrupt_record``; a local JSON array that does not parse fails the run with the position of the error (a
    remote one arrives as one record with its text in ``_corrupt_record``).

    Args:
        spark: the session.
        files: order file paths.

    Returns:
        One row per order line, all fields as strings, plus ``_corrupt_record`` and ``_source_file``.
    """
    arrays, lines, extra = [], [], []
    for path in files:
        is_array, first = _first_record(path, _head_text(spark, path))
        if is_array and not through_spark(spark, path):
            _validate_array(path)
        if first is not None:
            missing = [f for f in ORDER_FIELDS if f not in first]
            if missing:
                raise SourceError(f"{path}: required field(s) {', '.join(missing)} missing from the records")
            extra += [k for k in first if k not in ORDER_FIELDS and k not in extra]
        (arrays if is_array else lines).append(path)
    schema = _string_schema((*ORDER_FIELDS, *extra), corrupt=True)
    frames = []
    if arrays:
        frames.append(_read_arrays(spark, arrays, schema))
    if lines:
        frames.append(
            spark.read.schema(schema)
            .option("mode", "PERMISSIVE")
            .option("columnNameOfCorruptRecord", CORRUPT_RECORD)
            .json(lines)
            .withColumn(SOURCE_FILE, F.col("_metadata.file_path"))
        )
    result = frames[0]
    for frame in frames[1:]:
        result = result.unionByName(frame)
    return result


def _read_arrays(spark: SparkSession, files: list[str], schema: T.StructType) -> DataFrame:
    """JSON array files, one row per element: each file's text parsed whole with ``from_json``.

    Not ``spark.read.json(multiLine=True)``: that reader parses a stream, and turning each number of the source into
    text there (the fields are read as text) costs a JSON generator per value, 2.3 s for the 9,994-line export against
    0.15 s here, where the parser reads the bytes and keeps each number's own text. A file is one row until it is
    exploded: an array export is read whole (a file of more than about 1 GB should be exported as JSON Lines). A file
    that does not parse becomes one record with its text in ``_corrupt_record``, as the line reader does for a line.
    """
    fields = [f for f in schema.fields if f.name != CORRUPT_RECORD]
    text = spark.read.text(files, wholetext=True).select("value", F.col("_metadata.file_path").alias(SOURCE_FILE))
    # The element carries _corrupt_record (null when the file parsed), so the text never travels with each element.
    parsed = F.from_json("value", T.ArrayType(schema), {"mode": "PERMISSIVE"})
    unreadable = F.array(F.struct(*[F.lit(None).cast("string").alias(f.name) for f in fields],
                                  F.col("value").alias(CORRUPT_RECORD)))  # fmt: skip
    records = text.select(F.explode(F.coalesce(parsed, unreadable)).alias("_record"), SOURCE_FILE)
    return records.select("_record.*", SOURCE_FILE)


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
    text = _head_text(spark, path) if through_spark(spark, path) else _validated_csv_text(path)
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


# fastexcel (Rust calamine) renders cells as text itself. For text, booleans, error cells and whole numbers of up to 15
# digits that text is what openpyxl + _cell_text give; other cells it may render differently, so a workbook holding a
# text of one of these shapes is read with openpyxl instead: a number with decimals (fastexcel rounds to 9 places),
# zero (also what a number below 5e-10 becomes) or 16+ digits (read as a double), a date or time ("2016-08-21 00:00:00"
# where openpyxl gives "2016-08-21T00:00:00"), "" (also how calamine reads a whitespace-only text lacking
# xml:space="preserve", which openpyxl keeps) or a control character such as CR (calamine decodes the escape _x000D_,
# openpyxl leaves it as it is). A header cell may also not be a bare number or a boolean (openpyxl names a column by
# str(value): "5.0", "True"). A text cell of such a shape is read with openpyxl too: slower, never different.
_UNSURE_TEXT = (
    r"-?[0-9]+\.[0-9]+|-?0|-?[0-9]{16,}|-?[0-9]{4,}-[0-9]{2}-[0-9]{2}.*|[0-9]{2}:[0-9]{2}.*|.*[\x00-\x08\x0b-\x1f].*|"
)
_UNSURE_DATA = f"(?s)^(?:{_UNSURE_TEXT})$"
_UNSURE_HEADER = re.compile(f"(?s){_UNSURE_TEXT}|-?[0-9]+|true|false")
# What str.strip() strips (str.isspace()): a row of None and such characters only is blank.
_WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680"
    + "".join(map(chr, range(0x2000, 0x200B)))
    + "\u2028\u2029\u202f\u205f\u3000"
)
# The error cells calamine knows, by the name fastexcel reports (it fails on others, such as #SPILL!: openpyxl then).
_ERROR_TEXT = {"Div0": "#DIV/0!", "NA": "#N/A", "Name": "#NAME?", "Null": "#NULL!", "Num": "#NUM!", "Ref": "#REF!",
               "Value": "#VALUE!"}  # fmt: skip


@dataclass(frozen=True)
class _Sheet:
    """The records of one workbook sheet, column by column.

    Attributes:
        header: the header row's cells as names ("" where blank), from column A, as openpyxl gives them.
        cells: name -> the text of that column in each record (a repeated name: its last column).
        rows: the sheet row number (1-based) of each record, int32.
        uri: the workbook as ``_source_file`` names it.
    """

    header: list[str]
    cells: dict[str, pa.Array]
    rows: pa.Array
    uri: str


def read_customers(spark: SparkSession, files: list[str]) -> DataFrame:
    """Read customer workbooks (.xlsx): the first sheet holding the required columns, header on its first
    non-empty row; extra columns are kept (schema drift).

    Cells become strings without reinterpretation: numeric phones stay digits (``7185624866``), integral floats
    lose the ``.0`` Excel adds, dates become ISO text, error cells their text (``#N/A``). Entirely blank rows are not
    records and are skipped. Workbooks are read with fastexcel into Arrow, and with openpyxl where fastexcel's text
    could differ from openpyxl's (see ``_UNSURE_TEXT``) or it cannot read the file; the rows reach Spark as Arrow.

    Args:
        spark: the session.
        files: workbook paths.

    Returns:
        One row per sheet row, all fields as strings, plus ``_source_file`` and ``_source_row``.
    """
    columns: list[str] = list(CUSTOMER_FIELDS)
    sheets = []
    for path in files:
        sheet = _read_workbook(spark, path)
        columns += [c for c in sheet.header if c not in columns]
        sheets.append(sheet)
    schema = _string_schema((*columns, SOURCE_FILE)).add(SOURCE_ROW, T.IntegerType(), False)
    return spark.createDataFrame(_arrow_table(sheets, schema), schema)


def _arrow_table(sheets: list[_Sheet], schema: T.StructType) -> pa.Table:
    """The records of all sheets in ``schema``'s columns (null where a workbook lacks one), as one Arrow table."""
    import pyarrow as pa

    *names, source_file, source_row = schema.names
    arrays = [
        pa.chunked_array([s.cells.get(name, pa.nulls(len(s.rows), pa.string())) for s in sheets], pa.string())
        for name in names
    ]
    arrays.append(pa.chunked_array([pa.array([s.uri] * len(s.rows), pa.string()) for s in sheets], pa.string()))
    arrays.append(pa.chunked_array([s.rows for s in sheets], pa.int32()))
    fields = [pa.field(name, pa.string()) for name in (*names, source_file)]
    return pa.Table.from_arrays(arrays, schema=pa.schema([*fields, pa.field(source_row, pa.int32(), nullable=False)]))


def _read_workbook(spark: SparkSession, path: str) -> _Sheet:
    import fastexcel

    if through_spark(spark, path):
        content = spark.read.format("binaryFile").load(path).select("content").first()[0]
        source: bytes | str = bytes(content)
    else:
        source = _local(path)
    try:
        sheet = _read_fastexcel(fastexcel.read_excel(source), path)
    except fastexcel.FastExcelError as exc:  # not a workbook, or cells calamine does not read (#SPILL!, ...)
        log.info("%s: fastexcel cannot read it (%s), reading it with openpyxl", path, str(exc).splitlines()[0])
        sheet = None
    return sheet or _read_openpyxl(io.BytesIO(source) if isinstance(source, bytes) else source, path)


def _read_fastexcel(reader: fastexcel.ExcelReader, path: str) -> _Sheet | None:
    """Read with fastexcel, every cell as text, in Arrow; None where that text might not be openpyxl's."""
    import pyarrow as pa
    import pyarrow.compute as pc

    first_missing = None
    for index, title in enumerate(reader.sheet_names):
        sheet = reader.load_sheet(index, header_row=None, skip_rows=0, dtypes="string")  # row 0 is sheet row 1
        batch, errors = sheet.to_arrow_with_errors()
        columns = _with_error_text(list(batch.columns), errors)
        if columns is None:
            return _declined(path, "an error cell of unknown text")
        filled = pc.indices_nonzero(pc.invert(_blank_rows(columns))) if columns else pa.array([], pa.uint64())
        header_cells = [c[filled[0].as_py()].as_py() for c in columns] if len(filled) else []
        unsure = [c for c in header_cells if c is not None and _UNSURE_HEADER.fullmatch(c)]
        if unsure:
            return _declined(path, f"sheet {title!r}, header cell {unsure[0]!r}")
        lead = [""] * sheet.available_columns()[0].absolute_index if header_cells else []  # columns before its first
        header = lead + [c.strip() if c is not None else "" for c in header_cells]
        missing = [c for c in CUSTOMER_FIELDS if c not in header]
        if missing:
            first_missing = first_missing or (title, missing)
            continue
        records = filled[1:]
        cells = {name: columns[i - len(lead)].take(records) for i, name in enumerate(header) if name}
        rows = pc.cast(pc.add(records, 1), pa.int32())
        for name, texts in cells.items():
            unsure = pc.index(pc.match_substring_regex(texts, _UNSURE_DATA), True).as_py()
            if unsure >= 0:
                return _declined(path, f"sheet row {rows[unsure]}, column {name!r} ({texts[unsure].as_py()!r})")
        return _Sheet(header, cells, rows, file_uri(path))
    raise _lacks_columns(path, first_missing)


def _declined(path: str, where: str) -> None:
    log.info("%s: %s may read differently with fastexcel than with openpyxl: reading it with openpyxl", path, where)


def _with_error_text(columns: list[pa.Array], errors: fastexcel.CellErrors | None) -> list[pa.Array] | None:
    """Put the text of error cells (``#N/A``), which fastexcel leaves null and reports apart, into their cells."""
    import pyarrow as pa

    if errors is None:
        return columns
    texts: dict[int, dict[int, str]] = {}
    for error in errors.errors:
        name = re.search(r"Error\((\w+)\)", error.detail)
        text = _ERROR_TEXT.get(name.group(1)) if name else None
        if text is None:
            return None
        row, column = error.offset_position
        texts.setdefault(column, {})[row] = text
    for column, by_row in texts.items():
        values = columns[column].to_pylist()
        for row, text in by_row.items():
            values[row] = text
        columns[column] = pa.array(values, pa.string())
    return columns


def _blank_rows(columns: list[pa.Array]) -> pa.BooleanArray:
    import pyarrow.compute as pc

    blank = None
    for column in columns:
        empty = pc.fill_null(pc.equal(pc.utf8_trim(column, characters=_WHITESPACE), ""), True)
        blank = empty if blank is None else pc.and_(blank, empty)
    return blank


def _read_openpyxl(source: io.BytesIO | str, path: str) -> _Sheet:
    from openpyxl import load_workbook

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
                cells, rows = _sheet_records(values, header, header_row)
                return _Sheet(header, cells, rows, file_uri(path))
            first_missing = first_missing or (sheet.title, missing)
        raise _lacks_columns(path, first_missing)
    finally:
        workbook.close()


def _lacks_columns(path: str, first_missing: tuple[str, list[str]] | None) -> SourceError:
    title, missing = first_missing or ("", list(CUSTOMER_FIELDS))
    return SourceError(f"{path}: sheet {title!r} lacks required column(s) {', '.join(missing)}")


def _sheet_records(values: Iterator[tuple], header: list[str], header_row: int) -> tuple[dict[str, pa.Array], pa.Array]:
    """The records after the header (openpyxl values), column by column, and their row numbers."""
    import pyarrow as pa

    named = {name: i for i, name in enumerate(header) if name}  # a repeated name: its last column
    texts: dict[str, list[str | None]] = {name: [] for name in named}
    rows = []
    for row_number, cells in enumerate(values, start=header_row + 1):
        if all(c is None or (isinstance(c, str) and not c.strip()) for c in cells):
            continue
        for name, i in named.items():
            texts[name].append(_cell_text(cells[i]) if i < len(cells) else None)
        rows.append(row_number)
    return {name: pa.array(t, pa.string()) for name, t in texts.items()}, pa.array(rows, pa.int32())


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
        if through_spark(spark, path):
            row = spark.read.format("binaryFile").load(path).select(F.sha2("content", 256)).first()
            prints[file_uri(path)] = row[0]
        else:
            digest = hashlib.sha256()
            with open(_local(path), "rb") as handle:
                for block in iter(lambda h=handle: h.read(1 << 20), b""):
                    digest.update(block)
            prints[file_uri(path)] = digest.hexdigest()
    return prints
