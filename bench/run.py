"""Benchmark harness: the local pipeline (``ecom run``) against the DuckDB reference, cold and on the warm server.

Every command is its own subprocess with a fresh output folder, timed with the peak memory of its whole process tree
(the sum of RSS, sampled every 0.2 s). ``ecom`` commands are clients of a long-lived local Spark server
(:mod:`ecom_lakehouse.server`); the bench gives them its own server home (``ECOM_SERVER_HOME=<work dir>/server``
unless the caller set one) and stops that server at the end, failure or not.

- **cold**: no server runs when the command starts (the bench stops its server first); the command starts one,
  JVM start-up included. The server is then a child of ``ecom``, so its memory is in the measured tree.
- **warm**: the bench's server runs and has done one untimed ``ecom run`` (the warm-up, into a throwaway
  lakehouse). The server is outside the ``ecom`` process tree: its JVM's RSS is sampled beside the tree, at the same
  instants, and ``ecom server status --json`` after each warm command is recorded.

Cases:

- ``real``: the real export (``--real-input``, default ``/work/shared/data/pei``) when it is there, ``--repeat``
  times (3 by default): DuckDB, then cold runs (the server stopped before each), then, after a warm-up, per repeat a
  warm run into a fresh lakehouse, a warm ``ecom report`` of it and a warm run of the unchanged input on it (the
  "nothing new" run). The cold and warm runs' reports, and the ``ecom report``'s, are compared with DuckDB's.
- ``full``, per size N, on the warm server (warmed once before the size cases on a small generated dataset): the
  dataset (seed 42, generated once, reused while ``bench/work/<N>/dataset.json`` matches), then
  ``ecom -q run --input <dir> --lakehouse bench/work/<N>/lakehouse --format json --output F`` on a fresh lakehouse
  and ``python -m bench.duckdb_reference --input <dir> --out ... --threads 2``; the two reports are compared. No
  cold full build at these sizes (the real case measures cold against warm).
- ``incremental``, per size N, on the warm server: on the lakehouse built from N lines (the full case's last build
  when it ran, else a build now), a new file of N/100 new order lines (:func:`increment_records`) is placed beside
  the others in the input folder and ``ecom -q run --input <dir> --lakehouse <same> --no-report`` is timed against
  the full build; then ``ecom report`` (untimed in the case) must equal the reference's report computed from
  scratch on all the files.

Start-up is measured apart: a cold server start (``ecom server start``, no server running) and a warm connect (a new
Python process creating a session of the running server and running one query), medians over ``--startup-runs``.
``ECOM_DRIVER_MEMORY`` and the other ``ECOM_*`` variables of the environment reach the pipeline unchanged.

Outputs: ``bench/results/results.json``, ``results.md`` (tables, targets with pass/fail, parity) and
``time_vs_size.png``.

Run: ``python -m bench.run [--sizes 100000,1M,10M] [--cases full,incremental,real]`` from the repository root
(``make bench`` runs everything).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from importlib import metadata
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = REPO_ROOT / "bench"
DEFAULT_SIZES = (100_000, 1_000_000, 10_000_000)
CASES = ("full", "incremental", "real")
REAL_INPUT = Path("/work/shared/data/pei")
REAL_REPEAT = 3  # runs per engine on the real dataset unless --repeat says otherwise (it is short)
GIB = 1024**3

# The incremental case: N / INCREMENT_DIVISOR new order lines, in a file named INCREMENT_STEM + .json or .jsonl (the
# format of the dataset's own order files); their orders get numbers from INCREMENT_ORDER_BASE on, which the
# generator never reaches (its order numbers stay below 100,000 + the orders of one prefix and year).
INCREMENT_DIVISOR = 100
INCREMENT_STEM = "orders_increment"
INCREMENT_ORDER_BASE = 10_000_000

# Targets for the pipeline (see results.md). Issue "Spark as a warm service": the real export in 8 s warm and 35 s
# cold (medians), a warm `ecom report` in 2 s, and at 1M lines a run adding 1 % new lines in 20 % of the full build's
# time, both warm.
TARGET_RATIO_AT_10M = 2.5
TARGET_PEAK_GIB = 8.0
TARGET_SCALING_10M_1M = 12.0
TARGET_INCREMENTAL_PERCENT = {10_000_000: 10.0, 1_000_000: 20.0}  # incremental run, % of the full build's time
TARGET_REAL_WARM_S = 8.0
TARGET_REAL_COLD_S = 35.0
TARGET_REPORT_WARM_S = 2.0

# The size cases' server is warmed on a small generated dataset of WARMUP_LINES lines (a warm-up at the first size
# would take minutes at 10M).
WARMUP_LINES = 10_000
# What results.json keeps of `ecom server status --json` after each warm command.
SERVER_STATUS_FIELDS = ("pid", "java_pid", "rss_bytes", "heap_used_bytes", "uptime_seconds", "sessions")

REPORT_NAMES = ("profit_by_year", "profit_by_year_category", "profit_by_customer", "profit_by_customer_year")
TABLE_COLUMNS = (
    "size",
    "pipeline s",
    "DuckDB s",
    "ratio",
    "pipeline rows/s",
    "DuckDB rows/s",
    "pipeline peak GiB",
    "DuckDB peak GiB",
)
INCREMENTAL_COLUMNS = (
    "size",
    "lines added",
    "full build s",
    "incremental s",
    "share of full build",
    "target",
    "pipeline peak GiB",
    "DuckDB all files s",
)
# The warm connect: a new Python process, a session of the running server, one query.
_CONNECT_CODE = "from ecom_lakehouse.spark import get_spark\nget_spark().range(1).collect()\n"
# Real-case rows of results.md: (key in results["real"], label, what ran).
REAL_ROWS = (
    ("cold", "pipeline cold", "`ecom -q run --format json --output F`, no server running: it starts one"),
    ("warm", "pipeline warm", "the same command on the warm server, a fresh lakehouse"),
    ("nothing_new", "pipeline warm, nothing-new run",
     "`ecom -q run --no-report` of the unchanged input on the warm run's lakehouse"),
    ("report", "`ecom report` warm", "`ecom -q report --format json --output F` of the warm run's lakehouse"),
    ("duckdb", "DuckDB reference", "`python -m bench.duckdb_reference`"),
)  # fmt: skip
# The real case's reports compared with DuckDB's: key (parity_<key> in results["real"]) and label.
REAL_PARITY_LABELS = {"cold": "cold run", "warm": "warm run", "report": "`ecom report` (warm)"}
REAL_COLUMNS = ("engine / mode", "median s", "min s", "max s", "ratio to DuckDB", "peak GiB")
_TIMINGS_LINE = re.compile(r"^duckdb-reference timings: (\{.*\})$", re.MULTILINE)


# ---------------------------------------------------------------------------------------------------------------
# Measuring a process tree
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class Measurement:
    """One timed subprocess.

    Attributes:
        wall_s: wall-clock seconds from start to exit.
        peak_rss_bytes: highest sum of RSS over the process and all its descendants seen by the sampler.
        exit_code: the process's exit code (None when it was killed on timeout).
        timed_out: whether the timeout ended it.
        load_before: 1-minute load average just before the start (other work on the machine skews timings).
        server_peak_rss_bytes: a warm command's: highest RSS of the server's JVM (and its descendants) sampled while
            the command ran; None when no server was watched.
        total_peak_rss_bytes: a warm command's: highest sum of the process tree's and the server's RSS sampled at the
            same instant, the memory the command needed; None when no server was watched.
        server: a warm command's: ``ecom server status --json`` after it (:data:`SERVER_STATUS_FIELDS`), with
            ``pid_before`` (the server it started on) and ``same_server`` (the command did not need a new one).
    """

    wall_s: float
    peak_rss_bytes: int
    exit_code: int | None
    timed_out: bool
    load_before: float
    server_peak_rss_bytes: int | None = None
    total_peak_rss_bytes: int | None = None
    server: dict[str, Any] | None = None


def tree_rss(pid: int) -> int:
    """The summed RSS in bytes of a process and its descendants (0 when the process is gone)."""
    import psutil

    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for process in processes:
        try:
            total += process.memory_info().rss
        except psutil.Error:
            continue
    return total


class TreeMemorySampler(threading.Thread):
    """Samples the summed RSS of a process and its descendants until stopped, and keeps the peak; with
    ``server_pid``, the server's tree too at the same instants (its peak, and the peak of the two summed)."""

    def __init__(self, pid: int, interval: float = 0.2, server_pid: int | None = None) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.interval = interval
        self.server_pid = server_pid
        self.peak = 0
        self.server_peak = 0
        self.total_peak = 0
        self._stop_event = threading.Event()

    def sample(self) -> int:
        """The current summed RSS of the tree in bytes (0 when the root is gone)."""
        return tree_rss(self.pid)

    def run(self) -> None:
        while not self._stop_event.is_set():
            own = self.sample()
            server = tree_rss(self.server_pid) if self.server_pid else 0
            self.peak = max(self.peak, own)
            self.server_peak = max(self.server_peak, server)
            self.total_peak = max(self.total_peak, own + server)
            self._stop_event.wait(self.interval)

    def stop(self) -> int:
        """Stop sampling and return the peak of the process tree in bytes."""
        self._stop_event.set()
        self.join()
        return self.peak


def _kill_tree(pid: int) -> None:
    """Kill the process we started and its descendants, children first, by process id."""
    import psutil

    try:
        root = psutil.Process(pid)
        processes = [*root.children(recursive=True), root]
    except psutil.Error:
        return
    for process in processes:
        try:
            process.kill()
        except psutil.Error:
            continue
    psutil.wait_procs(processes, timeout=10)


