"""End to end on the committed sample: the job's notebooks in job order, ``ecom run`` and ``ecom report`` as
separate processes, and the dashboard's queries, all compared with an independent pandas computation."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from chispa import assert_df_equality

from ecom_lakehouse.config import load_config
from ecom_lakehouse.io.tables import Lakehouse
from ecom_lakehouse.tools.notebook import run_notebook
from ecom_lakehouse.tools.report import REPORT_NAMES, create_report_views, run_report
from tests.bundle_utils import dashboard_queries
from tests.conftest import REPO_ROOT, SAMPLE_DIR

NOTEBOOKS = ["01_bronze_ingest.py", "02_silver_dimensions.py", "03_silver_orders.py", "04_gold_aggregates.py",
             "05_profit_report.sql"]  # fmt: skip
NOTEBOOK_SCHEMAS = {"bronze_schema": "nb_bronze", "silver_schema": "nb_silver", "gold_schema": "nb_gold"}


def _cli(*args: str, cwd: Path, quiet: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ecom_lakehouse.tools.cli", *(["-q"] if quiet else []), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )


def _decimal(value: object) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01"))


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory) -> dict[str, object]:
    """`ecom run` on the sample, then `ecom report --format json` in a new process."""
    workdir = tmp_path_factory.mktemp("cli")
    shutil.copytree(SAMPLE_DIR, workdir / "export")
    # paths relative to the command's directory, which is not the server's: the command hands the server absolute ones
    run = _cli("run", "--input", "export", "--lakehouse", "lh", cwd=workdir, quiet=False)
    assert run.returncode == 0, run.stderr
    before = _files(workdir / "lh")
    report = _cli("report", "--lakehouse", "lh", "--format", "json", cwd=workdir)
    assert report.returncode == 0, report.stderr
    read_only = [
        _cli("report", "--lakehouse", "lh", "--all", cwd=workdir),
        _cli("sql", "SELECT count(*) AS n FROM profit_by_customer", "--lakehouse", "lh",
             cwd=workdir),
        _cli("quality", "--lakehouse", "lh", cwd=workdir),
        # README's own example (defect 3 of the one-process catalog: only gold was registered for `ecom sql`)
        _cli("sql", "SELECT dataset, count(*) AS n FROM spark_catalog.ecom_silver.quarantine GROUP BY dataset",
             "--lakehouse", "lh", cwd=workdir),
    ]  # fmt: skip
    assert all(r.returncode == 0 for r in read_only), [r.stderr for r in read_only]
    return {"dir": workdir, "run_stdout": run.stdout, "run_stderr": run.stderr, "report": json.loads(report.stdout),
            "files_before": before, "files_after": _files(workdir / "lh"), "read_only": read_only}  # fmt: skip


def _files(root: Path) -> dict[str, tuple[int, int]]:
    """Every file of the lakehouse (but the JVM's log) with its size and modification time."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")
            if p.is_file() and "_logs" not in p.parts}  # fmt: skip


def test_the_terminal_shows_progress_a_summary_and_a_compact_report(cli_run, expected_report):
    err = cli_run["run_stderr"].splitlines()
    first_progress = next(i for i, line in enumerate(err) if re.search(r": [\d,]+ rows in [\d.]+ s$", line))
    assert first_progress <= 5, err[:first_progress]
    assert not [line for line in err if re.search(r"ivy|log4j|WARN |NativeCodeLoader", line, re.I)]
    total = sum(expected_report["by_year"].values())
    assert any(line.endswith("  reconciliation ok: order lines 3000 = 2994 in silver + 6 quarantined + 0 superseded; "
                             f"profit {total} in silver = gold") for line in err)  # fmt: skip
    out = cli_run["run_stdout"].splitlines()
    assert len(out) <= 80
    sizes = {name: len(rows) for name, rows in cli_run["report"].items()}
    assert f"== profit_by_customer ({sizes['profit_by_customer']} rows)" in out
    assert f"== profit_by_customer_year ({sizes['profit_by_customer_year']} rows)" in out
    assert sum(line.startswith("... ") and "more rows" in line for line in out) == 2
    full = cli_run["read_only"][0].stdout  # --all: every row
    sections = {part.split(" ", 1)[0]: part.split("\n")[3:] for part in full.split("== ")[1:]}
    assert {name: len([row for row in rows if row]) for name, rows in sections.items()} == sizes


