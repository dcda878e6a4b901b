"""The warm server as a user meets it, on a server home of its own (the suite's shared server is never touched):
start, status, a run whose server is killed midway and the run after it, a server out of memory reported rather than
waited for, replacement when the settings change, the idle timeout."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from ecom_lakehouse.config import load_config
from ecom_lakehouse.io.tables import Lakehouse
from tests.conftest import SAMPLE_DIR


@pytest.fixture
def env(tmp_path):
    values = dict(os.environ)
    values["ECOM_SERVER_HOME"] = str(tmp_path / "server")
    yield values
    subprocess.run([sys.executable, "-m", "ecom_lakehouse.tools.cli", "server", "stop"], env=values, timeout=120)


def _ecom(*args, env, cwd, timeout=600):
    return subprocess.run([sys.executable, "-m", "ecom_lakehouse.tools.cli", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip


def _status(env, cwd):
    done = _ecom("server", "status", "--json", env=env, cwd=cwd)
    return done.returncode, json.loads(done.stdout)


def test_a_run_whose_server_is_killed_fails_fast_and_the_next_run_completes(spark, env, tmp_path):
    started = _ecom("server", "start", env=env, cwd=tmp_path)
    assert started.returncode == 0, started.stderr
    code, status = _status(env, tmp_path)
    assert code == 0 and status["running"] and status["spark_version"].startswith("4.1")
    assert status["rss_bytes"] > 0 and status["port"] > 0

    run = subprocess.Popen([sys.executable, "-m", "ecom_lakehouse.tools.cli", "run", "--lakehouse", "lh",
                            "--no-report"], env=env, cwd=tmp_path, stderr=subprocess.PIPE, text=True)  # fmt: skip
    seen = []
    for line in run.stderr:
        seen.append(line)
        if "warm server pid" in line:
            assert f"pid {status['pid']}" in line  # it used the server started above
        if " rows in " in line:  # the run is under way: kill the JVM under it
            os.kill(status["java_pid"], signal.SIGKILL)
            break
    killed_at = time.monotonic()
    rest = run.stderr.read()
    run.wait(timeout=120)
    assert run.returncode == 1, "".join(seen) + rest
    assert time.monotonic() - killed_at < 60  # reported, not retried for minutes
    assert "ecom: error: lost the Spark server (UNAVAILABLE): the local Spark server" in rest, rest
    assert "died" in rest and "Traceback" not in rest
    code, after = _status(env, tmp_path)
    assert code == 3 and "died" in after["last_exit"]["reason"]

    rerun = _ecom("run", "--lakehouse", "lh", "--no-report", env=env, cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    assert "new server pid" in rerun.stderr
    lakehouse = Lakehouse.open(spark, load_config(), tmp_path / "lh")
    statuses = [r.status for r in lakehouse.read("silver", "runs").orderBy("recorded_at").collect()]
    assert statuses == ["running", "abandoned", "running", "succeeded"]
    assert lakehouse.read("silver", "orders").count() == 2994  # every sample line once, nothing from the dead run twice
    assert SAMPLE_DIR.is_dir()


def test_out_of_memory_is_reported_settings_replace_the_server_and_idle_ends_it(env, tmp_path):
    small = {**env, "ECOM_DRIVER_MEMORY": "512m"}
    started = _ecom("server", "start", env=env, cwd=tmp_path)
    assert started.returncode == 0, started.stderr
    first = _status(env, tmp_path)[1]["pid"]
    replaced = _ecom("server", "start", env=small, cwd=tmp_path)  # other settings: a new JVM, not this one
    assert replaced.returncode == 0 and "replacing the Spark server pid" in replaced.stderr, replaced.stderr
    assert _status(small, tmp_path)[1]["pid"] != first

    query = "SELECT size(collect_list(id)) AS n FROM range(0, 400000000)"  # about 3 GiB of longs in one row
    started_at = time.monotonic()
    blown = _ecom("sql", query, "--lakehouse", ".", env=small, cwd=tmp_path, timeout=300)
    assert blown.returncode == 1
    assert "ran out of memory" in blown.stderr and "ECOM_DRIVER_MEMORY" in blown.stderr, blown.stderr
    assert time.monotonic() - started_at < 180
    assert _status(small, tmp_path)[0] == 3

    short = _ecom("server", "start", "--idle-timeout", "2s", env=small, cwd=tmp_path)
    assert short.returncode == 0, short.stderr
    deadline = time.monotonic() + 60
    while _status(small, tmp_path)[0] == 0 and time.monotonic() < deadline:
        time.sleep(1)
    code, status = _status(small, tmp_path)
    assert code == 3 and status["last_exit"]["reason"].startswith("idle for")
