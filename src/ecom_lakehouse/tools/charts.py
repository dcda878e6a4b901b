"""Charts of the four profit aggregates, drawn with Vega-Lite through altair: one function per chart, a
self-contained HTML page and one PNG per chart.

Each chart function (:func:`profit_by_year_chart`, ...) takes the aggregate's rows and returns an altair chart, so a
Databricks notebook can show it natively (the chart as a cell's last expression) or with
``displayHTML(chart.to_html())`` (``to_html(inline=True)`` inlines the JavaScript for a workspace without internet
access); :func:`charts` builds all four from a report. :func:`render_html` writes one page
with the Vega, Vega-Lite and vega-embed JavaScript inlined (no network needed to open it), the four charts and the
full data tables; :func:`render_png` exports the charts as PNGs with vl-convert (no browser).

Exact decimals: profits are :class:`~decimal.Decimal` and a float never becomes a label. Every text mark, tooltip
and mark description (the SVG's accessible label) shows ``profit_label``, a string computed in Python from the Decimal
(e.g. ``-4,321.05``: 2 decimals, half-up rounding, thousands separators, ``-`` for losses); the float field ``profit``
only positions bars and colours cells (axis ticks are positions too, formatted by Vega).

altair and vl-convert-python are optional (``pip install 'ecom-lakehouse[charts]'``) and imported when a chart is
built; without them the functions raise :class:`~ecom_lakehouse.errors.EcomError` with that install hint.
"""

from __future__ import annotations

import html
import json
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from ecom_lakehouse.errors import EcomError
from ecom_lakehouse.fields import REPORT_NAMES

if TYPE_CHECKING:
    import altair as alt

Rows = list[dict[str, object]]

INSTALL_HINT = "install the charts extra: pip install 'ecom-lakehouse[charts]' (altair and vl-convert-python)"
CHART_TITLES = {
    "profit_by_year": "Profit by year",
    "profit_by_year_category": "Profit by year and category",
    "profit_by_customer": "Top 10 and bottom 10 customers by profit",
    "profit_by_customer_year": "Top 25 customers by absolute profit, by year",
}
TOP_CUSTOMERS = 10
HEATMAP_CUSTOMERS = 25
GAIN, LOSS = "#2f6db5", "#c8413b"
_CENT = Decimal("0.01")
_AXIS_FORMAT = ",.0f"  # tick values of the profit axes (positions, not data labels)


# --- values -----------------------------------------------------------------------------------------------------


def _decimal(value: object) -> Decimal | None:
    """``value`` as a finite Decimal (floats through their shortest repr), None if it is not a number."""
    if isinstance(value, bool) or not isinstance(value, Decimal | int | float | str):
        return None
    try:
        number = value if isinstance(value, Decimal) else Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def money(value: Decimal) -> str:
    """Exact label text: 2 decimals, half-up rounding, thousands separators, e.g. ``-1,234.50``."""
    return f"{value.quantize(_CENT, rounding=ROUND_HALF_UP):,.2f}"


def _text(value: object) -> str:
    return "" if value is None else str(value)


def _year(value: object) -> object:
    return value if isinstance(value, int) and not isinstance(value, bool) else _text(value)


def _sort_key(value: object) -> tuple[int, str]:
    """Years (ints) numerically, anything else as text."""
    if isinstance(value, int) and not isinstance(value, bool):
        return (0, f"{value:020d}")
    return (1, _text(value))


def _profit(value: Decimal, about: str, **fields: object) -> dict[str, object]:
    """One data row: ``fields``, the float position ``profit``, the exact text ``profit_label`` and a
    ``description`` ("<about>: <profit_label>", the marks' accessible label, which would otherwise show the float)."""
    label = money(value)
    return {
        **fields,
        "profit": float(value),
        "profit_label": label,
        "sign": "loss" if value < 0 else "gain",
        "description": f"{about}: {label}",
    }


