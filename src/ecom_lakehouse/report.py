"""The profit report: executes the SQL notebook ``notebooks/05_profit_report.sql`` (the one source of the four
queries) and renders its results as a table, CSV or JSON."""

from __future__ import annotations

import csv
import io
import json
import re
from decimal import Decimal
from pathlib import Path

from pyspark.sql import SparkSession

from ecom_lakehouse.config import PipelineConfig
from ecom_lakehouse.errors import EcomError
from ecom_lakehouse.notebook import run_notebook

REPORT_NAMES = ("profit_by_year", "profit_by_year_category", "profit_by_customer", "profit_by_customer_year")
NOTEBOOK_NAME = "05_profit_report.sql"
_FROM = re.compile(r"\bFROM\s+([A-Za-z_]\w*)", re.IGNORECASE)

Rows = list[dict[str, object]]


def report_notebook() -> Path:
    """The SQL report notebook: the repository's ``notebooks/`` (or the copy shipped in the wheel)."""
    package_dir = Path(__file__).resolve().parent
    for candidate in (package_dir / "notebooks" / NOTEBOOK_NAME, package_dir.parents[1] / "notebooks" / NOTEBOOK_NAME):
        if candidate.is_file():
            return candidate
    raise EcomError(f"report notebook {NOTEBOOK_NAME} not found next to the package")


def _params(config: PipelineConfig) -> dict[str, str]:
    return {"catalog": config.catalog, "gold_schema": config.schemas["gold"]}


def report_queries() -> dict[str, str]:
    """The four report SELECT statements of the notebook, by report name, for engines that already have the views
    (e.g. a Databricks SQL warehouse with the gold schema as the default schema)."""
    from ecom_lakehouse.notebook import parse_notebook, split_statements

    queries = {}
    for cell in parse_notebook(report_notebook()):
        if cell.kind != "sql":
            continue
        for statement in split_statements(cell.source):
            match = _FROM.search(statement)
            if statement.upper().startswith("SELECT") and match and match.group(1) in REPORT_NAMES:
                queries[match.group(1)] = statement
    return {name: queries[name] for name in REPORT_NAMES}


def create_report_views(spark: SparkSession, config: PipelineConfig) -> None:
    """Create (or replace) the four report views in the gold schema, without running the queries."""
    run_notebook(spark, report_notebook(), _params(config), sql_only_ddl=True)


def run_report(spark: SparkSession, config: PipelineConfig) -> dict[str, Rows]:
    """Run the report notebook and collect its four results.

    Returns:
        ``{name: rows}`` for each of :data:`REPORT_NAMES`, rows as dicts with snake_case keys.
    """
    results: dict[str, Rows] = {}
    for result in run_notebook(spark, report_notebook(), _params(config)).results:
        match = _FROM.search(result.statement or "")
        name = match.group(1) if match else f"result_{len(results)}"
        results[name] = [row.asDict() for row in result.df.collect()]
    missing = [n for n in REPORT_NAMES if n not in results]
    if missing:
        raise EcomError(f"report notebook produced no result for {', '.join(missing)}")
    return {name: results[name] for name in REPORT_NAMES}


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
