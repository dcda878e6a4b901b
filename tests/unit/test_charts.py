"""The charts of the profit report (no Spark): the Vega-Lite spec of each chart, the self-contained HTML page and
the PNGs (pure, no browser), then the page as drawn by headless Chromium (skipped when Chromium is not installed)."""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import sys
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path

import pytest

try:
    import altair  # noqa: F401
    import vl_convert  # noqa: F401
except ImportError:
    if os.environ.get("CI"):  # CI must install the extra: a skipped module there would hide it
        raise
    pytest.skip("charts need the charts extra: pip install 'ecom-lakehouse[charts]'", allow_module_level=True)

from ecom_lakehouse.errors import EcomError
from ecom_lakehouse.fields import REPORT_NAMES
from ecom_lakehouse.tools import charts as charts_module
from ecom_lakehouse.tools.charts import CHART_TITLES, charts, render_html, render_png

Report = dict[str, list[dict[str, object]]]

YEARS = (2014, 2015, 2016)
CATEGORIES = ("Furniture", "Office Supplies", "Technology")
EVIL = "Evil </script><b>Tag</b> & Co"
SPECIAL_NAMES = {"C-00": "Sean O'Donnell", "C-01": "Peter Bühler", "C-02": EVIL}
MISSING = ("C-04", 2015)  # a (big-loss, so charted) customer without orders in one year


def _profit(i: int, year: int) -> Decimal:
    # Deterministic mix of positive and negative values with exact cents, some large enough for separators.
    cents = ((i * 7919 + year * 104729) % 900_001) - 250_000
    if i % 9 == 4:
        cents -= 1_500_000
    return Decimal(cents).scaleb(-2)


def make_report(customers: int = 30, years: tuple[int, ...] = YEARS) -> Report:
    people = [(f"C-{i:02d}", SPECIAL_NAMES.get(f"C-{i:02d}", f"Customer {i:02d}")) for i in range(customers)]
    by_customer_year = [
        {"customer_id": cid, "customer_name": name, "year": year, "profit": _profit(i, year)}
        for i, (cid, name) in enumerate(people)
        for year in years
        if (cid, year) != MISSING
    ]
    totals: dict[str, Decimal] = {}
    for row in by_customer_year:
        totals[row["customer_id"]] = totals.get(row["customer_id"], Decimal(0)) + row["profit"]
    by_customer = sorted(
        ({"customer_id": cid, "customer_name": name, "profit": totals[cid]} for cid, name in people),
        key=lambda r: -r["profit"],
    )
    by_year_category = [
        {"year": year, "category": cat, "profit": Decimal("1234.56") * (j + 1) - Decimal(year - years[0]) * 3000}
        for year in years
        for j, cat in enumerate(CATEGORIES)
    ]
    by_year = [{"year": y, "profit": sum((r["profit"] for r in by_year_category if r["year"] == y), Decimal(0))}
               for y in years]  # fmt: skip
    by_year[1]["profit"] = Decimal("-4321.05")  # a negative year
    return {
        "profit_by_year": by_year,
        "profit_by_year_category": by_year_category,
        "profit_by_customer": by_customer,
        "profit_by_customer_year": by_customer_year,
    }


@pytest.fixture(scope="module")
def report() -> Report:
    return make_report()


@pytest.fixture(scope="module")
def specs(report: Report) -> dict[str, dict]:
    return {name: chart.to_dict() for name, chart in charts(report).items()}


@pytest.fixture(scope="module")
def page(report: Report) -> str:
    return render_html(report, title="Profit report — test")


def _values(spec: dict) -> list[dict]:
    """The inline data rows of a (layered) chart spec."""
    if "values" in spec.get("data", {}):
        return spec["data"]["values"]
    (values,) = spec["datasets"].values()
    return values


def _marks(spec: dict) -> list[str]:
    layers = spec.get("layer", [spec])
    return [layer["mark"]["type"] if isinstance(layer["mark"], dict) else layer["mark"] for layer in layers]


def _encoding(spec: dict, mark: str) -> dict:
    return next(layer["encoding"] for layer in spec.get("layer", [spec]) if _marks(layer) == [mark])


def _title(spec: dict) -> str:
    return spec["title"] if isinstance(spec["title"], str) else spec["title"]["text"]


# --- the Vega-Lite specs -----------------------------------------------------------------------------------------


