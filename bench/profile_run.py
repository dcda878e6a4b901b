"""Where a pipeline run's seconds go: each phase of ``run_pipeline`` with its wall seconds, Spark jobs and Delta
commits, on the session ``get_spark`` gives (the warm server by default; ``ECOM_SPARK_MODE=classic`` in-process),
session start-up measured apart.

Phases are the functions of the run (start, source discovery, each table write, reconciliation, rule counts, run
records, the report), wrapped here for the measurement only. In classic mode each runs in its own Spark job group,
so the jobs it started are counted from Spark's status tracker (a Spark Connect client cannot see jobs: none are
counted there); Delta commits are counted from every table's history afterwards (each commit attributed to the phase
running at its timestamp).

Run: ``python -m bench.profile_run --input ../shared/data/pei [--lakehouse DIR] [--json OUT] [--then DIR2]
[--repeat N]`` (``--then`` runs a second pipeline run on another input into the same lakehouse, e.g. a corrected or
a new file, and profiles that one too; ``--repeat`` profiles N runs into fresh lakehouses, the JVM warming up).
"""

from __future__ import annotations

import argparse
import functools
import json
import shutil
import tempfile
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ecom_lakehouse.spark import is_connect


@dataclass
class Phase:
    name: str
    seconds: float = 0.0
    calls: int = 0
    jobs: int = 0
    commits: int = 0
    windows: list[tuple[float, float]] = field(default_factory=list)


class Profiler:
    """Wraps functions so each call is a phase: timed, in its own Spark job group."""

    def __init__(self, spark: Any) -> None:
        self.spark = spark
        self.phases: dict[str, Phase] = {}
        self._stack: list[str] = []

    @contextmanager
    def phase(self, name: str):
        if self._stack:  # nested: the outer phase owns the time
            yield
            return
        self._stack.append(name)
        phase = self.phases.setdefault(name, Phase(name))
        sc = None if is_connect(self.spark) else self.spark.sparkContext
        group = f"profile-{name}-{phase.calls}"
        if sc is not None:
            sc.setJobGroup(group, name)
        started_wall, started = time.time(), time.perf_counter()
        try:
            yield
        finally:
            phase.seconds += time.perf_counter() - started
            phase.calls += 1
            phase.windows.append((started_wall, time.time()))
            if sc is not None:
                phase.jobs += len(sc.statusTracker().getJobIdsForGroup(group))
                sc.setJobGroup("profile-other", "other")
            self._stack.pop()

    def wrap(self, owner: Any, attribute: str, name: str | None = None, *, context: bool = False) -> None:
        original: Callable = getattr(owner, attribute)

        @functools.wraps(original)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            label = name or attribute
            if context:  # PipelineRun.table_step(table): time the body of the with-block
                return _timed_context(original(*args, **kwargs), self, f"write {args[1].split('.', 1)[-1]}")
            with self.phase(label):
                return original(*args, **kwargs)

        setattr(owner, attribute, wrapper)


@contextmanager
def _timed_context(manager: Any, profiler: Profiler, label: str):
    with profiler.phase(label), manager as value:
        yield value


def _attribute_commits(profiler: Profiler, lakehouse: Any, since: datetime) -> dict[str, int]:
    per_table: dict[str, int] = {}
    for layer, name in lakehouse.config.all_tables():
        if not lakehouse.exists(layer, name):
            continue
        table = lakehouse.config.table(layer, name)
        history = lakehouse.spark.sql(f"DESCRIBE HISTORY {lakehouse.ref(layer, name)}").collect()
        commits = [h for h in history if h["timestamp"].replace(tzinfo=UTC) >= since]
        per_table[table] = len(commits)
        for commit in commits:
            at = commit["timestamp"].replace(tzinfo=UTC).timestamp()
            phase = next((p for p in profiler.phases.values() for a, b in p.windows if a - 1 <= at <= b + 1), None)
            if phase:
                phase.commits += 1
    return per_table