def _priced(rows: Rows) -> list[tuple[dict[str, object], Decimal]]:
    return [(row, profit) for row in rows if (profit := _decimal(row.get("profit"))) is not None]


def _customer_labels(customers: dict[str, str]) -> dict[str, str]:
    """``{customer_id: axis label}``: the name, with the id added where names repeat (or the id if no name)."""
    names = list(customers.values())
    return {
        cid: (name if names.count(name) == 1 else f"{name} ({cid})") if name else cid for cid, name in customers.items()
    }


# --- charts -----------------------------------------------------------------------------------------------------


def _altair() -> ModuleType:
    try:
        import altair
    except ImportError as exc:
        raise EcomError(f"charts need altair: {INSTALL_HINT}") from exc
    return altair


def _no_data(title: str) -> alt.Chart:
    alt = _altair()
    return (
        alt.Chart(alt.Data(values=[{"text": "No data"}]), title=title)
        .mark_text(fontSize=14, color="#57606a")
        .encode(text="text:N")
        .properties(width=400, height=80)
    )


def _sign_color() -> alt.Color:
    alt = _altair()
    return alt.Color("sign:N", scale=alt.Scale(domain=["gain", "loss"], range=[GAIN, LOSS]), legend=None)


def _room_for_labels(data: list[dict[str, object]], share: float) -> alt.Scale:
    """A zero-based, nice profit scale widened by ``share`` of its span beyond the ends that have bars, so the
    labels past the bars' ends stay inside the plot."""
    profits = [float(row["profit"]) for row in data]
    low, high = min(0.0, *profits), max(0.0, *profits)
    room = (high - low) * share
    return _altair().Scale(domain=[low - room if low < 0 else 0.0, high + room if high > 0 else 0.0], nice=True)


def _tooltip(**fields: str) -> list[alt.Tooltip]:
    """``_tooltip(Year="year:O", Profit="profit_label:N")``: tooltip fields with their titles."""
    return [_altair().Tooltip(shorthand, title=title) for title, shorthand in fields.items()]


def _bar_labels(base: alt.Chart, *, vertical: bool) -> list[alt.Chart]:
    """Text marks of ``profit_label`` just beyond each bar's end: above/right of gains, below/left of losses."""
    gains, losses = base.transform_filter("datum.profit >= 0"), base.transform_filter("datum.profit < 0")
    if vertical:
        marks = [gains.mark_text(baseline="bottom", dy=-4), losses.mark_text(baseline="top", dy=4)]
    else:
        marks = [gains.mark_text(align="left", dx=4), losses.mark_text(align="right", dx=-4)]
    return [mark.encode(text="profit_label:N") for mark in marks]


def profit_by_year_chart(rows: Rows) -> alt.Chart | alt.LayerChart:
    """Bars of profit by year, losses in red below zero, each labelled with its exact profit.

    Args:
        rows: ``profit_by_year`` rows (``year``, ``profit``; ``anomaly_profit`` and ``anomaly_lines``, the part
            flagged lines carry, in the tooltip).

    Returns:
        The chart (a "No data" text chart when there are no rows).
    """
    alt = _altair()
    title = CHART_TITLES["profit_by_year"]
    ordered = sorted(_priced(rows), key=lambda x: _sort_key(x[0].get("year")))
    data = [_profit(p, _text(r.get("year")), year=_year(r.get("year")), anomalies=_anomalies(r)) for r, p in ordered]
    if not data:
        return _no_data(title)
    base = alt.Chart(alt.Data(values=data)).encode(
        x=alt.X("year:O", title="Year", axis=alt.Axis(labelAngle=0)),
        y=alt.Y("profit:Q", title="Profit", axis=alt.Axis(format=_AXIS_FORMAT), scale=_room_for_labels(data, 0.06)),
    )
    bars = base.mark_bar().encode(
        color=_sign_color(),
        description="description:N",
        tooltip=_tooltip(Year="year:O", Profit="profit_label:N", **{"On lines flagged as anomalies": "anomalies:N"}),
    )
    return alt.layer(bars, *_bar_labels(base, vertical=True)).properties(title=title, width=560, height=320)


