"""Run Databricks source-format notebooks locally, cell by cell, on local Spark.

The job's notebooks are exactly what the tests run. Supported: Python notebooks (``# Databricks notebook source``,
cells split by ``# COMMAND ----------``, ``# MAGIC %md`` / ``%sql`` cells) and SQL notebooks
(``-- Databricks notebook source``, ``-- COMMAND ----------``). ``%pip`` cells are skipped locally (the package is
installed already). A small ``dbutils.widgets`` stand-in provides parameters; SQL ``CREATE WIDGET`` statements
declare defaults and ``:name`` parameter markers are bound from the widgets. A ``CREATE VIEW`` creates a temporary
view of the session: locally the lakehouse folder holds tables only, and a view of the session resolves the names in
its body against the session's own lakehouse.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession

from ecom_lakehouse.errors import EcomError

log = logging.getLogger(__name__)

_HEADERS = {".py": ("# Databricks notebook source", "# COMMAND ----------", "# MAGIC"),
            ".sql": ("-- Databricks notebook source", "-- COMMAND ----------", "-- MAGIC")}  # fmt: skip
_CREATE_WIDGET = re.compile(
    r"^\s*CREATE\s+WIDGET\s+(?:TEXT|DROPDOWN|COMBOBOX)\s+(\w+)\s+DEFAULT\s+(['\"])(.*?)\2", re.IGNORECASE | re.DOTALL
)
_CREATE_VIEW = re.compile(r"^(\s*CREATE\s+(?:OR\s+REPLACE\s+)?)VIEW", re.IGNORECASE)
_MARKER = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")  # :name, not a::cast or a time 10:30


class NotebookError(EcomError):
    """A notebook file is not in Databricks source format, or one of its cells failed."""


@dataclass(frozen=True)
class Cell:
    """One notebook cell: ``python``, ``sql``, ``md`` or ``skip`` (magics without a local meaning)."""

    kind: str
    source: str
    index: int
    title: str | None = None  # the cell's title (``DBTITLE`` line), shown above the cell in Databricks


def parse_notebook(path: str | Path) -> list[Cell]:
    """Split a Databricks source-format notebook into cells.

    Args:
        path: a ``.py`` or ``.sql`` notebook file.

    Returns:
        The cells in order.

    Raises:
        NotebookError: unknown extension or wrong first line.
    """
    path = Path(path)
    if path.suffix not in _HEADERS:
        raise NotebookError(f"{path}: not a .py or .sql notebook")
    header, separator, magic = _HEADERS[path.suffix]
    lines = path.read_text(encoding="utf-8").splitlines()
    if not lines or lines[0].rstrip() != header:
        raise NotebookError(f"{path}: first line must be exactly {header!r}")
    chunks: list[list[str]] = [[]]
    for line in lines[1:]:
        if line.rstrip() == separator:
            chunks.append([])
        else:
            chunks[-1].append(line)
    cells = []
    title_prefix = f"{header.split()[0]} DBTITLE 1,"
    for index, chunk in enumerate(chunks):
        text = "\n".join(chunk).strip()
        title = None
        if text.startswith(title_prefix):
            first, _, text = text.partition("\n")
            title, text = first.removeprefix(title_prefix).strip(), text.strip()
        if not text:
            continue
        if text.startswith(magic):
            body = "\n".join(re.sub(rf"^{re.escape(magic)} ?", "", line) for line in text.splitlines())
            magic_word, _, rest = body.partition("\n")
            kind = {"%md": "md", "%sql": "sql", "%python": "python"}.get(magic_word.split()[0], "skip")
            cells.append(Cell(kind, rest if kind != "md" else body, index, title))
        else:
            cells.append(Cell("python" if path.suffix == ".py" else "sql", text, index, title))
    return cells


def split_statements(sql: str) -> list[str]:
    """Split SQL text on semicolons outside quotes and comments; drop empty statements."""
    statements, current, quote, i = [], [], "", 0
    while i < len(sql):
        char = sql[i]
        if quote:
            current.append(char)
            if char == quote:
                quote = ""
        elif char in "'\"`":
            quote = char
            current.append(char)
        elif sql.startswith("--", i):
            end = sql.find("\n", i)
            i = len(sql) if end == -1 else end
            continue
        elif char == ";":
            statements.append("".join(current))
            current = []
        else:
            current.append(char)
        i += 1
    statements.append("".join(current))
    return [s.strip() for s in statements if s.strip()]


@dataclass
class Widgets:
    """The ``dbutils.widgets`` subset notebooks use: text/dropdown/get/getAll/removeAll."""

    values: dict[str, str] = field(default_factory=dict)
    declared: dict[str, str] = field(default_factory=dict)

    def text(self, name: str, default_value: str = "", label: str | None = None) -> None:
        self.declared[name] = default_value

    def dropdown(self, name: str, default_value: str, choices: list[str], label: str | None = None) -> None:
        self.declared[name] = default_value

    def get(self, name: str) -> str:
        if name in self.values:
            return self.values[name]
        if name in self.declared:
            return self.declared[name]
        raise NotebookError(f"widget {name!r} is not defined")

    def getAll(self) -> dict[str, str]:
        return {**self.declared, **self.values}

    def removeAll(self) -> None:
        self.declared.clear()


class _Library:
    def restartPython(self) -> None:  # the package is installed already; nothing to restart locally
        pass


class _DbUtils:
    def __init__(self, widgets: Widgets) -> None:
        self.widgets = widgets
        self.library = _Library()


@dataclass(frozen=True)
class Result:
    """A SQL query's or ``display`` call's DataFrame, with the cell and (for SQL) the statement."""

    cell: int
    df: DataFrame
    statement: str | None = None
    title: str | None = None


@dataclass
class NotebookRun:
    """What a local notebook run produced, in order."""

    results: list[Result] = field(default_factory=list)


def run_notebook(
    spark: SparkSession,
    path: str | Path,
    params: dict[str, str] | None = None,
    *,
    sql_only_ddl: bool = False,
) -> NotebookRun:
    """Execute a notebook's cells in order on ``spark``.

    Args:
        spark: the session.
        path: the notebook file.
        params: widget values (job parameters), overriding the notebook's defaults.
        sql_only_ddl: run only statements that are not plain queries (USE, CREATE ...): sets up views.

    Returns:
        The results: SQL query results and the DataFrames passed to ``display``.

    Raises:
        NotebookError: a cell failed; the message names the notebook and cell.
    """
    widgets = Widgets(values=dict(params or {}))
    run = NotebookRun()
    namespace: dict[str, object] = {
        "spark": spark,
        "dbutils": _DbUtils(widgets),
        "__name__": "__main__",
        "display": lambda df, *a, **k: run.results.append(Result(current, df, title=title)),
    }
    current, title = -1, None
    for cell in parse_notebook(path):
        current, title = cell.index, cell.title
        try:
            if cell.kind == "python":
                exec(compile(cell.source, f"{path}[cell {cell.index}]", "exec"), namespace)
            elif cell.kind == "sql":
                for statement in split_statements(cell.source):
                    statement = _CREATE_VIEW.sub(r"\1TEMPORARY VIEW", statement)
                    _run_sql(spark, statement, widgets, run, cell, sql_only_ddl)
            elif cell.kind == "skip":
                log.info("%s cell %d: skipped locally (%s)", path, cell.index, cell.source.split()[0:1])
        except EcomError:
            raise
        except Exception as exc:
            message = str(exc).split("\nJVM stacktrace:")[0].strip()
            raise NotebookError(f"{path} cell {cell.index} failed: {exc.__class__.__name__}: {message}") from exc
    return run


def _run_sql(
    spark: SparkSession, statement: str, widgets: Widgets, run: NotebookRun, cell: Cell, only_ddl: bool
) -> None:
    widget = _CREATE_WIDGET.match(statement)
    if widget:
        widgets.declared[widget.group(1)] = widget.group(3)
        return
    is_query = statement.lstrip().upper().startswith(("SELECT", "WITH", "TABLE", "FROM"))
    if only_ddl and is_query:
        return
    df = spark.sql(bind_markers(statement, widgets.get))
    if is_query:
        run.results.append(Result(cell.index, df, statement, cell.title))


def bind_markers(sql: str, value_of: Callable[[str], str]) -> str:
    """Replace each ``:name`` parameter marker outside quotes by its widget value as an escaped SQL string literal.

    Binding in text rather than through ``spark.sql(q, args=...)``: on Spark 4.1 with Delta 4.4.0's SQL extension,
    named arguments stay unbound (Delta's parser does not hand them to Spark's parameter pre-parser). A literal binds
    the same way on every Spark; the escaping keeps a value a value (``O'Brien`` cannot end the literal).
    """
    out, quote, i = [], "", 0
    while i < len(sql):
        char = sql[i]
        if quote:
            out.append(char)
            if char == "\\" and quote != "`" and i + 1 < len(sql):
                out.append(sql[i + 1])
                i += 1
            elif char == quote:
                quote = ""
        elif char in "'\"`":
            quote = char
            out.append(char)
        elif (marker := _MARKER.match(sql, i)) is not None:
            value = value_of(marker.group(1)).replace("\\", "\\\\").replace("'", "\\'")
            out.append(f"'{value}'")
            i = marker.end()
            continue
        else:
            out.append(char)
        i += 1
    return "".join(out)
