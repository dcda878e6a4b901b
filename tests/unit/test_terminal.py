"""What ``ecom`` prints (no Spark): the compact table report, the run summary, the plain progress lines, and the
report results named by the SQL notebook's cell titles."""

from __future__ import annotations

import logging
import re
from decimal import Decimal

import pytest

from ecom_lakehouse.errors import EcomError
from ecom_lakehouse.fields import REPORT_NAMES
from ecom_lakehouse.tools import report as report_module
from ecom_lakehouse.tools.console import terminal
from ecom_lakehouse.tools.quality import run_summary
from ecom_lakehouse.tools.render import ALL_ROWS_HINT, render_csv, render_table


def _customers(n):
    return [{"customer_id": f"C-{i:03d}", "customer_name": f"Name {i}", "profit": Decimal(i * 7 % n) - 40}
            for i in range(n)]  # fmt: skip


def test_compact_table_shows_the_top_and_bottom_ten_customers_and_counts_the_rest():
    rows = _customers(50)
    report = {"profit_by_year": [{"year": 2016, "profit": Decimal("1.50")}], "profit_by_customer": rows}
    text = render_table(report, compact=True)
    lines = text.splitlines()
    assert "== profit_by_customer (50 rows)" in lines
    assert "... 30 more rows between the top and bottom 10 by profit ..." in lines
    shown = [line for line in lines if line.startswith("C-")]
    profits = sorted((r["profit"] for r in rows), reverse=True)
    assert [Decimal(line.split()[-1]) for line in shown] == profits[:10] + profits[-10:]
    assert lines[-1] == f"({ALL_ROWS_HINT})"
    assert re.search(r"^2016 +1\.50$", text, re.M)  # short reports whole
    assert render_table(report).count("\nC-") == 50  # the full table (--all) has every row


def test_compact_table_keeps_a_short_customer_report_whole_and_csv_is_never_cut():
    rows = _customers(15)
    text = render_table({"profit_by_customer": rows}, compact=True)
    assert text.count("\nC-") == 15 and "more rows" not in text and ALL_ROWS_HINT not in text
    assert render_csv({"profit_by_customer": _customers(50)}).count("\nC-") == 50


def test_run_summary_lists_rows_by_schema_reasons_and_the_reconciliation():
    record = {
        "run_id": "r1", "status": "succeeded",
        "rows": {"spark_catalog.ecom_bronze.orders_raw": 3000, "spark_catalog.ecom_silver.quarantine[orders]": 6},
        "rule_counts": {"orders.profit_invalid": 2, "orders.row_id_missing": 4, "orders.price_out_of_scale": 1,
                        "orders.price_invalid": 0},
        "reconciliation": {"orders.bronze": "3000", "orders.silver": "2994", "orders.quarantined": "6",
                           "orders.superseded": "0", "profit.silver": "103795.50"},
    }  # fmt: skip
    lines = run_summary(record, 12.34)
    assert lines[0] == "run r1: succeeded in 12.3 s"
    assert "  rows written to ecom_bronze: orders_raw 3,000" in lines
    assert "  rows written to ecom_silver: quarantine[orders] 6" in lines
    assert "  quarantined by reason: orders.row_id_missing 4, orders.profit_invalid 2" in lines
    assert "  kept and flagged: orders.price_out_of_scale 1" in lines
    assert lines[-1].startswith("  reconciliation ok: order lines 3000 = 2994 in silver + 6 quarantined")
    unchanged = run_summary({"run_id": "r2", "status": "unchanged"}, 3.0)
    assert unchanged[0] == "run r2: unchanged in 3.0 s" and len(unchanged) == 2


def test_plain_progress_lines_leave_out_the_live_status_and_debug_records(capsys):
    log = logging.getLogger("ecom_lakehouse.test")
    with terminal():
        log.debug("t: writing", extra={"ecom_status": "writing t"})
        log.debug("detail nobody asked for")
        log.info("t: %s rows in %.1f s", "3,000", 1.25)
        log.warning("look at this")
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2
    assert re.fullmatch(r"\d\d:\d\d:\d\d t: 3,000 rows in 1\.2 s", err[0])
    assert re.fullmatch(r"\d\d:\d\d:\d\d warning: look at this", err[1])
    with terminal(quiet=True):
        log.info("hidden")
        log.warning("shown")
    assert capsys.readouterr().err.count("\n") == 1


def test_report_results_are_named_by_the_notebooks_cell_titles():
    assert list(report_module.report_queries()) == list(REPORT_NAMES)
    assert report_module.report_queries()["profit_by_year"].startswith(
        "SELECT year, profit, anomaly_profit, anomaly_lines FROM profit_by_year"
    )


def test_a_report_name_without_its_titled_cell_is_a_clear_error(tmp_path, monkeypatch):
    notebook = tmp_path / "05_profit_report.sql"
    text = report_module.report_notebook().read_text(encoding="utf-8")
    notebook.write_text(text.replace("-- DBTITLE 1,profit_by_customer_year\n", ""), encoding="utf-8")
    monkeypatch.setattr(report_module, "report_notebook", lambda: notebook)
    with pytest.raises(EcomError, match="no cell titled profit_by_customer_year"):
        report_module.report_queries()