def _anomalies(row: dict[str, object]) -> str:
    """``"-200.54 on 2 lines"``: the profit that flagged lines carry in a ``profit_by_year`` row (exact text)."""
    amount = _decimal(row.get("anomaly_profit"))
    if amount is None:
        return "-"
    return f"{money(amount)} on {row.get('anomaly_lines') or 0} lines"


def profit_by_year_category_chart(rows: Rows) -> alt.Chart:
    """Grouped bars of profit by year, one bar per category.

    Args:
        rows: ``profit_by_year_category`` rows (``year``, ``category``, ``profit``); repeated pairs are summed.

    Returns:
        The chart (a "No data" text chart when there are no rows).
    """
    alt = _altair()
    title = CHART_TITLES["profit_by_year_category"]
    sums: dict[tuple[object, str], Decimal] = {}
    for row, profit in _priced(rows):
        key = (_year(row.get("year")), _text(row.get("category")) or "(none)")
        sums[key] = sums.get(key, Decimal(0)) + profit
    if not sums:
        return _no_data(title)
    data = [
        _profit(sums[(year, category)], f"{year} {category}", year=year, category=category)
        for year, category in sorted(sums, key=lambda k: (_sort_key(k[0]), k[1]))
    ]
    return (
        alt.Chart(alt.Data(values=data), title=title)
        .mark_bar()
        .encode(
            x=alt.X("year:O", title="Year", axis=alt.Axis(labelAngle=0)),
            xOffset=alt.XOffset("category:N", sort="ascending"),
            y=alt.Y("profit:Q", title="Profit", axis=alt.Axis(format=_AXIS_FORMAT)),
            color=alt.Color("category:N", title="Category", sort="ascending", legend=alt.Legend(orient="top")),
            description="description:N",
            tooltip=_tooltip(Year="year:O", Category="category:N", Profit="profit_label:N"),
        )
        .properties(width=560, height=320)
    )


def profit_by_customer_chart(rows: Rows) -> alt.Chart | alt.LayerChart:
    """Horizontal bars of the 10 most and the 10 least profitable customers (all of them if 20 or fewer).

    Args:
        rows: ``profit_by_customer`` rows (``customer_id``, ``customer_name``, ``profit``).

    Returns:
        The chart, best first, losses left of zero (a "No data" text chart when there are no rows).
    """
    alt = _altair()
    title = CHART_TITLES["profit_by_customer"]
    ranked = sorted(_priced(rows), key=lambda x: (-x[1], _text(x[0].get("customer_id"))))
    if not ranked:
        return _no_data(title)
    shown = list(enumerate(ranked, start=1))
    if len(shown) > 2 * TOP_CUSTOMERS:
        shown = shown[:TOP_CUSTOMERS] + shown[-TOP_CUSTOMERS:]
    labels = _customer_labels({_text(row.get("customer_id")): _text(row.get("customer_name")) for _, (row, _) in shown})
    data = []
    for rank, (row, profit) in shown:
        cid = _text(row.get("customer_id"))
        data.append(
            _profit(profit, labels[cid], customer_id=cid, customer=labels[cid], rank=f"{rank} of {len(ranked)}")
        )
    base = alt.Chart(alt.Data(values=data)).encode(
        y=alt.Y("customer:N", title=None, sort=[row["customer"] for row in data], axis=alt.Axis(labelLimit=240)),
        x=alt.X("profit:Q", title="Profit", axis=alt.Axis(format=_AXIS_FORMAT), scale=_room_for_labels(data, 0.16)),
    )
    bars = base.mark_bar().encode(
        color=_sign_color(),
        description="description:N",
        tooltip=_tooltip(Customer="customer:N", ID="customer_id:N", Rank="rank:N", Profit="profit_label:N"),
    )
    return alt.layer(bars, *_bar_labels(base, vertical=False)).properties(title=title, width=560, height=alt.Step(22))


