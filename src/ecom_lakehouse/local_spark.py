"""The local Spark + Delta JVM: its settings, its jars and the lakehouse catalog compiled into one of them.

Both local modes start this JVM: ``classic`` in the command's own process, ``connect`` in the warm server
(:mod:`ecom_lakehouse.server`). Nothing here runs on Databricks.

- Delta comes from Maven Central through Spark's own Ivy (``configure_spark_with_delta_pip``), with ``mvn`` as the
  fallback; the s3a connector (hadoop-aws, matching the Hadoop client pyspark bundles) only when asked.
- ``spark_catalog`` is :file:`jvm/LakehouseCatalog.java`: ``spark_catalog.<schema>.<table>`` is the Delta table in
  ``<ecom.lakehouse.root>/<schema>/<table>`` of the session asking, so every session of a shared server sees its own
  lakehouse and nothing is registered anywhere. It is compiled once per machine with ``javac`` against pyspark's jars
  and the Delta jar, and cached by the hash of its source and the two versions.
- The JVM runs in UTC (``-Duser.timezone=UTC``): Delta checks every commit's checksum against the table state in the
  JVM's default time zone, and rebuilds the full state after each commit where that is not UTC.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
import urllib.request
from functools import cache
from importlib.metadata import version
from pathlib import Path

from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

CACHE = Path(os.environ.get("ECOM_CACHE", Path.home() / ".cache" / "ecom-lakehouse"))
JAR_CACHE = Path(os.environ.get("ECOM_JAR_CACHE", CACHE / "jars"))
CATALOG_CLASS = "ecom_lakehouse.jvm.LakehouseCatalog"
CATALOG_SOURCE = Path(__file__).resolve().parent / "jvm" / "LakehouseCatalog.java"
CONNECT_PLUGIN = "org.apache.spark.sql.connect.SparkConnectPlugin"
MAVEN_CENTRAL = "https://repo1.maven.org/maven2"
# The default AWS chain (environment, profile, instance role), as boto3 uses it.
_S3A_CREDENTIALS = "software.amazon.awssdk.auth.credentials.DefaultCredentialsProvider"
UTC_JVM = "-Duser.timezone=UTC"


def spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).resolve().parent


@cache
def hadoop_version() -> str:
    """The Hadoop client pyspark bundles (hadoop-aws must match it)."""
    jars = sorted(spark_home().glob("jars/hadoop-client-api-*.jar"))
    if not jars:
        raise RuntimeError(f"no hadoop-client-api jar in {spark_home() / 'jars'}: is pyspark installed whole?")
    return jars[-1].name.removeprefix("hadoop-client-api-").removesuffix(".jar")


def delta_coordinate() -> str:
    """``io.delta:delta-spark_<spark major.minor>_2.13:<delta-spark version>``, the jar built for this pyspark."""
    spark_minor = ".".join(version("pyspark").split(".")[:2])
    return f"io.delta:delta-spark_{spark_minor}_2.13:{version('delta-spark')}"


def hadoop_aws_coordinate() -> str:
    return f"org.apache.hadoop:hadoop-aws:{hadoop_version()}"


def jvm_options() -> list[str]:
    """Options of the local JVM: log4j quiet, UTC, exit at once on out-of-memory, plus ``ECOM_JAVA_OPTIONS``."""
    extra = os.environ.get("ECOM_JAVA_OPTIONS", "").split()
    return ["-Dlog4j2.level=ERROR", UTC_JVM, "-XX:+ExitOnOutOfMemoryError", *extra]


def jvm_settings(*, with_s3: bool) -> dict[str, str]:
    """What a started JVM is made of and cannot change afterwards: two JVMs with equal settings are interchangeable."""
    settings = {
        "pyspark": version("pyspark"),
        "delta": delta_coordinate(),
        "catalog": _catalog_source_hash(),
        "configuration": hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16],  # this module's settings
        "master": os.environ.get("ECOM_SPARK_MASTER", "local[*]"),
        "driver_memory": os.environ.get("ECOM_DRIVER_MEMORY", "4g"),
        "java_options": " ".join(jvm_options()),
        "s3": "yes" if with_s3 else "no",
    }
    if with_s3:  # s3a reads the endpoint and credentials when the JVM starts: part of what it is
        aws = {k: v for k, v in sorted(os.environ.items()) if k.startswith("AWS_")}
        settings["aws"] = hashlib.sha256(repr(aws).encode()).hexdigest()[:16]
    return settings


def start_local_spark(app_name: str, *, with_s3: bool = False, connect_port: int | None = None) -> SparkSession:
    """Start the local Spark + Delta JVM in this process (classic session); ``connect_port`` adds the Spark Connect
    server on that loopback port. Delta's jars come through Ivy, or through ``mvn`` when Ivy cannot fetch them."""
    os.environ.pop("SPARK_CONNECT_MODE_ENABLED", None)  # inherited from a parent process: this one starts classic
    try:
        spark = local_builder(app_name, with_s3=with_s3, connect_port=connect_port, via_ivy=True).getOrCreate()
    except Exception as exc:
        if "port" in str(exc).lower() and connect_port:
            raise
        log.warning("Ivy could not resolve the Delta jars (%s); falling back to mvn into %s", exc, JAR_CACHE)
        spark = local_builder(app_name, with_s3=with_s3, connect_port=connect_port, via_ivy=False).getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def local_builder(
    app_name: str, *, with_s3: bool = False, connect_port: int | None = None, via_ivy: bool = True
) -> SparkSession.Builder:
    """A builder of the local Spark + Delta JVM with the lakehouse catalog; ``connect_port`` adds the Spark Connect
    server on that loopback port."""
    builder = (
        SparkSession.builder.appName(app_name)
        .master(os.environ.get("ECOM_SPARK_MASTER", "local[*]"))
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        # Enough partitions that one never outgrows the heap at tens of millions of lines; adaptive execution
        # coalesces them back to a few for small inputs. A session may set its own (the run sizes them by input).
        .config("spark.sql.shuffle.partitions", os.environ.get("ECOM_SHUFFLE_PARTITIONS", "32"))
        .config("spark.sql.adaptive.enabled", "true")
        .config("spark.sql.adaptive.coalescePartitions.enabled", "true")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.driver.memory", os.environ.get("ECOM_DRIVER_MEMORY", "4g"))
        .config("spark.driver.extraJavaOptions", " ".join(jvm_options()))
        .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
        .config("spark.sql.catalog.spark_catalog", CATALOG_CLASS)
        # Tables live in lakehouse folders; what Spark's built-in catalog keeps (nothing of ours) stays out of the cwd.
        .config("spark.sql.warehouse.dir", str(CACHE / "spark-warehouse"))
        .config("spark.databricks.delta.snapshotPartitions", "2")
        # Delta keeps every table's log and snapshot it opened for an hour (up to 10,000 tables): a long-lived server
        # opening new lakehouses grew by ~28 MiB of live heap per run on a 3-line input until it ran out of memory;
        # capped, the live heap stays below 400 MiB. An evicted table's log is read again when next used.
        .config("spark.databricks.delta.delta.log.cacheSize", "64")
        # Delta 4.4.0's SQL parser extension does not hand named parameters (spark.sql(q, args=...), the notebooks'
        # :catalog markers) to Spark 4.1's parameter pre-parser: every :name stays unbound. Spark's earlier binding
        # in the analyzer still works; Databricks Runtime has its own parser and needs nothing.
        .config("spark.sql.legacy.parameterSubstitution.constantsOnly", "true")
        .config("spark.hadoop.fs.s3a.aws.credentials.provider", _S3A_CREDENTIALS)
        .config("spark.hadoop.fs.s3.impl", "org.apache.hadoop.fs.s3a.S3AFileSystem")
    )
    if connect_port is not None:
        builder = (
            builder.config("spark.plugins", CONNECT_PLUGIN)
            .config("spark.connect.grpc.binding.address", "127.0.0.1")
            .config("spark.connect.grpc.binding.port", str(connect_port))
            .config("spark.connect.grpc.port.maxRetries", "0")
            # A command killed mid-query leaves its execution detached: stop it soon, not after the default 5 min.
            .config("spark.connect.execute.manager.detachedTimeout", "30s")
            # Errors reach the client as Spark's message; the JVM's stack trace stays in the server's log.
            .config("spark.sql.connect.serverStacktrace.enabled", "false")
        )
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region:
        builder = builder.config("spark.hadoop.fs.s3a.endpoint.region", region)
    if os.environ.get("AWS_ENDPOINT_URL"):
        endpoint = os.environ["AWS_ENDPOINT_URL"]
        builder = (
            builder.config("spark.hadoop.fs.s3a.endpoint", endpoint)
            .config("spark.hadoop.fs.s3a.path.style.access", "true")
            .config("spark.hadoop.fs.s3a.connection.ssl.enabled", str(endpoint.startswith("https")).lower())
        )
    packages = [hadoop_aws_coordinate()] if with_s3 else []
    builder = builder.config("spark.jars", str(catalog_jar()))
    if via_ivy:
        from delta import configure_spark_with_delta_pip

        return configure_spark_with_delta_pip(builder, extra_packages=packages)
    jars = [catalog_jar(), *_fetch_with_maven([delta_coordinate(), *packages])]
    return builder.config("spark.jars", ",".join(str(j) for j in jars))