def test_the_profit_flagged_lines_carry_is_reported_per_year_and_listed_by_ecom_quality(cli_run):
    """The sample carries 9 injected value anomalies (_anomalies.csv): the report's anomaly columns name exactly those
    lines' profit per year, and `ecom quality` lists each rule's lines."""
    import csv

    injected = list(csv.DictReader((SAMPLE_DIR / "_anomalies.csv").open(encoding="utf-8")))
    orders = {str(o["Row ID"]): o for o in json.loads((SAMPLE_DIR / "orders_export.json").read_text(encoding="utf-8"))}
    expected: dict[int, list] = {}
    for anomaly in injected:
        line = orders[anomaly["row_id"]]
        year = int(line["Order Date"].split("/")[-1])
        expected.setdefault(year, []).append(_decimal(line["Profit"]))
    by_year = {
        r["year"]: (_decimal(r["anomaly_profit"]), r["anomaly_lines"]) for r in cli_run["report"]["profit_by_year"]
    }
    assert by_year == {y: (sum(expected.get(y, []), Decimal("0.00")), len(expected.get(y, []))) for y in by_year}
    quality = cli_run["read_only"][2].stdout
    for rule in ("price_out_of_scale", "profit_margin_implausible", "profit_zero_implausible"):
        assert f"  {rule}: 3 lines." in quality


def test_read_only_commands_write_nothing(cli_run):
    assert cli_run["files_after"] == cli_run["files_before"]
    assert ["orders", "6"] in [line.split() for line in cli_run["read_only"][3].stdout.splitlines()]  # silver, by name
    assert "n\n" in cli_run["read_only"][1].stdout and "238" in cli_run["read_only"][1].stdout
    assert "succeeded" in cli_run["read_only"][2].stdout


def test_ecom_run_then_report_in_a_new_process(cli_run, expected_report):
    report = cli_run["report"]
    assert list(report) == list(REPORT_NAMES)
    assert {r["year"]: _decimal(r["profit"]) for r in report["profit_by_year"]} == expected_report["by_year"]
    assert {(r["year"], r["category"]): _decimal(r["profit"]) for r in report["profit_by_year_category"]} == (
        expected_report["by_year_category"]
    )
    by_customer = {r["customer_id"]: _decimal(r["profit"]) for r in report["profit_by_customer"]}
    assert len(by_customer) == len(report["profit_by_customer"])  # one row per customer id
    assert by_customer == expected_report["by_customer"]
    assert {(r["customer_id"], r["year"]): _decimal(r["profit"]) for r in report["profit_by_customer_year"]} == (
        expected_report["by_customer_year"]
    )
    assert set(report["profit_by_customer"][0]) == {"customer_id", "customer_name", "profit"}
    assert "== profit_by_year" in cli_run["run_stdout"]


def test_quarantine_holds_exactly_the_bad_sample_lines(spark, cli_run, expected_report):
    lakehouse = Lakehouse.open(spark, load_config(), cli_run["dir"] / "lh")
    quarantine = lakehouse.read("silver", "quarantine").where("dataset = 'orders'").collect()
    assert len(quarantine) == expected_report["quarantined"] == 6
    assert all(r.reasons and r.record and r.source_file.endswith("orders_export.json") for r in quarantine)
    assert lakehouse.read("silver", "orders").count() == expected_report["lines"]


def test_job_notebooks_in_job_order_produce_the_same_gold_as_ecom_run(spark, cli_run):
    root = cli_run["dir"] / "lh"
    params = {"catalog": "spark_catalog", "input_path": str(SAMPLE_DIR), "run_id": "4242", **NOTEBOOK_SCHEMAS}
    spark.conf.set("ecom.lakehouse.root", str(root))
    results = {}
    for name in NOTEBOOKS:
        results[name] = run_notebook(spark, REPO_ROOT / "notebooks" / name, params).results
    config = load_config()
    notebook_config = config.with_overrides(**NOTEBOOK_SCHEMAS)
    lakehouse = Lakehouse.open(spark, config, root)
    notebook_gold = spark.table(notebook_config.table("gold", "profit"))
    assert_df_equality(notebook_gold, lakehouse.read("gold", "profit"), ignore_row_order=True, ignore_nullable=True)
    # each Python notebook ends by displaying what it wrote; the SQL notebook returns the four report queries
    assert all(results[name][-1].df.count() > 0 for name in NOTEBOOKS[:4])
    assert len(results["05_profit_report.sql"]) == 4
    assert run_report(spark, notebook_config) == run_report(spark, config)