def profit_by_customer_year_chart(rows: Rows) -> alt.Chart | alt.LayerChart:
    """Heatmap of profit by year for the 25 customers with the largest absolute total profit.

    Args:
        rows: ``profit_by_customer_year`` rows (``customer_id``, ``customer_name``, ``year``, ``profit``).

    Returns:
        The chart, customers by total profit (best first), each cell labelled with its exact profit; a year without
        orders is a blank cell (a "No data" text chart when there are no rows).
    """
    alt = _altair()
    title = CHART_TITLES["profit_by_customer_year"]
    totals: dict[str, Decimal] = {}
    names: dict[str, str] = {}
    cells: dict[tuple[str, object], Decimal] = {}
    for row, profit in _priced(rows):
        if row.get("year") is None:
            continue
        cid, year = _text(row.get("customer_id")), _year(row.get("year"))
        totals[cid] = totals.get(cid, Decimal(0)) + profit
        names.setdefault(cid, _text(row.get("customer_name")))
        cells[(cid, year)] = cells.get((cid, year), Decimal(0)) + profit
    if not cells:
        return _no_data(title)
    chosen = sorted(sorted(totals, key=lambda c: (-abs(totals[c]), c))[:HEATMAP_CUSTOMERS], key=lambda c: -totals[c])
    labels = _customer_labels({cid: names[cid] for cid in chosen})
    years = sorted({year for _, year in cells}, key=_sort_key)
    shown = [(cid, year, cells[(cid, year)]) for cid in chosen for year in years if (cid, year) in cells]
    extreme = max(abs(value) for _, _, value in shown) or Decimal(1)
    data = [
        _profit(value, f"{labels[cid]} {year}", customer_id=cid, customer=labels[cid], year=year,
                total_label=money(totals[cid]), ink="light" if abs(value) > extreme * Decimal("0.55") else "dark")
        for cid, year, value in shown
    ]  # fmt: skip
    base = alt.Chart(alt.Data(values=data)).encode(
        x=alt.X("year:O", title="Year", sort=years, axis=alt.Axis(orient="top", labelAngle=0)),
        y=alt.Y("customer:N", title=None, sort=[labels[cid] for cid in chosen], axis=alt.Axis(labelLimit=240)),
        tooltip=_tooltip(
            Customer="customer:N", ID="customer_id:N", Year="year:O", Profit="profit_label:N", Total="total_label:N"
        ),
    )
    heat = base.mark_rect(stroke="#ffffff", strokeWidth=1).encode(
        color=alt.Color(
            "profit:Q",
            title="Profit",
            scale=alt.Scale(scheme="redblue", domain=[-float(extreme), float(extreme)]),
            legend=alt.Legend(format=_AXIS_FORMAT),
        ),
        description="description:N",
    )
    ink = alt.Color("ink:N", scale=alt.Scale(domain=["light", "dark"], range=["#ffffff", "#1f2328"]), legend=None)
    text = base.mark_text(fontSize=11).encode(text="profit_label:N", color=ink)
    return (
        alt.layer(heat, text)
        .resolve_scale(color="independent")
        .properties(
            title=alt.TitleParams(title, subtitle="Sorted by total profit; a blank cell: no orders that year"),
            width=alt.Step(96),
            height=alt.Step(22),
        )
    )


CHARTS = {
    "profit_by_year": profit_by_year_chart,
    "profit_by_year_category": profit_by_year_category_chart,
    "profit_by_customer": profit_by_customer_chart,
    "profit_by_customer_year": profit_by_customer_year_chart,
}


def charts(report: dict[str, Rows]) -> dict[str, alt.TopLevelMixin]:
    """Build the four charts of a report.

    Args:
        report: ``{name: rows}`` as returned by :func:`ecom_lakehouse.tools.report.run_report`; a missing name gives a
            "No data" chart.

    Returns:
        ``{name: chart}`` in :data:`~ecom_lakehouse.fields.REPORT_NAMES` order.

    Raises:
        EcomError: altair is not installed.
    """
    return {name: CHARTS[name](list(report.get(name) or [])) for name in REPORT_NAMES}


