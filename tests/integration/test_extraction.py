"""Tests of the extraction step (``ecom upload``) against a real S3-compatible HTTP server on loopback.

No Spark. A moto server runs in a thread on 127.0.0.1 (module fixture); a small fault-injecting HTTP proxy in
front of it answers 503 or drops the connection for chosen requests, to exercise retries and aborts.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import http.client
import io
import json
import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from ecom_lakehouse.tools.extraction.cli import _Console, main
from ecom_lakehouse.tools.extraction.upload import (
    IAM_ACTIONS,
    MIB,
    SSE_KMS_IAM_ACTIONS,
    FileResult,
    SourceFile,
    UploadOptions,
    make_s3_client,
    upload_raw_files,
)

moto_server_module = pytest.importorskip("moto.server")

REPO = Path(__file__).resolve().parents[2]
IAM_DIR = REPO / "conf" / "iam"
INGEST_DATE = "2024-05-01"
_AWS_ENV = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
)


# ----------------------------------------------------------------------------------------------------------------
# Fixtures: moto server, credentials, bucket, source files.
# ----------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    server = moto_server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Fake credentials in the environment only; no profile files, no instance metadata lookups."""
    for name in _AWS_ENV:
        monkeypatch.delenv(name, raising=False)
    empty = tmp_path / "empty-aws-config"
    empty.write_text("")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")


@pytest.fixture
def s3(moto_endpoint: str, aws_env: None) -> Any:
    """A direct client to the moto server (no proxy), for arranging and inspecting."""
    return boto3.client(
        "s3", endpoint_url=moto_endpoint, region_name="us-east-1", config=Config(retries={"mode": "standard"})
    )


@pytest.fixture
def bucket(s3: Any) -> str:
    name = f"ecom-test-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture
def source_dir(tmp_path: Path) -> Path:
    src = tmp_path / "raw"
    src.mkdir()
    (src / "Orders.json").write_bytes(b'[{"Order ID": "CA-1", "Profit": 1.5}]\n')
    (src / "Customers.xlsx").write_bytes(b"PK\x03\x04 not really a workbook" * 10)
    (src / "Products.csv").write_bytes(b"Product ID,Category\nFUR-1,Furniture\n")
    (src / ".DS_Store").write_bytes(b"ignored")
    return src


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main([*argv, "--progress", "log"] if "--progress" not in argv else list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _upload_args(source: Path, bucket: str, endpoint: str, *extra: str) -> list[str]:
    return [str(source), "--bucket", bucket, "--endpoint-url", endpoint, "--ingest-date", INGEST_DATE, *extra]


def _keys(s3: Any, bucket: str) -> list[str]:
    return sorted(item["Key"] for item in s3.list_objects_v2(Bucket=bucket).get("Contents", []))


def _manifests(s3: Any, bucket: str, prefix: str = "raw/") -> list[dict[str, Any]]:
    keys = [key for key in _keys(s3, bucket) if key.startswith(f"{prefix}_manifests/")]
    return [json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read()) for key in keys]


def _expected_key(dataset: str, name: str, prefix: str = "raw/") -> str:
    return f"{prefix}{dataset}/ingest_date={INGEST_DATE}/{name}"


