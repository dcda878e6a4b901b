"""Find the deployed ``ecom_pipeline`` job, trigger it and follow its run (Jobs API 2.2 through databricks-sdk).

Job names: the bundle deploys the job resource ``ecom_pipeline`` under the name ``ecom_pipeline``. In development
mode (target ``dev``) the Databricks CLI prefixes it with ``[dev <short user name>] ``, the short name being the
local part of the deploying user's e-mail, lower-cased, with every run of characters other than letters and digits
replaced by one ``_`` (``Jane.Doe@example.com`` -> ``[dev jane_doe] ecom_pipeline``). In production mode (target
``prod``) the name is used as is.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from databricks.sdk import WorkspaceClient
from databricks.sdk.errors import BadRequest, DatabricksError, NotFound

from ecom_lakehouse.errors import RemoteError
from ecom_lakehouse.tools.remote import error_reason, one_line

JOB_NAME = "ecom_pipeline"
DEV_TARGET = "dev"
TARGETS = ("dev", "prod")

_TERMINAL = frozenset({"TERMINATED", "SKIPPED", "INTERNAL_ERROR"})
# Finished-task outcomes that are not the cause of a failure: success, or not run because of an upstream task.
_NOT_A_CAUSE = frozenset(
    {"SUCCESS", "SUCCESS_WITH_FAILURES", "UPSTREAM_FAILED", "UPSTREAM_CANCELED", "EXCLUDED", "DISABLED", "SKIPPED"}
)
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE)
_MAX_ERROR_CHARS = 1000


@dataclass(frozen=True)
class JobRef:
    """A deployed job: its id and its full (possibly prefixed) name."""

    job_id: int
    name: str


@dataclass(frozen=True)
class TaskState:
    """The state of one task of a run (its latest attempt)."""

    task_key: str
    run_id: int | None
    attempt: int
    life_cycle: str
    result: str | None
    message: str
    duration_ms: int | None

    @property
    def finished(self) -> bool:
        """The task reached a terminal life-cycle state."""
        return self.life_cycle in _TERMINAL

    @property
    def failed(self) -> bool:
        """The task itself failed, timed out, was cancelled or hit an internal error (not merely skipped)."""
        if self.life_cycle == "INTERNAL_ERROR":
            return True
        return self.finished and self.result is not None and self.result not in _NOT_A_CAUSE


@dataclass(frozen=True)
class RunSnapshot:
    """One poll of a job run: the run's state, its page URL and its tasks in the order the API lists them."""

    run_id: int
    job_id: int | None
    name: str
    url: str | None
    life_cycle: str
    result: str | None
    message: str
    duration_ms: int | None
    tasks: tuple[TaskState, ...]

    @property
    def finished(self) -> bool:
        """The run reached a terminal life-cycle state (TERMINATED, SKIPPED or INTERNAL_ERROR)."""
        return self.life_cycle in _TERMINAL

    @property
    def succeeded(self) -> bool:
        """The run finished with result SUCCESS (SUCCESS_WITH_FAILURES counts as a failure)."""
        return self.finished and self.result == "SUCCESS"


# ----------------------------------------------------------------------------------------------------------------
# Finding the job.
# ----------------------------------------------------------------------------------------------------------------


def short_user_name(user_name: str, display_name: str | None = None) -> str:
    """The short user name the Databricks CLI puts in development-mode prefixes (``[dev <short>] ``).

    The local part of the e-mail address, lower-cased, every run of characters other than letters and digits
    replaced by one ``_``, leading and trailing ``_`` removed. Service principals (a UUID user name) use their
    display name when they have one.

    Args:
        user_name: ``userName`` of the current user (``w.current_user.me().user_name``).
        display_name: ``displayName`` of the current user.

    Returns:
        The short name, e.g. ``jane_doe`` for ``Jane.Doe@example.com``.
    """
    name = display_name if display_name and _UUID.match(user_name) else user_name
    local = name.split("@", 1)[0].lower()
    return re.sub(r"[\W_]+", "_", local).strip("_")


def job_name_candidates(w: WorkspaceClient, target: str, job_name: str = JOB_NAME) -> list[str]:
    """The names the deployed job can have for a bundle target.

    In dev: ``[dev <short user name>] <job_name>`` (what the Databricks CLI deploys) and, when it differs,
    ``[dev <user name>] <job_name>``; the current user comes from ``w.current_user.me()``. Otherwise, or when
    ``job_name`` already carries a ``[dev ...]`` prefix: ``job_name`` itself.

    Args:
        w: the workspace client.
        target: bundle target, ``dev`` or ``prod``.
        job_name: the job's name in the bundle (default ``ecom_pipeline``).

    Returns:
        Candidate names, the most likely first.
    """
    if target != DEV_TARGET or job_name.startswith("[dev "):
        return [job_name]
    me = w.current_user.me()
    user_name = me.user_name or ""
    if not user_name:
        raise RemoteError("cannot resolve the current user's name (current_user.me() returned no userName)")
    names = [f"[dev {short_user_name(user_name, me.display_name)}] {job_name}"]
    if f"[dev {user_name}] {job_name}" not in names:
        names.append(f"[dev {user_name}] {job_name}")
    return names


