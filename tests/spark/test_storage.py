"""The table edge on the API serverless compute exposes: MERGE through SQL, persist only where allowed, remote
listing through Spark, tables registered once per process, and no JVM access anywhere in the job's code."""

from __future__ import annotations

import re

import pytest

from ecom_lakehouse.config import load_config
from ecom_lakehouse.errors import SourceError
from ecom_lakehouse.io.sources import list_remote_files
from ecom_lakehouse.io.tables import Lakehouse, cached
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.connect
PACKAGE = REPO_ROOT / "src" / "ecom_lakehouse"
# Only the local session factory may touch the JVM: it starts the local classic Spark (and the Connect server).
LOCAL_ONLY = {PACKAGE / "spark.py"}
_JVM_ACCESS = re.compile(r"\.(sparkContext|_jvm|_jsc|_jdf|rdd)\b|\bDeltaTable\b|\bSparkContext\b")


@pytest.fixture
def lakehouse(spark, tmp_path, request):
    name = request.node.name.replace("test_", "")[:16]
    schemas = {f"{layer}_schema": f"st_{name}_{layer}" for layer in ("bronze", "silver", "gold")}
    return Lakehouse.open(spark, load_config().with_overrides(**schemas), tmp_path / "lh")


def test_no_jvm_access_in_code_that_runs_on_databricks():
    offenders = [
        f"{path.relative_to(REPO_ROOT)}:{number}: {line.strip()}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path not in LOCAL_ONLY
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if _JVM_ACCESS.search(line.split("#")[0])
    ]
    assert not offenders, "Spark Connect has no JVM: " + "; ".join(offenders)


def test_merge_inserts_updates_and_deletes_only_what_changed(spark, lakehouse):
    schema = "row_id long, value string, _row_hash string"
    lakehouse.ensure_schemas()
    first = spark.createDataFrame([(1, "a", "h1"), (2, "b", "h2"), (3, "c", "h3")], schema)
    assert lakehouse.merge(first, "silver", "orders", "row_id", "_row_hash") == {"inserted": 3, "updated": 0,
                                                                                 "deleted": 0}  # fmt: skip
    second = spark.createDataFrame([(1, "a", "h1"), (2, "B", "h2b"), (4, "d", "h4")], schema)
    assert lakehouse.merge(second, "silver", "orders", "row_id", "_row_hash") == {"inserted": 1, "updated": 1,
                                                                                  "deleted": 1}  # fmt: skip
    rows = {r.row_id: r.value for r in lakehouse.read("silver", "orders").collect()}
    assert rows == {1: "a", 2: "B", 4: "d"}
    assert not [v.name for v in spark.catalog.listTables() if v.name.startswith("_ecom_merge_source")]


class _PersistRefused:
    """A DataFrame on compute that refuses persist (serverless before environment version 5)."""

    def __init__(self, df):
        self.df = df
        self.unpersisted = False

    def persist(self):
        raise RuntimeError("[NOT_SUPPORTED_WITH_SERVERLESS] PERSIST TABLE is not supported on serverless compute.")

    def unpersist(self):
        self.unpersisted = True


def test_cached_goes_on_uncached_where_persist_is_refused(spark):
    refused = _PersistRefused(spark.range(5))
    with cached(refused) as df:
        assert df is refused and df.df.count() == 5
    assert not refused.unpersisted
    allowed = spark.range(3)
    with cached(allowed) as df:
        assert df.count() == 3


def test_remote_listing_goes_through_spark_and_skips_hidden_files(spark, tmp_path):
    (tmp_path / "raw" / "orders" / "ingest_date=2024-01-02").mkdir(parents=True)
    (tmp_path / "raw" / "_manifests").mkdir()
    (tmp_path / "raw" / "orders" / "ingest_date=2024-01-02" / "orders.json").write_text("[]")
    (tmp_path / "raw" / "Products.csv").write_text("a\n")
    (tmp_path / "raw" / "_manifests" / "run.json").write_text("{}")
    (tmp_path / "raw" / ".hidden.csv").write_text("x\n")
    listed = list_remote_files(spark, (tmp_path / "raw").as_uri())
    assert [p.rsplit("/raw/", 1)[1] for p in listed] == ["Products.csv", "orders/ingest_date=2024-01-02/orders.json"]
    with pytest.raises(SourceError, match="input path does not exist"):
        list_remote_files(spark, (tmp_path / "nowhere").as_uri())


def test_tables_are_registered_once_per_process(spark, lakehouse):
    lakehouse.ensure_schemas()
    lakehouse.overwrite(spark.range(2), "gold", "profit")
    again = Lakehouse.open(spark, lakehouse.config, lakehouse.root)
    assert again.register_existing() == []  # already registered at this location: nothing re-registered
    assert again.read("gold", "profit").count() == 2