def test_the_jobs_notebooks_each_in_its_own_process_as_the_job_runs_them(cli_run, tmp_path):
    """Defect 1 of the one-process catalog: the SQL report notebook, run in a process of its own after 01-04, did not
    find the gold schema. Each task is now a new `ecom notebook run` on the shared server."""
    params = ["--param", f"input_path={SAMPLE_DIR}", "--param", "run_id=77", "--param", "catalog=spark_catalog"]
    outputs = {}
    for name in NOTEBOOKS:
        done = _cli("notebook", "run", str(REPO_ROOT / "notebooks" / name), "--lakehouse", str(tmp_path / "lh"),
                    *params, cwd=tmp_path)  # fmt: skip
        assert done.returncode == 0, f"{name}: {done.stderr}"
        outputs[name] = done.stdout
    lines = outputs["05_profit_report.sql"].splitlines()
    for row in cli_run["report"]["profit_by_year"]:  # the notebook's report shows the profit `ecom run` reports
        assert any(line.split()[:2] == [str(row["year"]), str(_decimal(row["profit"]))] for line in lines), row


def test_dashboard_queries_run_against_gold(spark, cli_run):
    config = load_config()
    Lakehouse.open(spark, config, cli_run["dir"] / "lh")
    create_report_views(spark, config)
    spark.sql(f"USE {config.schema('gold')}")
    try:
        queries = dashboard_queries(REPO_ROOT / "src" / "dashboards" / "ecom_profit.lvdash.json")
        assert queries
        for name, sql in queries.items():
            assert spark.sql(sql).count() > 0, name
    finally:
        spark.sql("USE spark_catalog.default")  # the session is the suite's: leave no current schema behind


def test_report_on_a_missing_lakehouse_is_one_clear_error(tmp_path):
    result = _cli("report", "--lakehouse", "nowhere", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("ecom: error: ") and "nowhere" in result.stderr


def test_run_on_an_input_without_sources_is_one_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    result = _cli("run", "--input", "empty", "--lakehouse", "lh", cwd=tmp_path)
    assert result.returncode == 2
    assert "no source file for orders, customers, products" in result.stderr.strip().splitlines()[-1]


def test_gold_table_and_columns_carry_comments(spark, cli_run):
    config = load_config()
    Lakehouse.open(spark, config, cli_run["dir"] / "lh")
    table = config.table("gold", "profit")
    details = {r.col_name: r.data_type for r in spark.sql(f"DESCRIBE TABLE EXTENDED {table}").collect()}
    assert details["Comment"].startswith("Profit (USD) by order year")
    comments = {r.col_name: r.comment for r in spark.sql(f"DESCRIBE TABLE {table}").collect()}
    assert comments["profit"].startswith("Sum of the order lines' profit")
    assert all(comments[c] for c in ("year", "category", "sub_category", "customer_id", "customer_name"))


@pytest.mark.classic
def test_classic_mode_runs_and_reports_in_processes_of_their_own(tmp_path, expected_report):
    """The dedicated-cluster API end to end: `ecom run` and `ecom report`, each its own JVM (the classic pass only)."""
    from ecom_lakehouse.spark import CLASSIC, spark_mode

    if spark_mode() != CLASSIC:
        pytest.skip("runs in the classic pass (ECOM_SPARK_MODE=classic pytest -m classic)")
    run = _cli("run", "--lakehouse", "lh", "--format", "json", cwd=tmp_path, quiet=False)
    assert run.returncode == 0, run.stderr
    assert "(classic) ready in" in run.stderr and (tmp_path / "lh" / "_logs" / "spark.log").is_file()
    report = _cli("report", "--lakehouse", "lh", "--format", "json", cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    assert json.loads(report.stdout) == json.loads(run.stdout)
    by_year = {r["year"]: _decimal(r["profit"]) for r in json.loads(report.stdout)["profit_by_year"]}
    assert by_year == expected_report["by_year"]
