"""Tests of ``ecom remote`` against a fake Databricks workspace served over HTTP on loopback.

No Spark. The real databricks-sdk ``WorkspaceClient`` talks over the socket to a small ``http.server`` in a thread
(port 0, tests/fake_workspace.py) that implements the REST endpoints the commands use: SCIM ``Me``, Jobs API 2.2
(``jobs/list``, ``jobs/get``, ``run-now``, ``runs/get`` advancing the run on every poll, ``runs/get-output``,
``runs/list``, ``runs/cancel``) and the SQL Statement Execution API (statements, polling, result chunks).
Authentication is the standard configuration: ``DATABRICKS_HOST`` / ``DATABRICKS_TOKEN`` with an empty
``DATABRICKS_CONFIG_FILE``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import pytest

pytest.importorskip("databricks.sdk")

from databricks.sdk.service.jobs import Run

from ecom_lakehouse.errors import EcomError, RemoteError
from ecom_lakehouse.tools.remote import api_errors, connect
from ecom_lakehouse.tools.remote.cli import register
from ecom_lakehouse.tools.remote.jobs import format_duration, format_task, get_snapshot, short_user_name
from ecom_lakehouse.tools.remote.sql import convert_value
from ecom_lakehouse.tools.report import report_queries

try:
    from fake_workspace import TASK_ERROR, TASKS, TOKEN, FakeTable, FakeWorkspace, phases, serve
except ModuleNotFoundError:  # tests/ imported as a package
    from tests.fake_workspace import TASK_ERROR, TASKS, TOKEN, FakeTable, FakeWorkspace, phases, serve

DEV_JOB = "[dev jane_doe] ecom_pipeline"
FAST = ["--poll-seconds", "0.01"]


@pytest.fixture
def workspace(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeWorkspace]:
    """A fake workspace on 127.0.0.1 and the environment pointing the SDK at it (no ~/.databrickscfg)."""
    with serve(FakeWorkspace()) as fake:
        fake.add_job(11, DEV_JOB)
        fake.add_job(33, "[dev bob] ecom_pipeline")
        for key in [k for k in os.environ if k.startswith("DATABRICKS_")]:
            monkeypatch.delenv(key)
        config_file = tmp_path / "databrickscfg"
        config_file.write_text("")
        monkeypatch.setenv("DATABRICKS_CONFIG_FILE", str(config_file))
        monkeypatch.setenv("DATABRICKS_HOST", fake.host)
        monkeypatch.setenv("DATABRICKS_TOKEN", TOKEN)
        monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
        monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
        yield fake


def ecom(argv: list[str]) -> int:
    """``ecom <argv>`` with only the remote command registered, handling errors as ``ecom_lakehouse.tools.cli.main``."""
    parser = argparse.ArgumentParser(prog="ecom")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except EcomError as exc:
        print(f"ecom: error: {exc}", file=sys.stderr)
        return 2


def _error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("ecom: error:")]


# ----------------------------------------------------------------------------------------------------------------
# ecom remote run / status.
# ----------------------------------------------------------------------------------------------------------------


def test_run_success_prints_progress_per_task_and_url(workspace: FakeWorkspace, capsys: pytest.CaptureFixture) -> None:
    code = ecom(["remote", "run", *FAST, "--param", "input_path=s3://bucket/raw/", "--param", "catalog=main"])
    out, err = capsys.readouterr()

    assert code == 0, err
    run_id = 501
    url = f"{workspace.host}/?o=1#job/11/run/{run_id}"
    assert f"run {run_id} SUCCESS in 5m 05s: {url}" in out
    assert f"started run {run_id} of job '{DEV_JOB}' (id 11) with input_path=s3://bucket/raw/, catalog=main" in err
    # One line per task and state change: PENDING, RUNNING, TERMINATED SUCCESS (45 s) - never repeated.
    for key in TASKS:
        lines = [line.split() for line in err.splitlines() if line.strip().startswith(key + " ")]
        assert [line[1:3] for line in lines] == [["PENDING", "-"], ["RUNNING", "-"], ["TERMINATED", "SUCCESS"]], err
        assert lines[-1][3] == "45s"
    assert f"run {run_id}: PENDING  {url}" in err
    assert f"run {run_id}: TERMINATED SUCCESS" in err

    (run_now,) = workspace.calls("POST", "/api/2.2/jobs/run-now")
    assert run_now["job_id"] == 11
    assert run_now["job_parameters"] == {"input_path": "s3://bucket/raw/", "catalog": "main"}
    assert run_now["idempotency_token"]
    assert workspace.calls("GET", "/api/2.2/jobs/list")[0]["name"] == DEV_JOB
    assert len(workspace.calls("GET", "/api/2.2/jobs/runs/get")) == len(phases("success"))


def test_run_failure_prints_failing_task_error_and_url(workspace: FakeWorkspace, capsys: pytest.CaptureFixture) -> None:
    workspace.next_outcome = "fail"

    code = ecom(["remote", "run", *FAST])
    out, err = capsys.readouterr()

    assert code == 1
    assert out == ""
    (line,) = _error_lines(err)
    assert line.startswith("ecom: error: run 501 FAILED: task silver_orders FAILED: " + TASK_ERROR)
    assert line.endswith(f"run page: {workspace.host}/?o=1#job/11/run/501")
    assert "gold_aggregates" not in line  # upstream-failed tasks are not reported as causes
    assert re.search(r"gold_aggregates\s+SKIPPED\s+UPSTREAM_FAILED", err)
    assert workspace.calls("GET", "/api/2.2/jobs/runs/get-output") == [{"run_id": "5012"}]


@pytest.mark.parametrize("cancel", [False, True], ids=["leave-running", "cancel-on-timeout"])
def test_run_timeout_exits_non_zero(workspace: FakeWorkspace, capsys: pytest.CaptureFixture, cancel: bool) -> None:
    workspace.next_outcome = "forever"

    started = time.monotonic()
    code = ecom(["remote", "run", "--timeout", "0.01", "--poll-seconds", "0.05", *(["--cancel-on-timeout"] * cancel)])
    elapsed = time.monotonic() - started
    _, err = capsys.readouterr()

    assert code == 3
    assert 0.5 <= elapsed < 5
    (line,) = _error_lines(err)
    assert line.startswith("ecom: error: run 501 still RUNNING after 0.01 min; ")
    assert line.endswith(f"{workspace.host}/?o=1#job/11/run/501")
    assert ("cancel requested" in line) is cancel
    assert ("left running" in line) is not cancel
    assert workspace.runs[501].cancelled is cancel
    assert len([ln for ln in err.splitlines() if ln.strip().startswith("bronze_ingest ")]) == 2  # PENDING, RUNNING


def test_run_no_wait_prints_url(workspace: FakeWorkspace, capsys: pytest.CaptureFixture) -> None:
    assert ecom(["remote", "run", "--no-wait"]) == 0
    assert capsys.readouterr().out.strip() == f"{workspace.host}/?o=1#job/11/run/501"


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--target", "prod"], "no job named 'ecom_pipeline' in http://127.0.0.1:"),
        (
            ["--job-name", "other_job"],
            "no job named '[dev jane_doe] other_job' or '[dev Jane.Doe@example.com] other_job'",
        ),
        (["--job-id", "999"], "no job with id 999 in http://127.0.0.1:"),
    ],
    ids=["prod", "dev-job-name", "job-id"],
)
def test_run_job_not_found(
    workspace: FakeWorkspace, capsys: pytest.CaptureFixture, argv: list[str], expected: str
) -> None:
    code = ecom(["remote", "run", *FAST, *argv])
    err = capsys.readouterr().err

    assert code == 2
    (line,) = err.splitlines()
    assert line.startswith("ecom: error: ")
    assert expected in line
    assert workspace.calls("POST", "/api/2.2/jobs/run-now") == []


def test_run_ambiguous_job_name(workspace: FakeWorkspace, capsys: pytest.CaptureFixture) -> None:
    workspace.add_job(21, "ecom_pipeline")
    workspace.add_job(22, "ecom_pipeline")

    assert ecom(["remote", "run", "--target", "prod"]) == 2
    err = capsys.readouterr().err
    assert "2 jobs are named 'ecom_pipeline': 21 ('ecom_pipeline'), 22 ('ecom_pipeline'); pick one with --job-id" in err

    assert ecom(["remote", "run", "--target", "prod", "--job-id", "22", "--no-wait"]) == 0
    assert workspace.calls("POST", "/api/2.2/jobs/run-now")[0]["job_id"] == 22


@pytest.mark.parametrize(("token", "status"), [("dapi-wrong", 401), ("dapi-forbidden", 403)])
def test_authentication_error_is_one_line(
    workspace: FakeWorkspace, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, token: str, status: int
) -> None:
    monkeypatch.setenv("DATABRICKS_TOKEN", token)

    code = ecom(["remote", "run", *FAST])
    err = capsys.readouterr().err

    assert code == 2
    (line,) = err.splitlines()
    assert line.startswith(f"ecom: error: {'authentication failed' if status == 401 else 'access denied'} ")
    assert f"{workspace.host} (HTTP {status}): Invalid access token; " in line
    assert "DATABRICKS_TOKEN" in line
    assert len(workspace.calls("GET", "/api/2.0/preview/scim/v2/Me")) == 1  # no retries of an auth failure


def test_missing_configuration_is_one_line(
    workspace: FakeWorkspace, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.delenv("DATABRICKS_HOST")
    monkeypatch.delenv("DATABRICKS_TOKEN")

    assert ecom(["remote", "status"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("ecom: error: Databricks authentication is not configured: ")
    assert "set DATABRICKS_HOST and DATABRICKS_TOKEN, or use a ~/.databrickscfg profile (--profile NAME" in line
    assert "Config:" not in line  # the SDK's debug suffix is dropped

    with pytest.raises(RemoteError, match=r"not configured \(profile 'nope'\): .*nope"):
        connect("nope")


def test_unreachable_host_is_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    for key in [k for k in os.environ if k.startswith("DATABRICKS_")]:
        monkeypatch.delenv(key)
    (tmp_path / "cfg").write_text("")
    monkeypatch.setenv("DATABRICKS_CONFIG_FILE", str(tmp_path / "cfg"))
    monkeypatch.setenv("DATABRICKS_HOST", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("DATABRICKS_TOKEN", TOKEN)

    w = connect(retry_timeout_seconds=1)
    with (
        pytest.raises(
            RemoteError, match=rf"^cannot reach http://127.0.0.1:{port} \(Timed out after .*Connection refused"
        ),
        api_errors(w),
    ):
        w.current_user.me()


def test_status_latest_and_given_run(workspace: FakeWorkspace, capsys: pytest.CaptureFixture) -> None:
    first = workspace.add_run(11, "success")
    workspace.runs[first].polls = 99  # finished
    latest = workspace.add_run(11, "fail")
    workspace.runs[latest].polls = 99

    assert ecom(["remote", "status"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"run {latest} '{DEV_JOB}': TERMINATED FAILED (5m 05s)"
    assert re.fullmatch(r"  silver_orders\s+TERMINATED\s+FAILED\s+45s", out[3])
    assert out[-2] == f"  error: task silver_orders FAILED: {TASK_ERROR}"
    assert out[-1] == f"{workspace.host}/?o=1#job/11/run/{latest}"

    assert ecom(["remote", "status", str(first)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"run {first} '{DEV_JOB}': TERMINATED SUCCESS (5m 05s)"
    assert [line.split()[0] for line in out[1:-1]] == list(TASKS)
    assert all("SUCCESS" in line for line in out[1:-1])
    assert out[-1] == f"{workspace.host}/?o=1#job/11/run/{first}"


def test_status_without_runs(workspace: FakeWorkspace, capsys: pytest.CaptureFixture) -> None:
    assert ecom(["remote", "status"]) == 2
    assert "has no runs yet" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------------------------
# ecom remote report.
# ----------------------------------------------------------------------------------------------------------------

_DEC = ("profit", "DECIMAL", "decimal(28,2)")
_YEAR = ("year", "INT", "int")
_CUSTOMER = [("customer_id", "STRING", "string"), ("customer_name", "STRING", "string")]
REPORT_TABLES = {
    "profit_by_year": FakeTable([_YEAR, _DEC], [["2015", "1234.50"], ["2016", "-20.05"]]),
    "profit_by_year_category": FakeTable(
        [_YEAR, ("category", "STRING", "string"), _DEC],
        [["2015", "Furniture", "1000.00"], ["2015", "Technology", "234.50"], ["2016", "Office Supplies", None]],
    ),
    "profit_by_customer": FakeTable(
        [*_CUSTOMER, _DEC],
        [
            ["AA-10315", "Alex Avila", "900.10"],
            ["BB-10000", "Bea Beck", "300.00"],
            ["CC-12345", "Cy Cole", "14.35"],
            ["DD-00001", 'Dee "Quote", Jr.', "0.00"],
            ["EE-00002", None, "-12.00"],
        ],
        chunk_size=3,
    ),
    "profit_by_customer_year": FakeTable(
        [*_CUSTOMER, ("year", "LONG", "bigint"), _DEC], [["AA-10315", "Alex Avila", "2015", "900.10"]]
    ),
}


def test_report_chunks_and_decimals(workspace: FakeWorkspace, capsys: pytest.CaptureFixture) -> None:
    workspace.tables = REPORT_TABLES
    argv = ["remote", "report", "--warehouse-id", "wh-1", "--schema", "dev_jane_doe_ecom_gold", *FAST]

    assert ecom([*argv, "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out, parse_float=Decimal)

    assert list(report) == list(report_queries())
    assert report["profit_by_year"] == [
        {"year": 2015, "profit": Decimal("1234.50")},
        {"year": 2016, "profit": Decimal("-20.05")},
    ]
    assert report["profit_by_year_category"][2] == {"year": 2016, "category": "Office Supplies", "profit": None}
    customers = report["profit_by_customer"]
    assert [c["customer_id"] for c in customers] == ["AA-10315", "BB-10000", "CC-12345", "DD-00001", "EE-00002"]
    assert customers[3]["customer_name"] == 'Dee "Quote", Jr.'
    assert customers[4] == {"customer_id": "EE-00002", "customer_name": None, "profit": Decimal("-12.00")}
    assert report["profit_by_customer_year"] == [
        {"customer_id": "AA-10315", "customer_name": "Alex Avila", "year": 2015, "profit": Decimal("900.10")}
    ]
    # Only the two-chunk result needed a chunk request; the first chunk comes with the statement.
    chunk_calls = [p for m, p, _ in workspace.requests if "/result/chunks/" in p]
    assert chunk_calls == ["/api/2.0/sql/statements/01ef-0003/result/chunks/1"]
    posted = workspace.calls("POST", "/api/2.0/sql/statements")
    assert [body["statement"] for body in posted] == list(report_queries().values())
    assert {(b["warehouse_id"], b["catalog"], b["schema"], b["wait_timeout"]) for b in posted} == {
        ("wh-1", "main", "dev_jane_doe_ecom_gold", "30s")
    }
    assert {(b["disposition"], b["format"]) for b in posted} == {("INLINE", "JSON_ARRAY")}
    assert len(workspace.calls("GET", "/api/2.0/sql/statements/01ef-0001")) == 2  # PENDING -> RUNNING -> SUCCEEDED

    assert ecom([*argv, "--format", "table"]) == 0
    table = capsys.readouterr().out
    assert "== profit_by_customer (5 rows)" in table
    assert re.search(r"^2015\s+1234\.50$", table, re.MULTILINE)  # numbers right-aligned, exact decimals


def test_report_failed_statement(workspace: FakeWorkspace, capsys: pytest.CaptureFixture) -> None:
    workspace.tables = REPORT_TABLES
    workspace.failing_statements = {
        "profit_by_year_category": "[TABLE_OR_VIEW_NOT_FOUND] The table or view `profit_by_year_category` cannot be\n"
        "found. Verify the spelling and correctness of the schema and catalog. SQLSTATE: 42P01"
    }

    code = ecom(["remote", "report", "--warehouse-id", "wh-1", *FAST])
    out, err = capsys.readouterr()

    assert code == 2
    assert out == ""
    (line,) = err.splitlines()
    assert line.startswith(
        "ecom: error: profit_by_year_category: statement FAILED on warehouse wh-1: [TABLE_OR_VIEW_NOT_FOUND] The "
        "table or view `profit_by_year_category` cannot be found."
    )
    assert line.endswith("SQLSTATE: 42P01 [BAD_REQUEST]")
    assert len(workspace.calls("POST", "/api/2.0/sql/statements")) == 2  # stops at the failing query


def test_report_statement_timeout_cancels_it(workspace: FakeWorkspace, capsys: pytest.CaptureFixture) -> None:
    workspace.tables = REPORT_TABLES
    workspace.stuck_statements = {"profit_by_year"}

    code = ecom(["remote", "report", "--warehouse-id", "wh-1", "--timeout", "0.005", "--poll-seconds", "0.05"])

    assert code == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(
        "ecom: error: profit_by_year: statement 01ef-0001 still RUNNING after 0.3 s on warehouse wh-1"
    )
    assert workspace.statements["01ef-0001"].get("cancelled") is True


def test_run_poll_failure_says_the_run_goes_on(workspace: FakeWorkspace, capsys: pytest.CaptureFixture) -> None:
    workspace.broken_poll = 2

    assert ecom(["remote", "run", *FAST]) == 2
    (line,) = _error_lines(capsys.readouterr().err)
    assert (
        "(InternalError INTERNAL_ERROR): Internal server error; stopped watching run 501, which keeps running: " in line
    )
    assert line.endswith(f"{workspace.host}/?o=1#job/11/run/501")


# ----------------------------------------------------------------------------------------------------------------
# Helpers.
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("user_name", "display_name", "short"),
    [
        ("Jane.Doe@example.com", None, "jane_doe"),
        ("test$.user@example.com", None, "test_user"),
        ('"_quoted"@domain.com', None, "quoted"),
        ("jöhn.dœ@domain.com", None, "jöhn_dœ"),
        ("1706906c-c0a2-4c25-9f57-3a7aa3cb8123", "my-service-principal", "my_service_principal"),
        ("1706906c-c0a2-4c25-9f57-3a7aa3cb8123", None, "1706906c_c0a2_4c25_9f57_3a7aa3cb8123"),
    ],
)
def test_short_user_name_matches_the_databricks_cli(user_name: str, display_name: str | None, short: str) -> None:
    assert short_user_name(user_name, display_name) == short


def test_convert_value_and_durations() -> None:
    assert convert_value("12.30", "DECIMAL") == Decimal("12.30")
    assert convert_value("9007199254740993", "LONG") == 9007199254740993
    assert convert_value("7", "int") == 7
    assert convert_value("true", "BOOLEAN") is True
    assert convert_value("2024-05-01", "DATE").isoformat() == "2024-05-01"
    assert convert_value("1.5", "DOUBLE") == 1.5
    assert convert_value("2024-05-01T00:00:00Z", "TIMESTAMP") == "2024-05-01T00:00:00Z"
    assert convert_value(None, "DECIMAL") is None
    assert [format_duration(ms) for ms in (None, 12_400, 185_000, 3_725_000)] == ["-", "12s", "3m 05s", "1h 02m"]


def test_snapshot_keeps_latest_attempt_and_reads_api_2_2_status() -> None:
    run = {
        "run_id": 7,
        "run_page_url": "https://example.cloud.databricks.com/#job/1/run/7",
        "status": {"state": "RUNNING"},  # API 2.2 status only, no deprecated `state`
        "start_time": 1_000,
        "tasks": [
            {
                "task_key": "bronze_ingest",
                "run_id": 70,
                "attempt_number": 0,
                "start_time": 1_000,
                "end_time": 61_000,
                "status": {
                    "state": "TERMINATED",
                    "termination_details": {"code": "RUN_EXECUTION_ERROR", "message": "boom"},
                },
            },
            {"task_key": "silver_dimensions", "run_id": 71, "status": {"state": "BLOCKED"}},
            {
                "task_key": "bronze_ingest",
                "run_id": 72,
                "attempt_number": 1,
                "start_time": 181_000,
                "status": {"state": "RUNNING"},
            },
        ],
    }
    w = SimpleNamespace(jobs=SimpleNamespace(get_run=lambda run_id: Run.from_dict(run)))

    snapshot = get_snapshot(w, 7, now_ms=193_000)  # type: ignore[arg-type]

    assert (snapshot.life_cycle, snapshot.result, snapshot.finished) == ("RUNNING", None, False)
    bronze, silver = snapshot.tasks
    assert (bronze.task_key, bronze.run_id, bronze.attempt, bronze.life_cycle) == ("bronze_ingest", 72, 1, "RUNNING")
    assert format_task(bronze).split() == ["bronze_ingest", "(retry", "1)", "RUNNING", "-", "12s"]
    assert (silver.life_cycle, silver.duration_ms) == ("BLOCKED", None)
    run["status"] = {"state": "TERMINATED", "termination_details": {"code": "SUCCESS", "message": ""}}
    assert get_snapshot(w, 7).succeeded  # type: ignore[arg-type]
