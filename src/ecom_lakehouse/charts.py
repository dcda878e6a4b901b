"""Charts of the four profit aggregates: one self-contained HTML page (inline CSS, inline JS drawing inline SVG from
an embedded JSON data block, no network needed to view it), and PNG files that are screenshots of the page's charts
taken with headless Chromium.

The page is built in two halves: Python selects and formats the data of each chart (exact decimal text for every
label, chart sizes) and writes the full data tables; a small vanilla script draws the SVG charts from the JSON block.
After drawing, each chart container (``data-chart="<report name>"``) carries ``data-rendered="true"`` and
``data-marks="<number of bars or cells>"``; script errors are collected into ``<body data-errors="...">``.
"""

from __future__ import annotations

import html
import json
import os
import shutil
import subprocess
import tempfile
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path

from ecom_lakehouse.errors import EcomError
from ecom_lakehouse.fields import REPORT_NAMES

Rows = list[dict[str, object]]

CHROMIUM_ENV = "ECOM_CHROMIUM"
CHROMIUM_CANDIDATES = ("chromium", "chromium-browser")
CHROMIUM_INSTALL_HINT = "install it with `apt-get install -y chromium` (Debian/Ubuntu)"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--hide-scrollbars",
    "--lang=en-US",
)
"""Flags for every headless Chromium run: offline (no background network, no component updates), no sandbox (runs
as root in containers; it only ever loads the trusted local page written here)."""

CHART_TITLES = {
    "profit_by_year": "Profit by year",
    "profit_by_year_category": "Profit by year and category",
    "profit_by_customer": "Top 10 and bottom 10 customers by profit",
    "profit_by_customer_year": "Top 25 customers by absolute profit, by year",
}
TOP_CUSTOMERS = 10
HEATMAP_CUSTOMERS = 25

_WIDTH = 840
_TITLE_H = 34  # the chart title drawn inside the SVG (PNG pages only; the HTML page has an <h2>)
_ROW_H = 24
_SPLIT_GAP = 20
_LABEL_W = 230
_CELL_W = 96
_TOTAL_W = 110
_EMPTY_H = 120
_CENT = Decimal("0.01")


# --- values -----------------------------------------------------------------------------------------------------


