"""Edge of the pipeline: Delta tables addressed by three-part names.

On Databricks the tables are Unity Catalog managed tables. Locally there is no metastore service: each table is
an external Delta table at ``<lakehouse>/<schema>/<table>`` in ``spark_catalog``, and every new process registers
the tables it finds there, so ``ecom run`` in one process and ``ecom report`` in another see the same tables.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pyspark.sql import DataFrame, Row, SparkSession

from ecom_lakehouse.config import PipelineConfig
from ecom_lakehouse.spark import on_databricks

log = logging.getLogger(__name__)

# Spark conf key holding the local lakehouse directory, so notebooks run locally find it; unset on Databricks.
LAKEHOUSE_ROOT_CONF = "ecom.lakehouse.root"
# Tables this process registered in the local catalog, with their location: a new process has an empty catalog.
_REGISTERED: dict[str, str] = {}


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


@dataclass(frozen=True)
class Lakehouse:
    """Where the tables of one configuration live, and how to write and read them.

    Attributes:
        spark: the session.
        config: table names.
        root: local lakehouse directory; None on Databricks (managed tables).
    """

    spark: SparkSession
    config: PipelineConfig
    root: Path | None = None

    @classmethod
    def open(cls, spark: SparkSession, config: PipelineConfig, root: str | Path | None = None) -> Lakehouse:
        """The lakehouse of this session: local at ``root`` (or the session's ``ecom.lakehouse.root``), else managed.

        Locally the root is remembered in the session's conf and existing tables are registered.
        """
        if root is None and not on_databricks():  # Databricks: managed tables, and no custom conf to read
            root = spark.conf.get(LAKEHOUSE_ROOT_CONF, None) or None
        if root is not None:
            root = Path(root).resolve()
            spark.conf.set(LAKEHOUSE_ROOT_CONF, str(root))
        lakehouse = cls(spark, config, root)
        lakehouse.register_existing()
        return lakehouse

    def location(self, layer: str, name: str) -> str | None:
        """The table's storage path locally, None for a managed table."""
        if self.root is None:
            return None
        return str(self.root / self.config.schemas[layer] / self.config.tables[layer][name])

    def ensure_schemas(self) -> None:
        """Create the bronze, silver and gold schemas if missing."""
        for layer in ("bronze", "silver", "gold"):
            ddl = f"CREATE SCHEMA IF NOT EXISTS {self.config.schema(layer)}"
            if self.root is not None:
                ddl += f" LOCATION '{self.root / self.config.schemas[layer]}'"
            self.spark.sql(ddl)

    def register_existing(self) -> list[str]:
        """Locally, register the tables found under the lakehouse directory that this process has not registered at
        that location yet; return their names."""
        if self.root is None:
            return []
        self.ensure_schemas()
        registered = []
        for layer, name in self.config.all_tables():
            location = self.location(layer, name)
            if location and (Path(location) / "_delta_log").is_dir():
                table = self.config.table(layer, name)
                if self.spark.catalog.tableExists(table):
                    if _REGISTERED.get(table) == location:
                        continue
                    self.spark.sql(f"DROP TABLE {table}")  # registered elsewhere; external: drops the name only
                self.spark.sql(f"CREATE TABLE {table} USING DELTA LOCATION '{location}'")
                _REGISTERED[table] = location
                registered.append(table)
        return registered

    def exists(self, layer: str, name: str) -> bool:
        """True when the table exists in the catalog."""
        return self.spark.catalog.tableExists(self.config.table(layer, name))

    def overwrite(self, df: DataFrame, layer: str, name: str, replace_where: str | None = None) -> int:
        """Replace the table's contents atomically in one Delta commit.

        Args:
            df: the new contents.
            layer: bronze, silver or gold.
            name: logical table name in conf/.
            replace_where: replace only the rows matching this predicate (the table must exist), e.g. one
                dataset's rows of the shared quarantine table; without it, the whole table and its schema.

        Returns:
            Rows written, read from the Delta commit's metrics (no second pass over the data).
        """
        table = self.config.table(layer, name)
        writer = df.write.format("delta").mode("overwrite")
        if replace_where and self.exists(layer, name):
            writer = writer.option("replaceWhere", replace_where)
        else:
            writer = writer.option("overwriteSchema", "true")
        location = self.location(layer, name)
        if location:
            writer = writer.option("path", location)
            _REGISTERED[table] = location
        writer.saveAsTable(table)
        return self.rows_written(table)

    def append(self, df: DataFrame, layer: str, name: str) -> int:
        """Append rows (new columns allowed: schema drift), creating the table if needed; returns rows written."""
        if not self.exists(layer, name):
            return self.overwrite(df, layer, name)
        table = self.config.table(layer, name)
        df.write.format("delta").mode("append").option("mergeSchema", "true").saveAsTable(table)
        return self.rows_written(table)

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
        source = f"_ecom_merge_source_{uuid.uuid4().hex[:12]}"
        df.createOrReplaceTempView(source)
        try:
            result = self.spark.sql(
                f"MERGE INTO {self.config.table(layer, name)} AS t USING {source} AS s ON t.{key} = s.{key} "
                f"WHEN MATCHED AND t.{row_hash} <> s.{row_hash} THEN UPDATE SET * "
                "WHEN NOT MATCHED THEN INSERT * "
                "WHEN NOT MATCHED BY SOURCE THEN DELETE"
            ).first()
        finally:
            self.spark.catalog.dropTempView(source)
        return {k: int(result[f"num_{k}_rows"] or 0) for k in ("inserted", "updated", "deleted")}

    def version(self, layer: str, name: str) -> int | None:
        """The table's current Delta version, None when it does not exist."""
        if not self.exists(layer, name):
            return None
        return int(self._last_commit(self.config.table(layer, name))["version"])

    def comment(self, layer: str, name: str, text: str) -> None:
        """Set the table's comment (shown in Unity Catalog and ``DESCRIBE TABLE EXTENDED``)."""
        escaped = text.replace("\\", "\\\\").replace("'", "\\'")
        self.spark.sql(f"COMMENT ON TABLE {self.config.table(layer, name)} IS '{escaped}'")

    def rows_written(self, table: str) -> int:
        """Output rows of the table's latest write, from Delta history."""
        return int(self._last_commit(table)["operationMetrics"].get("numOutputRows", 0))

    def _last_commit(self, table: str) -> Row:
        return self.spark.sql(f"DESCRIBE HISTORY {table} LIMIT 1").first()

    def read(self, layer: str, name: str) -> DataFrame:
        """The table as a DataFrame."""
        return self.spark.table(self.config.table(layer, name))