def measure(
    command: Sequence[str],
    *,
    cwd: Path,
    stdout_path: Path,
    stderr_path: Path,
    env: dict[str, str] | None = None,
    interval: float = 0.2,
    timeout: float | None = None,
    server_pid: int | None = None,
) -> Measurement:
    """Run a command, timing it and sampling the memory of its process tree.

    Args:
        command: the argv.
        cwd: working directory.
        stdout_path: file receiving stdout.
        stderr_path: file receiving stderr.
        env: environment (default: this process's).
        interval: sampling period in seconds.
        timeout: seconds after which the tree is killed.
        server_pid: a process outside the tree that works for the command (the warm server's JVM): its tree is
            sampled too, at the same instants.

    Returns:
        The measurement.
    """
    import psutil

    load_before = psutil.getloadavg()[0]
    with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
        started = time.perf_counter()
        process = subprocess.Popen(list(command), cwd=cwd, stdout=out, stderr=err, env=env)
        sampler = TreeMemorySampler(process.pid, interval, server_pid)
        sampler.start()
        timed_out = False
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_tree(process.pid)
            process.wait()
        wall = time.perf_counter() - started
        peak = sampler.stop()
    return Measurement(
        wall_s=round(wall, 3),
        peak_rss_bytes=peak,
        exit_code=None if timed_out else process.returncode,
        timed_out=timed_out,
        load_before=round(load_before, 2),
        server_peak_rss_bytes=sampler.server_peak if server_pid else None,
        total_peak_rss_bytes=sampler.total_peak if server_pid else None,
    )


# ---------------------------------------------------------------------------------------------------------------
# Data, engines, reports
# ---------------------------------------------------------------------------------------------------------------


def parse_sizes(text: str) -> list[int]:
    """``"100000,1M,10m"`` -> ``[100000, 1000000, 10000000]`` (suffixes k and M accepted)."""
    sizes = []
    for part in text.split(","):
        part = part.strip().lower().replace("_", "")
        if not part:
            continue
        factor = {"k": 1_000, "m": 1_000_000}.get(part[-1], 1)
        number = part[:-1] if factor > 1 else part
        sizes.append(int(float(number) * factor))
    if not sizes or any(s < 1 for s in sizes):
        raise argparse.ArgumentTypeError(f"invalid --sizes {text!r}")
    return sizes


def parse_cases(text: str) -> list[str]:
    """``"real, full"`` -> ``["full", "real"]``: the cases to run, in the harness's order (:data:`CASES`)."""
    wanted = {part.strip().lower() for part in text.split(",") if part.strip()}
    unknown = sorted(wanted - set(CASES))
    if not wanted or unknown:
        raise argparse.ArgumentTypeError(f"invalid --cases {text!r}: choose among {', '.join(CASES)}")
    return [case for case in CASES if case in wanted]


def size_label(size: int) -> str:
    """``100000`` -> ``100k``, ``10000000`` -> ``10M``."""
    if size >= 1_000_000 and size % 100_000 == 0:
        return f"{size / 1_000_000:g}M"
    if size >= 1_000 and size % 100 == 0:
        return f"{size / 1_000:g}k"
    return str(size)


def _increment_files(input_dir: Path) -> list[Path]:
    return [input_dir / f"{INCREMENT_STEM}{suffix}" for suffix in (".json", ".jsonl")]