def _b64_sha256(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def _assert_one_line_error(err: str, *fragments: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def _no_open_multipart_uploads(s3: Any, bucket: str) -> bool:
    return not s3.list_multipart_uploads(Bucket=bucket).get("Uploads")


# ----------------------------------------------------------------------------------------------------------------
# Fault-injecting proxy (loopback only, bounded).
# ----------------------------------------------------------------------------------------------------------------


class _QuietServer(ThreadingHTTPServer):
    """Client disconnects (a cancelled upload) are expected here, not worth a traceback on stderr."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


class FaultProxy:
    """HTTP proxy on 127.0.0.1 forwarding to the moto server, failing requests chosen by ``rule``.

    Args:
        upstream: the moto endpoint URL.
        rule: ``(method, path) -> bool``, which requests may be failed.
        faults: how many matching requests to fail (then they pass).
        mode: ``503`` (SlowDown) or ``drop`` (close the connection without an answer).
    """

    MAX_REQUESTS = 500  # a hard bound: the proxy refuses to forward more than this many requests

    def __init__(self, upstream: str, rule: Callable[[str, str], bool], faults: int, mode: str = "503") -> None:
        self.upstream_host, port = upstream.removeprefix("http://").split(":")
        self.upstream_port = int(port)
        self.rule, self.faults_left, self.mode = rule, faults, mode
        self.lock = threading.Lock()
        self.seen: list[tuple[str, str, bool]] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                body = self._read_body()
                with proxy.lock:
                    fault = len(proxy.seen) >= proxy.MAX_REQUESTS or (
                        proxy.faults_left > 0 and proxy.rule(self.command, self.path)
                    )
                    if fault:
                        proxy.faults_left -= 1
                    proxy.seen.append((self.command, self.path, fault))
                if fault and proxy.mode == "drop":
                    self.close_connection = True
                    return
                if fault:
                    payload = b"<Error><Code>SlowDown</Code><Message>injected fault</Message></Error>"
                    self.send_response(503, "Slow Down")
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(payload)))
                    self.send_header("Connection", "close")
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(payload)
                    self.close_connection = True
                    return
                self._forward(body)

            def _read_body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0], 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return b"".join(chunks)
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _forward(self, body: bytes) -> None:
                skip = {"connection", "expect", "transfer-encoding", "content-length", "keep-alive"}
                headers = {k: v for k, v in self.headers.items() if k.lower() not in skip}
                headers["Content-Length"] = str(len(body))
                conn = http.client.HTTPConnection(proxy.upstream_host, proxy.upstream_port, timeout=30)
                try:
                    conn.request(self.command, self.path, body=body, headers=headers)
                    response = conn.getresponse()
                    data = response.read()
                finally:
                    conn.close()
                self.send_response(response.status, response.reason)
                for key, value in response.getheaders():
                    if key.lower() not in skip:
                        self.send_header(key, value)
                length = response.getheader("Content-Length") if self.command == "HEAD" else None
                self.send_header("Content-Length", length or str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        self.server = _QuietServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def injected(self) -> int:
        return sum(1 for _method, _path, fault in self.seen if fault)

    def __enter__(self) -> FaultProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def _is_upload_part(method: str, path: str) -> bool:
    return method == "PUT" and "partNumber=" in path


def _is_abort(method: str, path: str) -> bool:
    return method == "DELETE" and "uploadId=" in path


def _write_big(path: Path, size: int) -> bytes:
    data = os.urandom(size)
    path.write_bytes(data)
    return data


def _composite(data: bytes, part_size: int) -> str:
    digests = b"".join(hashlib.sha256(data[i : i + part_size]).digest() for i in range(0, len(data), part_size))
    return f"{base64.b64encode(hashlib.sha256(digests).digest()).decode()}-{-(-len(data) // part_size)}"


# ----------------------------------------------------------------------------------------------------------------
# Happy path, idempotence, change detection, multipart.
# ----------------------------------------------------------------------------------------------------------------


def test_upload_keys_checksums_manifest_then_rerun_skips_and_change_reuploads(
    capsys: pytest.CaptureFixture[str], s3: Any, bucket: str, moto_endpoint: str, source_dir: Path
) -> None:
    code, out, err = _cli(capsys, *_upload_args(source_dir, bucket, moto_endpoint))
    assert code == 0, err
    assert err == ""
    assert "3 uploaded, 0 skipped-unchanged, 0 failed" in out
    # where the raw volume must point for the job to read these files (databricks.yml's raw volume variables)
    prefix = next(key for key in _keys(s3, bucket) if "/_manifests/" in key).split("_manifests/")[0]
    assert (f"--var raw_volume_type=EXTERNAL --var raw_storage_location=s3://{bucket}/{prefix})") in out

    expected = {
        "orders": "Orders.json",
        "customers": "Customers.xlsx",
        "products": "Products.csv",
    }
    keys = _keys(s3, bucket)
    data_keys = sorted(_expected_key(dataset, name) for dataset, name in expected.items())
    assert [key for key in keys if "/_manifests/" not in key] == data_keys
    for dataset, name in expected.items():
        content = (source_dir / name).read_bytes()
        head = s3.head_object(Bucket=bucket, Key=_expected_key(dataset, name), ChecksumMode="ENABLED")
        assert head["Metadata"]["sha256"] == hashlib.sha256(content).hexdigest()
        assert head["ChecksumSHA256"] == _b64_sha256(content)  # single-part: the full-file digest we sent
        assert head["ServerSideEncryption"] == "AES256"
        assert s3.get_object(Bucket=bucket, Key=_expected_key(dataset, name))["Body"].read() == content
    assert not any(".DS_Store" in key for key in keys)

    (first,) = _manifests(s3, bucket)
    assert f"raw/_manifests/{first['run_id']}.json" in keys
    assert first["ingest_date"] == INGEST_DATE and first["bucket"] == bucket
    assert first["totals"] == {
        "files": 3,
        "uploaded": 3,
        "skipped_unchanged": 0,
        "bytes_uploaded": first["totals"]["bytes_uploaded"],
    }
    for entry in first["files"]:
        content = (source_dir / entry["file"]).read_bytes()
        assert entry["key"] == _expected_key(entry["dataset"], entry["file"])
        assert entry["size"] == len(content)
        assert entry["sha256"] == hashlib.sha256(content).hexdigest()
        assert entry["outcome"] == "uploaded"
        assert entry["uploaded_by_run_id"] == first["run_id"]

    # Re-run, nothing changed: nothing uploaded, a second manifest records the skips.
    etags = {key: s3.head_object(Bucket=bucket, Key=key)["ETag"] for key in data_keys}
    code, out, err = _cli(capsys, *_upload_args(source_dir, bucket, moto_endpoint))
    assert code == 0, err
    assert "0 uploaded, 3 skipped-unchanged, 0 failed" in out
    manifests = _manifests(s3, bucket)
    assert len(manifests) == 2
    second = next(m for m in manifests if m["run_id"] != first["run_id"])
    assert second["totals"]["uploaded"] == 0 and second["totals"]["skipped_unchanged"] == 3
    assert {e["uploaded_by_run_id"] for e in second["files"]} == {first["run_id"]}
    assert {key: s3.head_object(Bucket=bucket, Key=key)["ETag"] for key in data_keys} == etags

    # A changed file goes up again; the others are skipped.
    (source_dir / "Products.csv").write_bytes(b"Product ID,Category\nFUR-1,Furniture\nOFF-2,Office Supplies\n")
    code, out, err = _cli(capsys, *_upload_args(source_dir, bucket, moto_endpoint))
    assert code == 0, err
    assert "1 uploaded, 2 skipped-unchanged, 0 failed" in out
    products_key = _expected_key("products", "Products.csv")
    new_content = (source_dir / "Products.csv").read_bytes()
    assert s3.get_object(Bucket=bucket, Key=products_key)["Body"].read() == new_content
    assert (
        s3.head_object(Bucket=bucket, Key=products_key)["Metadata"]["sha256"] == hashlib.sha256(new_content).hexdigest()
    )
    third = next(m for m in _manifests(s3, bucket) if m["run_id"] not in (first["run_id"], second["run_id"]))
    products = next(e for e in third["files"] if e["dataset"] == "products")
    assert products["outcome"] == "uploaded" and products["replaced"] is True


def test_large_file_goes_up_in_parts_and_verifies(
    capsys: pytest.CaptureFixture[str], s3: Any, bucket: str, moto_endpoint: str, tmp_path: Path
) -> None:
    src = tmp_path / "big"
    src.mkdir()
    data = _write_big(src / "orders_2017.json", 11 * MIB)
    (src / "Products.csv").write_bytes(b"a,b\n")
    args = _upload_args(src, bucket, moto_endpoint, "--multipart-threshold-mib", "5", "--multipart-chunk-mib", "5")
    code, out, err = _cli(capsys, *args)
    assert code == 0, err
    assert "multipart, 3 parts" in out

    key = _expected_key("orders", "orders_2017.json")
    head = s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    assert head["ETag"].strip('"').endswith("-3")
    assert head["ContentLength"] == len(data)
    assert head["Metadata"]["sha256"] == hashlib.sha256(data).hexdigest()
    # Composite of our per-part digests; AWS appends "-<parts>" on HEAD, moto may not.
    assert head["ChecksumSHA256"].split("-")[0] == _composite(data, 5 * MIB).split("-")[0]
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == data
    (manifest,) = _manifests(s3, bucket)
    entry = next(e for e in manifest["files"] if e["file"] == "orders_2017.json")
    assert entry["multipart_parts"] == 3 and entry["sha256"] == hashlib.sha256(data).hexdigest()
    assert _no_open_multipart_uploads(s3, bucket)

    code, out, _ = _cli(capsys, *args)  # unchanged multipart file: skipped via the metadata sha256
    assert code == 0 and "0 uploaded, 2 skipped-unchanged" in out


def test_dry_run_prints_plan_and_uploads_nothing(
    capsys: pytest.CaptureFixture[str], s3: Any, bucket: str, moto_endpoint: str, source_dir: Path
) -> None:
    code, out, err = _cli(capsys, *_upload_args(source_dir, bucket, moto_endpoint, "--dry-run"))
    assert code == 0, err
    assert "nothing uploaded" in out
    orders = (source_dir / "Orders.json").read_bytes()
    line = next(line for line in out.splitlines() if line.startswith("Orders.json"))
    assert f"s3://{bucket}/{_expected_key('orders', 'Orders.json')}" in line
    assert f"sha256={hashlib.sha256(orders).hexdigest()}" in line and f"\t{len(orders)}\t" in line
    assert _keys(s3, bucket) == []


def test_dry_run_needs_no_credentials(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, aws_env: None, source_dir: Path
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    code, out, err = _cli(capsys, str(source_dir), "--bucket", "some-bucket", "--dry-run")
    assert code == 0, err
    assert out.count("sha256=") == 3


def test_entry_script_runs_the_same_sub_command(source_dir: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    script = REPO / "data_extraction" / "upload_raw.py"
    done = subprocess.run(
        [sys.executable, str(script), str(source_dir), "--bucket", "b-1-2", "--dry-run"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "raw/orders/ingest_date=" in done.stdout
    bad = subprocess.run(
        [sys.executable, str(script), str(source_dir / "missing"), "--bucket", "b-1-2"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 2
    _assert_one_line_error(bad.stderr, "does not exist")


# ----------------------------------------------------------------------------------------------------------------
# Resilience: faults injected by the proxy.
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["503", "drop"])
def test_transient_faults_are_retried_and_the_upload_completes(
    capsys: pytest.CaptureFixture[str], s3: Any, bucket: str, moto_endpoint: str, tmp_path: Path, mode: str
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    big = _write_big(src / "Orders.json", 11 * MIB)
    small = b"Product ID\nFUR-1\n"
    (src / "Products.csv").write_bytes(small)
    with FaultProxy(moto_endpoint, lambda method, path: method in ("PUT", "POST"), faults=3, mode=mode) as proxy:
        args = _upload_args(
            src,
            bucket,
            proxy.endpoint,
            "--multipart-threshold-mib",
            "5",
            "--multipart-chunk-mib",
            "5",
            "--max-attempts",
            "5",
        )
        code, _out, err = _cli(capsys, *args)
    assert code == 0, err
    assert proxy.injected() == 3
    assert s3.get_object(Bucket=bucket, Key=_expected_key("orders", "Orders.json"))["Body"].read() == big
    assert s3.get_object(Bucket=bucket, Key=_expected_key("products", "Products.csv"))["Body"].read() == small
    assert len(_manifests(s3, bucket)) == 1
    assert _no_open_multipart_uploads(s3, bucket)


def test_single_put_failing_beyond_retries_leaves_nothing_and_exits_non_zero(
    capsys: pytest.CaptureFixture[str], s3: Any, bucket: str, moto_endpoint: str, source_dir: Path
) -> None:
    always_put = lambda method, path: method == "PUT"  # noqa: E731
    with FaultProxy(moto_endpoint, always_put, faults=10**6) as proxy:
        code, out, err = _cli(capsys, *_upload_args(source_dir, bucket, proxy.endpoint, "--max-attempts", "2"))
    assert code == 1
    _assert_one_line_error(err, "3 of 3 files failed", "no manifest written", "SlowDown")
    assert out.count("failed ") == 3
    assert _keys(s3, bucket) == []  # no object under any final key, no manifest


def test_multipart_failing_beyond_retries_is_aborted(
    capsys: pytest.CaptureFixture[str], s3: Any, bucket: str, moto_endpoint: str, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    _write_big(src / "Orders.json", 11 * MIB)
    (src / "Products.csv").write_bytes(b"Product ID\nFUR-1\n")
    with FaultProxy(moto_endpoint, _is_upload_part, faults=10**6) as proxy:
        args = _upload_args(
            src,
            bucket,
            proxy.endpoint,
            "--multipart-threshold-mib",
            "5",
            "--multipart-chunk-mib",
            "5",
            "--max-attempts",
            "2",
        )
        code, _out, err = _cli(capsys, *args)
    assert code == 1
    _assert_one_line_error(err, "1 of 2 files failed", "Orders.json", "no manifest written")
    assert any(_is_abort(method, path) for method, path, _ in proxy.seen)  # the transfer manager aborted
    keys = _keys(s3, bucket)
    assert _expected_key("orders", "Orders.json") not in keys
    assert _expected_key("products", "Products.csv") in keys  # the other file went up; the run is incomplete
    assert not [key for key in keys if "/_manifests/" in key]
    assert _no_open_multipart_uploads(s3, bucket)


def test_interrupt_aborts_the_multipart_upload(
    capsys: pytest.CaptureFixture[str], s3: Any, bucket: str, moto_endpoint: str, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    _write_big(src / "Orders.json", 11 * MIB)
    interrupted = threading.Event()

    def ctrl_c_on_first_part(method: str, path: str) -> bool:
        if _is_upload_part(method, path) and not interrupted.is_set():
            interrupted.set()
            # As if the operator pressed Ctrl-C mid-upload (sent to the main thread, which is waiting on the upload).
            signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)
            return True
        return False

    with FaultProxy(moto_endpoint, ctrl_c_on_first_part, faults=1) as proxy:
        args = _upload_args(src, bucket, proxy.endpoint, "--multipart-threshold-mib", "5", "--multipart-chunk-mib", "5")
        code, _out, err = _cli(capsys, *args)
    assert interrupted.is_set()
    assert code == 130
    _assert_one_line_error(err, "interrupted")
    assert _keys(s3, bucket) == []
    assert _no_open_multipart_uploads(s3, bucket)


def test_failed_abort_is_swept_up_and_only_iam_listed_operations_are_called(
    s3: Any, bucket: str, moto_endpoint: str, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    _write_big(src / "Orders.json", 11 * MIB)
    aborts_to_fail = {"left": 2}  # the transfer manager's own abort (2 attempts) fails; ours then succeeds

    def rule(method: str, path: str) -> bool:
        if _is_abort(method, path) and aborts_to_fail["left"] > 0:
            aborts_to_fail["left"] -= 1
            return True
        return _is_upload_part(method, path)

    with FaultProxy(moto_endpoint, rule, faults=10**6) as proxy:
        options = UploadOptions(
            bucket=bucket,
            endpoint_url=proxy.endpoint,
            multipart_threshold=5 * MIB,
            multipart_chunksize=5 * MIB,
            max_attempts=2,
            ingest_date=date.fromisoformat(INGEST_DATE),
        )
        client = make_s3_client(options)
        called: set[str] = set()
        client.meta.events.register("before-call.s3", lambda model, **kw: called.add(model.name))
        report = upload_raw_files(src, options, client=client)
    (result,) = report.failed
    assert "could not be aborted" not in (result.error or "")
    assert sum(1 for method, path, fault in proxy.seen if _is_abort(method, path) and fault) == 2
    assert _no_open_multipart_uploads(s3, bucket)
    assert _keys(s3, bucket) == []
    assert report.manifest_key is None
    assert {"CreateMultipartUpload", "UploadPart", "AbortMultipartUpload", "ListMultipartUploads"} <= called
    assert called <= set(IAM_ACTIONS), called - set(IAM_ACTIONS)


def test_successful_run_calls_only_iam_listed_operations(
    s3: Any, bucket: str, moto_endpoint: str, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    _write_big(src / "Orders.json", 6 * MIB)
    (src / "Customers.xlsx").write_bytes(b"xlsx bytes")
    options = UploadOptions(bucket=bucket, endpoint_url=moto_endpoint, multipart_threshold=5 * MIB, sse="AES256")
    client = make_s3_client(options)
    called: set[str] = set()
    client.meta.events.register("before-call.s3", lambda model, **kw: called.add(model.name))
    first = upload_raw_files(src, options, client=client)
    second = upload_raw_files(src, options, client=client)
    assert first.count("uploaded") == 2 and second.count("skipped-unchanged") == 2
    assert first.manifest_key and second.manifest_key
    assert {"ListObjectsV2", "HeadObject", "PutObject", "CreateMultipartUpload", "CompleteMultipartUpload"} <= called
    assert called <= set(IAM_ACTIONS), called - set(IAM_ACTIONS)


# ----------------------------------------------------------------------------------------------------------------
# Bad input and environment: one clear line, non-zero exit.
# ----------------------------------------------------------------------------------------------------------------


def test_missing_source_dir(capsys: pytest.CaptureFixture[str], aws_env: None, tmp_path: Path) -> None:
    code, _, err = _cli(capsys, str(tmp_path / "nope"), "--bucket", "some-bucket")
    assert code == 2
    _assert_one_line_error(err, "does not exist", "nope")


def test_empty_source_dir_even_with_hidden_files(
    capsys: pytest.CaptureFixture[str], aws_env: None, tmp_path: Path
) -> None:
    (tmp_path / "empty").mkdir()
    code, _, err = _cli(capsys, str(tmp_path / "empty"), "--bucket", "some-bucket")
    assert code == 2
    _assert_one_line_error(err, "no source files")
    (tmp_path / "empty" / ".gitkeep").write_text("")
    code, _, err = _cli(capsys, str(tmp_path / "empty"), "--bucket", "some-bucket")
    assert code == 2
    _assert_one_line_error(err, "no source files", "1 hidden")


def test_unknown_file_type_is_named(
    capsys: pytest.CaptureFixture[str], aws_env: None, source_dir: Path, s3: Any, bucket: str, moto_endpoint: str
) -> None:
    (source_dir / "notes.txt").write_text("hello")
    code, _, err = _cli(capsys, *_upload_args(source_dir, bucket, moto_endpoint))
    assert code == 2
    _assert_one_line_error(err, "unrecognised", "notes.txt")
    assert _keys(s3, bucket) == []  # validated before anything is sent


def test_empty_file_and_subdirectory_are_refused(
    capsys: pytest.CaptureFixture[str], aws_env: None, source_dir: Path
) -> None:
    (source_dir / "Order_empty.json").write_bytes(b"")
    code, _, err = _cli(capsys, str(source_dir), "--bucket", "some-bucket", "--dry-run")
    assert code == 2
    _assert_one_line_error(err, "empty", "Order_empty.json")
    (source_dir / "Order_empty.json").unlink()
    (source_dir / "archive").mkdir()
    code, _, err = _cli(capsys, str(source_dir), "--bucket", "some-bucket", "--dry-run")
    assert code == 2
    _assert_one_line_error(err, "archive (directory)")


def test_symlink_escaping_source_dir_is_refused(
    capsys: pytest.CaptureFixture[str], aws_env: None, source_dir: Path, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.csv"
    secret.write_text("password\n")
    (source_dir / "Products_extra.csv").symlink_to(secret)
    code, _, err = _cli(capsys, str(source_dir), "--bucket", "some-bucket", "--dry-run")
    assert code == 2
    _assert_one_line_error(err, "Products_extra.csv", "symlink")


def test_missing_bucket(
    capsys: pytest.CaptureFixture[str], moto_endpoint: str, aws_env: None, source_dir: Path
) -> None:
    code, _, err = _cli(capsys, *_upload_args(source_dir, "no-such-bucket-here", moto_endpoint))
    assert code == 1
    _assert_one_line_error(err, "no-such-bucket-here does not exist")


def test_no_credentials(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    moto_endpoint: str,
    aws_env: None,
    source_dir: Path,
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    code, _, err = _cli(capsys, *_upload_args(source_dir, "any-bucket", moto_endpoint))
    assert code == 1
    _assert_one_line_error(err, "no AWS credentials found")


def test_unknown_profile(
    capsys: pytest.CaptureFixture[str], moto_endpoint: str, aws_env: None, source_dir: Path
) -> None:
    code, _, err = _cli(capsys, *_upload_args(source_dir, "any-bucket", moto_endpoint, "--profile", "nobody"))
    assert code == 1
    _assert_one_line_error(err, "profile 'nobody' not found")


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--bucket", "s3://my-bucket/raw"], "not a URL"),
        (["--bucket", "My_Bucket"], "invalid bucket name"),
        (["--bucket", "ok-bucket", "--kms-key-id", "k"], "needs --sse aws:kms"),
        (["--bucket", "ok-bucket", "--prefix", "raw/../x"], "invalid --prefix"),
        (["--bucket", "ok-bucket", "--endpoint-url", "http://key:secret@127.0.0.1:9"], "must not embed credentials"),
    ],
)
def test_invalid_options(
    capsys: pytest.CaptureFixture[str], aws_env: None, source_dir: Path, extra: list[str], fragment: str
) -> None:
    code, _, err = _cli(capsys, str(source_dir), *extra)
    assert code == 2
    _assert_one_line_error(err, fragment)


def test_part_checksums_and_prefix_normalisation(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    data = _write_big(src / "orders.json", 12 * MIB + 7)
    options = UploadOptions(
        bucket="b-b-b", prefix="/landing/raw", multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB
    )
    report = upload_raw_files(src, options, dry_run=True, now=None)
    (result,) = report.files
    assert result.source.key.startswith("landing/raw/orders/ingest_date=")
    assert result.source.part_checksums == tuple(
        base64.b64encode(hashlib.sha256(data[i : i + 5 * MIB]).digest()).decode() for i in range(0, len(data), 5 * MIB)
    )
    assert result.source.expected_s3_checksum == _composite(data, 5 * MIB)
    assert UploadOptions(bucket="b-b-b", prefix="").prefix == ""


def test_progress_bar_renders_and_clears() -> None:
    out, err = io.StringIO(), io.StringIO()
    console = _Console(out, err, bar=True)
    source = SourceFile("Orders.json", Path("/x/Orders.json"), "orders", "raw/orders/k", 1000, "ab" * 32)
    console.file_started(source)
    for _ in range(10):
        console.bytes_sent(100)
    console.file_finished(FileResult(source, "uploaded"))
    assert "[############################]" in err.getvalue() and "100%" in err.getvalue()
    assert err.getvalue().endswith("\r\x1b[K")
    assert out.getvalue().startswith("uploaded")


# ----------------------------------------------------------------------------------------------------------------
# IAM policies.
# ----------------------------------------------------------------------------------------------------------------


def _policy(name: str) -> dict[str, Any]:
    document = json.loads((IAM_DIR / name).read_text())
    assert document["Version"] == "2012-10-17"
    assert document["Statement"]
    return document


def _as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _allowed(document: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [
        statement
        for statement in document["Statement"]
        if statement["Effect"] == "Allow"
        and any(fnmatch.fnmatchcase(action, pattern) for pattern in _as_list(statement["Action"]))
    ]


@pytest.mark.parametrize("name", ["uploader-policy.json", "cluster-instance-profile-policy.json", "bucket-policy.json"])
def test_policy_files_are_valid(name: str) -> None:
    text = (IAM_DIR / name).read_text()
    _policy(name)
    for placeholder in ("<BUCKET>",):
        assert placeholder in text


def test_uploader_policy_covers_every_action_the_code_calls() -> None:
    document = _policy("uploader-policy.json")
    for action in sorted({*IAM_ACTIONS.values(), *SSE_KMS_IAM_ACTIONS}):
        assert _allowed(document, action), f"uploader policy does not allow {action}"
    for action in ("s3:PutObject", "s3:GetObject", "s3:AbortMultipartUpload"):
        for statement in _allowed(document, action):
            assert _as_list(statement["Resource"]) == ["arn:aws:s3:::<BUCKET>/<PREFIX>/*"]
    (listing,) = _allowed(document, "s3:ListBucket")
    assert listing["Condition"]["StringLike"]["s3:prefix"]
    assert not _allowed(document, "s3:DeleteObject") and not _allowed(document, "s3:*")


def test_cluster_policy_is_read_only_and_bucket_policy_denies_plain_http_and_unencrypted_puts() -> None:
    cluster = _policy("cluster-instance-profile-policy.json")
    assert _allowed(cluster, "s3:GetObject") and _allowed(cluster, "s3:ListBucket") and _allowed(cluster, "kms:Decrypt")
    for action in ("s3:PutObject", "s3:DeleteObject", "kms:GenerateDataKey"):
        assert not _allowed(cluster, action)
    bucket_policy = _policy("bucket-policy.json")
    denies = [s for s in bucket_policy["Statement"] if s["Effect"] == "Deny"]
    assert any(s.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") == "false" for s in denies)
    assert any(
        "s3:PutObject" in _as_list(s["Action"])
        and "s3:x-amz-server-side-encryption" in s.get("Condition", {}).get("Null", {})
        for s in denies
    )
