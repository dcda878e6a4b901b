"""Plain-text renderings of a report (``{name: rows}``): aligned table, CSV, JSON. No Spark needed, so the
DuckDB reference and ``ecom remote`` print exactly what ``ecom report`` prints."""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal

Rows = list[dict[str, object]]


def _text(value: object) -> str:
    return "" if value is None else str(value)


def _format_row(values: dict[str, object], widths: dict[str, int], numeric: dict[str, bool]) -> str:
    cells = [_text(v).rjust(widths[c]) if numeric[c] else _text(v).ljust(widths[c]) for c, v in values.items()]
    return "  ".join(cells).rstrip()


# The customer reports have a row per customer (and year): the default table shows their extremes.
SHOWN_AT_EACH_END = 10
LONG_REPORTS = ("profit_by_customer", "profit_by_customer_year")
ALL_ROWS_HINT = "every row: --all, --format csv|json, or --output FILE"


def _extremes(rows: Rows) -> tuple[Rows, Rows, int]:
    """The top and bottom rows by profit, and how many lie between them."""
    ranked = sorted(rows, key=lambda r: (r.get("profit") is None, -(r.get("profit") or 0)))
    if len(ranked) <= 2 * SHOWN_AT_EACH_END:
        return ranked, [], 0
    return ranked[:SHOWN_AT_EACH_END], ranked[-SHOWN_AT_EACH_END:], len(ranked) - 2 * SHOWN_AT_EACH_END


def render_table(report: dict[str, Rows], *, compact: bool = False) -> str:
    """Aligned plain-text tables, one per report, numbers right-aligned.

    Args:
        report: ``{name: rows}``.
        compact: show the long reports (:data:`LONG_REPORTS`) as their top and bottom rows by profit with the count
            of the rest; the others whole.
    """
    out = []
    shortened = False
    for name, rows in report.items():
        out.append(f"== {name} ({len(rows):,} rows)")
        if not rows:
            out.append("(no rows)\n")
            continue
        top, bottom, rest = _extremes(rows) if compact and name in LONG_REPORTS else (rows, [], 0)
        columns = list(rows[0])
        shown = top + bottom
        widths = {c: max(len(c), *(len(_text(r[c])) for r in shown)) for c in columns}
        numeric = {c: all(isinstance(r[c], int | Decimal) or r[c] is None for r in rows) for c in columns}
        out.append(_format_row({c: c for c in columns}, widths, numeric))
        out.append("  ".join("-" * widths[c] for c in columns))
        out.extend(_format_row(r, widths, numeric) for r in top)
        if rest:
            shortened = True
            out.append(f"... {rest:,} more rows between the top and bottom {SHOWN_AT_EACH_END} by profit ...")
            out.extend(_format_row(r, widths, numeric) for r in bottom)
        out.append("")
    if shortened:
        out.append(f"({ALL_ROWS_HINT})")
    return "\n".join(out) + ("\n" if shortened else "")


def render_csv(report: dict[str, Rows]) -> str:
    """One CSV section per report, preceded by a ``# name`` line."""
    buffer = io.StringIO()
    for name, rows in report.items():
        buffer.write(f"# {name}\n")
        if rows:
            writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
            writer.writeheader()
            writer.writerows({k: _text(v) for k, v in r.items()} for r in rows)
        buffer.write("\n")
    return buffer.getvalue()


def _json_value(value: object) -> str:
    # Decimals are written as JSON numbers with their exact text (never through float).
    if isinstance(value, Decimal):
        return format(value, "f")
    return json.dumps(value, ensure_ascii=False)


def render_json(report: dict[str, Rows]) -> str:
    """One JSON object: ``{name: [row, ...]}`` with snake_case keys; profits as exact decimal numbers."""
    parts = []
    for name, rows in report.items():
        items = ["{" + ", ".join(f"{json.dumps(k)}: {_json_value(v)}" for k, v in r.items()) + "}" for r in rows]
        parts.append(f"  {json.dumps(name)}: [" + (",\n    ".join(items) if items else "") + "]")
    return "{\n" + ",\n".join(parts) + "\n}\n"


RENDERERS = {"table": render_table, "csv": render_csv, "json": render_json}