# --- HTML and PNG -----------------------------------------------------------------------------------------------


def _vl_convert() -> ModuleType:
    try:
        import vl_convert
    except ImportError as exc:
        raise EcomError(f"chart export needs vl-convert-python: {INSTALL_HINT}") from exc
    return vl_convert


def _vl_version(vlc: ModuleType) -> str:
    """The Vega-Lite version of altair's specs (e.g. ``6.4``), which vl-convert must bundle."""
    version = ".".join(_altair().SCHEMA_VERSION.lstrip("v").split(".")[:2])
    if version not in vlc.get_vegalite_versions():
        raise EcomError(f"vl-convert-python {vlc.__version__} lacks Vega-Lite {version} (altair's); upgrade it")
    return version


def _esc(value: object) -> str:
    return html.escape(_text(value), quote=True)


def _table(name: str, rows: Rows) -> str:
    if not rows:
        return '<p class="nodata">No data.</p>'
    columns = list(dict.fromkeys(key for row in rows for key in row))
    numeric = {
        c: all(r.get(c) is None or (isinstance(r.get(c), int | float | Decimal) and not isinstance(r.get(c), bool))
               for r in rows)
        for c in columns
    }  # fmt: skip

    def cell(value: object) -> str:
        if isinstance(value, Decimal | float):
            number = _decimal(value)
            return "" if number is None else money(number)
        return _esc(value)

    head = "".join(f'<th scope="col"{" class=num" if numeric[c] else ""}>{_esc(c)}</th>' for c in columns)
    body = "\n".join(
        "<tr>" + "".join(f"<td{' class=num' if numeric[c] else ''}>{cell(r.get(c))}</td>" for c in columns) + "</tr>"
        for r in rows
    )
    return (
        f'<div class="table-wrap"><table><caption>{_esc(name)} &mdash; {len(rows)} rows</caption>'
        f"<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody></table></div>"
    )