def ensure_dataset(size: int, work_dir: Path, *, seed: int, bad_orders: int) -> dict[str, Any]:
    """Generate ``work_dir/<size>/input`` once; reuse it while its marker matches the parameters.

    An increment file that an interrupted incremental case left in the input folder is removed first.

    Returns:
        Generation facts: seconds (of the run that generated it), reused, files, bytes and row counts.
    """
    from ecom_lakehouse.tools.generate import generate_dataset

    size_dir = work_dir / str(size)
    input_dir = size_dir / "input"
    for stray in _increment_files(input_dir):
        stray.unlink(missing_ok=True)
    marker = size_dir / "dataset.json"
    wanted = {"orders": size, "seed": seed, "bad_orders": bad_orders}
    if marker.is_file():
        info = json.loads(marker.read_text(encoding="utf-8"))
        if all(info.get(k) == v for k, v in wanted.items()) and all((input_dir / f).is_file() for f in info["files"]):
            return {**info, "reused": True}
    if input_dir.exists():
        shutil.rmtree(input_dir)
    marker.unlink(missing_ok=True)
    input_dir.mkdir(parents=True)
    print(f"bench: generating {size:,} order lines into {input_dir}", file=sys.stderr, flush=True)
    started = time.perf_counter()
    files = generate_dataset(input_dir, orders=size, seed=seed, bad_orders=bad_orders)
    seconds = time.perf_counter() - started
    paths = [*files.orders, files.customers, files.products]
    info = {
        **wanted,
        "seconds": round(seconds, 3),
        "files": [p.name for p in paths],
        "orders_files": [p.name for p in files.orders],
        "bytes": sum(p.stat().st_size for p in paths),
        "customers": files.customers_count,
        "product_rows": files.products_count,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    marker.write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return {**info, "reused": False}


# ---------------------------------------------------------------------------------------------------------------
# The increment: new order lines that continue a generated dataset
# ---------------------------------------------------------------------------------------------------------------


def increment_lines(size: int) -> int:
    """How many new order lines the incremental case adds to a dataset of ``size`` lines (1 %, at least one)."""
    return max(1, size // INCREMENT_DIVISOR)


def new_order_id(order_id: object, serial: int) -> str:
    """The Order ID of the ``serial``-th new order: the old one's prefix and year, a number the generator never
    issues (``CA-2016-152156``, 0 -> ``CA-2016-10000000``)."""
    head, separator, _ = str(order_id).rpartition("-")
    return f"{head if separator else 'INC'}-{INCREMENT_ORDER_BASE + serial}"


def increment_records(records: Iterable[dict[str, Any] | str], size: int, count: int) -> Iterator[dict[str, Any]]:
    """``count`` new order lines continuing a dataset of ``size`` lines, made from its own lines.

    Every ``size // count``-th line of the dataset (the first, then evenly spread) becomes a new line: Row ID
    ``size + 1``, ``size + 2``, ... (a line without a Row ID keeps its defect), its order a new Order ID (lines that
    shared an order share the new one), every other field as it was. So the new lines are new order lines and new
    contents (no ``duplicate_line_other_row_id``), of the same customers and products, with the generator's own
    prices and profits; the dimensions are unchanged.

    Args:
        records: the dataset's order lines in file order, as dicts, or as JSON text (parsed only when picked).
        size: lines in the dataset (the Row IDs go up to it).
        count: new lines wanted.

    Yields:
        The new order lines, as dicts with the source's keys in the source's order.
    """
    step = max(1, size // max(1, count))
    orders: dict[str, str] = {}
    taken = 0
    for position, record in enumerate(records):
        if taken >= count:
            break
        if position % step:
            continue
        line = dict(json.loads(record) if isinstance(record, str) else record)
        row_id = line.get("Row ID")
        if isinstance(row_id, int) and not isinstance(row_id, bool):
            line["Row ID"] = size + taken + 1
        if line.get("Order ID") is not None:
            old = str(line["Order ID"])
            if old not in orders:
                orders[old] = new_order_id(old, len(orders))
            line["Order ID"] = orders[old]
        taken += 1
        yield line


def _order_texts(paths: Sequence[Path]) -> Iterator[dict[str, Any] | str]:
    """The order lines of generated files in order: a JSON array's records as dicts, a JSON Lines file's as text."""
    for path in paths:
        with path.open(encoding="utf-8-sig") as handle:
            if handle.read(4096).lstrip(" \t\r\n").startswith("["):
                handle.seek(0)
                yield from json.load(handle)
                continue
            handle.seek(0)
            yield from (line for line in handle if line.strip())


def write_orders_file(path: Path, lines: Iterable[dict[str, Any]], *, jsonl: bool) -> int:
    """Write order lines as JSON Lines or as the export's indented JSON array; returns the number written."""
    written = 0
    with path.open("w", encoding="utf-8", newline="\n") as out:
        if not jsonl:
            out.write("[\n")
        for line in lines:
            if jsonl:
                out.write(json.dumps(line, ensure_ascii=False) + "\n")
            else:
                text = json.dumps(line, indent=2, ensure_ascii=False).replace("\n", "\n  ")
                out.write(("  " if written == 0 else ",\n  ") + text)
            written += 1
        if not jsonl:
            out.write("\n]")
    return written


def ensure_increment(size: int, work_dir: Path, generation: dict[str, Any]) -> dict[str, Any]:
    """Write ``work_dir/<size>/increment/orders_increment.json[l]`` once per dataset (see :func:`increment_records`).

    Returns:
        Facts: file, lines, seconds (of the run that wrote it), bytes, reused.
    """
    size_dir = work_dir / str(size)
    input_dir = size_dir / "input"
    increment_dir = size_dir / "increment"
    orders_files = generation.get("orders_files") or [f for f in generation["files"] if f.lower().startswith("order")]
    jsonl = any(name.endswith(".jsonl") for name in orders_files)
    wanted = {
        "file": f"{INCREMENT_STEM}{'.jsonl' if jsonl else '.json'}",
        "lines": increment_lines(size),
        "dataset_generated_at": generation.get("generated_at"),
    }
    marker = increment_dir / "increment.json"
    if marker.is_file():
        info = json.loads(marker.read_text(encoding="utf-8"))
        if all(info.get(k) == v for k, v in wanted.items()) and (increment_dir / wanted["file"]).is_file():
            return {**info, "reused": True}
    shutil.rmtree(increment_dir, ignore_errors=True)
    increment_dir.mkdir(parents=True)
    print(f"bench: writing {wanted['lines']:,} new order lines into {increment_dir}", file=sys.stderr, flush=True)
    started = time.perf_counter()
    path = increment_dir / wanted["file"]
    records = increment_records(_order_texts([input_dir / f for f in orders_files]), size, wanted["lines"])
    written = write_orders_file(path, records, jsonl=jsonl)
    info = {**wanted, "lines": written, "seconds": round(time.perf_counter() - started, 3)}
    info["bytes"] = path.stat().st_size
    marker.write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return {**info, "reused": False}


def count_order_lines(input_dir: Path) -> int:
    """Order lines in a source folder (its order files as the reference finds them)."""
    from bench.duckdb_reference import discover_sources

    return sum(1 for _ in _order_texts(discover_sources(input_dir)["orders"]))


# ---------------------------------------------------------------------------------------------------------------
# Engines and reports
# ---------------------------------------------------------------------------------------------------------------


def ecom_executable() -> str:
    """The ``ecom`` console script next to this interpreter (the venv's), else the one on PATH."""
    candidate = Path(sys.executable).parent / "ecom"
    if candidate.is_file():
        return str(candidate)
    found = shutil.which("ecom")
    if found is None:
        raise SystemExit("bench: the ecom command is not installed; run `make setup` first")
    return found


def load_report(path: Path) -> dict[str, list[dict[str, Any]]]:
    """A report JSON file (``ecom run --format json`` layout), profits as exact Decimals."""
    return json.loads(path.read_text(encoding="utf-8"), parse_float=Decimal)


def _keyed(rows: list[dict[str, Any]], keys: Sequence[str], measures: Sequence[str]) -> dict[tuple[Any, ...], Any]:
    out: dict[tuple[Any, ...], Any] = {}
    for row in rows:
        key = tuple(row.get(k) for k in keys)
        values = tuple(Decimal(str(row[m])) if row.get(m) is not None else None for m in measures)
        previous = out.get(key)
        out[key] = values if previous is None else tuple(_add(a, b) for a, b in zip(previous, values, strict=True))
    return out


def _add(a: Decimal | None, b: Decimal | None) -> Decimal | None:
    return None if a is None or b is None else a + b


def _diff(left: dict[tuple[Any, ...], Any], right: dict[tuple[Any, ...], Any]) -> dict[str, Any]:
    keys = sorted(set(left) | set(right), key=repr)
    mismatches = [
        {"key": list(k), "pipeline": _shown(left.get(k)), "duckdb": _shown(right.get(k))}
        for k in keys
        if left.get(k) != right.get(k)
    ]
    return {"match": not mismatches, "rows": len(keys), "mismatches": len(mismatches), "examples": mismatches[:10]}


def _shown(values: tuple[Decimal | None, ...] | None) -> str:
    if values is None:
        return "None"
    return str(values[0]) if len(values) == 1 else str([None if v is None else str(v) for v in values])


_COMPARED_BY = {
    "profit_by_year": ("year",),
    "profit_by_year_category": ("year", "category"),
    "profit_by_customer": ("customer_id",),
    "profit_by_customer_year": ("customer_id", "year"),
}
# The figures compared per row: the profit, and for profit_by_year the part flagged value anomalies carry.
_MEASURES = {"profit_by_year": ("profit", "anomaly_profit", "anomaly_lines")}


def compare_reports(pipeline: dict[str, list[dict[str, Any]]], duckdb: dict[str, list[dict[str, Any]]]) -> dict:
    """Compare the two engines' reports exactly.

    ``profit_by_year`` and ``profit_by_year_category`` are compared row for row; the customer reports by
    customer id (and year), since the customer names come from the name repair, whose RE2 port may differ.

    Returns:
        Per report: match, rows compared, mismatches and a few examples; plus ``customer_name_differences``.
    """
    result: dict[str, Any] = {
        name: _diff(
            _keyed(pipeline[name], keys, _MEASURES.get(name, ("profit",))),
            _keyed(duckdb[name], keys, _MEASURES.get(name, ("profit",))),
        )
        for name, keys in _COMPARED_BY.items()
    }
    names_pipeline = {r["customer_id"]: r["customer_name"] for r in pipeline["profit_by_customer"]}
    names_duckdb = {r["customer_id"]: r["customer_name"] for r in duckdb["profit_by_customer"]}
    differing = sorted((k for k in names_pipeline if names_duckdb.get(k) != names_pipeline[k]), key=str)
    result["customer_name_differences"] = len(differing)
    result["customer_name_examples"] = [
        {"customer_id": k, "pipeline": names_pipeline[k], "duckdb": names_duckdb.get(k)} for k in differing[:10]
    ]
    return result


def reports_identical(parity: dict[str, Any]) -> bool:
    """Whether a :func:`compare_reports` result says the two reports are the same: every figure, every name."""
    return all(parity[name]["match"] for name in REPORT_NAMES) and not parity["customer_name_differences"]


def _compare_files(pipeline_report: Path | None, duckdb_report: Path | None, label: str) -> dict[str, Any] | None:
    if not (pipeline_report and duckdb_report):
        return None
    parity = compare_reports(load_report(pipeline_report), load_report(duckdb_report))
    gc.collect()  # the two parsed reports can be large (millions of rows at 10M lines)
    if not parity["profit_by_year"]["match"]:
        print(f"bench: profit_by_year differs ({label})", file=sys.stderr)
    return parity


def _engine_result(runs: list[Measurement], lines: int | None = None) -> dict[str, Any]:
    """Every run, whether all succeeded, and over the good ones: the median, least and most seconds, rows per second
    (given ``lines``), the peak memory of the process tree and, for warm commands, the server's peak and the peak of
    both together (``total_peak_rss_*``), and whether every run found the server it started on (``all_warm``)."""
    ok = [r for r in runs if r.exit_code == 0]
    result: dict[str, Any] = {"runs": [asdict(r) for r in runs], "ok": len(ok) == len(runs) and bool(runs)}
    result["last_run_ok"] = bool(runs) and runs[-1].exit_code == 0
    if ok:
        wall = statistics.median(r.wall_s for r in ok)
        peak = max(r.peak_rss_bytes for r in ok)
        result.update(
            wall_s=round(wall, 3),
            min_s=min(r.wall_s for r in ok),
            max_s=max(r.wall_s for r in ok),
            rows_per_s=round(lines / wall, 1) if wall and lines else None,
            peak_rss_bytes=peak,
            peak_rss_gib=round(peak / GIB, 3),
        )
        watched = [r for r in ok if r.server_peak_rss_bytes is not None and r.total_peak_rss_bytes is not None]
        if watched:
            server_peak = max(r.server_peak_rss_bytes or 0 for r in watched)
            total_peak = max(r.total_peak_rss_bytes or 0 for r in watched)
            result.update(
                server_peak_rss_bytes=server_peak,
                server_peak_rss_gib=round(server_peak / GIB, 3),
                total_peak_rss_bytes=total_peak,
                total_peak_rss_gib=round(total_peak / GIB, 3),
            )
    if any(r.server is not None for r in runs):
        result["all_warm"] = all(r.server is not None and r.server.get("same_server") for r in runs)
    return result


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _timed(
    label: str, command: Sequence[str], *, cwd: Path, logs: Path, env: dict[str, str] | None, timeout: float | None,
    stdout: Path | None = None, server_pid: int | None = None,
) -> Measurement:  # fmt: skip
    """Run and measure one command, its output in ``<logs>.stdout.log`` (or ``stdout``) and ``<logs>.stderr.log``;
    ``server_pid``: see :func:`measure`."""
    stdout_path = stdout or logs.with_name(logs.name + ".stdout.log")
    stderr_path = logs.with_name(logs.name + ".stderr.log")
    print(f"bench: {label}", file=sys.stderr, flush=True)
    measurement = measure(command, cwd=cwd, stdout_path=stdout_path, stderr_path=stderr_path, env=env, timeout=timeout,
                          server_pid=server_pid)  # fmt: skip
    print(f"bench:   {measurement.wall_s:.1f} s, exit {measurement.exit_code}", file=sys.stderr, flush=True)
    if measurement.exit_code != 0:
        print(_tail(stderr_path), file=sys.stderr)
    return measurement


def _ecom_run(ecom: str, input_dir: Path, lakehouse: Path, report: Path | None) -> list[str]:
    """``ecom -q run`` on ``input_dir`` into ``lakehouse``: the report as JSON into ``report``, or none."""
    command = [ecom, "-q", "run", "--input", str(input_dir), "--lakehouse", str(lakehouse)]
    return command + (["--format", "json", "--output", str(report)] if report else ["--no-report"])


def _ecom_report(ecom: str, lakehouse: Path, report: Path) -> list[str]:
    """``ecom -q report`` of ``lakehouse``, as JSON into ``report``."""
    return [ecom, "-q", "report", "--lakehouse", str(lakehouse), "--format", "json", "--output", str(report)]


# ---------------------------------------------------------------------------------------------------------------
# The bench's own server
# ---------------------------------------------------------------------------------------------------------------


def bench_env(environ: dict[str, str], work_dir: Path) -> dict[str, str]:
    """The environment of every subprocess: ``environ`` with the bench's own server home, ``<work_dir>/server``,
    unless ``environ`` names one (``ECOM_SERVER_HOME``)."""
    from ecom_lakehouse.server import HOME_ENV

    env = dict(environ)
    if not env.get(HOME_ENV):
        env[HOME_ENV] = str(work_dir / "server")
    return env


def _server_fields(status: dict[str, Any] | None) -> dict[str, Any]:
    """What results.json keeps of a server status (:data:`SERVER_STATUS_FIELDS`); ``running`` False for none."""
    return {"running": status is not None, **{k: (status or {}).get(k) for k in SERVER_STATUS_FIELDS}}


class BenchServer:
    """The bench's server, driven with ``ecom server`` in the bench's environment (its own server home).

    Warm commands (:meth:`timed`) find it running and warmed by one untimed ``ecom run`` (:meth:`warm_up`); cold
    commands (:meth:`timed_cold`) find none.

    Attributes:
        ecom: the ``ecom`` executable.
        env: the environment of every command, ``ECOM_SERVER_HOME`` set (:func:`bench_env`).
        timeout: seconds before a warm-up run is killed.
        events: the warm-ups done: why, on what input, their measurement and the server's status after.
    """

    def __init__(self, ecom: str, env: dict[str, str], timeout: float | None = None) -> None:
        self.ecom = ecom
        self.env = env
        self.timeout = timeout
        self.events: list[dict[str, Any]] = []
        self._warm_up_input: tuple[Path, Path] | None = None

    @property
    def home(self) -> str:
        """The server home (``ECOM_SERVER_HOME`` of :attr:`env`)."""
        from ecom_lakehouse.server import HOME_ENV

        return self.env[HOME_ENV]

    def _server(self, *argv: str, timeout: float) -> subprocess.CompletedProcess[str]:
        return subprocess.run([self.ecom, "server", *argv], env=self.env, capture_output=True, text=True,
                              timeout=timeout, check=False)  # fmt: skip

    def status(self) -> dict[str, Any] | None:
        """``ecom server status --json`` as a dict; None when no server runs (or its status cannot be read)."""
        from ecom_lakehouse.tools.server_cli import NOT_RUNNING

        done = self._server("status", "--json", timeout=300)
        lines = done.stdout.strip().splitlines()
        if done.returncode != 0 or not lines:
            if done.returncode != NOT_RUNNING:
                print(f"bench: `ecom server status` exited {done.returncode}: {done.stderr.strip()}", file=sys.stderr)
            return None
        try:
            status = json.loads(lines[-1])
        except ValueError:
            return None
        return status if status.get("running") else None

    def stop(self) -> None:
        """Stop the server of the bench's home if one runs (``ecom server stop``).

        Raises:
            RuntimeError: a server still runs after it.
        """
        done = self._server("stop", timeout=300)
        if done.returncode != 0 and self.status() is not None:
            raise RuntimeError(f"bench: could not stop the server of {self.home}: {done.stderr.strip()}")

    def warm_up(self, input_dir: Path, out_dir: Path, *, why: str) -> dict[str, Any] | None:
        """Warm the server (starting it when none runs): one untimed ``ecom run`` of ``input_dir``, report included,
        into a throwaway lakehouse under ``out_dir``. A warm command that later finds no server repeats it.

        Returns:
            The server's status after it, None when there is no server.
        """
        self._warm_up_input = (input_dir, out_dir)
        lakehouse, report = out_dir / "warm_up_lakehouse", out_dir / "warm_up_report.json"
        shutil.rmtree(lakehouse, ignore_errors=True)
        command = _ecom_run(self.ecom, input_dir, lakehouse, report)
        measurement = _timed(f"warm-up of the server ({why}; not timed)", command, cwd=out_dir,
                             logs=out_dir / "warm_up", env=self.env, timeout=self.timeout)  # fmt: skip
        shutil.rmtree(lakehouse, ignore_errors=True)
        report.unlink(missing_ok=True)
        status = self.status()
        self.events.append({"event": "warm-up", "why": why, "input": str(input_dir), **asdict(measurement),
                            "server": _server_fields(status)})  # fmt: skip
        return status

    def ensure_warm(self, label: str) -> dict[str, Any] | None:
        """The running server's status; when none runs (its idle timeout, a crash), the last warm-up is done again
        first. None when there is still no server (the command will start one: it is not warm)."""
        status = self.status()
        if status is None and self._warm_up_input is not None:
            input_dir, out_dir = self._warm_up_input
            status = self.warm_up(input_dir, out_dir, why=f"no server ran before {label}")
        return status

    def timed(self, label: str, command: Sequence[str], *, cwd: Path, logs: Path, timeout: float | None,
              stdout: Path | None = None) -> Measurement:  # fmt: skip
        """Measure a warm command (:func:`_timed`): the server's JVM sampled beside the command's tree, its status
        after the command in ``Measurement.server``."""
        before = self.ensure_warm(label)
        measurement = _timed(label, command, cwd=cwd, logs=logs, env=self.env, timeout=timeout, stdout=stdout,
                             server_pid=before.get("java_pid") if before else None)  # fmt: skip
        after = self.status()
        pid_before = before.get("pid") if before else None
        same = pid_before is not None and after is not None and after.get("pid") == pid_before
        return replace(measurement, server={**_server_fields(after), "pid_before": pid_before, "same_server": same})

    def timed_cold(self, label: str, command: Sequence[str], *, cwd: Path, logs: Path, timeout: float | None,
                   stdout: Path | None = None) -> Measurement:  # fmt: skip
        """Measure a cold command: the server stopped first, so the command starts one (in its own process tree)."""
        self.stop()
        return _timed(label, command, cwd=cwd, logs=logs, env=self.env, timeout=timeout, stdout=stdout)

    def shutdown(self) -> None:
        """Stop the server at the end of the bench; a failure is printed, never raised."""
        try:
            self.stop()
        except Exception as exc:  # the bench's own error, if any, is the one to see
            print(f"bench: stopping the server at the end failed: {exc}", file=sys.stderr)


# ---------------------------------------------------------------------------------------------------------------
# Cases
# ---------------------------------------------------------------------------------------------------------------


def run_pipeline(
    input_dir: Path, out_dir: Path, lines: int, server: BenchServer, args: argparse.Namespace, *, repeat: int,
    label: str, name: str = "pipeline", cold: bool = False,
) -> tuple[dict[str, Any], Path | None]:  # fmt: skip
    """Time ``ecom run`` on ``input_dir`` into ``out_dir/lakehouse``, made afresh for every run; on the warm server,
    or ``cold`` (the server stopped before each run).

    Returns:
        The result (``last_run_ok`` says whether the lakehouse left behind is a good build) and the report
        (``out_dir/<name>_report.json``) of the last run, None when it failed.
    """
    runs = []
    report = None
    lakehouse = out_dir / "lakehouse"
    output = out_dir / f"{name}_report.json"
    timed = server.timed_cold if cold else server.timed
    for attempt in range(repeat):
        shutil.rmtree(lakehouse, ignore_errors=True)
        output.unlink(missing_ok=True)
        measurement = timed(
            f"{name}, {label}, run {attempt + 1}/{repeat}", _ecom_run(server.ecom, input_dir, lakehouse, output),
            cwd=out_dir, logs=out_dir / name, timeout=args.timeout,
        )  # fmt: skip
        runs.append(measurement)
        report = output if measurement.exit_code == 0 and output.is_file() else None
    return _engine_result(runs, lines), report


def run_duckdb(
    input_dir: Path, out_dir: Path, lines: int, env: dict[str, str], args: argparse.Namespace, *, repeat: int,
    label: str, name: str = "duckdb",
) -> tuple[dict[str, Any], Path | None]:  # fmt: skip
    """Time the DuckDB reference on ``input_dir`` (Parquet into ``out_dir/<name>``); return the result and the
    report (``out_dir/<name>_report.json``) of the last run, None when it failed."""
    runs = []
    report = None
    steps: dict[str, float] = {}
    stdout = out_dir / f"{name}_report.json"
    for attempt in range(repeat):
        command = [sys.executable, "-m", "bench.duckdb_reference", "--input", str(input_dir)]
        command += ["--out", str(out_dir / name), "--threads", str(args.duckdb_threads)]
        measurement = _timed(
            f"{name}, {label}, run {attempt + 1}/{repeat}", command, cwd=REPO_ROOT, logs=out_dir / name,
            env=env, timeout=args.timeout, stdout=stdout,
        )  # fmt: skip
        runs.append(measurement)
        report = stdout if measurement.exit_code == 0 else None
        if report:
            match = _TIMINGS_LINE.search((out_dir / f"{name}.stderr.log").read_text(encoding="utf-8", errors="replace"))
            steps = json.loads(match.group(1)) if match else {}
    result = _engine_result(runs, lines)
    result["steps"] = steps
    return result, report


def _snapshot(source: Path, target: Path) -> None:
    """Copy a lakehouse folder; Parquet files (never rewritten by Delta) as hard links where possible."""

    def link_or_copy(src: str, dst: str) -> None:
        if src.endswith(".parquet"):
            try:
                os.link(src, dst)
                return
            except OSError:
                pass
        shutil.copy2(src, dst)

    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source, target, copy_function=link_or_copy)


def _ratio(result: dict[str, Any], key: str, reference: str = "duckdb") -> float | None:
    wall, reference_wall = _wall(result, key), _wall(result, reference)
    return round(wall / reference_wall, 3) if wall and reference_wall else None


def warm_up_sizes(server: BenchServer, work_dir: Path, args: argparse.Namespace) -> dict[str, Any] | None:
    """Warm the server for the size cases on a small generated dataset (:data:`WARMUP_LINES` lines, seed and
    defects as the cases'), under ``work_dir/warmup``; returns the server's status after it."""
    warm_dir = work_dir / "warmup"
    ensure_dataset(WARMUP_LINES, warm_dir, seed=args.seed, bad_orders=args.bad_orders)
    return server.warm_up(warm_dir / str(WARMUP_LINES) / "input", warm_dir, why="full and incremental cases")


def run_full(size: int, size_dir: Path, env: dict[str, str], args: argparse.Namespace,
             server: BenchServer | None) -> dict[str, Any]:  # fmt: skip
    """The full case at one size: the pipeline on the warm server and DuckDB on ``size_dir/input``, the ratio and
    the parity."""
    entry: dict[str, Any] = {}
    label, repeat = f"{size:,} lines", args.repeat or 1
    pipeline_report = duckdb_report = None
    if server is not None:
        entry["pipeline"], pipeline_report = run_pipeline(size_dir / "input", size_dir, size, server, args,
                                                          repeat=repeat, label=label)  # fmt: skip
    if not args.skip_duckdb:
        entry["duckdb"], duckdb_report = run_duckdb(size_dir / "input", size_dir, size, env, args, repeat=repeat,
                                                    label=label)  # fmt: skip
    entry["ratio"] = _ratio(entry, "pipeline")
    entry["parity"] = _compare_files(pipeline_report, duckdb_report, label)
    return entry


def run_incremental(
    size: int, size_dir: Path, env: dict[str, str], args: argparse.Namespace, generation: dict[str, Any],
    full: dict[str, Any] | None, server: BenchServer | None,
) -> dict[str, Any]:  # fmt: skip
    """The incremental case at one size, on the warm server (see the module docstring).

    Args:
        size: order lines of the base dataset.
        size_dir: ``bench/work/<size>``.
        env: the environment of the DuckDB reference.
        args: the harness's arguments.
        generation: :func:`ensure_dataset`'s facts about the dataset.
        full: the full case's pipeline result at this size, when it ran: its last build is the base lakehouse, its
            median time the full build's.
        server: the bench's server (None with ``--skip-pipeline``).

    Returns:
        The increment, the full build's time and where it comes from, the incremental run's result, its share of
        the full build, the untimed report's run, the reference's result on all files and the parity.
    """
    if server is None:
        return {"skipped": "--skip-pipeline"}
    increment = ensure_increment(size, size_dir.parent, generation)
    label, repeat = f"{size:,} lines + {increment['lines']:,} new", args.repeat or 1
    input_dir, lakehouse = size_dir / "input", size_dir / "lakehouse"
    result: dict[str, Any] = {"lines_added": increment["lines"], "increment": increment}
    if full and full.get("last_run_ok") and full.get("wall_s") and lakehouse.is_dir():
        result.update(full_build_s=full["wall_s"], full_build_source="full case")
    else:  # build the base lakehouse now, with the full case's command
        base, _ = run_pipeline(input_dir, size_dir, size, server, args, repeat=1, label=f"{size:,} lines",
                               name="base_build")  # fmt: skip
        result["base_build"] = base
        if not base["last_run_ok"]:
            result["ok"] = False
            return result
        result.update(full_build_s=base["wall_s"], full_build_source="base build")

    placed = input_dir / increment["file"]
    snapshot = size_dir / "lakehouse_base"
    pipeline_report = duckdb_report = None
    shutil.copyfile(size_dir / "increment" / increment["file"], placed)
    try:
        if repeat > 1:
            _snapshot(lakehouse, snapshot)
        runs = []
        for attempt in range(repeat):
            if attempt:
                _snapshot(snapshot, lakehouse)
            runs.append(
                server.timed(
                    f"incremental run, {label}, run {attempt + 1}/{repeat}",
                    _ecom_run(server.ecom, input_dir, lakehouse, None),
                    cwd=size_dir,
                    logs=size_dir / "incremental",
                    timeout=args.timeout,
                )
            )
        result["pipeline"] = _engine_result(runs, increment["lines"])
        if result["pipeline"]["last_run_ok"]:
            output = size_dir / "incremental_report.json"
            output.unlink(missing_ok=True)
            report_run = server.timed(
                f"report of the updated lakehouse, {label} (not timed in the case)",
                _ecom_report(server.ecom, lakehouse, output),
                cwd=size_dir, logs=size_dir / "incremental_report", timeout=args.timeout,
            )  # fmt: skip
            result["report_run"] = asdict(report_run)
            pipeline_report = output if report_run.exit_code == 0 and output.is_file() else None
        if not args.skip_duckdb:
            result["duckdb"], duckdb_report = run_duckdb(input_dir, size_dir, size + increment["lines"], env, args,
                                                         repeat=1, label=label, name="duckdb_incremental")  # fmt: skip
    finally:
        placed.unlink(missing_ok=True)
        shutil.rmtree(snapshot, ignore_errors=True)
    wall = result["pipeline"].get("wall_s")
    result["ratio_to_full"] = round(wall / result["full_build_s"], 4) if wall and result["full_build_s"] else None
    result["parity"] = _compare_files(pipeline_report, duckdb_report, label)
    result["ok"] = bool(
        result["pipeline"]["ok"]
        and result.get("report_run", {}).get("exit_code") == 0
        and (args.skip_duckdb or result["duckdb"]["ok"])
    )
    return result


def run_real_warm(
    input_dir: Path, out_dir: Path, lines: int, server: BenchServer, args: argparse.Namespace, *, repeat: int,
    label: str,
) -> tuple[dict[str, dict[str, Any]], dict[str, Path | None]]:  # fmt: skip
    """The real case's warm commands: a new server warmed by one untimed run, then per repeat a warm run into a
    fresh lakehouse (report included), a warm ``ecom report`` of that lakehouse and a warm run of the unchanged
    input on it (the nothing-new run, ``--no-report``).

    Returns:
        The results under ``warm``, ``report`` and ``nothing_new``, and the reports of the last warm run and the last
        ``ecom report`` (``warm``, ``report``; None when it failed).
    """
    server.stop()  # a server warmed by the real case's own warm-up, not by the last timed cold run
    server.warm_up(input_dir, out_dir, why="real case")
    lakehouse = out_dir / "lakehouse"
    outputs = {"warm": out_dir / "warm_report.json", "report": out_dir / "ecom_report.json"}
    runs: dict[str, list[Measurement]] = {"warm": [], "report": [], "nothing_new": []}
    reports: dict[str, Path | None] = {"warm": None, "report": None}
    for attempt in range(repeat):
        of = f"{label}, run {attempt + 1}/{repeat}"
        shutil.rmtree(lakehouse, ignore_errors=True)
        for output in outputs.values():
            output.unlink(missing_ok=True)
        commands = (
            ("warm", f"pipeline warm, {of}", _ecom_run(server.ecom, input_dir, lakehouse, outputs["warm"])),
            ("report", f"`ecom report` warm, {of}", _ecom_report(server.ecom, lakehouse, outputs["report"])),
            ("nothing_new", f"pipeline warm, nothing-new run, {of}",
             _ecom_run(server.ecom, input_dir, lakehouse, None)),
        )  # fmt: skip
        for key, text, command in commands:
            measurement = server.timed(text, command, cwd=out_dir, logs=out_dir / key, timeout=args.timeout)
            runs[key].append(measurement)
            if key in outputs:
                good = measurement.exit_code == 0 and outputs[key].is_file()
                reports[key] = outputs[key] if good else None
            if measurement.exit_code != 0:
                break  # no lakehouse (or a broken one) for the next commands of this repeat
    results = {key: _engine_result(measured, lines if key == "warm" else None) for key, measured in runs.items()}
    return results, reports


def run_real(
    work_dir: Path, env: dict[str, str], args: argparse.Namespace, server: BenchServer | None
) -> dict[str, Any]:
    """The real-dataset case, ``--repeat`` runs each (3 by default): DuckDB (no server running), cold runs, then the
    warm commands of :func:`run_real_warm`; ratios to DuckDB and the parity of every report with DuckDB's."""
    real = Path(args.real_input)
    if not real.exists():
        print(f"bench: {real} does not exist; the real-dataset case is skipped", file=sys.stderr, flush=True)
        return {"input": str(real), "available": False}
    out_dir = work_dir / "real"
    out_dir.mkdir(parents=True, exist_ok=True)
    lines, repeat = count_order_lines(real), args.repeat or REAL_REPEAT
    result: dict[str, Any] = {"input": str(real), "available": True, "order_lines": lines, "repeat": repeat}
    label = f"real dataset ({lines:,} lines)"
    reports: dict[str, Path | None] = {}
    if server is not None:
        server.stop()  # DuckDB alone on the machine, as the cold runs are
    if not args.skip_duckdb:
        result["duckdb"], reports["duckdb"] = run_duckdb(real, out_dir, lines, env, args, repeat=repeat, label=label)
    if server is not None:
        result["cold"], reports["cold"] = run_pipeline(real, out_dir, lines, server, args, repeat=repeat, label=label,
                                                       name="cold", cold=True)  # fmt: skip
        warm, warm_reports = run_real_warm(real, out_dir, lines, server, args, repeat=repeat, label=label)
        result.update(warm)
        reports.update(warm_reports)
    result["ratios"] = {key: _ratio(result, key) for key, *_ in REAL_ROWS if key != "duckdb" and key in result}
    for key in ("cold", "warm", "report"):
        if key in result:
            result[f"parity_{key}"] = _compare_files(reports.get(key), reports.get("duckdb"), f"{label}, {key}")
    return result


def server_startup(server: BenchServer, work_dir: Path, runs: int, timeout: float | None) -> dict[str, Any]:
    """Start-up, ``runs`` times each: a cold server start (``ecom server start``, the server stopped first) and a
    warm connect (a new Python process: a session of the running server, one query).

    Returns:
        ``cold_server_start`` and ``warm_connect``, each with every run, the median (``wall_s``), least and most
        seconds and the peak memory (:func:`_engine_result`).
    """
    startup_dir = work_dir / "startup"
    startup_dir.mkdir(parents=True, exist_ok=True)
    starts, connects = [], []
    for attempt in range(runs):
        starts.append(
            server.timed_cold(
                f"cold server start, run {attempt + 1}/{runs}",
                [server.ecom, "server", "start"],
                cwd=startup_dir,
                logs=startup_dir / "server_start",
                timeout=timeout,
            )
        )
    for attempt in range(runs):  # on the server the last cold start left running
        connects.append(
            server.timed(
                f"warm connect, run {attempt + 1}/{runs}",
                [sys.executable, "-c", _CONNECT_CODE],
                cwd=startup_dir,
                logs=startup_dir / "connect",
                timeout=timeout,
            )
        )
    return {"cold_server_start": _engine_result(starts), "warm_connect": _engine_result(connects)}


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _java_version() -> str | None:
    java_home = os.environ.get("JAVA_HOME")
    java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
    if not java:
        return None
    try:
        done = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    first = (done.stderr or done.stdout).strip().splitlines()
    return first[0] if first else None


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def machine_info() -> dict[str, Any]:
    """Cores, memory, OS and the versions of Python, Java, Spark, Delta, DuckDB and openpyxl."""
    import psutil

    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cores_logical": os.cpu_count(),
        "cores_physical": psutil.cpu_count(logical=False),
        "cpu_model": _cpu_model(),
        "memory_gib": round(psutil.virtual_memory().total / GIB, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "java": _java_version(),
        "spark": _version("pyspark"),
        "delta_spark": _version("delta-spark"),
        "duckdb": _version("duckdb"),
        "openpyxl": _version("openpyxl"),
        "ecom_lakehouse": _version("ecom-lakehouse"),
    }


# ---------------------------------------------------------------------------------------------------------------
# Results: targets, markdown, chart (pure functions of the results dict, except the chart's file)
# ---------------------------------------------------------------------------------------------------------------


def _size_entry(results: dict[str, Any], size: int) -> dict[str, Any] | None:
    return next((s for s in results.get("sizes", []) if s["size"] == size), None)


def _wall(entry: dict[str, Any] | None, engine: str) -> float | None:
    if entry is None or not entry.get(engine):
        return None
    return entry[engine].get("wall_s")


def scaling(results: dict[str, Any], engine: str, small: int = 1_000_000, large: int = 10_000_000) -> float | None:
    """time(large) / time(small) for an engine, None when either size was not measured."""
    low, high = _wall(_size_entry(results, small), engine), _wall(_size_entry(results, large), engine)
    return round(high / low, 2) if low and high else None


def _incremental(entry: dict[str, Any] | None) -> dict[str, Any] | None:
    incremental = (entry or {}).get("incremental")
    return incremental if incremental and not incremental.get("skipped") else None


def incremental_percent(results: dict[str, Any], size: int) -> float | None:
    """The incremental run's time at ``size`` as a percentage of the full build's, None when not measured."""
    incremental = _incremental(_size_entry(results, size))
    ratio = incremental.get("ratio_to_full") if incremental else None
    return None if ratio is None else round(100 * ratio, 2)


def peak_gib(result: dict[str, Any] | None) -> float | None:
    """The peak memory (GiB) a pipeline result needed: for warm commands the ``ecom`` process tree plus the server's
    JVM, sampled at the same instants (``total_peak_rss_gib``); else the process tree's (the server a cold command
    starts is in its tree). Also takes a single run's measurement (bytes)."""
    if not result:
        return None
    for gib, in_bytes in (("total_peak_rss_gib", "total_peak_rss_bytes"), ("peak_rss_gib", "peak_rss_bytes")):
        if result.get(gib) is not None:
            return result[gib]
        if result.get(in_bytes) is not None:
            return round(result[in_bytes] / GIB, 3)
    return None


def _peak_text(result: dict[str, Any] | None) -> str:
    """``2.10 (server 1.80)`` for a warm result, ``2.10`` otherwise."""
    text = _num(peak_gib(result), ".2f")
    server = (result or {}).get("server_peak_rss_gib")
    return text if server is None else f"{text} (server {server:.2f})"


def _pipeline_results(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Every pipeline result measured: full builds, base builds, incremental runs and their reports (when they
    succeeded), the real dataset's cold, warm, nothing-new and report commands."""
    found: list[dict[str, Any]] = []
    for entry in results.get("sizes", []):
        found.append(entry.get("pipeline") or {})
        incremental = _incremental(entry) or {}
        found += [incremental.get("base_build") or {}, incremental.get("pipeline") or {}]
        if incremental.get("report_run", {}).get("exit_code") == 0:
            found.append(incremental["report_run"])
    real = results.get("real") or {}
    found += [real.get(key) or {} for key, *_ in REAL_ROWS if key != "duckdb"]
    return [r for r in found if r]


def _pipeline_peaks(results: dict[str, Any]) -> list[float]:
    """Peak memory (GiB, :func:`peak_gib`) of every pipeline result measured (:func:`_pipeline_results`)."""
    return [peak for peak in map(peak_gib, _pipeline_results(results)) if peak is not None]


def _parities(results: dict[str, Any]) -> list[tuple[str, dict[str, Any] | None]]:
    """(case label, parity or None when not compared) of every case that ran, in the order of results.md."""
    out: list[tuple[str, dict[str, Any] | None]] = []
    real = results.get("real") or {}
    if real.get("available"):
        for key, label in REAL_PARITY_LABELS.items():
            out.append((f"real dataset ({real.get('order_lines', 0):,} lines), {label}", real.get(f"parity_{key}")))
    for entry in results.get("sizes", []):
        if entry.get("pipeline") or entry.get("duckdb"):
            out.append((f"{entry['size']:,} lines, full build", entry.get("parity")))
        incremental = _incremental(entry)
        if incremental:
            added = incremental.get("lines_added", 0)
            out.append((f"{entry['size']:,} + {added:,} lines, incremental run", incremental.get("parity")))
    return out


def evaluate_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The pipeline's targets with their measured value and pass/fail (None: not measured).

    - ``ratio_at_10M``: pipeline wall / DuckDB wall at 10M lines (full build, warm), at most 2.5;
    - ``peak_memory``: the pipeline's peak RSS over every pipeline command (:func:`peak_gib`: a warm command's with
      the server's), at most 8 GiB;
    - ``scaling_10M_1M``: the pipeline's time(10M) / time(1M), at most 12;
    - ``incremental_10M``, ``incremental_1M``: the run adding 1 % new lines, as a percentage of the full build's time,
      both warm, at most 10 % at 10M lines and 20 % at 1M;
    - ``real_warm``, ``real_cold``: the pipeline's median time on the real dataset, warm at most 8 s, cold (server
      start included) at most 35 s;
    - ``report_warm``: the median time of a warm ``ecom report`` of the real dataset's lakehouse, at most 2 s;
    - ``reports_identical``: every case compared has the same report from both engines (every figure and customer
      name); the value is the number of cases that differ.

    Each target has ``measured`` and ``limit``, its value and threshold as text; a warm figure from a run that found
    no warm server says so in ``measured``.
    """
    at_10m = _size_entry(results, 10_000_000)
    peaks = _pipeline_peaks(results)
    real = results.get("real") or {}
    compared = [parity for _, parity in _parities(results) if parity]
    differing = sum(not reports_identical(parity) for parity in compared)

    def target(name: str, description: str, value: float | None, threshold: float, unit: str,
               *warm: dict[str, Any] | None) -> dict[str, Any]:  # fmt: skip
        not_warm = any(result and result.get("all_warm") is False for result in warm)
        measured = "n/a" if value is None else f"{value:.2f} {unit}"
        return {
            "name": name,
            "description": description,
            "value": value,
            "threshold": threshold,
            "unit": unit,
            "passed": None if value is None else value <= threshold,
            "measured": measured + (" (a run found no warm server)" if not_warm and value is not None else ""),
            "limit": f"≤ {threshold:g} {unit}",
        }

    targets = [
        target("ratio_at_10M",
               f"pipeline time ≤ {TARGET_RATIO_AT_10M:g} × DuckDB time at 10M lines (full build, warm)",
               at_10m.get("ratio") if at_10m else None, TARGET_RATIO_AT_10M, "×", (at_10m or {}).get("pipeline")),
        target("peak_memory",
               f"pipeline peak memory ≤ {TARGET_PEAK_GIB:g} GiB (every pipeline run; warm: with the server's)",
               max(peaks) if peaks else None, TARGET_PEAK_GIB, "GiB"),
        target("scaling_10M_1M", f"pipeline time(10M) / time(1M) ≤ {TARGET_SCALING_10M_1M:g}",
               scaling(results, "pipeline"), TARGET_SCALING_10M_1M, "×"),
    ]  # fmt: skip
    for size, percent in TARGET_INCREMENTAL_PERCENT.items():
        description = (
            f"run adding 1 % new lines ≤ {percent:g} % of the full build's time at {size_label(size)} lines (both warm)"
        )
        incremental = _incremental(_size_entry(results, size)) or {}
        targets.append(target(f"incremental_{size_label(size)}", description, incremental_percent(results, size),
                              percent, "%", incremental.get("pipeline")))  # fmt: skip
    repeat = real.get("repeat", REAL_REPEAT)
    targets += [
        target("real_warm", f"real dataset, warm `ecom run`, median of {repeat} ≤ {TARGET_REAL_WARM_S:g} s",
               _wall(real, "warm"), TARGET_REAL_WARM_S, "s", real.get("warm")),
        target("real_cold", f"real dataset, cold `ecom run` (server start included), median of {repeat} "
               f"≤ {TARGET_REAL_COLD_S:g} s", _wall(real, "cold"), TARGET_REAL_COLD_S, "s"),
        target("report_warm", f"real dataset, warm `ecom report`, median of {repeat} ≤ {TARGET_REPORT_WARM_S:g} s",
               _wall(real, "report"), TARGET_REPORT_WARM_S, "s", real.get("report")),
    ]  # fmt: skip
    identical = target("reports_identical", "pipeline report = DuckDB report (every case compared)",
                       differing if compared else None, 0, "cases differ")  # fmt: skip
    if compared:
        identical["measured"] = f"{differing} of {len(compared)} cases differ"
    identical["limit"] = "none differs"
    targets.append(identical)
    return targets


def _num(value: float | None, fmt: str) -> str:
    return "n/a" if value is None else format(value, fmt)


def _size_text(n_bytes: int | None) -> str:
    if n_bytes is None:
        return "n/a"
    return f"{n_bytes / GIB:.2f} GiB" if n_bytes >= GIB else f"{n_bytes / 1024**2:.1f} MiB"


def table_rows(results: dict[str, Any]) -> list[list[str]]:
    """The full-build table's rows (one per size measured), formatted, in the order of :data:`TABLE_COLUMNS`."""
    rows = []
    for entry in results.get("sizes", []):
        pipeline, duck = entry.get("pipeline") or {}, entry.get("duckdb") or {}
        if not (pipeline or duck):
            continue
        rows.append(
            [
                f"{entry['size']:,}",
                _num(pipeline.get("wall_s"), ".1f"),
                _num(duck.get("wall_s"), ".1f"),
                _num(entry.get("ratio"), ".2f"),
                _num(pipeline.get("rows_per_s"), ",.0f"),
                _num(duck.get("rows_per_s"), ",.0f"),
                _peak_text(pipeline),
                _num(duck.get("peak_rss_gib"), ".2f"),
            ]
        )
    return rows


def incremental_rows(results: dict[str, Any]) -> list[list[str]]:
    """The incremental table's rows (one per size measured), in the order of :data:`INCREMENTAL_COLUMNS`."""
    rows = []
    for entry in results.get("sizes", []):
        incremental = _incremental(entry)
        if not incremental:
            continue
        pipeline, duck = incremental.get("pipeline") or {}, incremental.get("duckdb") or {}
        percent = incremental_percent(results, entry["size"])
        limit = TARGET_INCREMENTAL_PERCENT.get(entry["size"])
        full_s = incremental.get("full_build_s")
        built_here = incremental.get("full_build_source") == "base build"
        full_text = _num(full_s, ".1f") + (" (built here)" if built_here else "")
        rows.append(
            [
                f"{entry['size']:,}",
                f"{incremental.get('lines_added', 0):,}",
                full_text if full_s is not None else "n/a",
                _num(pipeline.get("wall_s"), ".1f"),
                "n/a" if percent is None else f"{percent:.1f} %",
                "–" if limit is None else f"≤ {limit:g} %",
                _peak_text(pipeline),
                _num(duck.get("wall_s"), ".1f"),
            ]
        )
    return rows


def real_rows(real: dict[str, Any]) -> list[list[str]]:
    """The real dataset's table rows (:data:`REAL_ROWS` that ran), in the order of :data:`REAL_COLUMNS`."""
    rows = []
    duckdb_wall = _wall(real, "duckdb")
    for key, label, _ in REAL_ROWS:
        result = real.get(key)
        if not result:
            continue
        wall = result.get("wall_s")
        ratio = wall / duckdb_wall if wall and duckdb_wall else None
        rows.append([label, _num(wall, ".1f"), _num(result.get("min_s"), ".1f"), _num(result.get("max_s"), ".1f"),
                     _num(ratio, ".2f"), _peak_text(result)])  # fmt: skip
    return rows


def _markdown_table(header: Sequence[str], rows: list[list[str]], right: Sequence[bool]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---:" if r else "---" for r in right) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _parity_text(parity: dict[str, Any]) -> str:
    parts = []
    for name in REPORT_NAMES:
        p = parity[name]
        parts.append(f"{name} {'exact' if p['match'] else 'MISMATCH'} ({p['mismatches']} of {p['rows']} differ)")
    parts.append(f"customer names differing: {parity['customer_name_differences']}")
    return "; ".join(parts)


def _failed_runs(label: str, result: dict[str, Any] | None, logs: str) -> list[str]:
    if not result or result.get("ok", True):
        return []
    codes = [r["exit_code"] for r in result.get("runs", [])]
    return [f"  - {label} FAILED (exit codes {codes}); see {logs}"]


def _not_warm(label: str, result: dict[str, Any] | None) -> list[str]:
    if not result or result.get("all_warm", True):
        return []
    return [f"  - {label}: a run found no warm server (it started one); its time is not a warm time"]


_PEAK_NOTE = (
    "Peak memory of a warm command: the `ecom` process tree plus the server's JVM, sampled at the same instants (the "
    "server started earlier, outside the tree), the server's own peak in brackets; of a cold command: the `ecom` "
    "process tree, which holds the server it starts."
)


def _real_section(real: dict[str, Any]) -> list[str]:
    out = ["", "## Real dataset", ""]
    if not real.get("available"):
        return [*out, f"Not run: {real.get('input')} does not exist."]
    out.append(
        f"`{real['input']}`: {real.get('order_lines', 0):,} order lines, the export as it came. Every command ran "
        f"{real.get('repeat')} time(s), each a new process; the time is the median. Cold: no server running (the "
        "bench stopped its own), so the run starts one (JVM start-up included). Warm: the bench's server, started "
        "and warmed by one untimed `ecom run` into a throwaway lakehouse; per repeat a warm run into a fresh "
        "lakehouse, then `ecom report` of it, then a run of the unchanged input on it (nothing new to ingest)."
    )
    out.append("")
    out += _markdown_table(REAL_COLUMNS, real_rows(real), [False, True, True, True, True, True])
    out.append("")
    for key, label, what in REAL_ROWS:
        result = real.get(key)
        if not result:
            continue
        runs = ", ".join(f"{r['wall_s']:.1f}" for r in result.get("runs", []) if r.get("exit_code") == 0)
        out.append(f"- {label}: {what}; runs {runs or 'n/a'} s.")
        out += _failed_runs(label, result, "bench/work/real/*.stderr.log") + _not_warm(label, result)
    out += ["", _PEAK_NOTE]
    after = [run.get("server") for run in (real.get("warm") or {}).get("runs", []) if run.get("server")]
    if after and after[-1].get("running"):
        rss, heap = _size_text(after[-1].get("rss_bytes")), _size_text(after[-1].get("heap_used_bytes"))
        out.append(
            f"The server after the last warm run (`ecom server status --json`): {rss} resident, heap {heap} used."
        )
    return out


def _incremental_section(results: dict[str, Any]) -> list[str]:
    rows = incremental_rows(results)
    if not rows:
        return []
    out = ["", "## Incremental run (+1 % new order lines)", ""]
    out.append(
        "On the lakehouse built from N lines, a new orders file of N/100 new order lines (Row IDs N+1 on, new Order "
        "IDs, the dataset's own customers, products, dates and amounts: every 100th line of the dataset) is placed "
        "beside the others in the input folder, and `ecom -q run --input <dir> --lakehouse <same> --no-report` is "
        "timed on the warm server. Full build: the full case's time at that size (warm, report included), or a "
        "build made for this case when the full case did not run. The updated lakehouse's report (`ecom report`, "
        "not timed in the case) is compared with the DuckDB reference computed from scratch on all the files."
    )
    out.append("")
    out += _markdown_table(INCREMENTAL_COLUMNS, rows, [True] * len(INCREMENTAL_COLUMNS))
    out.append("")
    for entry in results.get("sizes", []):
        incremental = _incremental(entry) or {}
        if incremental.get("report_run", {}).get("wall_s"):
            out.append(
                f"- {entry['size']:,} lines: the report of the updated lakehouse took "
                f"{incremental['report_run']['wall_s']:.1f} s on its own (warm server)."
            )
        logs = f"bench/work/{entry['size']}/*.stderr.log"
        for key in ("base_build", "pipeline", "duckdb"):
            label = f"{entry['size']:,} lines, incremental case, {key}"
            out += _failed_runs(label, incremental.get(key), logs) + _not_warm(label, incremental.get(key))
    return out


def _startup_lines(startup: dict[str, Any] | None) -> list[str]:
    out = []
    texts = (
        ("cold_server_start", "Cold server start (`ecom server start`, no server running: JVM, jars, Spark Connect); a "
         "cold command pays it, a warm one does not"),
        ("warm_connect", "Warm connect (a new Python process: `get_spark().range(1).collect()` on the running server); "
         "part of every warm command"),
    )  # fmt: skip
    for key, text in texts:
        result = (startup or {}).get(key)
        if not result:
            continue
        out.append(
            f"- {text}: median {_num(result.get('wall_s'), '.2f')} s of {len(result.get('runs', []))} run(s) "
            f"(min {_num(result.get('min_s'), '.2f')}, max {_num(result.get('max_s'), '.2f')}), peak "
            f"{_peak_text(result)} GiB."
        )
        out += _failed_runs(text.split(" (")[0], result, "bench/work/startup/*.stderr.log")
    return out


def _server_lines(server: dict[str, Any] | None) -> list[str]:
    if not server:
        return []
    warm_ups = [
        f"{event['why']} {event['wall_s']:.1f} s" + ("" if event.get("exit_code") == 0 else " (FAILED)")
        for event in server.get("events", [])
        if event.get("event") == "warm-up"
    ]
    line = f"- The bench's server: home `{server.get('home')}`"
    line += f"; warm-ups (untimed `ecom run`): {', '.join(warm_ups)}" if warm_ups else ""
    return [line + "; stopped at the end."]


def render_markdown(results: dict[str, Any]) -> str:
    """results.md: machine, the full-build table, scaling, the incremental and real-dataset cases, targets with
    pass/fail, start-up, generation, parity."""
    machine = results.get("machine", {})
    config = results.get("config", {})
    out = ["# Benchmark: local pipeline vs DuckDB reference", ""]
    out.append(
        f"Run {machine.get('date', 'n/a')} on {machine.get('cores_logical', '?')} cores "
        f"({machine.get('cpu_model') or 'unknown CPU'}), {machine.get('memory_gib', '?')} GiB RAM; "
        f"Python {machine.get('python')}, {machine.get('java')}, Spark {machine.get('spark')}, "
        f"Delta {machine.get('delta_spark')}, DuckDB {machine.get('duckdb')}, openpyxl {machine.get('openpyxl')}."
    )
    cases = config.get("cases") or list(CASES)
    out.append(
        f"Cases: {', '.join(cases)}. "
        f"Data: `generate_dataset(seed={config.get('seed')}, bad_orders={config.get('bad_orders')})`. "
        "Pipeline: `ecom -q run --format json --output F` "
        f"(ECOM_DRIVER_MEMORY={config.get('ecom_driver_memory') or 'unset'}), a client of the bench's own Spark "
        "server; "
        f"DuckDB: `python -m bench.duckdb_reference` with {config.get('duckdb_threads')} threads. "
        f"Wall time is the median of {config.get('repeat') or 1} run(s), each a new process. Warm: the server runs "
        "and one untimed `ecom run` warmed it; cold: no server runs, the command starts one. Peak memory is the "
        "highest sum of RSS over the process tree (sampled every 0.2 s), plus the server's JVM for warm commands."
    )
    if table_rows(results):
        out += ["", "## Full build", ""]
        out.append(
            "On the warm server, started and warmed once before the size cases (one untimed `ecom run` of a "
            f"{WARMUP_LINES:,}-line generated dataset). No cold full build at these sizes: a cold run adds the cold "
            "server start (see Other measurements); the real dataset compares cold and warm."
        )
        out.append("")
        out += _markdown_table(TABLE_COLUMNS, table_rows(results), [True] * len(TABLE_COLUMNS))
        out.append("")
        out.append(
            f"Scaling time(10M) / time(1M): pipeline {_num(scaling(results, 'pipeline'), '.2f')}, "
            f"DuckDB {_num(scaling(results, 'duckdb'), '.2f')} (10× the lines). {_PEAK_NOTE} DuckDB ran while the "
            "idle server held its memory."
        )
        for entry in results.get("sizes", []):
            out += _not_warm(f"{entry['size']:,} lines, full build", entry.get("pipeline"))
    out += _incremental_section(results)
    if results.get("real"):
        out += _real_section(results["real"])
    out += ["", "## Targets", ""]
    target_rows = []
    for t in evaluate_targets(results):
        verdict = "not measured" if t["passed"] is None else ("pass" if t["passed"] else "FAIL")
        target_rows.append([t["description"], t["measured"], t["limit"], verdict])
    out += _markdown_table(["target", "measured", "threshold", "result"], target_rows, [False, True, True, False])

    out += ["", "## Other measurements", ""]
    out += _startup_lines(results.get("startup"))
    out += _server_lines(results.get("server"))
    for entry in results.get("sizes", []):
        generation = entry.get("generation") or {}
        line = f"- {entry['size']:,} lines: data generated in {_num(generation.get('seconds'), '.1f')} s"
        if generation.get("reused"):
            line += " (earlier run, reused)"
        line += f", {_size_text(generation.get('bytes'))} of raw files"
        increment = (_incremental(entry) or {}).get("increment") or {}
        if increment:
            line += f"; increment written in {_num(increment.get('seconds'), '.1f')} s"
            line += " (earlier run, reused)" if increment.get("reused") else ""
            line += f", {_size_text(increment.get('bytes'))}"
        steps = (entry.get("duckdb") or {}).get("steps") or {}
        if steps:
            line += "; DuckDB steps: " + ", ".join(f"{k} {v:.2f} s" for k, v in steps.items() if k != "total")
        loads = [
            r["load_before"] for engine in ("pipeline", "duckdb") for r in ((entry.get(engine) or {}).get("runs") or [])
        ]
        if loads and max(loads) >= 0.5:
            line += f" (load average before a run up to {max(loads):.1f}: other work was using the CPUs)"
        out.append(line + ".")
        for engine in ("pipeline", "duckdb"):
            out += _failed_runs(engine, entry.get(engine), f"bench/work/{entry['size']}/*.stderr.log")

    out += ["", "## Parity (pipeline report vs DuckDB report)", ""]
    for label, parity in _parities(results):
        text = _parity_text(parity) if parity else "not compared (an engine did not run or failed)"
        out.append(f"- {label}: {text}.")
    out.append("")
    return "\n".join(out)


def plot(results: dict[str, Any], path: Path) -> None:
    """Log-log chart of wall time against order lines: both engines' full builds and the incremental runs (the
    pipeline's on the warm server), the cold server start as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, NullFormatter

    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=120)
    entries = results.get("sizes", [])
    series = (
        ("pipeline", "pipeline (Spark + Delta), warm server", "o", lambda s: _wall(s, "pipeline")),
        ("duckdb", "DuckDB reference", "s", lambda s: _wall(s, "duckdb")),
        ("incremental", "pipeline, run adding 1 % new lines, warm", "^",
         lambda s: _wall(_incremental(s), "pipeline")),
    )  # fmt: skip
    sizes: set[int] = set()
    for engine, label, marker, wall in series:
        points = [(s["size"], wall(s)) for s in entries if wall(s)]
        if not points:
            continue
        sizes |= {x for x, _ in points}
        xs, ys = zip(*points, strict=True)
        ax.plot(xs, ys, marker=marker, label=label, linestyle=":" if engine == "incremental" else "-")
        for x, y in points:
            ax.annotate(f"{y:.0f} s" if y >= 10 else f"{y:.1f} s", (x, y), textcoords="offset points",
                        xytext=(6, -12 if engine != "pipeline" else 6), fontsize=8)  # fmt: skip
        if engine == "duckdb":
            ax.plot(xs, [TARGET_RATIO_AT_10M * y for y in ys], linestyle="--", color="grey", linewidth=1,
                    label=f"{TARGET_RATIO_AT_10M:g} × DuckDB (target at 10M)")  # fmt: skip
    cold_start = ((results.get("startup") or {}).get("cold_server_start") or {}).get("wall_s")
    if cold_start:
        ax.axhline(cold_start, color="grey", linestyle=":", linewidth=1,
                   label=f"cold server start ({cold_start:.1f} s, not in warm times)")  # fmt: skip
    ax.set_xscale("log")
    ax.set_yscale("log")
    if sizes:
        ticks = sorted(sizes)
        ax.set_xticks(ticks, [size_label(s) for s in ticks])
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlim(min(ticks) / 1.6, max(ticks) * 1.6)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{y:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("order lines")
    ax.set_ylabel("wall time (s, log)")
    ax.set_title("ecom-lakehouse: wall time vs input size (log-log)")
    ax.grid(True, which="both", linewidth=0.3)
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_results(results: dict[str, Any], results_dir: Path) -> None:
    """Write results.json, results.md and time_vs_size.png."""
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
    (results_dir / "results.md").write_text(render_markdown(results), encoding="utf-8")
    plot(results, results_dir / "time_vs_size.png")


# ---------------------------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The harness's arguments."""
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=parse_sizes, default=list(DEFAULT_SIZES),
                        help="sizes of the full and incremental cases, e.g. 100000,1M,10M")  # fmt: skip
    parser.add_argument("--cases", type=parse_cases, default=list(CASES),
                        help="what to run, among full,incremental,real (default: all)")  # fmt: skip
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--bad-orders", type=int, default=25, help="defective order lines per dataset")
    repeat_help = f"runs per engine and case, median reported (default 1, {REAL_REPEAT} for real)"
    parser.add_argument("--repeat", type=int, default=None, help=repeat_help)
    parser.add_argument("--real-input", type=Path, default=REAL_INPUT, help="the real export's folder")
    parser.add_argument("--duckdb-threads", type=int, default=2)
    parser.add_argument("--startup-runs", type=int, default=3,
                        help="cold server starts and warm connects measured, median reported (0: none)")  # fmt: skip
    parser.add_argument("--timeout", type=float, default=4 * 3600, help="seconds before a run is killed")
    parser.add_argument("--work-dir", type=Path, default=BENCH_DIR / "work")
    parser.add_argument("--results-dir", type=Path, default=BENCH_DIR / "results")
    parser.add_argument("--ecom", default=None, help="the ecom executable (default: the one of this venv)")
    parser.add_argument("--skip-pipeline", action="store_true", help="time only DuckDB (no Spark, no server)")
    parser.add_argument("--skip-duckdb", action="store_true", help="time only the pipeline")
    return parser


# Results of a case that are one engine's (or mode's) runs, and that are parities with DuckDB.
_RUN_KEYS = ("pipeline", "duckdb", "base_build", *(key for key, *_ in REAL_ROWS))
_PARITY_KEYS = ("parity", *(f"parity_{key}" for key in REAL_PARITY_LABELS))


def _case_failed(result: dict[str, Any] | None) -> bool:
    """A run of the case failed, or its reports differ in ``profit_by_year``."""
    if not result:
        return False
    engines = [result.get(k) for k in dict.fromkeys(_RUN_KEYS)]
    parities = [result.get(k) for k in _PARITY_KEYS]
    return (
        result.get("ok") is False
        or any(e is not None and not e.get("ok") for e in engines)
        or any(p is not None and not p["profit_by_year"]["match"] for p in parities)
    )


def _check_local_server(env: dict[str, str]) -> None:
    """Refuse an environment in which ``ecom`` would not use the local server the bench measures."""
    from ecom_lakehouse.spark import CLASSIC, MODE_ENV, REMOTE_ENV

    if env.get(MODE_ENV, "").strip().lower() == CLASSIC or env.get(REMOTE_ENV, "").strip():
        raise SystemExit(
            f"bench: it measures the local Spark server, cold and warm; unset {MODE_ENV}={CLASSIC} and {REMOTE_ENV} "
            "(or pass --skip-pipeline)"
        )


def _run_cases(results: dict[str, Any], env: dict[str, str], work_dir: Path, args: argparse.Namespace,
               server: BenchServer | None) -> bool:  # fmt: skip
    """Start-up, then the cases asked for, writing the results after each; returns whether one failed."""
    if server is not None and args.startup_runs > 0:
        results["startup"] = server_startup(server, work_dir, args.startup_runs, args.timeout)
        write_results(results, args.results_dir)
    failed = False
    if "real" in args.cases:
        results["real"] = run_real(work_dir, env, args, server)
        failed |= _case_failed(results["real"])
        write_results(results, args.results_dir)
    sizes = args.sizes if {"full", "incremental"} & set(args.cases) else []
    if sizes and server is not None:
        warm_up_sizes(server, work_dir, args)
    for size in sizes:
        generation = ensure_dataset(size, work_dir, seed=args.seed, bad_orders=args.bad_orders)
        entry: dict[str, Any] = {"size": size, "generation": generation}
        size_dir = work_dir / str(size)
        if "full" in args.cases:
            entry.update(run_full(size, size_dir, env, args, server))
            failed |= _case_failed(entry)
        if "incremental" in args.cases:
            entry["incremental"] = run_incremental(size, size_dir, env, args, generation, entry.get("pipeline"),
                                                   server)  # fmt: skip
            failed |= _case_failed(entry["incremental"])
        results["sizes"].append(entry)
        write_results(results, args.results_dir)  # after every size, so a long run leaves partial results
    return failed


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and write bench/results/; returns 0, or 1 when a run failed or the reports differ. The
    bench's server is stopped at the end, also when the bench fails."""
    args = build_parser().parse_args(argv)
    if args.repeat is not None and args.repeat < 1:
        raise SystemExit("bench: --repeat must be at least 1")
    work_dir = args.work_dir.resolve()
    work_dir.mkdir(parents=True, exist_ok=True)
    env = bench_env(dict(os.environ), work_dir)
    server = None
    if not args.skip_pipeline:
        _check_local_server(env)
        server = BenchServer(args.ecom or ecom_executable(), env, args.timeout)
    results: dict[str, Any] = {
        "machine": machine_info(),
        "config": {
            "cases": args.cases,
            "sizes": args.sizes,
            "seed": args.seed,
            "bad_orders": args.bad_orders,
            "repeat": args.repeat or 1,
            "repeat_real": args.repeat or REAL_REPEAT,
            "increment_share": 1 / INCREMENT_DIVISOR,
            "real_input": str(args.real_input),
            "duckdb_threads": args.duckdb_threads,
            "warm_up_lines": WARMUP_LINES,
            "ecom_driver_memory": env.get("ECOM_DRIVER_MEMORY"),
            "ecom_env": {k: v for k, v in env.items() if k.startswith("ECOM_")},
        },
        "startup": None,
        "server": None if server is None else {"home": server.home, "events": server.events},
        "real": None,
        "sizes": [],
    }
    try:
        failed = _run_cases(results, env, work_dir, args, server)
    finally:
        if server is not None:
            server.shutdown()
    results["scaling"] = {"pipeline": scaling(results, "pipeline"), "duckdb": scaling(results, "duckdb")}
    results["targets"] = evaluate_targets(results)
    write_results(results, args.results_dir)
    print(render_markdown(results))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
