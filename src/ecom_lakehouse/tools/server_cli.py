"""``ecom server start | stop | status``: the warm local Spark server (:mod:`ecom_lakehouse.server`)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time

from ecom_lakehouse.errors import EcomError

log = logging.getLogger("ecom_lakehouse")

NOT_RUNNING = 3  # `ecom server status` exit code when no server runs (LSB's "program is not running")


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``ecom server`` to the ``ecom`` parser."""
    server = sub.add_parser("server", help="start, stop or show the warm local Spark server every command uses")
    commands = server.add_subparsers(dest="server_command", required=True)
    start = commands.add_parser("start", help="start the server now (commands start it themselves when none runs)")
    start.add_argument(
        "--idle-timeout", metavar="DURATION",
        help="stop after this long without a request: 90s, 30m, 2h (default $ECOM_SERVER_IDLE_TIMEOUT or 30m)",
    )  # fmt: skip
    start.add_argument("--s3", action="store_true", help="with the s3a connector, for s3:// inputs")
    start.set_defaults(func=cmd_start)
    stop = commands.add_parser("stop", help="stop the server (commands running on it fail)")
    stop.set_defaults(func=cmd_stop)
    status = commands.add_parser("status", help="pid, port, version, uptime, memory, lakehouses; exit 3 if none runs")
    status.add_argument("--json", action="store_true", help="print the status as one JSON object")
    status.set_defaults(func=cmd_status)


def cmd_start(args: argparse.Namespace) -> int:
    from ecom_lakehouse import server

    if args.idle_timeout:
        try:
            server.parse_duration(args.idle_timeout)
        except ValueError as exc:
            raise EcomError(f"--idle-timeout {exc}") from None
        os.environ[server.IDLE_ENV] = args.idle_timeout
    started = time.perf_counter()
    state, new = server.ensure_server(with_s3=args.s3)
    verb = "started" if new else "already running:"
    log.info("spark %s server %s pid %d on %s in %.1f s (log: %s)", state.spark_version, verb, state.pid, state.url,
             time.perf_counter() - started, state.log)  # fmt: skip
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    from ecom_lakehouse import server

    stopped = server.stop_server()
    log.info(f"stopped the server pid {stopped.pid}" if stopped else "no server was running")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from ecom_lakehouse import server

    report = server.status()
    if report is None:
        ended = server.last_exit()
        if args.json:
            sys.stdout.write(json.dumps({"running": False, "last_exit": ended}) + "\n")
        else:
            why = f" (the last one, pid {ended['pid']}, ended: {ended['reason']})" if ended else ""
            sys.stdout.write(f"no server running{why}\n")
        return NOT_RUNNING
    state = report.state
    figures = {
        "running": True, "pid": state.pid, "java_pid": state.java_pid, "port": state.port, "url": state.url,
        "spark_version": state.spark_version, "package_version": state.package_version,
        "uptime_seconds": round(report.uptime, 1), "idle_seconds": report.idle_seconds,
        "idle_timeout_seconds": state.idle_timeout, "rss_bytes": report.rss_bytes,
        "heap_used_bytes": report.heap_used_bytes, "sessions": report.sessions, "lakehouses": report.lakehouses,
        "s3": state.settings.get("s3") == "yes", "log": state.log,
    }  # fmt: skip
    if args.json:
        sys.stdout.write(json.dumps(figures) + "\n")
        return 0
    mib = lambda n: f"{n / 2**20:,.0f} MiB" if n is not None else "unknown"  # noqa: E731
    idle = f"{report.idle_seconds:.0f} s" if report.idle_seconds is not None else "unknown"
    lines = [
        f"server pid {state.pid} (JVM pid {state.java_pid}) on {state.url}",
        f"spark {state.spark_version}, ecom-lakehouse {state.package_version}{', s3a' if figures['s3'] else ''}",
        f"up {_duration(report.uptime)}, idle {idle} (stops after {_duration(state.idle_timeout)} idle)",
        f"memory {mib(report.rss_bytes)} resident, heap {mib(report.heap_used_bytes)} used",
        f"client sessions {report.sessions if report.sessions is not None else 'unknown'}; lakehouses:",
        *(f"  {root}" for root in report.lakehouses or ["(none)"]),
        f"log {state.log}",
    ]
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"
