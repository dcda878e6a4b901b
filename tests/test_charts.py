"""The chart page and PNGs of the profit report (no Spark): pure checks of the HTML, then the page as drawn by
headless Chromium (skipped when Chromium is not installed)."""

from __future__ import annotations

import re
import struct
import subprocess
from decimal import Decimal
from pathlib import Path

import pytest

from ecom_lakehouse.charts import CHROMIUM_FLAGS, find_chromium, render_html, render_png
from ecom_lakehouse.errors import EcomError
from ecom_lakehouse.report import REPORT_NAMES

YEARS = (2014, 2015, 2016)
CATEGORIES = ("Furniture", "Office Supplies", "Technology")
SPECIAL_NAMES = {"C-00": "Sean O'Donnell", "C-01": "Peter Bühler", "C-02": "Evil </script><b>Tag</b> & Co"}
CHROMIUM = find_chromium()
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="headless Chromium not installed (CI: `apt-get install -y chromium`, or set ECOM_CHROMIUM)",
)


def _profit(i: int, year: int) -> Decimal:
    # Deterministic mix of positive and negative values with exact cents, some large enough for separators.
    cents = ((i * 7919 + year * 104729) % 900_001) - 250_000
    if i % 9 == 4:
        cents -= 1_500_000
    return Decimal(cents).scaleb(-2)


def make_report() -> dict[str, list[dict[str, object]]]:
    customers = [(f"C-{i:02d}", SPECIAL_NAMES.get(f"C-{i:02d}", f"Customer {i:02d}")) for i in range(30)]
    by_customer_year = [
        {"customer_id": cid, "customer_name": name, "year": year, "profit": _profit(i, year)}
        for i, (cid, name) in enumerate(customers)
        for year in YEARS
        if not (i == 4 and year == 2015)  # a (big-loss, so charted) customer without orders in one year
    ]
    totals: dict[str, Decimal] = {}
    for row in by_customer_year:
        totals[row["customer_id"]] = totals.get(row["customer_id"], Decimal(0)) + row["profit"]
    by_customer = sorted(
        ({"customer_id": cid, "customer_name": name, "profit": totals[cid]} for cid, name in customers),
        key=lambda r: -r["profit"],
    )
    by_year_category = [
        {"year": year, "category": cat, "profit": Decimal("1234.56") * (j + 1) - Decimal(year - 2014) * 3000}
        for year in YEARS
        for j, cat in enumerate(CATEGORIES)
    ]
    by_year = [{"year": y, "profit": sum((r["profit"] for r in by_year_category if r["year"] == y), Decimal(0))}
               for y in YEARS]  # fmt: skip
    by_year[1]["profit"] = Decimal("-4321.05")  # a negative year
    return {
        "profit_by_year": by_year,
        "profit_by_year_category": by_year_category,
        "profit_by_customer": by_customer,
        "profit_by_customer_year": by_customer_year,
    }


@pytest.fixture(scope="module")
def report() -> dict[str, list[dict[str, object]]]:
    return make_report()


@pytest.fixture(scope="module")
def page(report: dict[str, list[dict[str, object]]]) -> str:
    return render_html(report, title="Profit report — test")


# --- pure HTML ---------------------------------------------------------------------------------------------------


def test_page_is_self_contained(page: str) -> None:
    assert page.startswith("<!DOCTYPE html>")
    assert "<link" not in page.lower()
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", page, re.IGNORECASE)
    assert not re.search(r"@import|url\(\s*['\"]?(?:https?:)?//", page, re.IGNORECASE)
    assert '<script type="application/json" id="report-data">' in page


def test_page_has_the_four_chart_containers(page: str) -> None:
    for name in REPORT_NAMES:
        assert page.count(f'data-chart="{name}"') == 1, name


def test_names_are_escaped(page: str) -> None:
    assert "Sean O&#x27;Donnell" in page
    assert "Peter Bühler" in page
    assert "Evil &lt;/script&gt;&lt;b&gt;Tag&lt;/b&gt; &amp; Co" in page
    assert "<b>Tag</b>" not in page
    # The JSON block cannot be closed early: exactly two closing script tags per script element.
    assert page.count("</script>") == page.count("<script")
    block = page.split('id="report-data">', 1)[1].split("</script>", 1)[0]
    assert "</" not in block and "<" not in block


def test_tables_hold_exact_decimals(page: str, report: dict[str, list[dict[str, object]]]) -> None:
    assert "<td class=num>-4,321.05</td>" in page
    for row in report["profit_by_customer_year"]:
        assert f"<td class=num>{row['profit']:,.2f}</td>" in page
    big = max(report["profit_by_customer"], key=lambda r: abs(r["profit"]))
    assert abs(big["profit"]) >= 1000  # the sample exercises thousands separators
    assert f"{big['profit']:,.2f}" in page
    # Every row of every aggregate is in its table (800 customers in real data: the table holds all of them).
    for name in REPORT_NAMES:
        assert f"{name} &mdash; {len(report[name])} rows" in page


