"""The table edge on the API serverless compute exposes: MERGE through SQL, persist only where allowed, remote
listing through Spark, and no JVM access anywhere in the job's code; and the local lakehouse catalog: a session's
``spark_catalog.<schema>.<table>`` is its own lakehouse folder's table, whatever other sessions use."""

from __future__ import annotations

import re
import threading

import pytest

from ecom_lakehouse import server
from ecom_lakehouse.config import load_config
from ecom_lakehouse.errors import SourceError
from ecom_lakehouse.io.sources import list_remote_files
from ecom_lakehouse.io.tables import Lakehouse, cached
from ecom_lakehouse.spark import connect_client, is_connect
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.classic
PACKAGE = REPO_ROOT / "src" / "ecom_lakehouse"
# Only the local session factory, the local JVM and the warm server may touch the JVM; none runs on Databricks.
LOCAL_ONLY = {PACKAGE / "spark.py", PACKAGE / "local_spark.py", PACKAGE / "server.py"}
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
    # temporary views are listed in any schema; `default` always exists, whatever schema an earlier test USEd
    assert not spark.sql("SHOW VIEWS IN spark_catalog.default LIKE '_ecom_merge_source*'").collect()


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


def _server_url(spark) -> str:
    if not is_connect(spark):
        pytest.skip("more sessions of one JVM need Spark Connect (the warm server)")
    return server.running().url


def _lakehouse(spark, root):
    return Lakehouse.open(spark, load_config(), root)


def test_one_session_switches_lakehouses_and_each_keeps_its_own_tables(spark, tmp_path):
    """Defect 2 of the one-catalog design: a second lakehouse in the same session failed with
    DELTA_TABLE_LOCATION_MISMATCH. Now a name means the folder of the session's current lakehouse."""
    first = _lakehouse(spark, tmp_path / "a")
    first.overwrite(spark.range(2), "silver", "runs")
    second = _lakehouse(spark, tmp_path / "b")
    second.overwrite(spark.range(5), "silver", "runs")
    assert spark.table("spark_catalog.ecom_silver.pipeline_runs").count() == 5
    first = _lakehouse(spark, tmp_path / "a")
    assert spark.sql("SELECT count(*) FROM spark_catalog.ecom_silver.pipeline_runs").first()[0] == 2
    assert first.read("silver", "runs").count() == 2
    assert sorted(p.name for p in (tmp_path / "a" / "ecom_silver").iterdir()) == ["pipeline_runs"]


def test_sessions_of_one_server_see_their_own_lakehouse_at_the_same_time(spark, tmp_path):
    sessions = [connect_client(_server_url(spark), origin="test") for _ in range(2)]
    try:
        results: dict[int, int] = {}

        def work(index: int) -> None:
            lakehouse = _lakehouse(sessions[index], tmp_path / f"lh{index}")
            for _ in range(3):
                lakehouse.overwrite(sessions[index].range(10 + index), "gold", "profit")
                results[index] = sessions[index].table("spark_catalog.ecom_gold.profit_aggregate").count()

        threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert results == {0: 10, 1: 11}
    finally:
        for session in sessions:
            session.stop()


def test_a_table_is_there_for_a_new_session_as_soon_as_its_files_are(spark, tmp_path):
    """Defect 3: `ecom sql` on a bronze or silver table of a lakehouse another process wrote."""
    _lakehouse(spark, tmp_path / "lh").overwrite(spark.range(3), "bronze", "orders")
    other = connect_client(_server_url(spark), origin="test")
    try:
        other.conf.set("ecom.lakehouse.root", str(tmp_path / "lh"))
        assert other.sql("SELECT count(*) FROM spark_catalog.ecom_bronze.orders_raw").first()[0] == 3
        names = [r.tableName for r in other.sql("SHOW TABLES IN spark_catalog.ecom_bronze").collect()]
        assert names == ["orders_raw"]
    finally:
        other.stop()


def test_the_catalog_maps_names_to_folders_only(spark, tmp_path):
    lakehouse = _lakehouse(spark, tmp_path / "lh")
    lakehouse.overwrite(spark.range(3), "gold", "profit")
    lakehouse.append(spark.range(3, 5), "gold", "profit")
    name = lakehouse.config.table("gold", "profit")
    assert spark.sql(f"SELECT count(*) FROM {name} VERSION AS OF 0").first()[0] == 3  # time travel by name
    assert spark.sql(f"DESCRIBE DETAIL {name}").first()["location"].endswith("/lh/ecom_gold/profit_aggregate")
    with pytest.raises(Exception, match="delete the folder"):
        spark.sql(f"DROP TABLE {name}").collect()
    with pytest.raises(Exception, match="lives in its folder"):
        spark.range(1).write.format("delta").option("path", str(tmp_path / "elsewhere")).saveAsTable(
            "spark_catalog.ecom_gold.other"
        )
    assert not (tmp_path / "elsewhere").exists()
    assert spark.catalog.tableExists(name)
    assert not spark.catalog.tableExists("spark_catalog.ecom_gold.nothing_here")