def test_charts_build_the_four_titled_charts(specs: dict[str, dict]) -> None:
    assert list(specs) == list(REPORT_NAMES)
    for name, spec in specs.items():
        assert _title(spec) == CHART_TITLES[name]
        assert spec["$schema"].startswith("https://vega.github.io/schema/vega-lite/")


def test_charts_render_standalone_for_a_notebook(report: Report) -> None:
    # Databricks: displayHTML(chart.to_html(inline=True)) works without internet access (altair inlines the JS).
    chart = charts(report)["profit_by_year"]
    standalone = chart.to_html(inline=True)
    assert "-4,321.05" in standalone and "vegaEmbed" in standalone
    assert not [attrs for tag, attrs in _tags(standalone) if "src" in attrs]


def test_profit_by_year_spec(specs: dict[str, dict], report: Report) -> None:
    spec = specs["profit_by_year"]
    assert _marks(spec) == ["bar", "text", "text"]  # bars, labels of gains above and of losses below
    bars = _encoding(spec, "bar")
    assert bars["x"]["field"] == "year" and bars["x"]["type"] == "ordinal"
    assert bars["y"]["field"] == "profit" and bars["y"]["type"] == "quantitative"
    assert [t["field"] for t in bars["tooltip"]] == ["year", "profit_label", "anomalies"]
    for layer in spec["layer"][1:]:
        assert layer["encoding"]["text"]["field"] == "profit_label"
    values = _values(spec)
    assert [v["year"] for v in values] == list(YEARS)
    assert [v["profit_label"] for v in values] == [f"{r['profit']:,.2f}" for r in report["profit_by_year"]]
    assert values[1]["profit_label"] == "-4,321.05" and values[1]["sign"] == "loss"
    assert values[1]["profit"] == -4321.05  # the float is only the bar's position


def test_profit_by_year_tooltip_shows_the_profit_of_flagged_lines() -> None:
    rows = [
        {"year": 2014, "profit": Decimal("100.00"), "anomaly_profit": Decimal("-1234.50"), "anomaly_lines": 2},
        {"year": 2015, "profit": Decimal("50.00"), "anomaly_profit": Decimal("0.00"), "anomaly_lines": 0},
        {"year": 2016, "profit": Decimal("75.00")},  # a report from before the anomaly columns
    ]
    values = _values(charts({"profit_by_year": rows})["profit_by_year"].to_dict())
    assert [v["anomalies"] for v in values] == ["-1,234.50 on 2 lines", "0.00 on 0 lines", "-"]


def test_profit_by_year_category_spec(specs: dict[str, dict]) -> None:
    spec = specs["profit_by_year_category"]
    assert _marks(spec) == ["bar"]
    enc = spec["encoding"]
    assert (enc["x"]["field"], enc["xOffset"]["field"], enc["y"]["field"]) == ("year", "category", "profit")
    assert enc["color"]["field"] == "category"
    assert [t["field"] for t in enc["tooltip"]] == ["year", "category", "profit_label"]
    values = _values(spec)
    assert len(values) == 9
    assert {(v["year"], v["category"]) for v in values} == {(y, c) for y in YEARS for c in CATEGORIES}
    assert {v["profit_label"] for v in values if v["year"] == 2016} == {"-4,765.44", "-3,530.88", "-2,296.32"}


def test_profit_by_customer_spec_has_top_and_bottom_ten(specs: dict[str, dict], report: Report) -> None:
    spec = specs["profit_by_customer"]
    assert _marks(spec) == ["bar", "text", "text"]
    bars = _encoding(spec, "bar")
    assert (bars["y"]["field"], bars["x"]["field"]) == ("customer", "profit")
    values = _values(spec)
    assert len(values) == 20
    ranked = sorted(report["profit_by_customer"], key=lambda r: -r["profit"])
    expected = ranked[:10] + ranked[-10:]
    assert [v["customer_id"] for v in values] == [r["customer_id"] for r in expected]
    assert [v["profit_label"] for v in values] == [f"{r['profit']:,.2f}" for r in expected]
    assert bars["y"]["sort"] == [v["customer"] for v in values]  # best first, the worst at the bottom
    assert [v["rank"] for v in values] == [f"{i} of 30" for i in [*range(1, 11), *range(21, 31)]]
    assert [v["description"] for v in values][:2] == [f"{r['customer_name']}: {r['profit']:,.2f}" for r in ranked[:2]]
    assert values[-1]["profit"] < 0 and values[-1]["profit_label"].startswith("-")  # losses left of zero
    assert EVIL in {v["customer"] for v in values}  # names are data (drawn as text), escaped only in the page


