"""Edge of the pipeline: which order files arrived, found by a stream the way Databricks teams ingest files landing in
cloud storage, exactly once, and which of them to ingest.

The stream is Auto Loader (``cloudFiles``) on Databricks and Spark's own file stream source locally, with the same
options, ``trigger(availableNow=True)`` (every file there now, then stop) and a checkpoint: in a Unity Catalog volume
on Databricks (the ``checkpoint_location`` job parameter), under the lakehouse locally. The source format is the
only difference. What the stream carries is the list of order files (``binaryFile`` without its ``content`` column:
no file is read), which the Delta sink appends, exactly once, to the arrival log ``<bronze>.orders_files``. The
records are then read from the files the log holds and bronze does not, by the one order reader
(:func:`ecom_lakehouse.io.sources.read_orders`).

Why the stream lists files rather than parsing JSON itself (``cloudFiles.format=json``):

- ``multiLine`` is one setting per stream, and the export mixes pretty-printed arrays with JSON Lines: a JSON Lines
  file read with ``multiLine=true`` yields its first record and silently drops the rest. The reader looks at each
  file and reads it the way it is written.
- A re-upload of content already ingested (the same export under a new ``ingest_date=``) must not be ingested again:
  that is a property of the file (its SHA-256), not of its records.
- Locally there is no rescued-data column; the reader's ``_corrupt_record`` (quarantined as ``malformed_record``)
  plays that role on every compute alike, and a malformed array fails the run naming the file, line and column.

Which arrived files to ingest (:func:`decide`): per run, the files of the newest ``ingest_date=`` upload among the
new ones (as a batch run reads the newest upload); not a file from an upload older than one bronze already holds (it
would supersede newer lines); not content bronze already holds under any name, nor the second of two new files with
the same content. Files passed over are logged in the arrival log with the reason (``skipped``), so nothing is
dropped silently and none is looked at again. A file already ingested and since rewritten in place is not picked up
(as Auto Loader's default): the run warns, naming it; upload the corrected export as a new file.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from ecom_lakehouse.bronze import SOURCE_SHA256, file_key
from ecom_lakehouse.io.sources import SOURCE_FILE
from ecom_lakehouse.io.tables import Lakehouse
from ecom_lakehouse.spark import on_databricks

log = logging.getLogger(__name__)

ARRIVED, SKIPPED = "arrived", "skipped"
LOG_SCHEMA = (
    "path string, length bigint, modification_time timestamp, event string, reason string, run_id string, "
    "recorded_at timestamp"
)
_FILE_SOURCE_SCHEMA = "path string, modificationTime timestamp, length bigint, content binary"
_INGEST_DATE = re.compile(r"/ingest_date=(\d{4}-\d{2}-\d{2})/")
same_file = file_key  # how two reports of one file compare: no scheme, percent-escapes decoded


def upload_date(path: str) -> str | None:
    """The ``ingest_date=YYYY-MM-DD`` folder a file was uploaded into (the uploader's layout), if any."""
    match = _INGEST_DATE.search(path)
    return match.group(1) if match else None


def checkpoint(lakehouse: Lakehouse, location: str, generation: str) -> str:
    """The stream's checkpoint folder: one per arrival log (its table name: two sets of schemas may share a location)
    and generation (a new one on every full refresh)."""
    return f"{location.rstrip('/')}/{lakehouse.config.schemas['bronze']}.orders_files/{generation}"


def default_location(lakehouse: Lakehouse) -> str | None:
    """Where checkpoints go when no location is given: the local lakehouse's ``_checkpoints`` (none elsewhere)."""
    return str(lakehouse.root / "_checkpoints") if lakehouse.root is not None else None


def arrivals_stream(lakehouse: Lakehouse, input_path: str, name_pattern: str, run_id: str) -> DataFrame:
    """The new order files under ``input_path``, as arrival-log rows (a streaming DataFrame)."""
    reader = lakehouse.spark.readStream
    if on_databricks():  # Auto Loader: scalable listing (or file events), the same exactly-once checkpoint
        reader = reader.format("cloudFiles").option("cloudFiles.format", "binaryFile")
    else:
        reader = reader.format("binaryFile")
    files = reader.schema(_FILE_SOURCE_SCHEMA).option("recursiveFileLookup", "true").load(input_path)
    name = F.regexp_extract("path", r"([^/]+)$", 1)
    return files.where(name.rlike(f"(?i){name_pattern}")).select(
        "path", "length", F.col("modificationTime").alias("modification_time"), F.lit(ARRIVED).alias("event"),
        F.lit(None).cast("string").alias("reason"), F.lit(run_id).alias("run_id"),
        F.current_timestamp().alias("recorded_at"),
    )  # fmt: skip


def record_arrivals(lakehouse: Lakehouse, input_path: str, name_pattern: str, run_id: str, checkpoint_dir: str) -> None:
    """Run the stream once (``availableNow``): every order file not seen before is appended to the arrival log."""
    writer = (
        arrivals_stream(lakehouse, input_path, name_pattern, run_id)
        .writeStream.format("delta")
        .option("checkpointLocation", checkpoint_dir)
        .trigger(availableNow=True)
        .queryName(f"ecom_orders_arrivals_{re.sub(r'[^0-9A-Za-z]', '_', run_id)}")
    )
    location = lakehouse.location("bronze", "files")
    lakehouse.ensure_schemas()
    if location is not None:
        query = writer.start(location)
    else:
        query = writer.toTable(lakehouse.config.table("bronze", "files"))
    query.awaitTermination()
    if query.exception() is not None:
        raise RuntimeError(f"the orders arrival stream failed: {query.exception()}")


def reset_log(lakehouse: Lakehouse) -> None:
    """Empty the arrival log (a full refresh: the next stream, with a new checkpoint, finds every file again)."""
    empty = lakehouse.spark.createDataFrame([], LOG_SCHEMA)
    lakehouse.overwrite(empty, "bronze", "files")


@dataclass(frozen=True)
class Arrival:
    """An order file in the arrival log."""

    path: str
    length: int
    modification_time: datetime


def read_log(lakehouse: Lakehouse) -> list:
    """Every event of the arrival log (one row per file and event; small: files, not lines)."""
    if not lakehouse.exists("bronze", "files"):
        return []
    return lakehouse.read("bronze", "files").select("path", "length", "modification_time", "event").collect()


def ingested(lakehouse: Lakehouse) -> dict[str, str]:
    """Every order file bronze holds, with the SHA-256 of its content (the ledger of what was ingested)."""
    if not lakehouse.exists("bronze", "orders"):
        return {}
    bronze = lakehouse.read("bronze", "orders")
    if SOURCE_SHA256 not in bronze.columns:
        return {}
    return {r[0]: r[1] for r in bronze.select(SOURCE_FILE, SOURCE_SHA256).distinct().collect()}


def pending(events: list, held: dict[str, str]) -> list[Arrival]:
    """Arrived order files that are neither in bronze (``held``, by path) nor skipped, by path."""
    done = {same_file(p) for p in held} | {same_file(e.path) for e in events if e.event == SKIPPED}
    arrived = {same_file(e.path): e for e in events if e.event == ARRIVED}
    return sorted(
        (Arrival(e.path, e.length, e.modification_time) for key, e in arrived.items() if key not in done),
        key=lambda a: a.path,
    )


def rewritten(events: list, held: dict[str, str], sizes_now: dict[str, int]) -> list[str]:
    """Files bronze holds whose size differs from when they arrived: rewritten in place, not picked up again."""
    arrived = {same_file(e.path): e.length for e in events if e.event == ARRIVED}
    held_files = {same_file(p) for p in held}
    return sorted(
        path for path, size in sizes_now.items()
        if same_file(path) in held_files and arrived.get(same_file(path)) not in (None, size)
    )  # fmt: skip


def record_skipped(lakehouse: Lakehouse, skipped: list[tuple[Arrival, str]], run_id: str) -> None:
    """Log the files a run passed over, with the reason, so none is looked at again and none is dropped silently."""
    now = datetime.now(UTC)
    rows = [(a.path, a.length, a.modification_time, SKIPPED, reason, run_id, now) for a, reason in skipped]
    lakehouse.append(lakehouse.spark.createDataFrame(rows, LOG_SCHEMA), "bronze", "files", count=False)


def decide(
    arrivals: list[Arrival], fingerprints: dict[str, str], held: dict[str, str]
) -> tuple[list[Arrival], list[tuple[Arrival, str]]]:
    """Which new order files to ingest, and which to pass over with the reason (see the module docstring).

    Args:
        arrivals: the pending files.
        fingerprints: SHA-256 of each pending file's content, by path.
        held: what bronze holds: path -> SHA-256.

    Returns:
        The files to ingest (one upload), and the files passed over with the reason.
    """
    skipped: list[tuple[Arrival, str]] = []
    dates = {a.path: upload_date(same_file(a.path)) for a in arrivals}
    newest_new = max((d for d in dates.values() if d), default=None)
    newest_held = max((d for d in map(upload_date, map(same_file, held)) if d), default=None)
    by_content = {sha: path for path, sha in held.items()}
    keep = []
    for arrival in arrivals:
        date, sha = dates[arrival.path], fingerprints[arrival.path]
        if newest_new and date != newest_new:
            skipped.append((arrival, f"superseded: a newer upload (ingest_date={newest_new}) arrived with it"))
        elif newest_held and date and date < newest_held:
            skipped.append((arrival, f"superseded: bronze holds the newer upload of ingest_date={newest_held}"))
        elif sha in by_content:
            skipped.append((arrival, f"duplicate: the same content was ingested as {by_content[sha]}"))
        else:
            by_content[sha] = arrival.path
            keep.append(arrival)
    return keep, skipped
