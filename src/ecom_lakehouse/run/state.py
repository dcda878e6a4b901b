"""One run's state, the home of what the lifecycle and its steps share: the lifecycle creates and records a
:class:`PipelineRun`, each step adds the rows and seconds it wrote to it."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pyspark.sql import DataFrame, SparkSession

from ecom_lakehouse.io.tables import Lakehouse
from ecom_lakehouse.run import history

log = logging.getLogger(__name__)


def new_run_id() -> str:
    """A sortable, unique run id: UTC timestamp plus a random suffix."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


@dataclass
class PipelineRun:
    """One run's state: what it read, what it wrote, and what it still has to do.

    Attributes:
        lakehouse: where the tables live.
        run_id: the run's id (the job run id on Databricks).
        input_path: the folder or URI the run ingests from.
        full_refresh: rebuild every table from the current input files.
        status: the ``pipeline_runs`` status the run is in.
        rows: rows written per table, in order.
        seconds: wall seconds per step, in order.
        changed: datasets whose bronze table this run changed.
        plan: the steps after bronze this run runs; None until bronze decided (or when a step runs on its own).
        previous_finished: the run before this one left complete tables (``succeeded`` or ``unchanged``).
        incremental: silver orders and gold are brought up to date from what changed (the previous run finished,
            no full refresh), not recomputed from all of bronze.
        base_versions: the table versions the previous finished run left (silver orders: what gold was built from).
        checkpoint: the orders arrival stream's checkpoint folder (a new one on a full refresh).
    """

    lakehouse: Lakehouse
    run_id: str
    input_path: str | None = None
    full_refresh: bool = False
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    status: str = history.RUNNING
    rows: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    changed: set[str] = field(default_factory=set)
    plan: list[str] | None = None
    previous_finished: bool = False
    incremental: bool = False
    base_versions: dict[str, int] = field(default_factory=dict)
    checkpoint: str | None = None
    outcome: dict[str, object] = field(default_factory=dict)  # reconciliation figures and rule counts, after gold
    _written: list[tuple[str, int, float]] = field(default_factory=list)

    @contextmanager
    def table_step(self, table: str) -> Iterator[list[int]]:
        """Time the write of one table; the body appends the rows it wrote to the yielded list."""
        log.debug("%s: writing", table, extra={"ecom_status": f"writing {table}"})
        started = time.perf_counter()
        written: list[int] = []
        yield written
        seconds = time.perf_counter() - started
        self.rows[table] = sum(written)  # once per run: a retried step replaces, never adds
        self._written.append((table, sum(written), seconds))
        log.info("%s: %s rows in %.1f s", table, f"{sum(written):,}", seconds)

    def state(self, status: str, **extra: object) -> dict[str, object]:
        """The run as a ``pipeline_runs`` record."""
        ended = None if status == history.RUNNING else datetime.now(UTC)
        return {"run_id": self.run_id, "started_at": self.started_at, "ended_at": ended, "status": status,
                "input_path": self.input_path, "full_refresh": self.full_refresh, "rows": self._rows_in_order(),
                "seconds": {k: round(v, 3) for k, v in self.seconds.items()}, "changed": sorted(self.changed),
                "plan": self.plan, "incremental": self.incremental, "base_versions": self.base_versions,
                "checkpoint": self.checkpoint,
                **extra}  # fmt: skip

    def _rows_in_order(self) -> dict[str, int]:
        """Rows per table in the order of conf/pipeline.yml (steps write some tables at once, in any order)."""
        config = self.lakehouse.config
        order = [config.table(layer, name) for layer, name in config.all_tables()]

        def position(table: str) -> tuple[int, str]:
            base = table.split("[")[0]
            return (order.index(base) if base in order else len(order), table)

        return dict(sorted(self.rows.items(), key=lambda item: position(item[0])))

    def record(self, status: str, **extra: object) -> None:
        """Append the run's state with ``status`` to ``pipeline_runs``."""
        self.status = status
        history.record_run(self.lakehouse, self.state(status, **extra))

    def summary(self, spark: SparkSession) -> DataFrame:
        """The tables written in this process (table, rows, seconds), for a notebook's final display."""
        return spark.createDataFrame(
            [(t, r, round(s, 1)) for t, r, s in self._written], "table string, rows long, seconds double"
        )
