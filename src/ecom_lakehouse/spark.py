"""The one Spark session factory: the cluster's session on Databricks, a local Spark + Delta session elsewhere."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from pathlib import Path

from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

# hadoop-aws must match the Hadoop client bundled with pyspark 4.0 (3.4.1); it brings the AWS SDK v2 bundle.
HADOOP_AWS = "org.apache.hadoop:hadoop-aws:3.4.1"
_JAR_CACHE = Path(os.environ.get("ECOM_JAR_CACHE", Path.home() / ".cache" / "ecom-lakehouse" / "jars"))


def on_databricks() -> bool:
    """True inside a Databricks runtime (cluster, job or serverless)."""
    return "DATABRICKS_RUNTIME_VERSION" in os.environ


def get_spark(app_name: str = "ecom-lakehouse", *, with_s3: bool = False) -> SparkSession:
    """Return the Spark session to use.

    On Databricks this is the existing session. Locally it is a ``local[*]`` session with Delta Lake, no UI,
    few shuffle partitions and UTC time, reused if one is already active in this process.

    Args:
        app_name: the application name shown in logs.
        with_s3: also load the s3a connector (hadoop-aws), for reading ``s3://`` inputs locally.

    Returns:
        The session.
    """
    if on_databricks():
        return SparkSession.builder.getOrCreate()
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    extra = [HADOOP_AWS] if with_s3 else []
    try:
        return _local_builder(app_name, extra, via_ivy=True).getOrCreate()
    except Exception as exc:  # Ivy could not resolve the jars: fetch them with Maven instead.
        log.warning("Ivy could not resolve Delta jars (%s); falling back to mvn into %s", exc, _JAR_CACHE)
        return _local_builder(app_name, extra, via_ivy=False).getOrCreate()


def _local_builder(app_name: str, extra_packages: list[str], *, via_ivy: bool) -> SparkSession.Builder:
    builder = (
        SparkSession.builder.appName(app_name)
        .master(os.environ.get("ECOM_SPARK_MASTER", "local[*]"))
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        # Enough partitions that one never outgrows the heap at tens of millions of lines; adaptive execution
        # coalesces them back to a few for small inputs.
        .config("spark.sql.shuffle.partitions", os.environ.get("ECOM_SHUFFLE_PARTITIONS", "32"))
        .config("spark.sql.adaptive.enabled", "true")
        .config("spark.sql.adaptive.coalescePartitions.enabled", "true")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.driver.memory", os.environ.get("ECOM_DRIVER_MEMORY", "4g"))
        .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
        .config("spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog")
        .config("spark.databricks.delta.snapshotPartitions", "2")
        .config("spark.hadoop.fs.s3a.aws.credentials.provider", _S3A_CREDENTIALS)
        .config("spark.hadoop.fs.s3.impl", "org.apache.hadoop.fs.s3a.S3AFileSystem")
        .config("spark.driver.extraJavaOptions", "-Dlog4j2.level=ERROR")
    )
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region:
        builder = builder.config("spark.hadoop.fs.s3a.endpoint.region", region)
    if os.environ.get("AWS_ENDPOINT_URL"):
        builder = (
            builder.config("spark.hadoop.fs.s3a.endpoint", os.environ["AWS_ENDPOINT_URL"])
            .config("spark.hadoop.fs.s3a.path.style.access", "true")
            .config(
                "spark.hadoop.fs.s3a.connection.ssl.enabled", str(os.environ["AWS_ENDPOINT_URL"].startswith("https"))
            )
        )
    if via_ivy:
        from delta import configure_spark_with_delta_pip

        return configure_spark_with_delta_pip(builder, extra_packages=extra_packages)
    jars = _fetch_with_maven([_delta_coordinate(), *extra_packages])
    return builder.config("spark.jars", ",".join(str(j) for j in jars))


# The default AWS chain (environment, profile, instance role), as boto3 uses it.
_S3A_CREDENTIALS = "software.amazon.awssdk.auth.credentials.DefaultCredentialsProvider"


def _delta_coordinate() -> str:
    from importlib.metadata import version

    return f"io.delta:delta-spark_2.13:{version('delta-spark')}"


def _fetch_with_maven(coordinates: list[str]) -> list[Path]:
    """Copy the artifacts and their runtime dependencies into the jar cache with ``mvn`` and list the jars."""
    if shutil.which("mvn") is None:
        raise RuntimeError("neither Ivy nor mvn could fetch the Delta jars; install Maven or check network access")
    _JAR_CACHE.mkdir(parents=True, exist_ok=True)
    pom = _JAR_CACHE / "pom.xml"
    deps = "".join(
        "<dependency><groupId>{}</groupId><artifactId>{}</artifactId><version>{}</version></dependency>".format(
            *c.split(":")
        )
        for c in coordinates
    )
    pom.write_text(
        '<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>'
        "<groupId>local</groupId><artifactId>ecom-jars</artifactId><version>1</version>"
        f"<dependencies>{deps}</dependencies></project>",
        encoding="utf-8",
    )
    subprocess.run(
        [
            "mvn",
            "-q",
            "-f",
            str(pom),
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            "-DexcludeGroupIds=org.apache.spark,org.scala-lang",
            f"-DoutputDirectory={_JAR_CACHE}",
        ],
        check=True,
    )
    return sorted(_JAR_CACHE.glob("*.jar"))
