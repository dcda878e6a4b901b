"""The Databricks Connect route, checked without a workspace: ECOM_SPARK_MODE=databricks takes the session
Databricks Connect gives, files are then read through that compute, tables are Unity Catalog names, and a missing
databricks-connect says how to install it."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

from ecom_lakehouse import spark as spark_module
from ecom_lakehouse.config import load_config
from ecom_lakehouse.io import sources
from ecom_lakehouse.io.tables import Lakehouse


class _Session:
    version = "18.0"


@pytest.fixture
def databricks_connect(monkeypatch):
    session = _Session()
    builder = types.SimpleNamespace(getOrCreate=lambda: session)
    connect = types.ModuleType("databricks.connect")
    connect.DatabricksSession = types.SimpleNamespace(builder=builder)
    monkeypatch.setitem(sys.modules, "databricks", types.ModuleType("databricks"))
    monkeypatch.setitem(sys.modules, "databricks.connect", connect)
    monkeypatch.setenv(spark_module.MODE_ENV, "databricks")
    monkeypatch.delenv(spark_module.REMOTE_ENV, raising=False)
    monkeypatch.setattr(spark_module, "_sessions", {})
    yield session
    spark_module._elsewhere.discard(id(session))


def test_the_session_is_databricks_connects_and_reads_the_workspaces_files(databricks_connect):
    session = spark_module.get_spark()
    assert session is databricks_connect
    assert spark_module.describe(session) == "18.0 (databricks connect)"
    assert not spark_module.sees_local_files(session)
    assert sources.through_spark(session, "/Volumes/main/ecom_raw/raw/")  # a volume path: the workspace's, not ours
    lakehouse = Lakehouse(session, load_config().with_overrides(catalog="main"), None)
    assert lakehouse.ref("bronze", "orders") == "main.ecom_bronze.orders_raw"  # Unity Catalog names, no folder


def test_without_databricks_connect_the_error_says_how_to_install_it(monkeypatch):
    monkeypatch.setenv(spark_module.MODE_ENV, "databricks")
    monkeypatch.setattr(spark_module, "_sessions", {})
    monkeypatch.setitem(sys.modules, "databricks.connect", None)  # import fails
    with pytest.raises(RuntimeError, match=r"pip install 'databricks-connect==18\.\*' ecom-lakehouse"):
        spark_module.get_spark()


def test_a_catalog_is_only_for_remote_compute(tmp_path, monkeypatch, capsys):
    from ecom_lakehouse.tools.cli import main

    monkeypatch.delenv(spark_module.MODE_ENV, raising=False)
    monkeypatch.delenv(spark_module.REMOTE_ENV, raising=False)
    assert main(["sql", "SELECT 1", "--lakehouse", str(tmp_path), "--catalog", "main"]) == 2
    assert "a local lakehouse's catalog is spark_catalog" in capsys.readouterr().err


def test_a_relative_local_path_reaches_the_server_absolute_and_a_remote_computes_path_as_given(databricks_connect):
    local = object()  # a session of the local server or JVM: it sees this machine's files
    here = str(Path.cwd())
    assert sources.shared_path(local, "export") == f"{here}/export"
    assert sources.shared_path(local, "file:export") == f"{here}/export"
    assert sources.shared_path(local, "file:/data/export") == "file:/data/export"
    assert sources.shared_path(local, "/data/export") == "/data/export"
    assert sources.shared_path(local, "s3://bucket/raw/") == "s3://bucket/raw/"
    remote = spark_module.get_spark()  # Databricks Connect: the workspace's files, relative to nothing of ours
    assert sources.shared_path(remote, "export") == "export"