def _decimal(value: object) -> Decimal | None:
    """``value`` as a Decimal (floats through their shortest repr, never binary expansion), None if not numeric."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, Decimal):
        return value if value.is_finite() else None
    if isinstance(value, int | float | str):
        try:
            result = Decimal(str(value))
        except InvalidOperation:
            return None
        return result if result.is_finite() else None
    return None


def _money(value: Decimal) -> str:
    """Exact text with 2 decimals and thousands separators, e.g. ``-1,234.50`` (half-up rounding beyond cents)."""
    return f"{value.quantize(_CENT, rounding=ROUND_HALF_UP):,.2f}"


def _plain(value: Decimal) -> str:
    """The exact decimal number as plain JSON-number text, for the chart geometry."""
    return format(value, "f")


def _cell(value: object) -> dict[str, str] | None:
    number = _decimal(value)
    return None if number is None else {"v": _plain(number), "t": _money(number)}


def _text(value: object) -> str:
    return "" if value is None else str(value)


def _sort_key(value: object) -> tuple[int, str]:
    """Years (ints) numerically, anything else as text; None last."""
    if value is None:
        return (2, "")
    if isinstance(value, int) and not isinstance(value, bool):
        return (0, f"{value:020d}")
    return (1, str(value))


# --- chart specs (what the script draws) ------------------------------------------------------------------------


def _columns_spec(groups: list[str], series: list[dict[str, object]], *, legend: bool, labels: bool) -> dict:
    legend_h = 0
    if legend:
        per_row = max(1, (_WIDTH - 80) // 170)
        legend_h = 24 * ((len(series) + per_row - 1) // per_row) + 6
    height = 340 + legend_h + (18 if labels else 0)
    return {
        "kind": "columns",
        "groups": groups,
        "series": series,
        "legend": legend,
        "valueLabels": labels,
        "legendHeight": legend_h,
        "width": _WIDTH,
        "height": height,
    }


def _year_spec(rows: Rows) -> dict:
    rows = sorted((r for r in rows if _decimal(r.get("profit")) is not None), key=lambda r: _sort_key(r.get("year")))
    groups = [_text(r.get("year")) for r in rows]
    series = [{"name": "Profit", "values": [_cell(r.get("profit")) for r in rows]}]
    return _columns_spec(groups, series, legend=False, labels=True)


def _year_category_spec(rows: Rows) -> dict:
    rows = [r for r in rows if _decimal(r.get("profit")) is not None]
    years = sorted({r.get("year") for r in rows}, key=_sort_key)
    categories = sorted({_text(r.get("category")) or "(none)" for r in rows})
    values: dict[tuple[object, str], object] = {}
    for r in rows:
        key = (r.get("year"), _text(r.get("category")) or "(none)")
        previous = _decimal(values.get(key)) or Decimal(0)
        values[key] = previous + (_decimal(r.get("profit")) or Decimal(0))
    series = [{"name": c, "values": [_cell(values.get((y, c))) for y in years]} for c in categories]
    return _columns_spec([_text(y) for y in years], series, legend=True, labels=False)


def _customer_spec(rows: Rows) -> dict:
    rows = [r for r in rows if _decimal(r.get("profit")) is not None]
    rows.sort(key=lambda r: (-(_decimal(r.get("profit")) or Decimal(0)), _text(r.get("customer_id"))))
    split: int | None = None
    if len(rows) > 2 * TOP_CUSTOMERS:
        rows = rows[:TOP_CUSTOMERS] + rows[-TOP_CUSTOMERS:]
        split = TOP_CUSTOMERS
    items = [
        {"label": _text(r.get("customer_name")) or _text(r.get("customer_id")), "sub": _text(r.get("customer_id"))}
        | (_cell(r.get("profit")) or {})
        for r in rows
    ]
    height = 40 + len(items) * _ROW_H + (_SPLIT_GAP if split else 0) + 14
    return {
        "kind": "hbars",
        "rows": items,
        "splitAfter": split,
        "labelWidth": _LABEL_W,
        "width": _WIDTH,
        "height": height,
    }


def _customer_year_spec(rows: Rows) -> dict:
    rows = [r for r in rows if _decimal(r.get("profit")) is not None and r.get("year") is not None]
    totals: dict[str, Decimal] = {}
    names: dict[str, str] = {}
    cells: dict[tuple[str, object], Decimal] = {}
    for r in rows:
        customer = _text(r.get("customer_id"))
        profit = _decimal(r.get("profit")) or Decimal(0)
        totals[customer] = totals.get(customer, Decimal(0)) + profit
        names.setdefault(customer, _text(r.get("customer_name")) or customer)
        cells[(customer, r.get("year"))] = cells.get((customer, r.get("year")), Decimal(0)) + profit
    chosen = sorted(totals, key=lambda c: (-abs(totals[c]), c))[:HEATMAP_CUSTOMERS]
    chosen.sort(key=lambda c: (-totals[c], c))
    years = sorted({r.get("year") for r in rows}, key=_sort_key)
    items = [
        {
            "label": names[c],
            "sub": c,
            "cells": [_cell(cells.get((c, y))) for y in years],
            "total": _money(totals[c]),
            "totalValue": _plain(totals[c]),
        }
        for c in chosen
    ]
    cell_w = max(_CELL_W, min(140, (_WIDTH - _LABEL_W - 30 - _TOTAL_W) // max(1, len(years))))
    width = max(_WIDTH, _LABEL_W + 10 + cell_w * len(years) + _TOTAL_W + 20)
    height = 30 + len(items) * _ROW_H + 64
    return {
        "kind": "heatmap",
        "columns": [_text(y) for y in years],
        "rows": items,
        "cellWidth": cell_w,
        "totalWidth": _TOTAL_W,
        "labelWidth": _LABEL_W,
        "width": width,
        "height": height,
    }


_SPEC_BUILDERS = {
    "profit_by_year": _year_spec,
    "profit_by_year_category": _year_category_spec,
    "profit_by_customer": _customer_spec,
    "profit_by_customer_year": _customer_year_spec,
}


def _chart_spec(name: str, rows: Rows, *, svg_title: bool) -> dict:
    spec = _SPEC_BUILDERS[name](rows)
    empty = not (spec.get("groups") or spec.get("rows"))
    if empty:
        spec["height"] = _EMPTY_H
    spec.update(name=name, title=CHART_TITLES[name], empty=empty, svgTitle=svg_title)
    if svg_title:
        spec["height"] += _TITLE_H
    return spec


# --- HTML -------------------------------------------------------------------------------------------------------


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
            return "" if number is None else _money(number)
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


def _json_block(data: object) -> str:
    # Escape <, > and & so the block can never close the <script> element (e.g. a name containing "</script>").
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _container(spec: dict) -> str:
    return (
        f'<div class="chart" data-chart="{_esc(spec["name"])}" data-kind="{spec["kind"]}" data-rendered="false" '
        f'role="img" aria-label="{_esc(spec["title"])}" '
        f'style="width:{spec["width"]}px;height:{spec["height"]}px"></div>'
    )


def render_html(report: dict[str, Rows], *, title: str = "Profit report", only: str | None = None) -> str:
    """Render the report's four aggregates as one self-contained HTML page of charts and data tables.

    The page needs no network: CSS and the drawing script are inline, the chart data is an embedded JSON block
    (``<script type="application/json" id="report-data">``) drawn into inline SVG. Table values are exact decimal
    text (2 decimals, thousands separators); all text is HTML-escaped.

    Args:
        report: ``{name: rows}`` as returned by :func:`ecom_lakehouse.report.run_report`; missing names render as
            empty charts ("No data").
        title: The page title and heading.
        only: A report name to render only that chart (no heading, no table, page exactly the chart's size, chart
            title drawn inside the SVG); used for the PNG screenshots.

    Returns:
        The HTML document.

    Raises:
        EcomError: ``only`` is not one of :data:`~ecom_lakehouse.report.REPORT_NAMES`.
    """
    if only is not None and only not in REPORT_NAMES:
        raise EcomError(f"unknown chart {only!r}; expected one of {', '.join(REPORT_NAMES)}")
    names = [only] if only else list(REPORT_NAMES)
    specs = [_chart_spec(name, list(report.get(name) or []), svg_title=only is not None) for name in names]
    data = {
        "title": title,
        "layout": {"titleHeight": _TITLE_H, "rowHeight": _ROW_H, "splitGap": _SPLIT_GAP},
        "charts": specs,
    }
    if only:
        body = _container(specs[0])
        page_class = "single"
    else:
        nav = " &middot; ".join(f'<a href="#{n}">{_esc(CHART_TITLES[n])}</a>' for n in names)
        sections = "\n".join(
            f'<section id="{_esc(spec["name"])}">\n<h2>{i}. {_esc(spec["title"])}</h2>\n{_container(spec)}\n'
            f"{_table(spec['name'], list(report.get(spec['name']) or []))}\n</section>"
            for i, spec in enumerate(specs, start=1)
        )
        body = f"<h1>{_esc(title)}</h1>\n<nav>{nav}</nav>\n{sections}"
        page_class = "full"
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_esc(title)}</title>\n<style>{_CSS}</style>\n<script>{_ERROR_SCRIPT}</script>\n</head>\n"
        f'<body class="{page_class}" data-errors="">\n{body}\n'
        f'<script type="application/json" id="report-data">{_json_block(data)}</script>\n'
        f"<script>{_DRAW_SCRIPT}</script>\n</body>\n</html>\n"
    )


# --- PNG --------------------------------------------------------------------------------------------------------


def find_chromium() -> str | None:
    """The Chromium executable: ``$ECOM_CHROMIUM`` if set, else ``chromium`` / ``chromium-browser`` on the PATH."""
    configured = os.environ.get(CHROMIUM_ENV)
    if configured:
        return configured if Path(configured).is_file() else shutil.which(configured)
    for candidate in CHROMIUM_CANDIDATES:
        found = shutil.which(candidate)
        if found:
            return found
    return None


def _require_chromium() -> str:
    browser = find_chromium()
    if browser is None:
        where = f"${CHROMIUM_ENV} ({os.environ[CHROMIUM_ENV]})" if os.environ.get(CHROMIUM_ENV) else "the PATH"
        raise EcomError(
            f"PNG charts need the Chromium browser (headless), not found on {where}: {CHROMIUM_INSTALL_HINT}, "
            f"or set {CHROMIUM_ENV} to its executable"
        )
    return browser


def render_png(
    report: dict[str, Rows], out_dir: str | Path, *, scale: float = 2.0, timeout: float = 60.0
) -> list[Path]:
    """Write one PNG per aggregate (``profit_by_year.png``, ...): headless-Chromium screenshots of the HTML charts.

    Args:
        report: ``{name: rows}`` as for :func:`render_html`.
        out_dir: Folder for the PNG files (created if missing; existing files are replaced).
        scale: Device pixel ratio of the screenshots (2 gives crisp text; the image is ``scale`` x the chart size).
        timeout: Seconds allowed per screenshot.

    Returns:
        The PNG paths, in :data:`~ecom_lakehouse.report.REPORT_NAMES` order.

    Raises:
        EcomError: Chromium is not installed, or a screenshot failed.
    """
    browser = _require_chromium()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    with tempfile.TemporaryDirectory(prefix="ecom-charts-") as tmp:
        work = Path(tmp)
        for name in REPORT_NAMES:
            spec = _chart_spec(name, list(report.get(name) or []), svg_title=True)
            page = work / f"{name}.html"
            page.write_text(render_html(report, only=name), encoding="utf-8")
            shot = work / f"{name}.png"
            command = [
                browser,
                *CHROMIUM_FLAGS,
                f"--user-data-dir={work / 'profile'}",
                f"--force-device-scale-factor={scale:g}",
                f"--window-size={spec['width']},{spec['height']}",
                f"--screenshot={shot}",
                page.as_uri(),
            ]
            try:
                result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
            except subprocess.TimeoutExpired as exc:
                raise EcomError(f"chromium took more than {timeout:g}s to screenshot the {name} chart") from exc
            except OSError as exc:
                raise EcomError(f"cannot run chromium ({browser}): {exc}") from exc
            if result.returncode != 0 or not shot.is_file() or shot.read_bytes()[:8] != b"\x89PNG\r\n\x1a\n":
                tail = "\n".join(result.stderr.strip().splitlines()[-5:])
                raise EcomError(f"chromium failed to screenshot the {name} chart (exit {result.returncode}): {tail}")
            target = out / f"{name}.png"
            shutil.copyfile(shot, target)
            written.append(target)
    return written


# --- inline CSS and scripts -------------------------------------------------------------------------------------

_CSS = """
:root { color-scheme: light; }
html, body { background: #fff; color: #1f2328; }
body { font: 14px/1.45 system-ui, "Liberation Sans", "DejaVu Sans", Arial, sans-serif; margin: 24px auto;
       max-width: 1280px; padding: 0 16px; }
body.single { margin: 0; padding: 0; max-width: none; overflow: hidden; }
h1 { font-size: 22px; margin: 0 0 8px; }
h2 { font-size: 17px; margin: 32px 0 8px; }
nav { color: #57606a; margin-bottom: 8px; }
a { color: #0b62c4; }
.chart { overflow: hidden; }
.chart svg { display: block; font-family: system-ui, "Liberation Sans", "DejaVu Sans", Arial, sans-serif; }
.table-wrap { max-height: 420px; overflow: auto; margin-top: 12px; border: 1px solid #d0d7de; max-width: 840px; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
caption { text-align: left; padding: 6px 8px; color: #57606a; caption-side: top; }
th, td { padding: 3px 10px; border-bottom: 1px solid #eaeef2; text-align: left; white-space: nowrap; }
thead th { position: sticky; top: 0; background: #f6f8fa; border-bottom: 1px solid #d0d7de; }
.num { text-align: right; font-variant-numeric: tabular-nums; }
.nodata { color: #57606a; font-style: italic; }
"""

# First script of the page (in <head>): collects uncaught errors, including syntax errors of the drawing script,
# into <body data-errors>, so a headless browser's DOM dump shows them.
_ERROR_SCRIPT = """
(function () {
  "use strict";
  var errors = [];
  function flush() { if (document.body) { document.body.setAttribute("data-errors", errors.join(" | ")); } }
  window.reportChartError = function (message) { errors.push(String(message)); flush(); };
  window.addEventListener("error", function (event) {
    window.reportChartError((event.message || "error") + " (line " + (event.lineno || 0) + ")");
  });
  window.addEventListener("unhandledrejection", function (event) {
    window.reportChartError("unhandled rejection: " + (event.reason && event.reason.message || event.reason));
  });
  document.addEventListener("DOMContentLoaded", flush);
})();
"""

_DRAW_SCRIPT = """
(function () {
  "use strict";
  var NS = "http://www.w3.org/2000/svg";
  var POS = "#2f6db5", NEG = "#c8413b", GRID = "#e3e6ea", AXIS = "#57606a", INK = "#1f2328";
  var PALETTE = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7",
                 "#9c755f", "#bab0ac"];
  var data = JSON.parse(document.getElementById("report-data").textContent), LAYOUT = data.layout;
  var compact = new Intl.NumberFormat("en-US", {notation: "compact", maximumFractionDigits: 1});

  function el(parent, tag, attrs, text) {
    var node = document.createElementNS(NS, tag);
    Object.keys(attrs || {}).forEach(function (key) { node.setAttribute(key, String(attrs[key])); });
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    if (parent) { parent.appendChild(node); }
    return node;
  }
  function num(cell) { var v = cell ? parseFloat(cell.v) : NaN; return isFinite(v) ? v : 0; }
  function tip(node, text) { el(node, "title", {}, text); return node; }
  function ticks(lo, hi, count) {
    if (lo === hi) { if (lo === 0) { hi = 1; } else if (lo > 0) { lo = 0; } else { hi = 0; } }
    var raw = (hi - lo) / count, step = Math.pow(10, Math.floor(Math.log10(raw))), ratio = raw / step;
    step *= ratio >= 7.5 ? 10 : ratio >= 3.5 ? 5 : ratio >= 1.5 ? 2 : 1;
    var out = [], start = Math.floor(lo / step + 1e-9) * step, stop = Math.ceil(hi / step - 1e-9) * step;
    for (var i = 0; start + i * step <= stop + step / 2; i++) {
      var v = start + i * step; out.push(Math.abs(v) < step * 1e-9 ? 0 : v);
    }
    return out;
  }
  function scale(d0, d1, r0, r1) { return function (v) { return r0 + (v - d0) / (d1 - d0 || 1) * (r1 - r0); }; }
  function fit(node, width) {
    var text = node.textContent;
    if (!node.getComputedTextLength || node.getComputedTextLength() <= width) { return; }
    while (text.length > 1 && node.getComputedTextLength() > width) {
      text = text.slice(0, -1); node.textContent = text.replace(/\\s+$/, "") + "\\u2026";
    }
  }
  function bar(parent, x, y, w, h, color, label) {
    return tip(el(parent, "rect", {"class": "mark", x: x.toFixed(2), y: y.toFixed(2), width: Math.max(w, 0).toFixed(2),
                                   height: Math.max(h, 0).toFixed(2), fill: color}), label);
  }

  function drawColumns(svg, spec, top) {
    var W = spec.width, H = spec.height, left = 84, right = 20, bottom = 34;
    var values = [];
    spec.series.forEach(function (s) { s.values.forEach(function (c) { if (c) { values.push(num(c)); } }); });
    if (spec.legend) {
      var lx = left, ly = top + 14;
      spec.series.forEach(function (s, i) {
        if (lx + 170 > W - right) { lx = left; ly += 24; }
        el(svg, "rect", {x: lx, y: ly - 10, width: 12, height: 12, rx: 2, fill: PALETTE[i % PALETTE.length]});
        fit(el(svg, "text", {x: lx + 18, y: ly, "font-size": 12, fill: INK}, s.name), 145);
        lx += 170;
      });
      top += spec.legendHeight;
    }
    var lo = Math.min(0, Math.min.apply(null, values)), hi = Math.max(0, Math.max.apply(null, values));
    var labelRoom = spec.valueLabels ? 18 : 0;  // value labels above positive and below negative bars
    var t = ticks(lo, hi, 6);
    var y = scale(t[0], t[t.length - 1], H - bottom - (lo < 0 ? labelRoom : 0), top + 6 + labelRoom);
    t.forEach(function (v) {
      el(svg, "line", {x1: left, x2: W - right, y1: y(v), y2: y(v), stroke: v === 0 ? AXIS : GRID,
                       "stroke-width": v === 0 ? 1.2 : 1});
      el(svg, "text", {x: left - 8, y: y(v) + 4, "text-anchor": "end", "font-size": 11, fill: AXIS}, compact.format(v));
    });
    var band = (W - left - right) / spec.groups.length, inner = band * 0.76, bw = inner / spec.series.length;
    var marks = 0;
    spec.groups.forEach(function (group, g) {
      var x0 = left + g * band + (band - inner) / 2;
      spec.series.forEach(function (s, i) {
        var cell = s.values[g];
        if (!cell) { return; }
        var v = num(cell), y0 = y(0), y1 = y(v);
        var color = spec.series.length === 1 ? (v < 0 ? NEG : POS) : PALETTE[i % PALETTE.length];
        var h = Math.max(Math.abs(y1 - y0), v === 0 ? 0 : 1);
        var label = group + (spec.series.length > 1 ? " \\u00b7 " + s.name : "") + ": " + cell.t;
        bar(svg, x0 + i * bw + 1, v < 0 ? y0 : y0 - h, bw - 2, h, color, label);
        marks++;
        if (spec.valueLabels) {
          el(svg, "text", {x: x0 + i * bw + bw / 2, y: v < 0 ? y0 + h + 14 : y0 - h - 5, "text-anchor": "middle",
                           "font-size": 12, fill: INK}, cell.t);
        }
      });
      el(svg, "text", {x: left + g * band + band / 2, y: H - bottom + 20, "text-anchor": "middle", "font-size": 12,
                       fill: INK}, group);
    });
    return marks;
  }

  function drawHbars(svg, spec, top) {
    var W = spec.width, LW = spec.labelWidth, right = 20;
    var values = spec.rows.map(num), lo = Math.min(0, Math.min.apply(null, values));
    var hi = Math.max(0, Math.max.apply(null, values));
    var padL = lo < 0 ? 86 : 6, padR = hi > 0 ? 86 : 6;
    var t = ticks(lo, hi, 5);
    lo = Math.min(lo, t[0]); hi = Math.max(hi, t[t.length - 1]);
    var x = scale(lo, hi, LW + 10 + padL, W - right - padR);
    var rowsTop = top + 30;
    var rowsBottom = rowsTop + spec.rows.length * LAYOUT.rowHeight + (spec.splitAfter ? LAYOUT.splitGap : 0);
    t.forEach(function (v) {
      if (v < lo || v > hi) { return; }
      el(svg, "line", {x1: x(v), x2: x(v), y1: rowsTop - 6, y2: rowsBottom, stroke: v === 0 ? AXIS : GRID,
                       "stroke-width": v === 0 ? 1.2 : 1});
      el(svg, "text", {x: x(v), y: rowsTop - 12, "text-anchor": "middle", "font-size": 11, fill: AXIS},
         compact.format(v));
    });
    var yy = rowsTop, marks = 0;
    spec.rows.forEach(function (row, i) {
      if (spec.splitAfter && i === spec.splitAfter) {
        el(svg, "line", {x1: 12, x2: W - right, y1: yy + LAYOUT.splitGap / 2, y2: yy + LAYOUT.splitGap / 2,
                         stroke: "#8c959f", "stroke-dasharray": "4 4"});
        yy += LAYOUT.splitGap;
      }
      var v = num(row), x0 = x(0), x1 = x(v), w = Math.max(Math.abs(x1 - x0), v === 0 ? 0 : 1);
      var full = row.label + (row.sub && row.sub !== row.label ? " (" + row.sub + ")" : "");
      fit(tip(el(svg, "text", {x: LW, y: yy + 16, "text-anchor": "end", "font-size": 12, fill: INK}, row.label),
              full), LW - 12);
      bar(svg, v < 0 ? x0 - w : x0, yy + 4, w, 16, v < 0 ? NEG : POS, full + ": " + row.t);
      marks++;
      el(svg, "text", {x: v < 0 ? x0 - w - 5 : x0 + w + 5, y: yy + 16, "text-anchor": v < 0 ? "end" : "start",
                       "font-size": 11, fill: INK}, row.t);
      yy += LAYOUT.rowHeight;
    });
    return marks;
  }

  function mix(a, b, t) {
    return "rgb(" + [0, 1, 2].map(function (i) { return Math.round(a[i] + (b[i] - a[i]) * t); }).join(",") + ")";
  }
  function diverging(t) {
    var mid = [247, 247, 247];
    return t < 0 ? mix(mid, [178, 24, 43], Math.min(1, -t)) : mix(mid, [33, 102, 172], Math.min(1, t));
  }

  function drawHeatmap(svg, spec, top) {
    var LW = spec.labelWidth, CW = spec.cellWidth, RH = LAYOUT.rowHeight, x0 = LW + 10, y0 = top + 30;
    var maxAbs = 0;
    spec.rows.forEach(function (r) {
      r.cells.forEach(function (c) { if (c) { maxAbs = Math.max(maxAbs, Math.abs(num(c))); } });
    });
    maxAbs = maxAbs || 1;
    spec.columns.forEach(function (col, j) {
      el(svg, "text", {x: x0 + j * CW + CW / 2, y: y0 - 10, "text-anchor": "middle", "font-size": 12,
                       "font-weight": 600, fill: INK}, col);
    });
    el(svg, "text", {x: x0 + spec.columns.length * CW + spec.totalWidth - 6, y: y0 - 10, "text-anchor": "end",
                     "font-size": 12, "font-weight": 600, fill: AXIS}, "Total");
    var marks = 0;
    spec.rows.forEach(function (row, i) {
      var y = y0 + i * RH, full = row.label + " (" + row.sub + "), total " + row.total;
      fit(tip(el(svg, "text", {x: LW, y: y + 16, "text-anchor": "end", "font-size": 12, fill: INK}, row.label), full),
          LW - 12);
      row.cells.forEach(function (cell, j) {
        var x = x0 + j * CW;
        if (!cell) {
          tip(el(svg, "rect", {"class": "empty", x: x + 1, y: y + 1, width: CW - 2, height: RH - 2, fill: "#f0f1f3"}),
              row.label + " \\u00b7 " + spec.columns[j] + ": no orders");
          el(svg, "text", {x: x + CW / 2, y: y + 16, "text-anchor": "middle", "font-size": 11, fill: AXIS}, "\\u2013");
          return;
        }
        var t = num(cell) / maxAbs;
        bar(svg, x + 1, y + 1, CW - 2, RH - 2, diverging(t), row.label + " \\u00b7 " + spec.columns[j] + ": " + cell.t);
        el(svg, "text", {x: x + CW - 7, y: y + 16, "text-anchor": "end", "font-size": 11,
                         fill: Math.abs(t) > 0.55 ? "#fff" : INK}, cell.t);
        marks++;
      });
      el(svg, "text", {x: x0 + spec.columns.length * CW + spec.totalWidth - 6, y: y + 16, "text-anchor": "end",
                       "font-size": 11, "font-weight": 600, fill: num({v: row.totalValue}) < 0 ? NEG : INK}, row.total);
    });
    var ly = y0 + spec.rows.length * RH + 22, lx = x0, lw = Math.min(260, spec.columns.length * CW);
    var id = "scale-" + spec.name;
    var grad = el(el(svg, "defs", {}), "linearGradient", {id: id, x1: 0, x2: 1, y1: 0, y2: 0});
    [-1, -0.5, 0, 0.5, 1].forEach(function (s) {
      el(grad, "stop", {offset: ((s + 1) / 2 * 100) + "%", "stop-color": diverging(s)});
    });
    el(svg, "rect", {x: lx, y: ly, width: lw, height: 10, fill: "url(#" + id + ")", stroke: "#d0d7de"});
    [[-maxAbs, "start", lx], [0, "middle", lx + lw / 2], [maxAbs, "end", lx + lw]].forEach(function (tk) {
      el(svg, "text", {x: tk[2], y: ly + 26, "text-anchor": tk[1], "font-size": 11, fill: AXIS}, compact.format(tk[0]));
    });
    el(svg, "text", {x: lx - 8, y: ly + 9, "text-anchor": "end", "font-size": 11, fill: AXIS}, "profit");
    return marks;
  }

  var DRAW = {columns: drawColumns, hbars: drawHbars, heatmap: drawHeatmap};

  function draw(container, spec) {
    var svg = el(null, "svg", {width: spec.width, height: spec.height,
                               viewBox: "0 0 " + spec.width + " " + spec.height});
    container.appendChild(svg);
    el(svg, "rect", {x: 0, y: 0, width: spec.width, height: spec.height, fill: "#fff"});
    var top = 0;
    if (spec.svgTitle) {
      el(svg, "text", {x: 12, y: 24, "font-size": 17, "font-weight": 700, fill: INK}, spec.title);
      top = LAYOUT.titleHeight;
    }
    var marks = 0;
    if (spec.empty) {
      el(svg, "text", {x: spec.width / 2, y: top + (spec.height - top) / 2 + 5, "text-anchor": "middle",
                       "font-size": 14, fill: AXIS, "class": "nodata"}, "No data");
    } else {
      marks = DRAW[spec.kind](svg, spec, top);
    }
    container.setAttribute("data-marks", String(marks));
    container.setAttribute("data-rendered", "true");
  }

  data.charts.forEach(function (spec) {
    var container = document.querySelector('[data-chart="' + spec.name + '"]');
    if (!container) { window.reportChartError("no container for chart " + spec.name); return; }
    try {
      draw(container, spec);
    } catch (err) {
      container.setAttribute("data-rendered", "error");
      window.reportChartError(spec.name + ": " + (err && err.stack || err));
    }
  });
  document.body.setAttribute("data-charts-done", "true");
})();
"""
