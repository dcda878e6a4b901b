"""The one Spark session factory: the cluster's session on Databricks, a local Spark + Delta session elsewhere.

Locally there are two modes, chosen with ``ECOM_SPARK_MODE``:

- ``classic`` (default): an in-process ``local[*]`` session with the full PySpark API.
- ``connect``: the API that Databricks serverless and standard access mode clusters expose, Spark Connect. A local
  Spark (same configuration, Delta's SQL extension and catalog) starts the Spark Connect server plugin on a free
  loopback port, and the session returned is a Spark Connect client of it: no ``sparkContext``, no py4j. Code that
  runs here runs on serverless. (pyspark's own ``spark.api.mode=connect`` local mode always binds port 15002, so two
  processes, e.g. a test and the ``ecom run`` it starts, could not both use it.)
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

MODE_ENV = "ECOM_SPARK_MODE"
CLASSIC, CONNECT = "classic", "connect"
# hadoop-aws must match the Hadoop client bundled with pyspark 4.0 (3.4.1); it brings the AWS SDK v2 bundle.
HADOOP_AWS = "org.apache.hadoop:hadoop-aws:3.4.1"
_JAR_CACHE = Path(os.environ.get("ECOM_JAR_CACHE", Path.home() / ".cache" / "ecom-lakehouse" / "jars"))
_CONNECT_PLUGIN = "org.apache.spark.sql.connect.SparkConnectPlugin"
_sessions: dict[str, SparkSession] = {}


def on_databricks() -> bool:
    """True inside a Databricks runtime (cluster, job or serverless)."""
    return "DATABRICKS_RUNTIME_VERSION" in os.environ


def spark_mode() -> str:
    """The local session mode asked for by ``ECOM_SPARK_MODE``: ``classic`` (default) or ``connect``."""
    mode = os.environ.get(MODE_ENV, CLASSIC).strip().lower() or CLASSIC
    if mode not in (CLASSIC, CONNECT):
        raise ValueError(f"{MODE_ENV}={mode!r}: expected {CLASSIC!r} or {CONNECT!r}")
    return mode


def is_connect(spark: SparkSession) -> bool:
    """True for a Spark Connect session (serverless, standard access mode, or the local connect mode)."""
    return type(spark).__module__.startswith("pyspark.sql.connect")


def describe(spark: SparkSession) -> str:
    """``4.0.1 (connect)``: the Spark version and the API the session speaks, for progress lines."""
    return f"{spark.version} ({CONNECT if is_connect(spark) else CLASSIC})"


def get_spark(app_name: str = "ecom-lakehouse", *, with_s3: bool = False, jvm_log: Path | None = None) -> SparkSession:
    """Return the Spark session to use.

    On Databricks this is the existing session. Locally it is a ``local[*]`` session with Delta Lake, no UI,
    few shuffle partitions and UTC time, in the mode of ``ECOM_SPARK_MODE``, reused within a process.

    Args:
        app_name: the application name shown in logs.
        with_s3: also load the s3a connector (hadoop-aws), for reading ``s3://`` inputs locally.
        jvm_log: send everything the local JVM prints (Ivy's jar resolution, log4j's console output, start-up
            warnings) to this file instead of the terminal.

    Returns:
        The session.
    """
    if on_databricks():
        return SparkSession.builder.getOrCreate()
    mode = spark_mode()
    if mode in _sessions:
        return _sessions[mode]
    if mode == CLASSIC and (active := SparkSession.getActiveSession()) is not None:
        return active
    extra = [HADOOP_AWS] if with_s3 else []
    port = _free_port() if mode == CONNECT else None
    os.environ.pop("SPARK_CONNECT_MODE_ENABLED", None)  # inherited from a parent process: this one starts classic
    with _output_to(jvm_log):
        try:
            classic = _local_builder(app_name, extra, via_ivy=True, connect_port=port).getOrCreate()
        except Exception as exc:  # Ivy could not resolve the jars: fetch them with Maven instead.
            log.warning("Ivy could not resolve Delta jars (%s); falling back to mvn into %s", exc, _JAR_CACHE)
            classic = _local_builder(app_name, extra, via_ivy=False, connect_port=port).getOrCreate()
    classic.sparkContext.setLogLevel("ERROR")
    _sessions[mode] = classic if port is None else _connect_client(port)
    return _sessions[mode]


@contextmanager
def _output_to(path: Path | None) -> Iterator[None]:
    """Point this process's stdout and stderr at ``path`` while the body runs, so the JVM started in it inherits
    the file for good; Python's own streams come back afterwards. A start-up that fails shows the file's tail."""
    if path is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    try:
        with open(path, "ab") as target:
            os.dup2(target.fileno(), 1)
            os.dup2(target.fileno(), 2)
            yield
    except Exception as exc:
        tail = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-5:]
        raise RuntimeError(f"local Spark did not start ({exc}); the end of {path}:\n" + "\n".join(tail)) from exc
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])


def _connect_client(port: int) -> SparkSession:
    from pyspark.sql.connect.session import SparkSession as ConnectSession

    # pyspark.sql.functions builds Spark Connect columns only when this is set (pyspark.sql.utils.is_remote); its
    # own local connect mode sets it the same way.
    os.environ["SPARK_CONNECT_MODE_ENABLED"] = "1"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the client re-sends static confs the running server already has
        return ConnectSession.builder.remote(f"sc://127.0.0.1:{port}").getOrCreate()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _local_builder(
    app_name: str, extra_packages: list[str], *, via_ivy: bool, connect_port: int | None = None
) -> SparkSession.Builder:
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
        .config("spark.driver.extraJavaOptions", " ".join(["-Dlog4j2.level=ERROR", *_jvm_options()]))
    )
    if connect_port is not None:
        builder = (
            builder.config("spark.plugins", _CONNECT_PLUGIN)
            .config("spark.connect.grpc.binding.address", "127.0.0.1")
            .config("spark.connect.grpc.binding.port", str(connect_port))
            .config("spark.connect.grpc.port.maxRetries", "0")
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


def _jvm_options() -> list[str]:
    return os.environ.get("ECOM_JAVA_OPTIONS", "").split()


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
