from __future__ import annotations

import pytest

from ecom_lakehouse.tools.notebook import NotebookError, parse_notebook, run_notebook, split_statements


def test_parse_python_notebook_cells(tmp_path):
    path = tmp_path / "nb.py"
    path.write_text(
        "# Databricks notebook source\n# MAGIC %md\n# MAGIC # Title\n\n# COMMAND ----------\n\nx = 1\n\n"
        "# COMMAND ----------\n\n# MAGIC %sql\n# MAGIC SELECT 1\n\n# COMMAND ----------\n\n# MAGIC %pip install foo\n"
    )
    assert [(c.kind, c.source) for c in parse_notebook(path)] == [
        ("md", "%md\n# Title"), ("python", "x = 1"), ("sql", "SELECT 1"), ("skip", ""),
    ]  # fmt: skip


def test_parse_rejects_a_file_that_is_not_a_notebook(tmp_path):
    path = tmp_path / "plain.py"
    path.write_text("print('hi')\n")
    with pytest.raises(NotebookError, match="first line must be exactly '# Databricks notebook source'"):
        parse_notebook(path)


def test_split_statements_respects_quotes_and_comments():
    sql = "SELECT ';' AS a; -- a comment; with a semicolon\nSELECT \"x;y\";\n\n"
    assert split_statements(sql) == ["SELECT ';' AS a", 'SELECT "x;y"']


def test_sql_notebook_widgets_defaults_and_parameter_markers(spark, tmp_path):
    path = tmp_path / "nb.sql"
    path.write_text(
        "-- Databricks notebook source\nCREATE WIDGET TEXT who DEFAULT 'world';\nCREATE WIDGET TEXT n DEFAULT '2';\n"
        "-- COMMAND ----------\nSELECT concat('hello ', :who) AS greeting, CAST(:n AS INT) + 1 AS m, ':who' AS lit\n"
    )
    defaults = run_notebook(spark, path).results[0].df.first()
    assert (defaults.greeting, defaults.m, defaults.lit) == ("hello world", 3, ":who")
    overridden = run_notebook(spark, path, {"who": "lakehouse"}).results[0].df.first()
    assert overridden.greeting == "hello lakehouse"
    quoted = run_notebook(spark, path, {"who": "O'Brien \\' OR 1=1 --"}).results[0].df.first()
    assert quoted.greeting == "hello O'Brien \\' OR 1=1 --"  # a value stays a value


def test_python_notebook_gets_widgets_and_display(spark, tmp_path):
    path = tmp_path / "nb.py"
    path.write_text(
        "# Databricks notebook source\ndbutils.widgets.text('n', '5')\n# COMMAND ----------\n"
        "display(spark.range(int(dbutils.widgets.get('n'))))\n"
    )
    assert run_notebook(spark, path, {"n": "3"}).results[0].df.count() == 3


def test_failing_cell_names_notebook_and_cell(spark, tmp_path):
    path = tmp_path / "nb.py"
    path.write_text("# Databricks notebook source\nx = 1\n# COMMAND ----------\nraise ValueError('boom')\n")
    with pytest.raises(NotebookError, match=r"nb.py cell 1 failed: ValueError: boom"):
        run_notebook(spark, path)
