"""The run lifecycle, one for every way the pipeline runs: ``ecom run`` (all steps in one process) and the Databricks
job (one step per task, each task a notebook, all tasks sharing the job's run id).

A run starts with its first step (``bronze``): runs still ``running`` are recorded ``abandoned``, the run is recorded
``running`` with its input, and bronze ingests what is new. What the run still has to do is decided there, once, and
recorded (``plan``): nothing (``unchanged``: no new input and the previous run finished), or silver orders and gold,
with the silver dimensions first when a dimension changed, on a full refresh, or when the previous run did not finish.
Every step adds its rows per table and its seconds; a failing step records ``failed`` with the step and the error and
re-raises; the last step (``gold``) reconciles the layers and records ``succeeded`` with the figures and rule counts.

In one process the state stays in memory between steps (two ``pipeline_runs`` commits per run). Job tasks run in
separate processes (serverless gives each task its own), so each task records the state it leaves (``running``
with the rows so far) and the next task resumes from it: the table is the one channel between tasks that exists
on every compute and locally alike.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from ecom_lakehouse.errors import EcomError
from ecom_lakehouse.io import arrivals, sources
from ecom_lakehouse.io.tables import Lakehouse
from ecom_lakehouse.quality.counts import rule_counts
from ecom_lakehouse.quality.reconcile import reconcile
from ecom_lakehouse.run import history, steps
from ecom_lakehouse.run.state import PipelineRun, new_run_id

log = logging.getLogger(__name__)

BRONZE, SILVER_DIMENSIONS, SILVER_ORDERS, GOLD = "bronze", "silver_dimensions", "silver_orders", "gold"
STEPS = (BRONZE, SILVER_DIMENSIONS, SILVER_ORDERS, GOLD)


def start_run(
    lakehouse: Lakehouse,
    input_path: str,
    run_id: str | None = None,
    *,
    full_refresh: bool = False,
    checkpoint_location: str | None = None,
) -> PipelineRun:
    """Begin a run: earlier runs left ``running`` become ``abandoned``, then this one is recorded ``running``.

    Starting again under the same id (a retried first task) continues that run. The orders stream keeps its checkpoint
    under ``checkpoint_location`` (default: the local lakehouse's ``_checkpoints``), in the generation the previous run
    used, or a new one on a full refresh.
    """
    input_path = sources.shared_path(lakehouse.spark, input_path) if input_path else input_path
    run = PipelineRun(lakehouse, run_id or new_run_id(), input_path, full_refresh)
    log.info("run %s: input %s%s", run.run_id, input_path, " (full refresh)" if full_refresh else "")
    lakehouse.ensure_schemas()
    history.mark_abandoned_runs(lakehouse, run.run_id)
    previous = history.latest_run(lakehouse, other_than=run.run_id)
    run.previous_finished = previous is not None and previous["status"] in history.FINISHED
    if run.previous_finished:
        run.base_versions = dict(previous.get("versions") or previous.get("base_versions") or {})
    generation = run.run_id if full_refresh else ((previous or {}).get("checkpoint") or "/initial").rsplit("/", 1)[-1]
    location = sources.shared_path(lakehouse.spark, (checkpoint_location or "").strip())
    location = location or arrivals.default_location(lakehouse)
    run.checkpoint = arrivals.checkpoint(lakehouse, location, generation) if location else None
    run.record(history.RUNNING)
    return run


def resume_run(lakehouse: Lakehouse, run_id: str) -> PipelineRun:
    """The run ``run_id`` as its last record left it (the next job task picks it up there).

    Raises:
        EcomError: no run with this id was recorded (its first task never ran).
    """
    state = history.latest_run(lakehouse, run_id) if run_id else None
    if state is None:
        raise EcomError(
            f"no pipeline run {run_id!r} recorded in {lakehouse.config.table('silver', 'runs')}: the bronze step "
            "starts a run; run it first with the same run_id"
        )
    return PipelineRun(
        lakehouse, run_id, state.get("input_path"), bool(state.get("full_refresh")), state["started_at"],
        state["status"], dict(state.get("rows") or {}), dict(state.get("seconds") or {}),
        set(state.get("changed") or ()), state.get("plan"), incremental=bool(state.get("incremental")),
        base_versions=dict(state.get("base_versions") or {}), checkpoint=state.get("checkpoint"),
    )  # fmt: skip


def _plan_after_bronze(run: PipelineRun) -> list[str]:
    lakehouse = run.lakehouse
    if not run.changed and run.previous_finished and lakehouse.exists("gold", "profit"):
        return []
    run.incremental = run.previous_finished and not run.full_refresh
    rebuild_dimensions = (
        run.full_refresh
        or not run.previous_finished
        or bool(run.changed & set(steps.DIMENSIONS))
        or not steps.dimensions_current(lakehouse)
    )
    return [*([SILVER_DIMENSIONS] if rebuild_dimensions else []), SILVER_ORDERS, GOLD]


def _bronze(run: PipelineRun) -> None:
    if not run.input_path:
        raise EcomError("input_path is empty: pass the folder or URI holding the raw orders, customers and products")
    if not run.checkpoint:
        raise EcomError(
            "checkpoint_location is empty: pass the folder where the orders stream keeps its checkpoint (on "
            "Databricks a Unity Catalog volume path such as /Volumes/<catalog>/<bronze schema>/ingest_checkpoints/)"
        )
    steps.ingest_bronze(run.lakehouse, run.input_path, run)
    run.plan = _plan_after_bronze(run)
    if not run.plan:
        log.info("nothing new since the previous run: silver and gold unchanged")


def _gold(run: PipelineRun) -> dict[str, object]:
    steps.build_gold(run.lakehouse, run)
    figures, counts = steps.concurrently(lambda: reconcile(run.lakehouse), lambda: rule_counts(run.lakehouse))
    versions = {steps.SILVER_ORDERS_VERSION: run.lakehouse.version("silver", "orders")}
    return {"reconciliation": {k: str(v) for k, v in figures.items()}, "rule_counts": counts,
            "versions": versions}  # fmt: skip


_STEP_BODIES: dict[str, Callable[[PipelineRun], dict[str, object] | None]] = {
    BRONZE: _bronze,
    SILVER_DIMENSIONS: lambda run: steps.build_silver_dimensions(run.lakehouse, run),
    SILVER_ORDERS: lambda run: steps.build_silver_orders(run.lakehouse, run),
    GOLD: _gold,
}


def run_step(run: PipelineRun, step: str, *, record_progress: bool) -> None:
    """Run one step of ``run`` unless the run's plan leaves it out, and record the outcome.

    A failure records ``failed`` naming the step, then re-raises. After ``gold`` the run is ``succeeded``; after a
    bronze step that found nothing new it is ``unchanged``. ``record_progress`` also records the state after every
    other step (a job task hands the run on to the next task that way).

    Raises:
        ValueError: ``step`` is not one of :data:`STEPS`.
    """
    if step not in _STEP_BODIES:
        raise ValueError(f"unknown step {step!r}: expected one of {', '.join(STEPS)}")
    if run.status in history.FINISHED:
        log.info("run %s is %s: %s has nothing to do", run.run_id, run.status, step)
        return
    if step != BRONZE and run.plan is not None and step not in run.plan:
        log.info("run %s: %s is not needed in this run (plan: %s)", run.run_id, step, ", ".join(run.plan))
        return
    run.status = history.RUNNING
    started = time.perf_counter()
    try:
        outcome = _STEP_BODIES[step](run) or {}
    except BaseException as exc:
        run.seconds[step] = time.perf_counter() - started
        try:
            run.record(history.FAILED, step=step, error=f"{exc.__class__.__name__}: {exc}"[:2000])
        except Exception as record_error:  # e.g. the compute is gone: the next run records this one abandoned
            log.warning("run %s: could not record the failure (%s)", run.run_id, str(record_error).splitlines()[0])
        raise
    run.seconds[step] = time.perf_counter() - started
    if step == GOLD:
        run.outcome = outcome
        run.record(history.SUCCEEDED, step=step, **outcome)
    elif step == BRONZE and run.plan == []:
        run.record(history.UNCHANGED, step=step)
    elif record_progress:
        run.record(history.RUNNING, step=step)


def run_pipeline(
    lakehouse: Lakehouse,
    input_path: str,
    run_id: str | None = None,
    *,
    full_refresh: bool = False,
    checkpoint_location: str | None = None,
) -> PipelineRun:
    """Every step in order in this process (``ecom run``): bronze, then what bronze planned."""
    run = start_run(lakehouse, input_path, run_id, full_refresh=full_refresh, checkpoint_location=checkpoint_location)
    for step in STEPS:
        run_step(run, step, record_progress=False)
    return run
