"""Benchmark harness: the local pipeline (``ecom run``) against the DuckDB reference, size by size.

For each size the harness generates the dataset once (seed 42, reused while ``bench/work/<size>/dataset.json``
matches), then times, each in its own subprocess and with a fresh output folder:

- the pipeline: ``.venv/bin/ecom -q run --input <dir> --lakehouse bench/work/<size>/lakehouse --format json``;
- the reference: ``python -m bench.duckdb_reference --input <dir> --out bench/work/<size>/duckdb --threads 2``.

Wall seconds, order lines per second and peak memory (the sum of RSS over the whole process tree, sampled every
0.2 s: the JVM is a grandchild of ``ecom``) are recorded, and the two reports are compared (``profit_by_year``
exactly, per year). Spark start-up (create and stop a session) is measured separately. ``ECOM_DRIVER_MEMORY`` and
the other ``ECOM_*`` variables of the environment reach the pipeline unchanged.

Outputs: ``bench/results/results.json``, ``results.md`` (table, scaling, targets) and ``time_vs_size.png``.

Run: ``python -m bench.run [--sizes 100000,1000000,10000000]`` from the repository root (``make bench``).
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
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from decimal import Decimal
from importlib import metadata
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = REPO_ROOT / "bench"
DEFAULT_SIZES = (100_000, 1_000_000, 10_000_000)
GIB = 1024**3

# Targets for the pipeline (see results.md).
TARGET_RATIO_AT_10M = 3.0
TARGET_PEAK_GIB = 8.0
TARGET_SCALING_10M_1M = 12.0

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
_STARTUP_CODE = "from ecom_lakehouse.spark import get_spark\nspark = get_spark('ecom-bench-startup')\nspark.stop()\n"
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
    """

    wall_s: float
    peak_rss_bytes: int
    exit_code: int | None
    timed_out: bool
    load_before: float