def find_job(w: WorkspaceClient, *, target: str, job_name: str = JOB_NAME, job_id: int | None = None) -> JobRef:
    """The deployed pipeline job of a bundle target.

    Args:
        w: the workspace client.
        target: bundle target, ``dev`` or ``prod``.
        job_name: the job's name in the bundle (default ``ecom_pipeline``).
        job_id: use this job id instead of looking the job up by name.

    Returns:
        The job.

    Raises:
        RemoteError: no job or more than one job has the expected name.
    """
    if job_id is not None:
        try:
            job = w.jobs.get(job_id)
        except (NotFound, BadRequest) as exc:  # the API answers 400 INVALID_PARAMETER_VALUE for unknown ids
            raise RemoteError(f"no job with id {job_id} in {w.config.host}: {error_reason(exc)}") from exc
        return JobRef(job_id, (job.settings.name if job.settings else None) or str(job_id))
    names = job_name_candidates(w, target, job_name)
    found: dict[int, str] = {}
    for name in names:
        # The API filters on the exact name, case-insensitively; check again in case a server ignores the filter.
        for job in w.jobs.list(name=name):
            actual = job.settings.name if job.settings else None
            if job.job_id is not None and actual is not None and actual.casefold() == name.casefold():
                found[job.job_id] = actual
    quoted = " or ".join(repr(n) for n in names)
    if not found:
        raise RemoteError(
            f"no job named {quoted} in {w.config.host}: deploy the bundle first (`databricks bundle deploy -t "
            f"{target}`), or check --target / --job-name / --profile"
        )
    if len(found) > 1:
        listing = ", ".join(f"{jid} ({name!r})" for jid, name in sorted(found.items()))
        raise RemoteError(f"{len(found)} jobs are named {quoted}: {listing}; pick one with --job-id")
    ((found_id, found_name),) = found.items()
    return JobRef(found_id, found_name)


# ----------------------------------------------------------------------------------------------------------------
# Runs.
# ----------------------------------------------------------------------------------------------------------------


def run_now(w: WorkspaceClient, job_id: int, job_parameters: Mapping[str, str] | None = None) -> int:
    """Trigger a run of the job.

    Args:
        w: the workspace client.
        job_id: the job.
        job_parameters: job-level parameters overriding the deployed defaults for this run only.

    Returns:
        The run id.
    """
    # An idempotency token makes the SDK's automatic retry of the POST (429/503) start at most one run.
    waiter = w.jobs.run_now(
        job_id=job_id,
        job_parameters=dict(job_parameters) if job_parameters else None,
        idempotency_token=uuid.uuid4().hex,
    )
    run_id = waiter.response.run_id if waiter.response is not None else None
    if run_id is None:
        raise RemoteError(f"run-now of job {job_id} returned no run id")
    return int(run_id)


def latest_run_id(w: WorkspaceClient, job_id: int) -> int | None:
    """The id of the job's most recent run (active or finished), or ``None`` when it never ran."""
    for run in w.jobs.list_runs(job_id=job_id, limit=1):
        return run.run_id
    return None


def cancel_run(w: WorkspaceClient, run_id: int) -> None:
    """Ask the workspace to cancel a run (asynchronous; the run ends shortly after)."""
    w.jobs.cancel_run(run_id)


def get_snapshot(w: WorkspaceClient, run_id: int, *, now_ms: int | None = None) -> RunSnapshot:
    """Fetch a run (``runs/get``) and summarize its state and its tasks' states.

    Args:
        w: the workspace client.
        run_id: the run.
        now_ms: current time in epoch milliseconds, for the duration of unfinished runs and tasks.

    Returns:
        The snapshot.
    """
    run = w.jobs.get_run(run_id)
    now = int(time.time() * 1000) if now_ms is None else now_ms
    life_cycle, result, message = _states(run.state, run.status)
    latest: dict[str, TaskState] = {}
    for task in run.tasks or []:
        task_life, task_result, task_message = _states(task.state, task.status)
        state = TaskState(
            task_key=task.task_key,
            run_id=task.run_id,
            attempt=task.attempt_number or 0,
            life_cycle=task_life,
            result=task_result,
            message=task_message,
            duration_ms=_duration_ms(task, now, finished=task_life in _TERMINAL),
        )
        # A retried task appears once per attempt: keep the latest, at the position of the first.
        previous = latest.get(task.task_key)
        if previous is None or state.attempt >= previous.attempt:
            latest[task.task_key] = state
    return RunSnapshot(
        run_id=run.run_id or run_id,
        job_id=run.job_id,
        name=run.run_name or "",
        url=run.run_page_url,
        life_cycle=life_cycle,
        result=result,
        message=message,
        duration_ms=_duration_ms(run, now, finished=life_cycle in _TERMINAL),
        tasks=tuple(latest.values()),
    )


