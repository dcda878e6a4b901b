"""End to end on the committed sample: the job's notebooks in job order, ``ecom run`` and ``ecom report`` as
separate processes, and the dashboard's queries, all compared with an independent pandas computation."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from chispa import assert_df_equality

from ecom_lakehouse.config import load_config
from ecom_lakehouse.notebook import run_notebook
from ecom_lakehouse.report import REPORT_NAMES, create_report_views, run_report
from ecom_lakehouse.storage import Lakehouse
from tests.bundle_utils import dashboard_queries
from tests.conftest import REPO_ROOT, SAMPLE_DIR

NOTEBOOKS = ["01_bronze_ingest.py", "02_silver_dimensions.py", "03_silver_orders.py", "04_gold_aggregates.py",
             "05_profit_report.sql"]  # fmt: skip
NOTEBOOK_SCHEMAS = {"bronze_schema": "nb_bronze", "silver_schema": "nb_silver", "gold_schema": "nb_gold"}

pytestmark = pytest.mark.connect


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ecom_lakehouse.cli", "-q", *args], cwd=cwd, capture_output=True, text=True, timeout=600
    )


def _decimal(value: object) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01"))


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory) -> dict[str, object]:
    """`ecom run` on the sample, then `ecom report --format json` in a new process."""
    workdir = tmp_path_factory.mktemp("cli")
    run = _cli("run", "--lakehouse", "lh", cwd=workdir)
    assert run.returncode == 0, run.stderr
    report = _cli("report", "--lakehouse", "lh", "--format", "json", cwd=workdir)
    assert report.returncode == 0, report.stderr
    return {"dir": workdir, "run_stdout": run.stdout, "report": json.loads(report.stdout)}


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


def test_dashboard_queries_run_against_gold(spark, cli_run):
    config = load_config()
    Lakehouse.open(spark, config, cli_run["dir"] / "lh")
    create_report_views(spark, config)
    spark.sql(f"USE {config.schema('gold')}")
    queries = dashboard_queries(REPO_ROOT / "src" / "dashboards" / "ecom_profit.lvdash.json")
    assert queries
    for name, sql in queries.items():
        assert spark.sql(sql).count() > 0, name


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
