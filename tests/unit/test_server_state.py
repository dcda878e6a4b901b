"""The warm server's bookkeeping without a JVM: a stale state file never hangs a command, durations parse, and a
server is reused only by commands it fits."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

import pytest

from ecom_lakehouse import server


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv(server.HOME_ENV, str(tmp_path / "server"))
    (tmp_path / "server").mkdir()
    return tmp_path / "server"


def _state(home, **changes):
    state = {"pid": 1, "java_pid": 1, "port": 1, "spark_version": "4.1.4", "package_version": "0.1.0",
             "settings": {"pyspark": "4.1.4", "s3": "no"}, "started_at": time.time(), "idle_timeout": 1800.0,
             "log": str(home / "server.log"), "nonce": "n"} | changes  # fmt: skip
    (home / "state.json").write_text(json.dumps(state), encoding="utf-8")
    return state


def _dead_pid() -> int:
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    return finished.pid


def test_a_state_whose_process_is_gone_is_removed_at_once_even_when_its_port_is_taken(home):
    with socket.socket() as squatter:  # another program now listens on the dead server's port
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        _state(home, pid=_dead_pid(), java_pid=_dead_pid(), port=squatter.getsockname()[1])
        started = time.monotonic()
        assert server.running() is None
        assert time.monotonic() - started < 2
    assert not (home / "state.json").exists()
    assert "gone without stopping" in server.last_exit()["reason"]


def test_a_live_process_that_is_not_a_server_is_not_taken_for_one(home):
    _state(home, pid=subprocess.os.getpid())  # this pytest process: alive, but not `ecom_lakehouse.server serve`
    assert server.running() is None and server.status() is None


def test_status_exits_3_without_a_server_and_says_why_the_last_one_ended(home):
    _state(home, pid=_dead_pid())
    done = subprocess.run([sys.executable, "-m", "ecom_lakehouse.tools.cli", "server", "status"],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 3
    assert done.stdout.startswith("no server running (the last one, pid ") and "gone without stopping" in done.stdout


@pytest.mark.parametrize(("text", "seconds"), [("90", 90), ("90s", 90), ("30m", 1800), ("2h", 7200), ("", None)])
def test_durations(text, seconds):
    assert server.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["soon", "-5m", "0"])
def test_bad_durations_are_refused(text):
    with pytest.raises(ValueError):
        server.parse_duration(text)


def test_a_server_serves_only_commands_it_fits(monkeypatch):
    monkeypatch.setattr(server, "_package_version", lambda: "0.1.0")
    plain = {"pyspark": "4.1.4", "driver_memory": "4g", "s3": "no"}
    with_s3 = {**plain, "s3": "yes", "aws": "abc"}
    state = server.ServerState(1, 1, 1, "4.1.4", "0.1.0", with_s3, 0.0, 1800.0, "log")
    assert server.compatible(state, plain)  # a server with s3a serves a command without S3
    assert server.compatible(state, with_s3)
    assert not server.compatible(state, {**with_s3, "aws": "other"})  # other AWS settings: another JVM
    assert not server.compatible(state, {**plain, "driver_memory": "8g"})
    assert not server.compatible(server.ServerState(1, 1, 1, "4.1.4", "0.1.0", plain, 0.0, 1800.0, "log"), with_s3)
    monkeypatch.setattr(server, "_package_version", lambda: "0.2.0")
    assert not server.compatible(state, plain)  # another version of the package: replaced


def test_a_lost_connection_is_explained_by_the_local_server_only_when_the_command_used_it(home, monkeypatch):
    import pyspark.sql.connect  # noqa: F401  (a Spark Connect client was in use)

    from ecom_lakehouse.tools.cli import _server_failure_hint

    monkeypatch.delenv("SPARK_REMOTE", raising=False)
    monkeypatch.delenv("ECOM_SPARK_MODE", raising=False)
    lost = ConnectionError("<_MultiThreadedRendezvous of RPC: status = StatusCode.UNAVAILABLE>")
    assert "the local Spark server is gone" in _server_failure_hint(lost, 0.0, None)
    assert _server_failure_hint(lost, 0.0, "sc://127.0.0.1:15002") is None  # another endpoint failed, not ours
    monkeypatch.setenv("SPARK_REMOTE", "sc://127.0.0.1:15002")
    assert _server_failure_hint(lost, 0.0, None) is None
    monkeypatch.delenv("SPARK_REMOTE")
    monkeypatch.setenv("ECOM_SPARK_MODE", "databricks")
    assert _server_failure_hint(lost, 0.0, None) is None
