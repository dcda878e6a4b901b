"""The profit report: executes the SQL notebook ``notebooks/05_profit_report.sql`` (the one source of the four
queries) and renders its results as a table, CSV or JSON."""

from __future__ import annotations

import re
from pathlib import Path

from pyspark.sql import SparkSession

from ecom_lakehouse.config import PipelineConfig
from ecom_lakehouse.errors import EcomError
from ecom_lakehouse.fields import REPORT_NAMES
from ecom_lakehouse.notebook import run_notebook
from ecom_lakehouse.render import RENDERERS, Rows, render_csv, render_json, render_table

__all__ = ["RENDERERS", "REPORT_NAMES", "create_report_views", "render_csv", "render_json", "render_table",
           "report_queries", "run_report"]  # fmt: skip

NOTEBOOK_NAME = "05_profit_report.sql"
_FROM = re.compile(r"\bFROM\s+([A-Za-z_]\w*)", re.IGNORECASE)


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