def wait_for_run(
    w: WorkspaceClient,
    run_id: int,
    *,
    timeout_seconds: float | None,
    poll_seconds: float,
    on_update: Callable[[RunSnapshot], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> RunSnapshot:
    """Poll ``runs/get`` until the run finishes or the timeout passes.

    Args:
        w: the workspace client.
        run_id: the run.
        timeout_seconds: give up after this long (``None``: wait until the run ends).
        poll_seconds: pause between polls.
        on_update: called with every snapshot, the first one included.
        sleep: the pause function (injectable for tests).
        clock: monotonic clock in seconds (injectable for tests).

    Returns:
        The last snapshot: finished, or not finished when the timeout passed (the run is left alone).
    """
    deadline = None if timeout_seconds is None else clock() + timeout_seconds
    while True:
        snapshot = get_snapshot(w, run_id)
        if on_update is not None:
            on_update(snapshot)
        if snapshot.finished:
            return snapshot
        if deadline is not None:
            remaining = deadline - clock()
            if remaining <= 0:
                return snapshot
            sleep(min(poll_seconds, remaining))
        else:
            sleep(poll_seconds)


def failure_messages(w: WorkspaceClient, snapshot: RunSnapshot) -> list[str]:
    """Why a finished run did not succeed: one message per failed task, with the task's error.

    The error is ``runs/get-output(<task run id>).error`` (e.g. the notebook's exception), else the task's
    state message.

    Args:
        w: the workspace client.
        snapshot: a finished run.

    Returns:
        Messages such as ``task silver_orders FAILED: AnalysisException: ...``; the run's own state message when
        no task failed (e.g. the run was skipped or could not start its cluster).
    """
    messages = []
    for task in snapshot.tasks:
        if not task.failed:
            continue
        error = ""
        if task.run_id is not None:
            try:
                error = w.jobs.get_run_output(task.run_id).error or ""
            except DatabricksError:  # the output may be gone or unavailable; the state message still explains
                error = ""
        text = one_line(error or task.message or "no error message")
        if len(text) > _MAX_ERROR_CHARS:
            text = text[: _MAX_ERROR_CHARS - 3] + "..."
        messages.append(f"task {task.task_key} {task.result or task.life_cycle}: {text}")
    if not messages:
        messages.append(f"run {snapshot.result or snapshot.life_cycle}: {one_line(snapshot.message or 'no message')}")
    return messages


# ----------------------------------------------------------------------------------------------------------------
# Formatting.
# ----------------------------------------------------------------------------------------------------------------


def format_duration(ms: int | None) -> str:
    """``1h 02m``, ``3m 05s``, ``12s``; ``-`` when unknown."""
    if ms is None or ms < 0:
        return "-"
    seconds = round(ms / 1000)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def format_task(task: TaskState) -> str:
    """One progress / status line of a task: key, life-cycle state, result state, duration."""
    key = task.task_key if task.attempt == 0 else f"{task.task_key} (retry {task.attempt})"
    return f"{key:<26} {task.life_cycle:<17} {task.result or '-':<18} {format_duration(task.duration_ms)}".rstrip()


def _value(enum: Any) -> str | None:
    return None if enum is None else str(getattr(enum, "value", enum))


def _states(state: Any, status: Any) -> tuple[str, str | None, str]:
    """(life-cycle state, result state, message) from ``state`` (RunState), else API 2.2's ``status``."""
    if state is not None and state.life_cycle_state is not None:
        return _value(state.life_cycle_state) or "UNKNOWN", _value(state.result_state), state.state_message or ""
    if status is not None and status.state is not None:
        details = status.termination_details
        result = _value(details.code) if details is not None else None
        return _value(status.state) or "UNKNOWN", result, (details.message if details is not None else None) or ""
    return "UNKNOWN", None, ""


def _duration_ms(item: Any, now_ms: int, *, finished: bool) -> int | None:
    """Run or task duration: ``run_duration``, else end - start, else (still going) now - start."""
    if item.run_duration:
        return int(item.run_duration)
    start, end = item.start_time or 0, item.end_time or 0
    if start > 0 and end > 0:
        return end - start
    if start > 0 and not finished:
        return max(now_ms - start, 0)
    return None