class TreeMemorySampler(threading.Thread):
    """Samples the summed RSS of a process and its descendants until stopped; keeps the peak."""

    def __init__(self, pid: int, interval: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.interval = interval
        self.peak = 0
        self._stop_event = threading.Event()

    def sample(self) -> int:
        """The current summed RSS of the tree in bytes (0 when the root is gone)."""
        import psutil

        try:
            root = psutil.Process(self.pid)
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

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.peak = max(self.peak, self.sample())
            self._stop_event.wait(self.interval)

    def stop(self) -> int:
        """Stop sampling and return the peak in bytes."""
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

    Returns:
        The measurement.
    """
    import psutil

    load_before = psutil.getloadavg()[0]
    with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
        started = time.perf_counter()
        process = subprocess.Popen(list(command), cwd=cwd, stdout=out, stderr=err, env=env)
        sampler = TreeMemorySampler(process.pid, interval)
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


def size_label(size: int) -> str:
    """``100000`` -> ``100k``, ``10000000`` -> ``10M``."""
    if size >= 1_000_000 and size % 100_000 == 0:
        return f"{size / 1_000_000:g}M"
    if size >= 1_000 and size % 100 == 0:
        return f"{size / 1_000:g}k"
    return str(size)


def ensure_dataset(size: int, work_dir: Path, *, seed: int, bad_orders: int) -> dict[str, Any]:
    """Generate ``work_dir/<size>/input`` once; reuse it while its marker matches the parameters.

    Returns:
        Generation facts: seconds (of the run that generated it), reused, files, bytes and row counts.
    """
    from ecom_lakehouse.tools.generate import generate_dataset

    size_dir = work_dir / str(size)
    input_dir = size_dir / "input"
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
        "bytes": sum(p.stat().st_size for p in paths),
        "customers": files.customers_count,
        "product_rows": files.products_count,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    marker.write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return {**info, "reused": False}


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


def _keyed(rows: list[dict[str, Any]], keys: Sequence[str]) -> dict[tuple[Any, ...], Decimal]:
    out: dict[tuple[Any, ...], Decimal] = {}
    for row in rows:
        key = tuple(row.get(k) for k in keys)
        out[key] = out.get(key, Decimal(0)) + Decimal(str(row["profit"]))
    return out


def _diff(left: dict[tuple[Any, ...], Decimal], right: dict[tuple[Any, ...], Decimal]) -> dict[str, Any]:
    keys = sorted(set(left) | set(right), key=repr)
    mismatches = [
        {"key": list(k), "pipeline": str(left.get(k)), "duckdb": str(right.get(k))}
        for k in keys
        if left.get(k) != right.get(k)
    ]
    return {"match": not mismatches, "rows": len(keys), "mismatches": len(mismatches), "examples": mismatches[:10]}


_COMPARED_BY = {
    "profit_by_year": ("year",),
    "profit_by_year_category": ("year", "category"),
    "profit_by_customer": ("customer_id",),
    "profit_by_customer_year": ("customer_id", "year"),
}


def compare_reports(pipeline: dict[str, list[dict[str, Any]]], duckdb: dict[str, list[dict[str, Any]]]) -> dict:
    """Compare the two engines' reports exactly.

    ``profit_by_year`` and ``profit_by_year_category`` are compared row for row; the customer reports by
    customer id (and year), since the customer names come from the name repair, whose RE2 port may differ.

    Returns:
        Per report: match, rows compared, mismatches and a few examples; plus ``customer_name_differences``.
    """
    result: dict[str, Any] = {
        name: _diff(_keyed(pipeline[name], keys), _keyed(duckdb[name], keys)) for name, keys in _COMPARED_BY.items()
    }
    names_pipeline = {r["customer_id"]: r["customer_name"] for r in pipeline["profit_by_customer"]}
    names_duckdb = {r["customer_id"]: r["customer_name"] for r in duckdb["profit_by_customer"]}
    differing = sorted((k for k in names_pipeline if names_duckdb.get(k) != names_pipeline[k]), key=str)
    result["customer_name_differences"] = len(differing)
    result["customer_name_examples"] = [
        {"customer_id": k, "pipeline": names_pipeline[k], "duckdb": names_duckdb.get(k)} for k in differing[:10]
    ]
    return result


def _engine_result(runs: list[Measurement], size: int) -> dict[str, Any]:
    ok = [r for r in runs if r.exit_code == 0]
    result: dict[str, Any] = {"runs": [asdict(r) for r in runs], "ok": len(ok) == len(runs) and bool(runs)}
    if ok:
        wall = statistics.median(r.wall_s for r in ok)
        peak = max(r.peak_rss_bytes for r in ok)
        result.update(
            wall_s=round(wall, 3),
            rows_per_s=round(size / wall, 1) if wall else None,
            peak_rss_bytes=peak,
            peak_rss_gib=round(peak / GIB, 3),
        )
    return result


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def run_pipeline(size_dir: Path, env: dict[str, str], args: argparse.Namespace) -> tuple[dict[str, Any], Path | None]:
    """Time ``ecom run`` on ``size_dir/input``; return the result and the report path of the last good run."""
    runs = []
    report = None
    for attempt in range(args.repeat):
        lakehouse = size_dir / "lakehouse"
        shutil.rmtree(lakehouse, ignore_errors=True)
        stdout = size_dir / "pipeline_report.json"
        stderr = size_dir / "pipeline.stderr.log"
        command = [args.ecom or ecom_executable(), "-q", "run", "--input", str(size_dir / "input")]
        command += ["--lakehouse", str(lakehouse), "--format", "json"]
        print(f"bench: pipeline, {size_dir.name} lines, run {attempt + 1}/{args.repeat}", file=sys.stderr, flush=True)
        measurement = measure(
            command, cwd=size_dir, stdout_path=stdout, stderr_path=stderr, env=env, timeout=args.timeout
        )
        runs.append(measurement)
        print(f"bench:   {measurement.wall_s:.1f} s, exit {measurement.exit_code}", file=sys.stderr, flush=True)
        if measurement.exit_code == 0:
            report = stdout
        else:
            print(_tail(stderr), file=sys.stderr)
    return _engine_result(runs, int(size_dir.name)), report


def run_duckdb(size_dir: Path, args: argparse.Namespace) -> tuple[dict[str, Any], Path | None]:
    """Time the DuckDB reference on ``size_dir/input``; return the result and the report path of the last good run."""
    runs = []
    report = None
    steps: dict[str, float] = {}
    for attempt in range(args.repeat):
        stdout = size_dir / "duckdb_report.json"
        stderr = size_dir / "duckdb.stderr.log"
        command = [sys.executable, "-m", "bench.duckdb_reference", "--input", str(size_dir / "input")]
        command += ["--out", str(size_dir / "duckdb"), "--threads", str(args.duckdb_threads)]
        print(f"bench: duckdb, {size_dir.name} lines, run {attempt + 1}/{args.repeat}", file=sys.stderr, flush=True)
        measurement = measure(command, cwd=REPO_ROOT, stdout_path=stdout, stderr_path=stderr, timeout=args.timeout)
        runs.append(measurement)
        print(f"bench:   {measurement.wall_s:.1f} s, exit {measurement.exit_code}", file=sys.stderr, flush=True)
        if measurement.exit_code == 0:
            report = stdout
            match = _TIMINGS_LINE.search(stderr.read_text(encoding="utf-8", errors="replace"))
            steps = json.loads(match.group(1)) if match else {}
        else:
            print(_tail(stderr), file=sys.stderr)
    result = _engine_result(runs, int(size_dir.name))
    result["steps"] = steps
    return result, report


def spark_startup(env: dict[str, str], work_dir: Path, runs: int, timeout: float | None) -> dict[str, Any]:
    """Time creating and stopping a local Spark + Delta session in a fresh process, ``runs`` times."""
    startup_dir = work_dir / "startup"
    startup_dir.mkdir(parents=True, exist_ok=True)
    measurements = []
    for attempt in range(runs):
        print(f"bench: spark start-up, run {attempt + 1}/{runs}", file=sys.stderr, flush=True)
        measurements.append(
            measure(
                [sys.executable, "-c", _STARTUP_CODE],
                cwd=startup_dir,
                stdout_path=startup_dir / "stdout.log",
                stderr_path=startup_dir / "stderr.log",
                env=env,
                timeout=timeout,
            )
        )
    ok = [m for m in measurements if m.exit_code == 0]
    return {
        "runs": [asdict(m) for m in measurements],
        "best_s": min((m.wall_s for m in ok), default=None),
        "peak_rss_gib": round(max((m.peak_rss_bytes for m in ok), default=0) / GIB, 3) if ok else None,
    }


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


def evaluate_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The pipeline's targets with their measured value and pass/fail (None: not measured).

    - ``ratio_at_10M``: pipeline wall / DuckDB wall at 10M lines, at most 3;
    - ``peak_memory``: the pipeline's peak RSS (process tree) over all sizes, at most 8 GiB;
    - ``scaling_10M_1M``: the pipeline's time(10M) / time(1M), at most 12.
    """
    at_10m = _size_entry(results, 10_000_000)
    ratio = at_10m.get("ratio") if at_10m else None
    peaks = [
        s["pipeline"]["peak_rss_gib"]
        for s in results.get("sizes", [])
        if s.get("pipeline") and s["pipeline"].get("peak_rss_gib") is not None
    ]
    peak = max(peaks) if peaks else None
    scale = scaling(results, "pipeline")

    def target(name: str, description: str, value: float | None, threshold: float, unit: str) -> dict[str, Any]:
        passed = None if value is None else value <= threshold
        return {
            "name": name,
            "description": description,
            "value": value,
            "threshold": threshold,
            "unit": unit,
            "passed": passed,
        }

    return [
        target("ratio_at_10M", "pipeline time ≤ 3 × DuckDB time at 10M lines", ratio, TARGET_RATIO_AT_10M, "×"),
        target("peak_memory", "pipeline peak memory ≤ 8 GiB (all sizes)", peak, TARGET_PEAK_GIB, "GiB"),
        target("scaling_10M_1M", "pipeline time(10M) / time(1M) ≤ 12", scale, TARGET_SCALING_10M_1M, "×"),
    ]


def _num(value: float | None, fmt: str) -> str:
    return "n/a" if value is None else format(value, fmt)


def _size_text(n_bytes: int | None) -> str:
    if n_bytes is None:
        return "n/a"
    return f"{n_bytes / GIB:.2f} GiB" if n_bytes >= GIB else f"{n_bytes / 1024**2:.1f} MiB"


def table_rows(results: dict[str, Any]) -> list[list[str]]:
    """The main table's rows (one per size), formatted, in the order of :data:`TABLE_COLUMNS`."""
    rows = []
    for entry in results.get("sizes", []):
        pipeline, duck = entry.get("pipeline") or {}, entry.get("duckdb") or {}
        rows.append(
            [
                f"{entry['size']:,}",
                _num(pipeline.get("wall_s"), ".1f"),
                _num(duck.get("wall_s"), ".1f"),
                _num(entry.get("ratio"), ".2f"),
                _num(pipeline.get("rows_per_s"), ",.0f"),
                _num(duck.get("rows_per_s"), ",.0f"),
                _num(pipeline.get("peak_rss_gib"), ".2f"),
                _num(duck.get("peak_rss_gib"), ".2f"),
            ]
        )
    return rows


def _markdown_table(header: Sequence[str], rows: list[list[str]], right: Sequence[bool]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---:" if r else "---" for r in right) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def render_markdown(results: dict[str, Any]) -> str:
    """results.md: machine, the timing table, scaling, targets with pass/fail, start-up, generation, parity."""
    machine = results.get("machine", {})
    config = results.get("config", {})
    out = ["# Benchmark: local pipeline vs DuckDB reference", ""]
    out.append(
        f"Run {machine.get('date', 'n/a')} on {machine.get('cores_logical', '?')} cores "
        f"({machine.get('cpu_model') or 'unknown CPU'}), {machine.get('memory_gib', '?')} GiB RAM; "
        f"Python {machine.get('python')}, {machine.get('java')}, Spark {machine.get('spark')}, "
        f"Delta {machine.get('delta_spark')}, DuckDB {machine.get('duckdb')}, openpyxl {machine.get('openpyxl')}."
    )
    out.append(
        f"Data: `generate_dataset(seed={config.get('seed')}, bad_orders={config.get('bad_orders')})`. "
        f"Pipeline: `ecom -q run --format json` (ECOM_DRIVER_MEMORY={config.get('ecom_driver_memory') or 'unset'}); "
        f"DuckDB: `python -m bench.duckdb_reference` with {config.get('duckdb_threads')} threads. "
        f"Wall time is the median of {config.get('repeat', 1)} run(s) of a fresh process, start-up included; peak "
        "memory is the highest sum of RSS over the process tree (sampled every 0.2 s)."
    )
    out.append("")
    out += _markdown_table(TABLE_COLUMNS, table_rows(results), [True] * len(TABLE_COLUMNS))
    out.append("")
    out.append(
        f"Scaling time(10M) / time(1M): pipeline {_num(scaling(results, 'pipeline'), '.2f')}, "
        f"DuckDB {_num(scaling(results, 'duckdb'), '.2f')} (10× the lines)."
    )
    out += ["", "## Targets", ""]
    target_rows = []
    for t in evaluate_targets(results):
        verdict = "not measured" if t["passed"] is None else ("pass" if t["passed"] else "FAIL")
        value = "n/a" if t["value"] is None else f"{t['value']:.2f} {t['unit']}"
        target_rows.append([t["description"], value, f"≤ {t['threshold']:g} {t['unit']}", verdict])
    out += _markdown_table(["target", "measured", "threshold", "result"], target_rows, [False, True, True, False])

    startup = results.get("spark_startup")
    out += ["", "## Other measurements", ""]
    if startup:
        out.append(
            f"- Spark start-up (new process: create the local Spark + Delta session, stop it): best "
            f"{_num(startup.get('best_s'), '.1f')} s of {len(startup.get('runs', []))} run(s), peak "
            f"{_num(startup.get('peak_rss_gib'), '.2f')} GiB. It is part of every pipeline time above."
        )
    for entry in results.get("sizes", []):
        generation = entry.get("generation") or {}
        line = f"- {entry['size']:,} lines: data generated in {_num(generation.get('seconds'), '.1f')} s"
        if generation.get("reused"):
            line += " (earlier run, reused)"
        line += f", {_size_text(generation.get('bytes'))} of raw files"
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
            result = entry.get(engine)
            if result and not result.get("ok", True):
                codes = [r["exit_code"] for r in result.get("runs", [])]
                out.append(f"  - {engine} FAILED (exit codes {codes}); see bench/work/{entry['size']}/*.stderr.log")

    out += ["", "## Parity (pipeline report vs DuckDB report)", ""]
    for entry in results.get("sizes", []):
        parity = entry.get("parity")
        if not parity:
            out.append(f"- {entry['size']:,} lines: not compared (an engine did not run or failed).")
            continue
        parts = []
        for name in REPORT_NAMES:
            p = parity[name]
            parts.append(f"{name} {'exact' if p['match'] else 'MISMATCH'} ({p['mismatches']} of {p['rows']} differ)")
        parts.append(f"customer names differing: {parity['customer_name_differences']}")
        out.append(f"- {entry['size']:,} lines: " + "; ".join(parts) + ".")
    out.append("")
    return "\n".join(out)


def plot(results: dict[str, Any], path: Path) -> None:
    """Log-log chart of wall time against order lines for both engines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, NullFormatter

    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=120)
    sizes = [s["size"] for s in results.get("sizes", [])]
    for engine, label, marker in (("pipeline", "pipeline (Spark + Delta)", "o"), ("duckdb", "DuckDB reference", "s")):
        points = [(s["size"], _wall(s, engine)) for s in results.get("sizes", []) if _wall(s, engine)]
        if not points:
            continue
        xs, ys = zip(*points, strict=True)
        ax.plot(xs, ys, marker=marker, label=label)
        for x, y in points:
            ax.annotate(f"{y:.0f} s" if y >= 10 else f"{y:.1f} s", (x, y), textcoords="offset points",
                        xytext=(6, -12 if engine == "duckdb" else 6), fontsize=8)  # fmt: skip
        if engine == "duckdb":
            ax.plot(xs, [3 * y for y in ys], linestyle="--", color="grey", linewidth=1, label="3 × DuckDB (target)")
    startup = (results.get("spark_startup") or {}).get("best_s")
    if startup:
        ax.axhline(startup, color="grey", linestyle=":", linewidth=1, label=f"Spark start-up ({startup:.1f} s)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    if sizes:
        ax.set_xticks(sizes, [size_label(s) for s in sizes])
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlim(min(sizes) / 1.6, max(sizes) * 1.6)
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
    parser.add_argument("--sizes", type=parse_sizes, default=list(DEFAULT_SIZES), help="e.g. 100000,1M,10M")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--bad-orders", type=int, default=25, help="defective order lines per dataset")
    parser.add_argument("--repeat", type=int, default=1, help="runs per engine and size (median reported)")
    parser.add_argument("--duckdb-threads", type=int, default=2)
    parser.add_argument("--startup-runs", type=int, default=2, help="Spark start-up measurements")
    parser.add_argument("--timeout", type=float, default=4 * 3600, help="seconds before a run is killed")
    parser.add_argument("--work-dir", type=Path, default=BENCH_DIR / "work")
    parser.add_argument("--results-dir", type=Path, default=BENCH_DIR / "results")
    parser.add_argument("--ecom", default=None, help="the ecom executable (default: the one of this venv)")
    parser.add_argument("--skip-pipeline", action="store_true", help="time only DuckDB (no Spark at all)")
    parser.add_argument("--skip-duckdb", action="store_true", help="time only the pipeline")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and write bench/results/; returns 0, or 1 when a run failed or the reports differ."""
    args = build_parser().parse_args(argv)
    work_dir = args.work_dir.resolve()
    work_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    results: dict[str, Any] = {
        "machine": machine_info(),
        "config": {
            "sizes": args.sizes,
            "seed": args.seed,
            "bad_orders": args.bad_orders,
            "repeat": args.repeat,
            "duckdb_threads": args.duckdb_threads,
            "ecom_driver_memory": env.get("ECOM_DRIVER_MEMORY"),
            "ecom_env": {k: v for k, v in env.items() if k.startswith("ECOM_")},
        },
        "spark_startup": None,
        "sizes": [],
    }
    if not args.skip_pipeline and args.startup_runs > 0:
        results["spark_startup"] = spark_startup(env, work_dir, args.startup_runs, args.timeout)

    failed = False
    for size in args.sizes:
        entry: dict[str, Any] = {"size": size, "generation": ensure_dataset(size, work_dir, seed=args.seed,
                                                                           bad_orders=args.bad_orders)}  # fmt: skip
        size_dir = work_dir / str(size)
        pipeline_report = duckdb_report = None
        if not args.skip_pipeline:
            entry["pipeline"], pipeline_report = run_pipeline(size_dir, env, args)
            failed |= not entry["pipeline"]["ok"]
        if not args.skip_duckdb:
            entry["duckdb"], duckdb_report = run_duckdb(size_dir, args)
            failed |= not entry["duckdb"]["ok"]
        pipeline_wall, duckdb_wall = _wall(entry, "pipeline"), _wall(entry, "duckdb")
        entry["ratio"] = round(pipeline_wall / duckdb_wall, 3) if pipeline_wall and duckdb_wall else None
        if pipeline_report and duckdb_report:
            entry["parity"] = compare_reports(load_report(pipeline_report), load_report(duckdb_report))
            gc.collect()  # the two parsed reports can be large (millions of rows at 10M lines)
            if not entry["parity"]["profit_by_year"]["match"]:
                failed = True
                print(f"bench: profit_by_year differs at {size:,} lines", file=sys.stderr)
        results["sizes"].append(entry)
        write_results(results, args.results_dir)  # after every size, so a long run leaves partial results
    results["scaling"] = {"pipeline": scaling(results, "pipeline"), "duckdb": scaling(results, "duckdb")}
    results["targets"] = evaluate_targets(results)
    write_results(results, args.results_dir)
    print(render_markdown(results))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