def _script_json(data: object) -> str:
    """JSON for a ``<script>`` element: ``<``, ``>`` and ``&`` escaped, so no name can close the element."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_html(report: dict[str, Rows], *, title: str = "Profit report", only: str | None = None) -> str:
    """Render the report as one self-contained HTML page: the four charts, each above its full data table.

    The Vega, Vega-Lite and vega-embed JavaScript is inlined (from vl-convert), the chart specs are an embedded JSON
    block (``<script type="application/json" id="chart-specs">``) drawn as SVG into ``<div data-chart="<name>">``;
    the page loads nothing from the network. After drawing, each chart container carries
    ``data-rendered="true"`` (or ``"error"``), the body ``data-charts-done="true"`` and errors in ``data-errors``.
    Table values are exact decimal text; all text is HTML-escaped.

    Args:
        report: ``{name: rows}`` as for :func:`charts`.
        title: The page title and heading.
        only: A report name to render only that chart (no heading, no table).

    Returns:
        The HTML document.

    Raises:
        EcomError: ``only`` is not a report name, or altair / vl-convert-python is not installed.
    """
    if only is not None and only not in REPORT_NAMES:
        raise EcomError(f"unknown chart {only!r}; expected one of {', '.join(REPORT_NAMES)}")
    vlc = _vl_convert()
    bundle = vlc.javascript_bundle(vl_version=_vl_version(vlc)).replace("</script", "<\\/script")
    built = charts(report)
    names = [only] if only else list(REPORT_NAMES)
    specs = {name: built[name].to_dict() for name in names}
    sections = "\n".join(
        f'<section id="{name}" aria-label="{_esc(CHART_TITLES[name])}">\n<div class="chart" data-chart="{name}" '
        f'data-rendered="false"></div>\n{"" if only else _table(name, list(report.get(name) or []))}\n</section>'
        for name in names
    )
    nav = " &middot; ".join(f'<a href="#{name}">{_esc(CHART_TITLES[name])}</a>' for name in names)
    heading = "" if only else f"<h1>{_esc(title)}</h1>\n<nav>{nav}</nav>\n"
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_esc(title)}</title>\n<style>{_CSS}</style>\n<script>{_ERRORS_JS}</script>\n</head>\n"
        f'<body data-errors="">\n{heading}{sections}\n'
        f'<script type="application/json" id="chart-specs">{_script_json(specs)}</script>\n'
        f"<script>{bundle}</script>\n<script>{_EMBED_JS}</script>\n</body>\n</html>\n"
    )


def render_png(report: dict[str, Rows], out_dir: str | Path, *, scale: float = 2.0) -> list[Path]:
    """Write one PNG per chart (``profit_by_year.png``, ...) with vl-convert: no browser involved.

    Args:
        report: ``{name: rows}`` as for :func:`charts`.
        out_dir: Folder for the PNG files (created if missing; existing files are replaced).
        scale: Pixels per chart unit (2 gives crisp, legible text).

    Returns:
        The PNG paths, in :data:`~ecom_lakehouse.fields.REPORT_NAMES` order.

    Raises:
        EcomError: altair / vl-convert-python is not installed, or a chart failed to render.
    """
    vlc = _vl_convert()
    version = _vl_version(vlc)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, chart in charts(report).items():
        try:
            png = vlc.vegalite_to_png(chart.to_dict(), vl_version=version, scale=scale)
        except ValueError as exc:
            raise EcomError(f"cannot render the {name} chart as PNG: {exc}") from exc
        target = out / f"{name}.png"
        target.write_bytes(png)
        written.append(target)
    return written


# --- page shell -------------------------------------------------------------------------------------------------

_CSS = """
body { font: 14px/1.45 system-ui, "Liberation Sans", "DejaVu Sans", Arial, sans-serif; margin: 24px auto;
       max-width: 1280px; padding: 0 16px; color: #1f2328; background: #fff; }
h1 { font-size: 22px; margin: 0 0 8px; }
nav { color: #57606a; }
a { color: #0b62c4; }
section { margin-top: 32px; }
.table-wrap { max-height: 420px; overflow: auto; margin-top: 12px; border: 1px solid #d0d7de; max-width: 840px; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
caption { text-align: left; padding: 6px 8px; color: #57606a; }
th, td { padding: 3px 10px; border-bottom: 1px solid #eaeef2; text-align: left; white-space: nowrap; }
thead th { position: sticky; top: 0; background: #f6f8fa; }
.num { text-align: right; font-variant-numeric: tabular-nums; }
.nodata { color: #57606a; font-style: italic; }
"""

# In <head>, before the bundle: uncaught errors (also of the bundle) go to <body data-errors> for a DOM dump.
_ERRORS_JS = """
window.chartErrors = [];
window.reportChartError = function (message) {
  window.chartErrors.push(String(message));
  if (document.body) { document.body.setAttribute("data-errors", window.chartErrors.join(" | ")); }
};
window.addEventListener("error", function (event) { window.reportChartError(event.message || "error"); });
"""

_EMBED_JS = """
(function () {
  var specs = JSON.parse(document.getElementById("chart-specs").textContent);
  var options = {renderer: "svg", actions: {export: true, source: false, compiled: false, editor: false}};
  Promise.all(Object.keys(specs).map(function (name) {
    var container = document.querySelector('[data-chart="' + name + '"]');
    return vegaEmbed(container, specs[name], options).then(function () {
      container.setAttribute("data-rendered", "true");
    }).catch(function (err) {
      container.setAttribute("data-rendered", "error");
      window.reportChartError(name + ": " + err);
    });
  })).then(function () { document.body.setAttribute("data-charts-done", "true"); });
})();
"""
