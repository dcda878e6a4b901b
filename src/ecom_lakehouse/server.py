"""The warm local Spark: one long-lived Spark Connect server that every ``ecom`` command, the local notebook runner
and the tests talk to, as Databricks users talk to their cluster or serverless endpoint.

A server is a detached Python process (``python -m ecom_lakehouse.server serve``) holding the local Spark + Delta JVM
with the Spark Connect plugin on a loopback port. Its files live in the server home (``ECOM_SERVER_HOME``, default
``~/.cache/ecom-lakehouse/server``):

- ``state.json``: pid, JVM pid, port, versions, the JVM's settings, start time; present while it serves;
- ``status.json``: rewritten every few seconds: client sessions, the lakehouse each one uses, idle time, heap;
- ``server.log``: everything the JVM and the host process print;
- ``last_exit.json``: why the last server ended (idle, stopped, or the JVM's death, e.g. out of memory).

The first command that needs Spark starts a server when none runs and says so; later ones connect in well under a
second. A server whose JVM settings differ from what a command needs (another pyspark, Delta or catalog; memory,
JVM options; the s3a connector or AWS settings when the command reads S3) is replaced, never reused. After
``ECOM_SERVER_IDLE_TIMEOUT`` seconds (default 1800) without a client request it stops itself.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from importlib.metadata import version
from pathlib import Path

from ecom_lakehouse import local_spark

log = logging.getLogger(__name__)

HOME_ENV = "ECOM_SERVER_HOME"
IDLE_ENV = "ECOM_SERVER_IDLE_TIMEOUT"
DEFAULT_IDLE_SECONDS = 1800.0
START_TIMEOUT_SECONDS = float(os.environ.get("ECOM_SERVER_START_TIMEOUT", "900"))  # first start fetches the jars
_OUT_OF_MEMORY_CODES = {3: "-XX:+ExitOnOutOfMemoryError", 52: "Spark's out-of-memory exit"}
_POLL_SECONDS = 1.0


class ServerError(RuntimeError):
    """The local Spark server could not be started, reached or stopped."""


def home() -> Path:
    """The server home: state, status, log."""
    return Path(os.environ.get(HOME_ENV) or local_spark.CACHE / "server")


def idle_timeout() -> float:
    """Seconds without a client request after which a server stops itself (``ECOM_SERVER_IDLE_TIMEOUT``)."""
    return parse_duration(os.environ.get(IDLE_ENV, "")) or DEFAULT_IDLE_SECONDS


def parse_duration(text: str) -> float | None:
    """``90``, ``90s``, ``30m``, ``2h`` -> seconds; None for an empty text."""
    text = text.strip().lower()
    if not text:
        return None
    units = {"s": 1, "m": 60, "h": 3600}
    number, unit = (text[:-1], units[text[-1]]) if text[-1] in units else (text, 1)
    try:
        seconds = float(number) * unit
    except ValueError:
        raise ValueError(f"{text!r} is not a duration (e.g. 90, 90s, 30m, 2h)") from None
    if seconds <= 0:
        raise ValueError(f"{text!r}: a duration must be positive")
    return seconds


@dataclass(frozen=True)
class ServerState:
    """A running server, as its ``state.json`` describes it."""

    pid: int
    java_pid: int
    port: int
    spark_version: str
    package_version: str
    settings: dict[str, str]
    started_at: float
    idle_timeout: float
    log: str
    nonce: str = ""

    @property
    def url(self) -> str:
        return f"sc://127.0.0.1:{self.port}"


@dataclass
class Status:
    """What ``ecom server status`` reports."""

    state: ServerState
    uptime: float
    rss_bytes: int | None
    idle_seconds: float | None = None
    sessions: int | None = None
    lakehouses: list[str] = field(default_factory=list)
    heap_used_bytes: int | None = None


def _files() -> dict[str, Path]:
    root = home()
    return {name: root / f"{name}.json" for name in ("state", "status", "last_exit")} | {
        "log": root / "server.log",
        "lock": root / "start.lock",
    }


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return None


def _write_json(path: Path, content: dict) -> None:
    partial = path.with_suffix(f".{os.getpid()}.tmp")
    partial.write_text(json.dumps(content, indent=2, default=str), encoding="utf-8")
    partial.replace(path)  # atomic: a reader never sees half a file


def read_state() -> ServerState | None:
    raw = _read_json(_files()["state"])
    if raw is None:
        return None
    try:
        return ServerState(**raw)
    except TypeError:  # written by another version of this module
        return None


def _package_version() -> str:
    try:
        return version("ecom-lakehouse")
    except Exception:
        return "unknown"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_our_host(pid: int) -> bool:
    """The pid is alive and is a server host (a stale state's pid may belong to another process by now)."""
    if not _pid_alive(pid):
        return False
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        probe = subprocess.run(["ps", "-o", "command=", "-p", str(pid)], capture_output=True, text=True, check=False)
        command = probe.stdout
    return "ecom_lakehouse.server" in command and " serve" in command


def _listening(port: int, timeout: float = 2.0) -> bool | None:
    """True when the port accepts a connection, False when it refuses one, None when it does not say in time (a busy
    machine: not a reason to give up on a server)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout):
            return True
    except ConnectionRefusedError:
        return False
    except OSError:
        return None


def running() -> ServerState | None:
    """The server that serves now, or None. A state left by a server that is gone (killed, crashed, its pid reused by
    another process) is removed; a host whose JVM is gone or whose port refuses connections is stopped. None of these
    waits more than a few seconds."""
    state = read_state()
    if state is None:
        return None
    deadline = time.monotonic() + 5.0
    while _is_our_host(state.pid):
        if _pid_alive(state.java_pid) and _listening(state.port) is not False:
            return state
        if time.monotonic() > deadline:  # its JVM died or it stopped listening, and it did not exit by itself
            log.warning("the Spark server pid %d does not serve on port %d: stopping it", state.pid, state.port)
            _terminate(state, grace=5.0)
            break
        time.sleep(0.2)  # a host whose JVM died records why and exits within a second
    else:
        ended = last_exit()
        if ended is None or ended.get("pid") != state.pid:
            _record_exit(state.pid, "gone without stopping (killed, or its machine restarted)")
    if (current := read_state()) is not None and current.pid == state.pid:
        _files()["state"].unlink(missing_ok=True)
    return None


def compatible(state: ServerState, wanted: dict[str, str]) -> bool:
    """The server can serve a command needing ``wanted`` settings: the same JVM, and S3 as asked when asked."""
    if state.package_version != _package_version():
        return False
    ignore = {"s3", "aws"}
    if {k: v for k, v in state.settings.items() if k not in ignore} != {
        k: v for k, v in wanted.items() if k not in ignore
    }:
        return False
    if wanted.get("s3") != "yes":
        return True
    return state.settings.get("s3") == "yes" and state.settings.get("aws") == wanted["aws"]


@contextlib.contextmanager
def _start_lock() -> Iterator[None]:
    lock = _files()["lock"]
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a+", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # another command starting a server: wait for it, then use its server
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _settings(*, with_s3: bool) -> dict[str, str]:
    """The JVM's settings and this module's own version: a server running other code is replaced too."""
    host = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]
    return {**local_spark.jvm_settings(with_s3=with_s3), "host": host}


def ensure_server(*, with_s3: bool = False) -> tuple[ServerState, bool]:
    """The running server that fits this command, started (or replaced) when there is none.

    Returns:
        The server, and whether this call started it.

    Raises:
        ServerError: it did not start; the message ends with its log's last lines.
    """
    wanted = _settings(with_s3=with_s3)
    with _start_lock():
        state = running()
        if state is not None and compatible(state, wanted):
            return state, False
        if state is not None:
            changed = sorted(k for k in {*wanted, *state.settings} if wanted.get(k) != state.settings.get(k))
            log.info("replacing the Spark server pid %d (it differs in %s)", state.pid, ", ".join(changed) or "version")
            _terminate(state, grace=30.0)
        return _start(with_s3=with_s3), True


def _start(*, with_s3: bool, timeout: float | None = None) -> ServerState:
    files = _files()
    files["log"].parent.mkdir(parents=True, exist_ok=True)
    nonce = uuid.uuid4().hex
    env = {k: v for k, v in os.environ.items() if k not in ("SPARK_REMOTE", "SPARK_CONNECT_MODE_ENABLED", "PYTHONPATH")}
    env["PYSPARK_PYTHON"] = sys.executable  # Python workers of the server run this environment
    argv = [sys.executable, "-m", "ecom_lakehouse.server", "serve", "--nonce", nonce, "--idle-timeout",
            str(idle_timeout()), *(["--s3"] if with_s3 else [])]  # fmt: skip
    with open(files["log"], "ab") as out:
        out.write(f"\n==== {time.strftime('%Y-%m-%d %H:%M:%S')} starting: {' '.join(argv)}\n".encode())
        out.flush()
        host = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=str(files["log"].parent),
            start_new_session=True,  # detached: outlives this command and its terminal
        )  # fmt: skip
    deadline = time.monotonic() + (timeout or START_TIMEOUT_SECONDS)
    while time.monotonic() < deadline:
        state = read_state()
        if state is not None and state.nonce == nonce:
            host.returncode = 0  # it runs on, detached; nothing to wait for here
            return state
        if host.poll() is not None:
            raise ServerError(f"the local Spark server did not start (exit code {host.returncode}){_log_tail()}")
        time.sleep(0.1)
    _terminate_pid(host.pid, grace=5.0)
    waited = timeout or START_TIMEOUT_SECONDS
    raise ServerError(f"the local Spark server did not start within {waited:.0f} s{_log_tail()}")


def _log_tail(lines: int = 8) -> str:
    path = _files()["log"]
    try:
        tail = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-lines:]
    except FileNotFoundError:
        return ""
    return f"; the end of {path}:\n" + "\n".join(tail)


def _terminate_pid(pid: int, grace: float) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and _pid_alive(pid):
        time.sleep(0.1)
    if _pid_alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _terminate(state: ServerState, grace: float) -> None:
    _terminate_pid(state.pid, grace)
    if _pid_alive(state.java_pid):  # the JVM ends with its host (stdin closes); make sure of it
        _terminate_pid(state.java_pid, 5.0)
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline and (_pid_alive(state.pid) or _pid_alive(state.java_pid)):
        time.sleep(0.1)
    state_file = _files()["state"]
    if (current := read_state()) is not None and current.pid == state.pid:
        state_file.unlink(missing_ok=True)


def stop_server() -> ServerState | None:
    """Stop the running server (it finishes nothing: running commands fail). Returns the server that was stopped."""
    with _start_lock():
        state = running()
        if state is None:
            return None
        _terminate(state, grace=30.0)
        return state


def status() -> Status | None:
    """The running server's figures, None when none runs."""
    state = running()
    if state is None:
        return None
    report = Status(state, time.time() - state.started_at, _rss_bytes(state.java_pid))
    live = _read_json(_files()["status"]) or {}
    if live.get("pid") == state.pid:
        report.idle_seconds = live.get("idle_seconds")
        report.sessions = live.get("sessions")
        report.lakehouses = list(live.get("lakehouses") or [])
        report.heap_used_bytes = live.get("heap_used_bytes")
    return report


def _rss_bytes(pid: int) -> int | None:
    probe = subprocess.run(["ps", "-o", "rss=", "-p", str(pid)], capture_output=True, text=True, check=False)
    return int(probe.stdout.strip()) * 1024 if probe.stdout.strip().isdigit() else None


def last_exit() -> dict | None:
    """Why the last server ended: ``pid``, ``reason``, ``at`` (epoch seconds)."""
    return _read_json(_files()["last_exit"])


def _record_exit(pid: int, reason: str) -> None:
    _files()["last_exit"].parent.mkdir(parents=True, exist_ok=True)
    _write_json(_files()["last_exit"], {"pid": pid, "reason": reason, "at": time.time()})


def failure_hint(since: float) -> str | None:
    """When the server a command used ended after ``since`` (epoch seconds), a sentence saying why."""
    if running() is not None:
        return None
    ended = last_exit()
    if ended is None or ended.get("at", 0) < since:
        return "the local Spark server is gone (killed?): the next command starts a new one"
    return f"the local Spark server (pid {ended['pid']}) ended: {ended['reason']}; see {_files()['log']}"


# ---------------------------------------------------------------------------------------------------------------------
# The server process itself.


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _connect_service(spark: object) -> object:
    jvm = spark._jvm  # type: ignore[attr-defined]
    return (
        jvm.java.lang.Class.forName("org.apache.spark.sql.connect.service.SparkConnectService$")
        .getField("MODULE$")
        .get(None)
    )


def _activity(service: object) -> tuple[bool, str, float, int, list[str]]:
    """From Spark Connect itself: (executions running, a marker that changes whenever an execution ends, the newest
    session access in epoch seconds, client sessions, their lakehouse folders)."""
    executions = service.listActiveExecutions()  # type: ignore[attr-defined]
    # Left(a monotonic clock reading of the last execution's end) when none runs, else Right(the running ones).
    busy = executions.isRight() and executions.right().get().size() > 0
    marker = str(executions.left().get()) if executions.isLeft() else ""
    last = 0.0
    manager = service.sessionManager()  # type: ignore[attr-defined]
    infos = manager.listActiveSessions()
    roots = set()
    for index in range(infos.size()):
        info = infos.apply(index)
        last = max(last, float(info.lastAccessTimeMs()) / 1000)
        holder = manager.getIsolatedSessionIfPresent(info.key())
        if holder.isDefined():
            root = holder.get().session().conf().get("ecom.lakehouse.root", "")
            if root:
                roots.add(str(root))
    return busy, marker, last, int(infos.size()), sorted(roots)


def serve(*, nonce: str, idle_seconds: float, with_s3: bool) -> int:
    """Run a server until it is idle for ``idle_seconds``, stopped (SIGTERM) or its JVM dies; returns the exit code."""
    from py4j.protocol import Py4JError

    stop: list[str] = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append("stopped"))
    signal.signal(signal.SIGINT, lambda *_: stop.append("stopped"))
    spark = None
    for attempt in range(3):  # a free port may be taken between the probe and the bind
        port = _free_port()
        try:
            spark = local_spark.start_local_spark("ecom-lakehouse-server", with_s3=with_s3, connect_port=port)
            break
        except Exception as exc:
            if attempt == 2 or "port" not in str(exc).lower():
                raise
    assert spark is not None
    context = spark.sparkContext
    java_pid = int(spark._jvm.java.lang.ProcessHandle.current().pid())  # type: ignore[attr-defined]
    jvm_process = context._gateway.proc  # type: ignore[attr-defined]
    service = _connect_service(spark)
    state = ServerState(
        pid=os.getpid(), java_pid=java_pid, port=port, spark_version=spark.version, package_version=_package_version(),
        settings=_settings(with_s3=with_s3), started_at=time.time(), idle_timeout=idle_seconds,
        log=str(_files()["log"]), nonce=nonce,
    )  # fmt: skip
    _write_json(_files()["state"], asdict(state))
    print(f"serving Spark {spark.version} on 127.0.0.1:{port} (JVM pid {java_pid})", flush=True)
    runtime = spark._jvm.java.lang.Runtime.getRuntime()  # type: ignore[attr-defined]
    last_status = 0.0
    reason = ""
    active_at, seen_marker = time.time(), None  # the last time a client did anything
    while not stop:
        time.sleep(_POLL_SECONDS)
        try:
            busy, marker, accessed, sessions, roots = _activity(service)
            heap = int(runtime.totalMemory() - runtime.freeMemory())
        except (Py4JError, OSError):  # the JVM is gone: py4j's socket is reset or refused
            code = None
            if jvm_process is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    code = jvm_process.wait(timeout=10)  # just dead: not reaped yet
            why = _OUT_OF_MEMORY_CODES.get(code or 0)
            reason = (
                f"its JVM ran out of memory (exit code {code}, {why}): give it more with ECOM_DRIVER_MEMORY "
                f"(now {state.settings['driver_memory']})"
                if why
                else f"its JVM (pid {java_pid}) died (exit code {code})"
            )
            break
        current = read_state()
        if current is None or current.pid != state.pid:  # its home was removed, or another server took its place
            reason = f"its state file {_files()['state']} is gone or names another server"
            break
        if busy or marker != seen_marker:
            active_at, seen_marker = time.time(), marker
        active_at = max(active_at, accessed)
        idle = max(0.0, time.time() - active_at)
        if time.monotonic() - last_status > 5:
            live = {"pid": state.pid, "idle_seconds": round(idle, 1), "sessions": sessions, "lakehouses": roots,
                    "heap_used_bytes": heap, "at": time.time()}  # fmt: skip
            _write_json(_files()["status"], live)
            last_status = time.monotonic()
        if idle > idle_seconds:
            reason = f"idle for {idle:.0f} s (ECOM_SERVER_IDLE_TIMEOUT={idle_seconds:.0f})"
            break
    reason = reason or "stopped by `ecom server stop`"
    print(f"stopping: {reason}", flush=True)
    _record_exit(state.pid, reason)
    if (current := read_state()) is not None and current.pid == state.pid:
        _files()["state"].unlink(missing_ok=True)
    with contextlib.suppress(Exception):
        spark.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ecom_lakehouse.server")
    sub = parser.add_subparsers(dest="command", required=True)
    serve_parser = sub.add_parser("serve", help="run a server in this process (ecom server start runs it detached)")
    serve_parser.add_argument("--nonce", default="")
    serve_parser.add_argument("--idle-timeout", type=float, default=DEFAULT_IDLE_SECONDS)
    serve_parser.add_argument("--s3", action="store_true")
    args = parser.parse_args(argv)
    return serve(nonce=args.nonce, idle_seconds=args.idle_timeout, with_s3=args.s3)


if __name__ == "__main__":
    sys.exit(main())