def test_profit_by_customer_year_spec_is_a_heatmap_of_25(specs: dict[str, dict], report: Report) -> None:
    spec = specs["profit_by_customer_year"]
    assert _marks(spec) == ["rect", "text"]
    heat, text = _encoding(spec, "rect"), _encoding(spec, "text")
    assert (heat["x"]["field"], heat["y"]["field"], heat["color"]["field"]) == ("year", "customer", "profit")
    assert text["text"]["field"] == "profit_label"
    for layer in (heat, text):  # the same tooltip over the cell and over its label
        assert [t["field"] for t in layer["tooltip"]] == [
            "customer",
            "customer_id",
            "year",
            "profit_label",
            "total_label",
        ]
    values = _values(spec)
    totals = {r["customer_id"]: r["profit"] for r in report["profit_by_customer"]}
    chosen = sorted(totals, key=lambda c: -abs(totals[c]))[:25]
    assert {v["customer_id"] for v in values} == set(chosen)
    assert MISSING[0] in chosen
    assert len(values) == 25 * 3 - 1  # the missing year is a blank cell
    assert (MISSING[0], MISSING[1]) not in {(v["customer_id"], v["year"]) for v in values}
    exact = {(r["customer_id"], r["year"]): f"{r['profit']:,.2f}" for r in report["profit_by_customer_year"]}
    assert all(v["profit_label"] == exact[(v["customer_id"], v["year"])] for v in values)
    best = max(chosen, key=totals.get)
    assert heat["y"]["sort"][0] == next(v["customer"] for v in values if v["customer_id"] == best)


def test_labels_are_exact_decimals_never_floats() -> None:
    value = Decimal("123456789012345678.91")  # a float has no cents at this size
    spec = charts({"profit_by_year": [{"year": 2020, "profit": value}]})["profit_by_year"].to_dict()
    (row,) = _values(spec)
    assert row["profit_label"] == "123,456,789,012,345,678.91"
    assert row["description"] == "2020: 123,456,789,012,345,678.91"  # the bars' accessible label, not the float
    assert f"{row['profit']:,.2f}" == "123,456,789,012,345,680.00"  # what the float would have shown
    page = render_html({"profit_by_year": [{"year": 2020, "profit": value}]})
    assert "123,456,789,012,345,678.91" in page
    assert charts_module.money(Decimal("-0.005")) == "-0.01"  # half-up beyond cents


def test_duplicate_customer_names_get_their_ids() -> None:
    rows = [
        {"customer_id": "A-1", "customer_name": "Ann Lee", "profit": Decimal("5.00")},
        {"customer_id": "A-2", "customer_name": "Ann Lee", "profit": Decimal("-5.00")},
        {"customer_id": "A-3", "customer_name": None, "profit": Decimal("1.00")},
    ]
    spec = charts({"profit_by_customer": rows})["profit_by_customer"].to_dict()
    assert [v["customer"] for v in _values(spec)] == ["Ann Lee (A-1)", "A-3", "Ann Lee (A-2)"]


def test_empty_report_gives_no_data_charts() -> None:
    for name, chart in charts({}).items():
        spec = chart.to_dict()
        assert _marks(spec) == ["text"], name
        assert _values(spec) == [{"text": "No data"}], name
        assert _title(spec) == CHART_TITLES[name]


def test_missing_packages_name_the_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "altair", None)  # import altair -> ImportError
    with pytest.raises(EcomError, match=r"ecom-lakehouse\[charts\]"):
        charts({})
    monkeypatch.delitem(sys.modules, "altair")
    monkeypatch.setitem(sys.modules, "vl_convert", None)
    with pytest.raises(EcomError, match=r"vl-convert-python.*ecom-lakehouse\[charts\]"):
        render_png({}, tmp_path)


