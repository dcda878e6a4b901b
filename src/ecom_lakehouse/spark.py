"""The one Spark session factory: the runtime's session on Databricks, a Spark Connect session or a local JVM elsewhere.

Where the session comes from, in order:

- **Databricks** (a job, a notebook, serverless): the runtime's own session, untouched.
- **A Spark Connect endpoint** named by ``SPARK_REMOTE`` (pyspark's convention, ``sc://host:port``) or ``remote=``:
  a client of that server, e.g. one started with Spark's own ``start-connect-server.sh``. Its tables are that
  server's (managed tables in its catalog), as on Databricks.
- **connect** (``ECOM_SPARK_MODE``, the default): a client of the warm local server (:mod:`ecom_lakehouse.server`),
  started when none runs. The API of Databricks serverless and standard access mode: no ``sparkContext``, no JVM.
- **classic** (``ECOM_SPARK_MODE=classic``): a local JVM in this process, the full PySpark API of a dedicated cluster.
- **databricks** (``ECOM_SPARK_MODE=databricks``): a workspace's serverless or cluster compute through Databricks
  Connect, with its Unity Catalog tables.

Callers never ask which: commands, notebooks and tests take the session this returns. :func:`describe` says where it
came from, for the progress line.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

MODE_ENV = "ECOM_SPARK_MODE"
CLASSIC, CONNECT = "classic", "connect"
REMOTE_ENV = "SPARK_REMOTE"
DATABRICKS = "databricks"
_sessions: dict[str, SparkSession] = {}
_origins: dict[int, str] = {}
_elsewhere: set[int] = set()  # sessions whose compute is another machine: it sees its files, not this one's


def on_databricks() -> bool:
    """True inside a Databricks runtime (cluster, job or serverless)."""
    return "DATABRICKS_RUNTIME_VERSION" in os.environ


def spark_mode() -> str:
    """The session mode asked for by ``ECOM_SPARK_MODE``: ``connect`` (default, the warm local server), ``classic``
    (a JVM in this process) or ``databricks`` (a workspace's compute through Databricks Connect)."""
    mode = os.environ.get(MODE_ENV, CONNECT).strip().lower() or CONNECT
    if mode not in (CLASSIC, CONNECT, DATABRICKS):
        raise ValueError(
            f"{MODE_ENV}={mode!r}: expected {CONNECT!r} (the warm local server), {CLASSIC!r} or {DATABRICKS!r}"
        )
    return mode


def sees_local_files(spark: SparkSession) -> bool:
    """The session's compute reads this machine's files (a local JVM, the local server, a Databricks runtime with its
    own /Volumes), rather than only its own (another Spark Connect endpoint, Databricks Connect)."""
    return id(spark) not in _elsewhere


def remote_url(remote: str | None = None) -> str | None:
    """The Spark Connect endpoint that is not ours, if one is named (``remote`` or ``SPARK_REMOTE``)."""
    url = (remote or os.environ.get(REMOTE_ENV, "")).strip()
    if url and not url.startswith("sc://"):
        raise ValueError(f"Spark Connect endpoint {url!r}: expected sc://host:port (pyspark's SPARK_REMOTE form)")
    return url or None


def is_connect(spark: SparkSession) -> bool:
    """True for a Spark Connect session (serverless, standard access mode, the warm server, any endpoint)."""
    return type(spark).__module__.startswith("pyspark.sql.connect")


def describe(spark: SparkSession) -> str:
    """``4.1.4 (connect, warm server pid 123)``: the Spark version and where the session runs, for progress lines."""
    return f"{spark.version} ({_origins.get(id(spark), CONNECT if is_connect(spark) else CLASSIC)})"


def get_spark(
    app_name: str = "ecom-lakehouse", *, with_s3: bool = False, jvm_log: Path | None = None, remote: str | None = None
) -> SparkSession:
    """Return the Spark session to use (reused within a process).

    Args:
        app_name: the application name (a local classic JVM's name in logs).
        with_s3: the session must read ``s3://`` locally (the s3a connector, hadoop-aws, in the JVM).
        jvm_log: classic mode: send everything the local JVM prints to this file instead of the terminal (the warm
            server writes to its own log).
        remote: a Spark Connect endpoint (``sc://host:port``) to use instead of the local server.

    Returns:
        The session.
    """
    if on_databricks():
        return SparkSession.builder.getOrCreate()
    url = remote_url(remote)
    key = url or f"{spark_mode()}{'+s3' if with_s3 else ''}"
    if key in _sessions:
        return _sessions[key]
    if url:
        session = connect_client(url, origin=f"connect, {url}")
        _elsewhere.add(id(session))
    elif spark_mode() == DATABRICKS:
        session = _databricks_connect_session()
    elif spark_mode() == CLASSIC:
        session = _classic_session(app_name, with_s3=with_s3, jvm_log=jvm_log)
    else:
        session = _server_session(with_s3=with_s3)
    shuffle = os.environ.get("ECOM_SHUFFLE_PARTITIONS")
    if shuffle and is_connect(session):  # a session setting: the shared server's default is not this process's
        session.conf.set("spark.sql.shuffle.partitions", shuffle)
    _sessions[key] = session
    return session


def stop_sessions() -> None:
    """Stop this process's sessions (a Spark Connect client releases its server-side session; classic stops its JVM)."""
    for key in list(_sessions):
        session = _sessions.pop(key)
        _origins.pop(id(session), None)
        _elsewhere.discard(id(session))
        try:
            session.stop()
        except Exception as exc:  # the server may be gone already
            log.debug("stopping the session: %s", exc)


def _classic_session(app_name: str, *, with_s3: bool, jvm_log: Path | None) -> SparkSession:
    from ecom_lakehouse.local_spark import start_local_spark

    if (active := SparkSession.getActiveSession()) is not None and not is_connect(active):
        return active
    with _output_to(jvm_log):
        session = start_local_spark(app_name, with_s3=with_s3)
    _origins[id(session)] = CLASSIC
    return session


def _databricks_connect_session() -> SparkSession:
    """A workspace's compute from this machine through Databricks Connect (``databricks-connect`` installed instead of
    pyspark; workspace, cluster or serverless from the standard Databricks configuration)."""
    try:
        from databricks.connect import DatabricksSession
    except ImportError as exc:
        raise RuntimeError(
            f"{MODE_ENV}=databricks needs Databricks Connect: in an environment of its own, "
            "`pip install 'databricks-connect==18.*' ecom-lakehouse` (it replaces pyspark, so not beside the local "
            "extra); see README, 'Databricks Connect'"
        ) from exc
    session = DatabricksSession.builder.getOrCreate()
    _origins[id(session)] = "databricks connect"
    _elsewhere.add(id(session))
    return session


def _server_session(*, with_s3: bool) -> SparkSession:
    from ecom_lakehouse import server

    state, started = server.ensure_server(with_s3=with_s3)
    session = connect_client(state.url, origin=f"connect, {'new' if started else 'warm'} server pid {state.pid}")
    return session


def connect_client(url: str, *, origin: str) -> SparkSession:
    """A new Spark Connect session of the server at ``url``; a server that does not answer fails the call within
    seconds (pyspark's default policy retries for 10 minutes, which would hang a command on a dead local server)."""
    from pyspark.sql.connect.client.retries import DefaultPolicy
    from pyspark.sql.connect.session import SparkSession as ConnectSession

    # pyspark.sql.functions builds Spark Connect columns only when this is set (pyspark.sql.utils.is_remote); its
    # own local connect mode sets it the same way.
    os.environ["SPARK_CONNECT_MODE_ENABLED"] = "1"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        session = ConnectSession.builder.remote(url).create()
    session.client.set_retry_policies([DefaultPolicy(max_retries=4, initial_backoff=200, max_backoff=2000)])
    _origins[id(session)] = origin
    return session


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