def _catalog_source_hash() -> str:
    return hashlib.sha256(CATALOG_SOURCE.read_bytes()).hexdigest()[:16]


def catalog_jar() -> Path:
    """The compiled lakehouse catalog: built once per source, pyspark and Delta version, then reused."""
    key = f"{_catalog_source_hash()}-spark{version('pyspark')}-delta{version('delta-spark')}"
    jar = JAR_CACHE / f"ecom-lakehouse-catalog-{key}.jar"
    if jar.is_file():
        return jar
    javac, jar_tool = shutil.which("javac"), shutil.which("jar")
    if javac is None or jar_tool is None:
        raise RuntimeError(
            "the local lakehouse catalog (ecom_lakehouse/jvm/LakehouseCatalog.java) is compiled once with javac: "
            "install a JDK 17 (a JRE has no javac), e.g. `apt-get install openjdk-17-jdk-headless`"
        )
    classpath = [str(spark_home() / "jars" / "*"), str(_delta_jar())]
    JAR_CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ecom-catalog-") as build:
        log.info("compiling the local lakehouse catalog into %s (once)", jar)
        compiled = subprocess.run(
            [javac, "-nowarn", "--release", "17", "-d", build, "-cp", os.pathsep.join(classpath), str(CATALOG_SOURCE)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if compiled.returncode != 0:
            raise RuntimeError(f"javac failed on {CATALOG_SOURCE}:\n{compiled.stderr.strip()[-2000:]}")
        partial = jar.with_suffix(f".{os.getpid()}.tmp")
        subprocess.run([jar_tool, "cf", str(partial), "-C", build, "."], check=True, capture_output=True)
        partial.replace(jar)  # atomic: a concurrent build of the same source gives the same jar
    return jar


def _delta_jar() -> Path:
    """The delta-spark jar to compile against: from Spark's Ivy cache when a session already fetched it, else
    downloaded from Maven Central (checked against its published SHA-1)."""
    group, artifact, release = delta_coordinate().split(":")
    name = f"{artifact}-{release}.jar"
    for ivy in sorted(Path.home().glob(".ivy2*/jars")):
        if (ivy / f"{group}_{name}").is_file():
            return ivy / f"{group}_{name}"
    target = JAR_CACHE / name
    if not target.is_file():
        url = f"{MAVEN_CENTRAL}/{group.replace('.', '/')}/{artifact}/{release}/{name}"
        log.info("downloading %s", url)
        with urllib.request.urlopen(url, timeout=120) as response:
            content = response.read()
        with urllib.request.urlopen(url + ".sha1", timeout=30) as response:
            expected = response.read().decode().split()[0]
        if hashlib.sha1(content).hexdigest() != expected:
            raise RuntimeError(f"{url}: SHA-1 does not match the published {expected}")
        JAR_CACHE.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
    return target


def _fetch_with_maven(coordinates: list[str]) -> list[Path]:
    """Copy the artifacts and their runtime dependencies into the jar cache with ``mvn`` and list the jars."""
    if shutil.which("mvn") is None:
        raise RuntimeError("neither Ivy nor mvn could fetch the Delta jars; install Maven or check network access")
    folder = JAR_CACHE / "maven" / hashlib.sha256(",".join(coordinates).encode()).hexdigest()[:12]
    folder.mkdir(parents=True, exist_ok=True)
    deps = "".join(
        "<dependency><groupId>{}</groupId><artifactId>{}</artifactId><version>{}</version></dependency>".format(
            *c.split(":")
        )
        for c in coordinates
    )
    pom = folder / "pom.xml"
    pom.write_text(
        '<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>'
        "<groupId>local</groupId><artifactId>ecom-jars</artifactId><version>1</version>"
        f"<dependencies>{deps}</dependencies></project>",
        encoding="utf-8",
    )
    subprocess.run(
        ["mvn", "-q", "-f", str(pom), "dependency:copy-dependencies", "-DincludeScope=runtime",
         "-DexcludeGroupIds=org.apache.spark,org.scala-lang", f"-DoutputDirectory={folder}"],
        check=True,
    )  # fmt: skip
    return sorted(folder.glob("*.jar"))