# --- the HTML page -----------------------------------------------------------------------------------------------


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def _tags(page: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Tags()
    parser.feed(page)
    return parser.tags


def test_page_is_self_contained(page: str) -> None:
    assert page.startswith("<!DOCTYPE html>")
    tags = _tags(page)
    assert not [t for t in tags if t[0] == "link"]
    for tag, attrs in tags:  # nothing loaded from elsewhere: no src at all, links only to the page's own anchors
        assert "src" not in attrs, (tag, attrs)
        assert not (attrs.get("href") or "#").strip().startswith(("http:", "https:", "//")), (tag, attrs)
    styles = re.findall(r"<style>(.*?)</style>", page, re.DOTALL)
    assert styles and not re.search(r"@import|url\(", "".join(styles))
    scripts = [a for t, a in tags if t == "script"]
    assert [a.get("type") for a in scripts] == [None, "application/json", None, None]
    assert "window.vegaEmbed=" in page and "window.vegaLite=" in page and "window.vega=" in page  # inlined
    assert len(page) > 500_000  # the Vega, Vega-Lite and vega-embed code itself


def test_page_holds_the_four_charts_and_tables(page: str, report: Report) -> None:
    for name in REPORT_NAMES:
        assert page.count(f'data-chart="{name}"') == 1, name
        assert f"{name} &mdash; {len(report[name])} rows" in page  # every row of every aggregate is in its table
    assert "<td class=num>-4,321.05</td>" in page
    for row in report["profit_by_customer_year"]:
        assert f"<td class=num>{row['profit']:,.2f}</td>" in page
    assert page.index('data-chart="profit_by_year"') < page.index("profit_by_year &mdash;")  # table under chart
    block = page.split('id="chart-specs">', 1)[1].split("</script>", 1)[0]
    assert "-4,321.05" in block and '"profit_label"' in block


def test_names_are_escaped(page: str) -> None:
    assert "Sean O&#x27;Donnell" in page
    assert "Peter Bühler" in page
    assert "Evil &lt;/script&gt;&lt;b&gt;Tag&lt;/b&gt; &amp; Co" in page  # in the table
    assert "<b>Tag</b>" not in page
    assert page.count("</script>") == page.count("<script")
    block = page.split('id="chart-specs">', 1)[1].split("</script>", 1)[0]
    assert "<" not in block and ">" not in block
    assert "Evil \\u003c/script\\u003e\\u003cb\\u003eTag\\u003c/b\\u003e \\u0026 Co" in block


def test_empty_report_page() -> None:
    page = render_html({})
    for name in REPORT_NAMES:
        assert f'data-chart="{name}"' in page
    assert page.count("No data.") == len(REPORT_NAMES)


def test_only_renders_one_chart_without_tables(report: Report) -> None:
    page = render_html(report, only="profit_by_customer")
    assert 'data-chart="profit_by_customer"' in page
    assert 'data-chart="profit_by_year"' not in page
    assert "<caption>" not in page and "<h1>" not in page
    with pytest.raises(EcomError, match="unknown chart"):
        render_html(report, only="nope")


# --- PNG, without a browser --------------------------------------------------------------------------------------


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    assert data[12:16] == b"IHDR", path
    return struct.unpack(">II", data[16:24])


def test_render_png_writes_one_png_per_chart_without_a_browser(
    report: Report, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_process(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"render_png started a process: {args}")

    for name in ("run", "Popen", "call", "check_call", "check_output"):
        monkeypatch.setattr(subprocess, name, no_process)
    monkeypatch.setattr(os, "posix_spawn", no_process, raising=False)
    monkeypatch.setenv("PATH", "")
    assert not hasattr(charts_module, "find_chromium") and not hasattr(charts_module, "subprocess")

    paths = render_png(report, tmp_path / "charts")
    assert paths == [tmp_path / "charts" / f"{name}.png" for name in REPORT_NAMES]
    sizes = {path.stem: _png_size(path) for path in paths}
    for name, (width, height) in sizes.items():
        assert 500 < width < 4000 and 200 < height < 4000, (name, width, height)
        assert (tmp_path / "charts" / f"{name}.png").stat().st_size > 10_000, name
    # Scale 2: the 25-row heatmap (22 px a row) is more than 2 x 25 x 22 pixels high.
    assert sizes["profit_by_customer_year"][1] > 2 * 25 * 22
    small = render_png(report, tmp_path / "small", scale=1)
    assert _png_size(small[0])[0] < sizes["profit_by_year"][0]


def test_render_png_of_an_empty_report(tmp_path: Path) -> None:
    for path in render_png({}, tmp_path):
        width, height = _png_size(path)
        assert width > 100 and height > 50, path


# --- drawn by headless Chromium ----------------------------------------------------------------------------------

CHROMIUM = os.environ.get("ECOM_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",  # runs as root in containers; it only loads the local page written here
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",  # offline: no background network, no component updates
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--hide-scrollbars",
    "--lang=en-US",
    "--host-resolver-rules=MAP * ~NOTFOUND",  # no host resolves: the page must draw without any network
)


def _dump_dom(page_text: str, tmp_path: Path) -> tuple[str, str]:
    """Load the page in headless Chromium; return the DOM once the charts are drawn, and Chromium's stderr."""
    page_file = tmp_path / "report.html"
    page_file.write_text(page_text, encoding="utf-8")
    command = [
        str(CHROMIUM),
        *CHROMIUM_FLAGS,
        f"--user-data-dir={tmp_path / 'profile'}",
        "--enable-logging=stderr",
        "--v=0",
        "--window-size=1280,1000",
        "--virtual-time-budget=20000",
        "--dump-dom",
        page_file.as_uri(),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout, result.stderr


MARK = r'<path aria-label="([^"]*)" role="graphics-symbol" aria-roledescription="(?:bar|rect mark)"'


def _chart_fragments(dom: str) -> dict[str, str]:
    """``{name: the DOM from its chart container to the next one}``."""
    parts = re.split(r'<div class="chart[^"]*" data-chart="(\w+)"', dom)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


@pytest.mark.skipif(
    CHROMIUM is None,
    reason="headless Chromium not installed (`apt-get install -y chromium`, or set ECOM_CHROMIUM); "
    "the pure tests above still check the specs and the page",
)
def test_every_chart_renders_in_headless_chromium(page: str, tmp_path: Path) -> None:
    dom, stderr = _dump_dom(page, tmp_path)
    body = re.search(r"<body [^>]*>", dom)
    assert body, dom[:500]
    assert 'data-errors=""' in body.group(0), body.group(0)
    assert 'data-charts-done="true"' in body.group(0), body.group(0)
    assert [line for line in stderr.splitlines() if re.search(r":CONSOLE[(:]", line)] == []
    fragments = _chart_fragments(dom)
    assert set(fragments) == set(REPORT_NAMES)
    for name, fragment in fragments.items():
        assert fragment.startswith(' data-rendered="true"'), (name, fragment[:200])
        svg = fragment.split("</svg>", 1)[0]
        assert "<svg" in svg, name
        assert CHART_TITLES[name].replace("&", "&amp;") in svg, name
    expected_marks = {
        "profit_by_year": 3,
        "profit_by_year_category": 9,
        "profit_by_customer": 20,  # top 10 + bottom 10 of 30
        "profit_by_customer_year": 25 * 3 - 1,  # 25 customers x 3 years, one customer lacks a year
    }
    for name, fragment in fragments.items():
        marks = re.findall(MARK, fragment)
        assert len(marks) == expected_marks[name], (name, len(marks))
        assert all(re.fullmatch(r".+: -?[\d,]+\.\d\d", label) for label in marks), (name, marks[:3])
    assert "7,407.36" in fragments["profit_by_year"] and "-4,321.05" in fragments["profit_by_year"]  # text marks
    assert "Evil &lt;/script&gt;&lt;b&gt;Tag&lt;/b&gt; &amp; Co" in dom and "<b>Tag</b>" not in dom


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium not installed (`apt-get install -y chromium`)")
def test_empty_report_renders_no_data_in_headless_chromium(tmp_path: Path) -> None:
    dom, _ = _dump_dom(render_html({}), tmp_path)
    assert re.search(r'<body data-errors="" data-charts-done="true">', dom), dom[:300]
    fragments = _chart_fragments(dom)
    assert set(fragments) == set(REPORT_NAMES)
    for name, fragment in fragments.items():
        assert fragment.startswith(' data-rendered="true"') and "No data</text>" in fragment, name


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium not installed (`apt-get install -y chromium`)")
def test_a_broken_chart_is_reported(report: Report, tmp_path: Path) -> None:
    # The checks above are not vacuous: a chart vega-embed cannot draw shows up as an error on the page.
    page = render_html(report).replace('"mark":{"type":"rect"', '"mark":{"type":"nonexistent"', 1)
    dom, _ = _dump_dom(page, tmp_path)
    assert re.search(r'data-errors="profit_by_customer_year: [^"]+"', dom), dom[:300]
    assert _chart_fragments(dom)["profit_by_customer_year"].startswith(' data-rendered="error"')
    assert _chart_fragments(dom)["profit_by_year"].startswith(' data-rendered="true"')
