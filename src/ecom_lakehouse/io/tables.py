"""Edge of the pipeline: Delta tables addressed by three-part names.

On Databricks the tables are Unity Catalog managed tables. Locally the lakehouse folder is the catalog:
``spark_catalog.<schema>.<table>`` is the Delta table in ``<lakehouse>/<schema>/<table>`` of the session's
``ecom.lakehouse.root`` (the local JVM's ``spark_catalog`` is :file:`ecom_lakehouse/jvm/LakehouseCatalog.java`).
Nothing is registered, so every process and every session of a shared server sees a lakehouse's tables the moment
their files exist, and each session sees only its own lakehouse's. On any other Spark Connect endpoint the tables are
that server's managed tables, as on Databricks.

This module resolves the three-part names of ``conf/pipeline.yml`` itself: locally to the folder
(``delta.`<folder>```), so two lakehouses used from one session (a test, a notebook kernel) never mix, whichever
was opened last; elsewhere to the name.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from ecom_lakehouse.config import PipelineConfig
from ecom_lakehouse.spark import on_databricks

log = logging.getLogger(__name__)

# Spark conf key holding the local lakehouse directory, so notebooks run locally find it; unset on Databricks.
LAKEHOUSE_ROOT_CONF = "ecom.lakehouse.root"
_DELETE = "_ecom_delete"  # the MERGE source's marker of a key to delete


def _insert(columns: list[str]) -> str:
    names = ", ".join(f"`{c}`" for c in columns)
    return f"INSERT ({names}) VALUES ({', '.join(f's.`{c}`' for c in columns)})"


@contextmanager
def cached(df: DataFrame) -> Iterator[DataFrame]:
    """``df`` persisted for the body when the compute allows it, else ``df`` itself (recomputed per action).

    Serverless compute refuses ``persist`` before environment version 5; the call is an eager request over Spark
    Connect, so the refusal shows here and the step goes on uncached, with the same results.
    """
    try:
        df.persist()
    except Exception as exc:  # the runtime's own error type (e.g. NOT_SUPPORTED_WITH_SERVERLESS)
        log.info("persist is not available here (%s); the step recomputes instead", str(exc).splitlines()[0][:200])
        yield df
        return
    try:
        yield df
    finally:
        df.unpersist()


@dataclass
class Lakehouse:
    """Where the tables of one configuration live, and how to write and read them.

    Attributes:
        spark: the session.
        config: table names.
        root: local lakehouse directory; None for managed tables (Databricks, another Spark Connect endpoint).
    """

    spark: SparkSession
    config: PipelineConfig
    root: Path | None = None
    _schemas_ensured: bool = field(default=False, repr=False, compare=False)

    @classmethod
    def open(cls, spark: SparkSession, config: PipelineConfig, root: str | Path | None = None) -> Lakehouse:
        """The lakehouse of this session: local at ``root`` (or the session's ``ecom.lakehouse.root``), else managed.

        Locally the root becomes the session's ``ecom.lakehouse.root``: from then on ``spark_catalog.<schema>.<table>``
        in this session (SQL, notebooks, ``spark.table``) means the table in that folder.
        """
        if root is None and not on_databricks():  # Databricks: managed tables, and no custom conf to read
            root = spark.conf.get(LAKEHOUSE_ROOT_CONF, None) or None
        if root is not None:
            root = Path(root).resolve()
            spark.conf.set(LAKEHOUSE_ROOT_CONF, str(root))
        return cls(spark, config, root)

    def location(self, layer: str, name: str) -> str | None:
        """The table's folder locally, None for a managed table."""
        if self.root is None:
            return None
        return str(self.root / self.config.schemas[layer] / self.config.tables[layer][name])

    def ensure_schemas(self) -> None:
        """Create the bronze, silver and gold schemas if missing (locally: their folders), once per lakehouse."""
        if self._schemas_ensured:
            return
        for layer in ("bronze", "silver", "gold"):
            if self.root is not None:
                (self.root / self.config.schemas[layer]).mkdir(parents=True, exist_ok=True)
            else:
                self.spark.sql(f"CREATE SCHEMA IF NOT EXISTS {self.config.schema(layer)}")
        self._schemas_ensured = True

    def ref(self, layer: str, name: str) -> str:
        """How Spark is told which table: ``delta.`<folder>``` locally, else the three-part name."""
        location = self.location(layer, name)
        return f"delta.`{location}`" if location is not None else self.config.table(layer, name)

    def exists(self, layer: str, name: str) -> bool:
        """True when the table exists (locally: its Delta log holds a commit)."""
        location = self.location(layer, name)
        if location is not None:  # a commit, not just the folder a write killed before its first commit left
            return any(Path(location, "_delta_log").glob("*.json"))
        return self.spark.catalog.tableExists(self.config.table(layer, name))

    def overwrite(
        self,
        df: DataFrame,
        layer: str,
        name: str,
        replace_where: str | None = None,
        *,
        properties: dict[str, str] | None = None,
        comment: str | None = None,
    ) -> int:
        """Replace the table's contents atomically in one Delta commit.

        Args:
            df: the new contents.
            layer: bronze, silver or gold.
            name: logical table name in conf/.
            replace_where: replace only the rows matching this predicate (the table must exist), e.g. one
                dataset's rows of the shared quarantine table (new columns are added); without it, the whole table
                and its schema.
            properties: Delta table properties to set (``delta.enableChangeDataFeed``); an overwrite keeps them.
            comment: the table's comment (Unity Catalog, ``DESCRIBE TABLE EXTENDED``), set in the same commit.

        Returns:
            Rows written, read from the Delta commit's metrics (no second pass over the data).
        """
        self.ensure_schemas()
        writer = df.write.format("delta").mode("overwrite")
        if replace_where and self.exists(layer, name):
            writer = writer.option("replaceWhere", replace_where).option("mergeSchema", "true")
        else:
            writer = writer.option("overwriteSchema", "true")
        for key, value in (properties or {}).items():
            writer = writer.option(key, value)
        if comment is not None:
            writer = writer.option("comment", comment)
        writer.saveAsTable(self.ref(layer, name))
        return self.rows_written(layer, name)

    def append(self, df: DataFrame, layer: str, name: str, *, count: bool = True) -> int:
        """Append rows (new columns allowed: schema drift), creating the table if needed.

        Returns:
            Rows written, from the commit's metrics; 0 without ``count`` (no metrics read).
        """
        if not self.exists(layer, name):
            self.ensure_schemas()
            return self.overwrite(df, layer, name)
        df.write.format("delta").mode("append").option("mergeSchema", "true").saveAsTable(self.ref(layer, name))
        return self.rows_written(layer, name) if count else 0

    def merge(self, df: DataFrame, layer: str, name: str, key: str, row_hash: str) -> dict[str, int]:
        """Make the table equal to ``df`` by a MERGE on ``key`` that touches only what changed.

        New keys are inserted, keys whose ``row_hash`` differs are updated, keys no longer in ``df`` deleted; an
        unchanged row is not rewritten. Creates the table when missing. The MERGE is SQL (``MERGE INTO``), which
        works over Spark Connect without the Delta Connect plugin.

        Returns:
            ``inserted``, ``updated`` and ``deleted`` row counts of the commit.
        """
        if not self.exists(layer, name):
            return {"inserted": self.overwrite(df, layer, name), "updated": 0, "deleted": 0}
        return self._merge(df, layer, name, f"t.`{key}` = s.`{key}`", [
            f"WHEN MATCHED AND t.`{row_hash}` <> s.`{row_hash}` THEN UPDATE SET *",
            "WHEN NOT MATCHED THEN INSERT *",
            "WHEN NOT MATCHED BY SOURCE THEN DELETE",
        ])  # fmt: skip

    def merge_in_scope(self, df: DataFrame, layer: str, name: str, key: str, row_hash: str, scope: DataFrame) -> dict:
        """Bring the rows of the keys in ``scope`` up to date with ``df`` in one MERGE; other rows are not touched.

        A key of ``scope`` with a row in ``df`` is inserted, or updated when its ``row_hash`` differs; a key of
        ``scope`` without one is deleted. ``df`` holds only keys of ``scope``.

        Returns:
            ``inserted``, ``updated`` and ``deleted`` row counts of the commit.
        """
        columns = df.columns
        tombstones = scope.select(key).distinct().join(df.select(key), key, "left_anti")
        source = df.withColumn(_DELETE, F.lit(False)).unionByName(
            tombstones.withColumn(_DELETE, F.lit(True)), allowMissingColumns=True
        )
        update = ", ".join(f"t.`{c}` = s.`{c}`" for c in columns)
        return self._merge(source, layer, name, f"t.`{key}` = s.`{key}`", [
            f"WHEN MATCHED AND s.{_DELETE} THEN DELETE",
            f"WHEN MATCHED AND t.`{row_hash}` <> s.`{row_hash}` THEN UPDATE SET {update}",
            f"WHEN NOT MATCHED AND NOT s.{_DELETE} THEN {_insert(columns)}",
        ])  # fmt: skip

    def replace_in_scope(self, df: DataFrame, layer: str, name: str, key: str, scope: DataFrame, where: str) -> dict:
        """Replace, in one MERGE, the rows matching ``where`` whose ``key`` is in ``scope`` by the rows of ``df``
        (several rows may share a key, e.g. quarantined copies of one line; rows of ``df`` without a key are added).

        Returns:
            ``inserted`` and ``deleted`` row counts of the commit.
        """
        keys = scope.select(key).distinct().where(F.col(key).isNotNull()).withColumn(_DELETE, F.lit(True))
        source = df.withColumn(_DELETE, F.lit(False)).unionByName(keys, allowMissingColumns=True)
        condition = f"({where}) AND s.{_DELETE} AND t.`{key}` = s.`{key}`"
        counts = self._merge(source, layer, name, condition, [
            "WHEN MATCHED THEN DELETE", f"WHEN NOT MATCHED AND NOT s.{_DELETE} THEN {_insert(df.columns)}",
        ])  # fmt: skip
        return {"inserted": counts["inserted"], "deleted": counts["deleted"]}

    def merge_sums(self, delta: DataFrame, layer: str, name: str, keys: list[str], sums: list[str], count: str) -> dict:
        """Add ``delta`` (signed sums per key) to an aggregate table in one MERGE: a key whose ``count`` reaches zero
        is deleted, a new key inserted. Keys are compared null-safe.

        Returns:
            ``inserted``, ``updated`` and ``deleted`` row counts of the commit.
        """
        on = " AND ".join(f"t.`{k}` <=> s.`{k}`" for k in keys)
        update = ", ".join(f"t.`{c}` = t.`{c}` + s.`{c}`" for c in [*sums, count])
        return self._merge(delta, layer, name, on, [
            f"WHEN MATCHED AND t.`{count}` + s.`{count}` = 0 THEN DELETE",
            f"WHEN MATCHED THEN UPDATE SET {update}",
            f"WHEN NOT MATCHED THEN {_insert([*keys, *sums, count])}",
        ])  # fmt: skip

    def changes(self, layer: str, name: str, after_version: int) -> DataFrame:
        """The table's row changes since ``after_version`` (its change data feed): every column plus
        ``_change_type`` (insert, delete, update_preimage, update_postimage)."""
        location = self.location(layer, name)
        if location is not None:
            return self.spark.sql(f"SELECT * FROM table_changes_by_path('{location}', {after_version + 1})")
        return self.spark.sql(f"SELECT * FROM table_changes('{self.config.table(layer, name)}', {after_version + 1})")

    def _merge(self, source_df: DataFrame, layer: str, name: str, on: str, clauses: list[str]) -> dict[str, int]:
        source = f"_ecom_merge_source_{uuid.uuid4().hex[:12]}"
        source_df.createOrReplaceTempView(source)
        try:
            result = self.spark.sql(
                f"MERGE INTO {self.ref(layer, name)} AS t USING {source} AS s ON {on} " + " ".join(clauses)
            ).first()
        finally:
            self.spark.catalog.dropTempView(source)
        return {k: int(result[f"num_{k}_rows"] or 0) for k in ("inserted", "updated", "deleted")}

    def version(self, layer: str, name: str) -> int | None:
        """The table's current Delta version, None when it does not exist."""
        if not self.exists(layer, name):
            return None
        return int(self._last_commit(layer, name)["version"])

    def rows_written(self, layer: str, name: str) -> int:
        """Output rows of the table's latest write, from the commit's metrics (no pass over the data)."""
        return int(self._last_commit(layer, name)["operationMetrics"].get("numOutputRows", 0))

    def _last_commit(self, layer: str, name: str) -> dict:
        """The newest commit's version and metrics: read from the local commit file (no Spark job), or through
        ``DESCRIBE HISTORY`` for a managed table."""
        location = self.location(layer, name)
        if location is None:
            return self.spark.sql(f"DESCRIBE HISTORY {self.config.table(layer, name)} LIMIT 1").first().asDict()
        newest = max((Path(location) / "_delta_log").glob("*.json"), key=lambda p: int(p.stem))
        with newest.open(encoding="utf-8") as log_file:
            for line in log_file:
                action = json.loads(line)
                if "commitInfo" in action:
                    info = action["commitInfo"]
                    return {"version": int(newest.stem), "operationMetrics": info.get("operationMetrics") or {}}
        raise RuntimeError(f"{newest}: a Delta commit without commitInfo")

    def read(self, layer: str, name: str) -> DataFrame:
        """The table as a DataFrame."""
        return self.spark.table(self.ref(layer, name))