def profile(input_dir: str, lakehouse_dir: Path, then: str | None = None, repeat: int = 1) -> dict[str, Any]:
    from ecom_lakehouse.config import load_config
    from ecom_lakehouse.io import sources, tables
    from ecom_lakehouse.quality import counts, reconcile
    from ecom_lakehouse.run import history, lifecycle, steps
    from ecom_lakehouse.spark import describe, get_spark
    from ecom_lakehouse.tools import report

    started = time.perf_counter()
    spark = get_spark("ecom-profile")
    startup = time.perf_counter() - started
    spark.range(1).collect()  # the session is usable (a Connect client connects lazily)
    profiler = Profiler(spark)
    for owner, attribute in (
        (history, "mark_abandoned_runs"), (history, "latest_run"), (history, "record_run"),
        (sources, "discover_sources"), (sources, "file_fingerprints"), (steps, "_ingested_hashes"),
        (lifecycle, "_plan_after_bronze"),
        (tables.Lakehouse, "ensure_schemas"), (report, "run_report"),
    ):  # fmt: skip
        profiler.wrap(owner, attribute)
    profiler.wrap(lifecycle.PipelineRun, "table_step", context=True)
    profiler.wrap(lifecycle, "reconcile", "reconcile")
    profiler.wrap(lifecycle, "rule_counts", "rule_counts")
    del counts, reconcile
    results = []
    runs = [(lakehouse_dir / f"run{i}", input_dir) for i in range(repeat)]
    runs += [(runs[-1][0], then)] if then else []
    for folder, input_path in runs:
        profiler.phases.clear()
        since = datetime.now(UTC)
        run_started = time.perf_counter()
        lakehouse = tables.Lakehouse.open(spark, load_config(), folder)
        run = lifecycle.run_pipeline(lakehouse, input_path)
        report.run_report(spark, lakehouse.config)
        wall = time.perf_counter() - run_started
        commits = _attribute_commits(profiler, lakehouse, since)
        phases = sorted(profiler.phases.values(), key=lambda p: -p.seconds)
        results.append({
            "input": input_path, "lakehouse": str(folder), "status": run.status, "wall_s": round(wall, 2),
            "phases": [{k: (round(v, 2) if isinstance(v, float) else v) for k, v in asdict(p).items()
                        if k != "windows"} for p in phases],
            "unattributed_s": round(wall - sum(p.seconds for p in phases), 2),
            "spark_jobs": sum(p.jobs for p in phases), "commits_per_table": commits,
        })  # fmt: skip
    return {"spark": describe(spark), "spark_startup_s": round(startup, 2), "runs": results}


def _print(result: dict[str, Any]) -> None:
    print(f"spark {result['spark']}: session start-up {result['spark_startup_s']} s")
    for run in result["runs"]:
        print(f"\nrun on {run['input']}: {run['status']}, {run['wall_s']} s after start-up, "
              f"{run['spark_jobs']} Spark jobs, {sum(run['commits_per_table'].values())} Delta commits")  # fmt: skip
        print(f"  {'phase':<48} {'s':>7} {'calls':>5} {'jobs':>5} {'commits':>7}")
        for p in run["phases"]:
            print(f"  {p['name']:<48} {p['seconds']:>7.2f} {p['calls']:>5} {p['jobs']:>5} {p['commits']:>7}")
        print(f"  {'(not in a phase: transforms planned, checks, glue)':<48} {run['unattributed_s']:>7.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", required=True)
    parser.add_argument("--then", help="a second input for a second run into the same lakehouse")
    parser.add_argument("--lakehouse", help="default: a fresh temporary folder")
    parser.add_argument("--json", help="also write the result here")
    parser.add_argument("--repeat", type=int, default=1, help="profile this many runs, each into a fresh lakehouse")
    args = parser.parse_args()
    lakehouse = Path(args.lakehouse or tempfile.mkdtemp(prefix="ecom-profile-"))
    try:
        result = profile(args.input, lakehouse, args.then, args.repeat)
    finally:
        if not args.lakehouse:
            shutil.rmtree(lakehouse, ignore_errors=True)
    _print(result)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