def test_exact_decimal_never_through_float() -> None:
    value = Decimal("12345678901234.57")  # not representable as a float with cents
    page = render_html({"profit_by_year": [{"year": 2020, "profit": value}]})
    assert "12,345,678,901,234.57" in page
    assert '"v":"12345678901234.57"' in page


def test_empty_report_renders_no_data() -> None:
    page = render_html({})
    for name in REPORT_NAMES:
        assert f'data-chart="{name}"' in page
    assert page.count("No data.") == len(REPORT_NAMES)


def test_only_renders_one_chart_without_tables(report: dict[str, list[dict[str, object]]]) -> None:
    page = render_html(report, only="profit_by_customer")
    assert 'data-chart="profit_by_customer"' in page
    assert 'data-chart="profit_by_year"' not in page
    assert "<table" not in page
    with pytest.raises(EcomError, match="unknown chart"):
        render_html(report, only="nope")


def test_render_png_names_the_missing_browser(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ECOM_CHROMIUM", str(tmp_path / "no-such-chromium"))
    with pytest.raises(EcomError, match=r"Chromium.*apt-get install -y chromium"):
        render_png({}, tmp_path / "out")


# --- drawn by headless Chromium ----------------------------------------------------------------------------------


def _dump_dom(html_text: str, tmp_path: Path) -> tuple[str, str]:
    """Load the page in headless Chromium; return the DOM after the scripts ran, and Chromium's stderr."""
    page = tmp_path / "report.html"
    page.write_text(html_text, encoding="utf-8")
    command = [
        str(CHROMIUM),
        *CHROMIUM_FLAGS,
        f"--user-data-dir={tmp_path / 'profile'}",
        "--enable-logging=stderr",
        "--v=0",
        "--window-size=1280,1000",
        "--dump-dom",
        page.as_uri(),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout, result.stderr


def _charts(dom: str) -> dict[str, dict[str, str]]:
    charts = {}
    for tag in re.findall(r"<div [^>]*data-chart=[^>]*>", dom):
        attrs = dict(re.findall(r'([\w-]+)="([^"]*)"', tag))
        charts[attrs["data-chart"]] = attrs
    return charts


def _console_messages(stderr: str) -> list[str]:
    # The page logs nothing when all is well; Chromium writes console output (console.error, "Uncaught ...") as
    # ":CONSOLE(" / ":CONSOLE:" log lines.
    return [line for line in stderr.splitlines() if re.search(r":CONSOLE[(:]", line)]


@needs_chromium
def test_every_chart_draws_without_errors(page: str, tmp_path: Path) -> None:
    dom, stderr = _dump_dom(page, tmp_path)
    body = re.search(r"<body [^>]*>", dom)
    assert body, dom[:500]
    assert 'data-errors=""' in body.group(0), body.group(0)
    assert 'data-charts-done="true"' in body.group(0)
    assert _console_messages(stderr) == []
    charts = _charts(dom)
    assert set(charts) == set(REPORT_NAMES)
    expected_marks = {
        "profit_by_year": 3,
        "profit_by_year_category": 9,
        "profit_by_customer": 20,  # top 10 + bottom 10 of 30
        "profit_by_customer_year": 25 * 3 - 1,  # 25 customers x 3 years, one customer lacks a year
    }
    for name, attrs in charts.items():
        assert attrs.get("data-rendered") == "true", (name, attrs)
        assert int(attrs.get("data-marks", "0")) == expected_marks[name], (name, attrs)
    assert dom.count('class="mark"') == sum(expected_marks.values())


@needs_chromium
def test_empty_report_draws_no_data(tmp_path: Path) -> None:
    dom, stderr = _dump_dom(render_html({name: [] for name in REPORT_NAMES}), tmp_path)
    assert 'data-errors=""' in dom
    assert _console_messages(stderr) == []
    charts = _charts(dom)
    assert set(charts) == set(REPORT_NAMES)
    assert all(a.get("data-rendered") == "true" and a.get("data-marks") == "0" for a in charts.values()), charts


@needs_chromium
def test_script_errors_are_reported(tmp_path: Path) -> None:
    # The error capture itself works: a broken chart spec shows up in data-errors and on the console check.
    page = render_html(make_report()).replace('"kind":"hbars"', '"kind":"nonexistent"')
    dom, _ = _dump_dom(page, tmp_path)
    assert re.search(r'data-errors="profit_by_customer: [^"]+"', dom)
    assert 'data-rendered="error"' in dom


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    assert data[12:16] == b"IHDR", path
    return struct.unpack(">II", data[16:24])


@needs_chromium
def test_render_png_writes_one_png_per_chart(report: dict[str, list[dict[str, object]]], tmp_path: Path) -> None:
    paths = render_png(report, tmp_path / "charts")
    assert [p.name for p in paths] == [f"{name}.png" for name in REPORT_NAMES]
    for path in paths:
        width, height = _png_size(path)
        assert width > 100 and height > 100, (path, width, height)
        assert path.stat().st_size > 5000, path
