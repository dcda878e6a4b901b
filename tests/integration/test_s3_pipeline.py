"""End to end through S3: `ecom upload` the sample to an S3-compatible server on loopback (moto's HTTP server),
then `ecom run --input s3://...` reads it through Spark's s3a connector and reports what the local input gives."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from decimal import Decimal

import boto3
import pytest

from tests.conftest import SAMPLE_DIR

moto_server = pytest.importorskip("moto.server", reason="moto[server] is needed for the S3 end-to-end test")


@pytest.fixture(scope="module")
def endpoint():
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def test_upload_then_run_from_s3_gives_the_local_report(endpoint, tmp_path, expected_report):
    empty = tmp_path / "empty-aws-config"
    empty.write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1",
               AWS_CONFIG_FILE=str(empty), AWS_SHARED_CREDENTIALS_FILE=str(empty), AWS_EC2_METADATA_DISABLED="true",
               AWS_ENDPOINT_URL=endpoint)  # fmt: skip
    # A server of its own: the s3a connector and this endpoint are part of a JVM's settings, and replacing the
    # suite's shared server would cut every other test's session.
    env["ECOM_SERVER_HOME"] = str(tmp_path / "s3-server")
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")  # fmt: skip
    s3.create_bucket(Bucket="raw-sales")
    raw = tmp_path / "raw"
    raw.mkdir()
    for name in ("orders_export.json", "customers_export.xlsx", "products_export.csv"):
        shutil.copy(SAMPLE_DIR / name, raw / name)
    cli = [sys.executable, "-m", "ecom_lakehouse.tools.cli", "-q"]
    upload = subprocess.run(
        [*cli, "upload", str(raw), "--bucket", "raw-sales", "--prefix", "raw/", "--endpoint-url", endpoint],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert upload.returncode == 0, upload.stderr
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="raw-sales")["Contents"])
    assert any(k.startswith("raw/orders/ingest_date=") and k.endswith("/orders_export.json") for k in keys), keys

    try:
        run = subprocess.run([*cli, "run", "--input", "s3://raw-sales/raw/", "--lakehouse", "lh", "--format", "json"],
                             cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)  # fmt: skip
    finally:
        stop = subprocess.run([*cli, "server", "stop"], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert stop.returncode == 0, stop.stderr
    report = json.loads(run.stdout)
    by_year = {r["year"]: Decimal(str(r["profit"])) for r in report["profit_by_year"]}
    assert by_year == expected_report["by_year"]
    by_customer = {r["customer_id"]: Decimal(str(r["profit"])) for r in report["profit_by_customer"]}
    assert by_customer == expected_report["by_customer"]
