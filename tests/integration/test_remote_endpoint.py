"""Any Spark Connect endpoint: a Spark Connect server started with Spark's own launcher (not ours: no lakehouse
catalog, its own warehouse) runs the pipeline for `ecom --remote`, which keeps the tables in that server's catalog
and reads the input through it, as on a workspace's compute."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from decimal import Decimal

import pytest

from ecom_lakehouse import local_spark
from tests.conftest import SAMPLE_DIR


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory):
    """`spark-submit --class ...SparkConnectServer` with Delta, as its documentation starts one."""
    home = tmp_path_factory.mktemp("foreign-spark")
    port = _free_port()
    command = [
        str(local_spark.spark_home() / "bin" / "spark-submit"),
        "--class", "org.apache.spark.sql.connect.service.SparkConnectServer",
        "--packages", local_spark.delta_coordinate(),
        "--driver-memory", "1g",
        "--conf", "spark.sql.extensions=io.delta.sql.DeltaSparkSessionExtension",
        "--conf", "spark.sql.catalog.spark_catalog=org.apache.spark.sql.delta.catalog.DeltaCatalog",
        "--conf", f"spark.connect.grpc.binding.port={port}",
        "--conf", "spark.connect.grpc.binding.address=127.0.0.1",
        "--conf", f"spark.sql.warehouse.dir={home / 'warehouse'}",
        "--conf", "spark.ui.enabled=false",
        "--conf", "spark.sql.shuffle.partitions=2",
        # the Delta 4.4.0 parser drops named parameters on Spark 4.1 (see ecom_lakehouse.local_spark)
        "--conf", "spark.sql.legacy.parameterSubstitution.constantsOnly=true",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in ("SPARK_REMOTE", "SPARK_CONNECT_MODE_ENABLED")}
    with open(home / "server.log", "wb") as log:
        server = subprocess.Popen(command, cwd=home, stdout=log, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        assert server.poll() is None, (home / "server.log").read_text(errors="replace")[-3000:]
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(1)
    else:
        server.kill()
        pytest.fail("Spark's own Connect server did not start in 5 minutes")
    yield {"url": f"sc://127.0.0.1:{port}", "home": home}
    server.terminate()
    server.wait(timeout=60)


def _ecom(*args, cwd):
    return subprocess.run([sys.executable, "-m", "ecom_lakehouse.tools.cli", "-q", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=900)  # fmt: skip


def test_the_pipeline_runs_on_a_spark_connect_endpoint_that_is_not_ours(endpoint, tmp_path, expected_report):
    remote = ["--remote", endpoint["url"]]
    run = _ecom("run", *remote, "--input", str(SAMPLE_DIR), "--checkpoint-location", str(tmp_path / "checkpoints"),
                "--format", "json", cwd=tmp_path)  # fmt: skip
    assert run.returncode == 0, run.stderr
    by_year = {r["year"]: Decimal(str(r["profit"])) for r in json.loads(run.stdout)["profit_by_year"]}
    assert by_year == expected_report["by_year"]
    assert not (tmp_path / "lakehouse").exists()  # the tables are the endpoint's, in its warehouse
    assert (endpoint["home"] / "warehouse" / "ecom_silver.db" / "orders_enriched" / "_delta_log").is_dir()

    report = _ecom("report", *remote, "--format", "json", cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    assert json.loads(report.stdout) == json.loads(run.stdout)
    count = _ecom("sql", *remote, "SELECT count(*) AS n FROM spark_catalog.ecom_silver.orders_enriched", cwd=tmp_path)
    assert count.returncode == 0 and str(expected_report["lines"]) in count.stdout, count.stderr

    again = _ecom("run", *remote, "--input", str(SAMPLE_DIR), "--checkpoint-location", str(tmp_path / "checkpoints"),
                  "--no-report", cwd=tmp_path)  # fmt: skip
    assert again.returncode == 0, again.stderr
    quality = _ecom("quality", *remote, cwd=tmp_path)
    assert "found nothing new" in quality.stdout  # the second run: unchanged, its stream found no new file


def test_a_remote_endpoint_needs_a_checkpoint_location(endpoint, tmp_path):
    run = _ecom("run", "--remote", endpoint["url"], "--input", str(SAMPLE_DIR), cwd=tmp_path)
    assert run.returncode == 2
    assert "checkpoint_location is empty" in run.stderr.strip().splitlines()[-1]
