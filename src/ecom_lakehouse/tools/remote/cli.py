"""The ``remote`` sub-command: run and inspect the deployed pipeline, and run the report on a SQL warehouse.

``register(subparsers)`` adds ``ecom remote run | status | report`` to the ``ecom`` CLI. databricks-sdk is imported
only when a remote command runs.

Authentication: the standard Databricks configuration, as for the Databricks CLI and SDK: ``DATABRICKS_HOST`` and
``DATABRICKS_TOKEN`` (or the other ``DATABRICKS_*`` auth variables), or a ``~/.databrickscfg`` profile picked with
``--profile`` / ``DATABRICKS_CONFIG_PROFILE`` (``databricks auth login --host https://<workspace>`` writes one).

Exit codes: 0 success; 1 the run finished without success (the failing tasks' errors and the run URL are printed);
2 configuration, authentication, API or SQL errors (one ``ecom: error: ...`` line, printed by the ``ecom`` CLI);
3 ``--timeout`` passed before the run ended; 130 interrupted (the run keeps going).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, TextIO

from ecom_lakehouse.errors import RemoteError

EXIT_OK = 0
EXIT_RUN_FAILED = 1
EXIT_TIMEOUT = 3
EXIT_INTERRUPTED = 130

DEFAULT_RUN_POLL_SECONDS = 10.0
_JOB_NAME = "ecom_pipeline"  # = jobs.JOB_NAME, repeated so that registering does not import databricks-sdk
_TARGETS = ("dev", "prod")
_FORMATS = ("table", "csv", "json")


def register(subparsers: Any) -> None:
    """Add the ``remote`` command (sub-commands ``run``, ``status``, ``report``) to an argparse subparsers object.

    Args:
        subparsers: the object returned by ``ArgumentParser.add_subparsers()``.
    """
    remote = subparsers.add_parser(
        "remote",
        help="run and inspect the deployed pipeline job on Databricks; run the report on a SQL warehouse",
        description=(
            "Work with the bundle deployed to a Databricks workspace (databricks-sdk). Authentication: "
            "DATABRICKS_HOST + DATABRICKS_TOKEN, or a ~/.databrickscfg profile (--profile, DATABRICKS_CONFIG_PROFILE)."
        ),
    )
    sub = remote.add_subparsers(dest="remote_command", required=True, metavar="{run,status,report}")

    run = sub.add_parser(
        "run",
        help="trigger the deployed ecom_pipeline job and follow it until it ends",
        description=(
            "Find the deployed job (dev: '[dev <short user name>] ecom_pipeline', prod: 'ecom_pipeline'), start a "
            "run with the given job parameters and print each task's state changes on stderr until the run ends. "
            "Exit 0 on success (the run URL on stdout), 1 when the run fails (the failing task's error and the run "
            "URL), 3 on --timeout (the run is left running unless --cancel-on-timeout)."
        ),
    )
    _job_arguments(run)
    run.add_argument(
        "--param",
        action="append",
        default=[],
        type=_key_value,
        metavar="KEY=VALUE",
        help="job parameter for this run, e.g. input_path=s3://bucket/raw/ (repeatable)",
    )
    run.add_argument(
        "--timeout",
        type=_positive_float,
        metavar="MIN",
        help="stop waiting after MIN minutes and exit 3 (default: wait until the run ends)",
    )
    run.add_argument("--cancel-on-timeout", action="store_true", help="cancel the run when --timeout passes")
    run.add_argument(
        "--poll-seconds",
        type=_positive_float,
        default=DEFAULT_RUN_POLL_SECONDS,
        metavar="S",
        help=f"seconds between polls of the run (default: {DEFAULT_RUN_POLL_SECONDS:g})",
    )
    run.add_argument("--no-wait", action="store_true", help="print the run URL and exit without following the run")
    run.set_defaults(func=cmd_remote_run)

    status = sub.add_parser(
        "status",
        help="state of a run of the pipeline job (default: its latest run), per task, and the run URL",
    )
    status.add_argument("run_id", nargs="?", type=int, metavar="RUN_ID", help="run id (default: the job's latest run)")
    _job_arguments(status)
    status.set_defaults(func=cmd_remote_status)

    report = sub.add_parser(
        "report",
        help="run the four profit report queries on a Databricks SQL warehouse",
        description=(
            "Run the report's SELECTs (notebooks/05_profit_report.sql) on a SQL warehouse through the Statement "
            "Execution API and print them like `ecom report`. The views live in the gold schema: ecom_gold for "
            "prod; a dev deployment's is dev_<short user name>_ecom_gold (e.g. dev_jane_doe_ecom_gold)."
        ),
    )
    report.add_argument("--warehouse-id", required=True, help="SQL warehouse id (`databricks warehouses list`)")
    report.add_argument("--catalog", default="main", help="catalog holding the gold schema (default: main)")
    report.add_argument(
        "--schema",
        default="ecom_gold",
        help="gold schema with the report views (default: ecom_gold; dev deployments: dev_<user>_ecom_gold)",
    )
    report.add_argument("--format", choices=_FORMATS, default="table")
    report.add_argument(
        "--timeout",
        type=_positive_float,
        default=10.0,
        metavar="MIN",
        help="per query: cancel it and fail after MIN minutes (default: 10; includes warehouse start-up)",
    )
    report.add_argument("--poll-seconds", type=_positive_float, default=2.0, metavar="S", help=argparse.SUPPRESS)
    _profile_argument(report)
    report.set_defaults(func=cmd_remote_report)


def cmd_remote_run(args: argparse.Namespace) -> int:
    """Handler of ``ecom remote run``.

    Args:
        args: parsed arguments of the sub-command.

    Returns:
        The exit code (see the module docstring); configuration and API errors raise :class:`RemoteError`.
    """
    from ecom_lakehouse.tools.remote import api_errors, connect, jobs

    out, err = sys.stdout, sys.stderr
    w = connect(args.profile)
    with api_errors(w):
        job = jobs.find_job(w, target=args.target, job_name=args.job_name, job_id=args.job_id)
        params = dict(args.param)
        run_id = jobs.run_now(w, job.job_id, params)
        shown = ", ".join(f"{k}={v}" for k, v in params.items())
        print(
            f"started run {run_id} of job {job.name!r} (id {job.job_id})" + (f" with {shown}" if shown else ""),
            file=err,
            flush=True,
        )
        if args.no_wait:
            snapshot = jobs.get_snapshot(w, run_id)
            print(snapshot.url or f"run {run_id}", file=out, flush=True)
            return EXIT_OK

        progress = _Progress(err)
        timeout_seconds = None if args.timeout is None else args.timeout * 60
        try:
            with api_errors(w):
                snapshot = jobs.wait_for_run(
                    w,
                    run_id,
                    timeout_seconds=timeout_seconds,
                    poll_seconds=args.poll_seconds,
                    on_update=progress.update,
                )
        except KeyboardInterrupt:
            print(
                f"ecom: stopped watching run {run_id}; it keeps running (not cancelled): {progress.url or '-'}",
                file=err,
                flush=True,
            )
            return EXIT_INTERRUPTED
        except RemoteError as exc:  # e.g. a poll failed for good: say that the run itself goes on
            raise RemoteError(
                f"{exc}; stopped watching run {run_id}, which keeps running: {progress.url or '-'}"
            ) from exc

        url = snapshot.url or "-"
        if not snapshot.finished:
            if args.cancel_on_timeout:
                jobs.cancel_run(w, run_id)
                fate = "cancel requested"
            else:
                fate = (
                    f"left running (follow it with `ecom remote status {run_id}`; --cancel-on-timeout cancels it "
                    "instead)"
                )
            print(
                f"ecom: error: run {run_id} still {snapshot.life_cycle} after {args.timeout:g} min; {fate}: {url}",
                file=err,
                flush=True,
            )
            return EXIT_TIMEOUT
        if snapshot.succeeded:
            print(f"run {run_id} {snapshot.result} in {jobs.format_duration(snapshot.duration_ms)}: {url}", file=out)
            return EXIT_OK
        details = "; ".join(jobs.failure_messages(w, snapshot))
        outcome = snapshot.result or snapshot.life_cycle
        print(f"ecom: error: run {run_id} {outcome}: {details}; run page: {url}", file=err, flush=True)
        return EXIT_RUN_FAILED


def cmd_remote_status(args: argparse.Namespace) -> int:
    """Handler of ``ecom remote status``: the run's state, each task's state, errors of failed tasks, the URL.

    Args:
        args: parsed arguments of the sub-command.

    Returns:
        0 (the state of the run is in the output, not in the exit code).
    """
    from ecom_lakehouse.tools.remote import api_errors, connect, jobs

    out = sys.stdout
    w = connect(args.profile)
    with api_errors(w):
        run_id = args.run_id
        if run_id is None:
            job = jobs.find_job(w, target=args.target, job_name=args.job_name, job_id=args.job_id)
            run_id = jobs.latest_run_id(w, job.job_id)
            if run_id is None:
                raise RemoteError(f"job {job.name!r} (id {job.job_id}) has no runs yet; start one: ecom remote run")
        snapshot = jobs.get_snapshot(w, run_id)
        state = snapshot.life_cycle + (f" {snapshot.result}" if snapshot.result else "")
        name = f" {snapshot.name!r}" if snapshot.name else ""
        print(f"run {snapshot.run_id}{name}: {state} ({jobs.format_duration(snapshot.duration_ms)})", file=out)
        for task in snapshot.tasks:
            print("  " + jobs.format_task(task), file=out)
        if snapshot.finished and not snapshot.succeeded:
            for message in jobs.failure_messages(w, snapshot):
                print(f"  error: {message}", file=out)
        elif snapshot.message and not snapshot.finished:
            print(f"  {snapshot.message}", file=out)
        print(snapshot.url or "-", file=out, flush=True)
    return EXIT_OK


def cmd_remote_report(args: argparse.Namespace) -> int:
    """Handler of ``ecom remote report``: the four report queries on a SQL warehouse, rendered like ``ecom report``.

    Args:
        args: parsed arguments of the sub-command.

    Returns:
        0; failed statements raise :class:`RemoteError`.
    """
    from ecom_lakehouse.tools.remote import api_errors, connect, sql
    from ecom_lakehouse.tools.render import RENDERERS

    w = connect(args.profile)
    with api_errors(w):
        results = sql.run_remote_report(
            w,
            warehouse_id=args.warehouse_id,
            catalog=args.catalog,
            schema=args.schema,
            timeout_seconds=args.timeout * 60,
            poll_seconds=args.poll_seconds,
        )
    sys.stdout.write(RENDERERS[args.format](results))
    sys.stdout.flush()
    return EXIT_OK


# ----------------------------------------------------------------------------------------------------------------
# Helpers.
# ----------------------------------------------------------------------------------------------------------------


class _Progress:
    """Prints the run's and each task's state on stderr, a line only when a state changes."""

    def __init__(self, err: TextIO) -> None:
        self._err = err
        self._run_state: tuple[str, str | None] | None = None
        self._task_states: dict[str, tuple[int, str, str | None]] = {}
        self.url: str | None = None

    def update(self, snapshot: Any) -> None:
        from ecom_lakehouse.tools.remote.jobs import format_task

        first = self.url is None and snapshot.url
        self.url = snapshot.url or self.url
        run_state = (snapshot.life_cycle, snapshot.result)
        if run_state != self._run_state:
            self._run_state = run_state
            text = f"run {snapshot.run_id}: {snapshot.life_cycle}" + (f" {snapshot.result}" if snapshot.result else "")
            self._line(text + (f"  {snapshot.url}" if first else ""))
        for task in snapshot.tasks:
            state = (task.attempt, task.life_cycle, task.result)
            if self._task_states.get(task.task_key) != state:
                self._task_states[task.task_key] = state
                self._line("  " + format_task(task))

    def _line(self, text: str) -> None:
        print(text, file=self._err, flush=True)


def _job_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--target",
        choices=_TARGETS,
        default="dev",
        help="bundle target the job was deployed with: dev looks for '[dev <user>] ecom_pipeline' (default: dev)",
    )
    parser.add_argument(
        "--job-name",
        default=_JOB_NAME,
        metavar="NAME",
        help=f"the job's name in the bundle, before any dev prefix (default: {_JOB_NAME})",
    )
    parser.add_argument("--job-id", type=int, metavar="ID", help="use this job id instead of looking the job up")
    _profile_argument(parser)


def _profile_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--profile",
        help=(
            "~/.databrickscfg profile (default: DATABRICKS_HOST + DATABRICKS_TOKEN, else DATABRICKS_CONFIG_PROFILE, "
            "else the DEFAULT profile)"
        ),
    )


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from exc
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0: {text!r}")
    return value
