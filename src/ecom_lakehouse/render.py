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


def render_table(report: dict[str, Rows]) -> str:
    """Aligned plain-text tables, one per report, numbers right-aligned."""
    out = []
    for name, rows in report.items():
        out.append(f"== {name} ({len(rows)} rows)")
        if not rows:
            out.append("(no rows)\n")
            continue
        columns = list(rows[0])
        widths = {c: max(len(c), *(len(_text(r[c])) for r in rows)) for c in columns}
        numeric = {c: all(isinstance(r[c], int | Decimal) or r[c] is None for r in rows) for c in columns}
        out.append(_format_row({c: c for c in columns}, widths, numeric))
        out.append("  ".join("-" * widths[c] for c in columns))
        out.extend(_format_row(r, widths, numeric) for r in rows)
        out.append("")
    return "\n".join(out)


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
