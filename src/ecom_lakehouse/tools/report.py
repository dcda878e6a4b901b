"""The profit report: executes the SQL notebook ``notebooks/05_profit_report.sql`` (the one source of the four
queries) and renders its results as a table, CSV or JSON."""

from __future__ import annotations

from pathlib import Path

from pyspark.sql import SparkSession

from ecom_lakehouse.config import PipelineConfig
from ecom_lakehouse.errors import EcomError
from ecom_lakehouse.fields import REPORT_NAMES
from ecom_lakehouse.run.steps import concurrently
from ecom_lakehouse.tools.notebook import parse_notebook, run_notebook, split_statements
from ecom_lakehouse.tools.render import RENDERERS, Rows, render_csv, render_json, render_table

__all__ = ["RENDERERS", "REPORT_NAMES", "create_report_views", "render_csv", "render_json", "render_table",
           "report_queries", "run_report"]  # fmt: skip

NOTEBOOK_NAME = "05_profit_report.sql"


def report_notebook() -> Path:
    """The SQL report notebook: the repository's ``notebooks/`` (or the copy shipped in the wheel)."""
    package_dir = Path(__file__).resolve().parents[1]
    for candidate in (package_dir / "notebooks" / NOTEBOOK_NAME, package_dir.parents[1] / "notebooks" / NOTEBOOK_NAME):
        if candidate.is_file():
            return candidate
    raise EcomError(f"report notebook {NOTEBOOK_NAME} not found next to the package")


def _params(config: PipelineConfig) -> dict[str, str]:
    return {"catalog": config.catalog, "gold_schema": config.schemas["gold"]}


def _titled_queries() -> dict[str, str]:
    """The SELECT of each titled cell of the notebook, by title; a titled cell holds exactly one."""
    queries: dict[str, str] = {}
    for cell in parse_notebook(report_notebook()):
        if cell.kind != "sql" or not cell.title:
            continue
        selects = [s for s in split_statements(cell.source) if s.lstrip().upper().startswith(("SELECT", "WITH"))]
        if len(selects) != 1:
            raise EcomError(f"{report_notebook()}: cell {cell.title!r} should hold one query, has {len(selects)}")
        queries[cell.title] = selects[0]
    missing = [n for n in REPORT_NAMES if n not in queries]
    if missing:
        raise EcomError(f"{report_notebook()}: no cell titled {', '.join(missing)} (see fields.REPORT_NAMES)")
    return queries


def report_queries() -> dict[str, str]:
    """The four report SELECT statements of the notebook, by report name, for engines that already have the views
    (e.g. a Databricks SQL warehouse with the gold schema as the default schema)."""
    queries = _titled_queries()
    return {name: queries[name] for name in REPORT_NAMES}


def create_report_views(spark: SparkSession, config: PipelineConfig) -> None:
    """Create (or replace) the four report views, as temporary views of this session, without running the queries."""
    run_notebook(spark, report_notebook(), _params(config), sql_only_ddl=True)


def run_report(spark: SparkSession, config: PipelineConfig) -> dict[str, Rows]:
    """Run the report notebook and collect its four results, named by their cells' titles.

    Returns:
        ``{name: rows}`` for each of :data:`REPORT_NAMES`, rows as dicts with snake_case keys.
    """
    _titled_queries()  # every report name has its cell
    run = run_notebook(spark, report_notebook(), _params(config))
    titled = [r for r in run.results if r.title in REPORT_NAMES]
    # four small queries at once: their waits on the driver overlap
    rows = concurrently(*(lambda r=r: [row.asDict() for row in r.df.collect()] for r in titled))
    results = {r.title: result for r, result in zip(titled, rows, strict=True)}
    return {name: results[name] for name in REPORT_NAMES}
