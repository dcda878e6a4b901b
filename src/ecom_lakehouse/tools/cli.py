"""The ``ecom`` command line: run the pipeline locally, report, query, generate data, run notebooks, upload."""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ecom_lakehouse.errors import EcomError

if TYPE_CHECKING:
    from ecom_lakehouse.io.tables import Lakehouse

log = logging.getLogger("ecom_lakehouse")

SAMPLE_DIR = Path(__file__).resolve().parents[1] / "sample"
DEFAULT_LAKEHOUSE = "lakehouse"
RENDERED_FILES = ("html", "png")  # formats written to files: a self-contained page, or one PNG per chart


JVM_LOG = Path("_logs") / "spark.log"  # under the lakehouse: what the local JVM prints (Ivy, log4j)


def _open_lakehouse(args: argparse.Namespace, *, with_s3: bool = False, create: bool = False) -> Lakehouse:
    """The lakehouse the command works on, with its Spark session; nothing is written (read-only commands use this).

    Locally: the folder ``--lakehouse``. On a Spark Connect endpoint (``--remote``, ``SPARK_REMOTE``) or through
    Databricks Connect (``ECOM_SPARK_MODE=databricks``): that compute's catalog (``--catalog``), managed tables.
    """
    from ecom_lakehouse.config import load_config
    from ecom_lakehouse.io.tables import Lakehouse
    from ecom_lakehouse.spark import DATABRICKS, describe, get_spark, remote_url, spark_mode

    started = time.perf_counter()
    remote = remote_url(getattr(args, "remote", None))
    elsewhere = remote or (DATABRICKS if spark_mode() == DATABRICKS else None)
    catalog = getattr(args, "catalog", None)
    if catalog and not elsewhere:
        raise EcomError("--catalog names a catalog of a remote compute; a local lakehouse's catalog is spark_catalog")
    root = None if elsewhere else Path(args.lakehouse).resolve()
    if root is not None and not create and not root.is_dir():
        raise EcomError(f"{root}: no lakehouse here; run `ecom run` first or pass --lakehouse DIR")
    jvm_log = root / JVM_LOG if root is not None and spark_mode() == "classic" else None
    spark = get_spark(with_s3=with_s3, jvm_log=jvm_log, remote=remote)
    where = f"its own output: {jvm_log}" if jvm_log else _server_log_note(remote)
    log.info("spark %s ready in %.1f s (%s)", describe(spark), time.perf_counter() - started, where)
    config = load_config().with_overrides(catalog=catalog)
    if root is not None and not create:
        from ecom_lakehouse.run.steps import SMALL_DATA_BYTES, size_for_data

        size_for_data(spark, _folder_bytes(root, SMALL_DATA_BYTES))
    if elsewhere:
        log.info("tables: the managed tables of %s's catalog %s (--lakehouse is not used)", elsewhere, config.catalog)
    return Lakehouse.open(spark, config, root)


def _folder_bytes(root: Path, enough: int) -> int:
    """The bytes under ``root``, counted until ``enough`` (a big lakehouse is not walked to its end)."""
    total = 0
    for folder, _, names in os.walk(root):
        total += sum(os.path.getsize(os.path.join(folder, n)) for n in names)
        if total >= enough:
            break
    return total


def _server_log_note(remote: str | None) -> str:
    if remote:
        return f"endpoint {remote}"
    from ecom_lakehouse import server

    return f"its log: {server.home() / 'server.log'}"


def _print_report(lakehouse: Lakehouse, args: argparse.Namespace) -> None:
    from ecom_lakehouse.tools.report import run_report

    if not lakehouse.exists("gold", "profit"):
        raise EcomError(f"{lakehouse.config.table('gold', 'profit')} does not exist; run `ecom run` first")
    report = run_report(lakehouse.spark, lakehouse.config)
    write_report(report, args.format, args.output, compact=not args.all)


def write_report(report: dict, fmt: str, output: str | None, *, compact: bool = False) -> None:
    """Render a report in ``fmt`` to stdout, or to ``output`` (a file; a folder for ``png``). ``compact``: the
    table on a terminal shows the customer reports' top and bottom rows only (files always get every row)."""
    if fmt in RENDERED_FILES:
        from ecom_lakehouse.tools import charts

        if fmt == "png":
            for path in charts.render_png(report, output or "report_png"):
                log.info("wrote %s", path)
            return
        Path(output or "report.html").write_text(charts.render_html(report), encoding="utf-8")
        log.info("wrote %s", output or "report.html")
        return
    from ecom_lakehouse.tools.render import RENDERERS, render_table

    text = render_table(report, compact=compact and not output) if fmt == "table" else RENDERERS[fmt](report)
    if output:
        Path(output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)


def cmd_run(args: argparse.Namespace) -> int:
    from ecom_lakehouse.io.sources import is_remote
    from ecom_lakehouse.run.lifecycle import run_pipeline
    from ecom_lakehouse.spark import remote_url
    from ecom_lakehouse.tools.locks import lakehouse_lock
    from ecom_lakehouse.tools.quality import run_summary

    started = time.perf_counter()
    input_path = args.input or str(SAMPLE_DIR)
    lock_root = None if remote_url(args.remote) else Path(args.lakehouse).resolve()
    with lakehouse_lock(lock_root, args.wait_lock):
        lakehouse = _open_lakehouse(args, with_s3=is_remote(input_path), create=True)
        run = run_pipeline(
            lakehouse, input_path, full_refresh=args.full_refresh, checkpoint_location=args.checkpoint_location
        )
        for line in run_summary(run.state(run.status, **run.outcome), time.perf_counter() - started):
            log.info("%s", line)
        if not args.no_report:
            _print_report(lakehouse, args)
    return 0


def cmd_quality(args: argparse.Namespace) -> int:
    from ecom_lakehouse.run.history import latest_run
    from ecom_lakehouse.tools.quality import anomaly_report, quality_report

    lakehouse = _open_lakehouse(args)
    run = latest_run(lakehouse, args.run_id)
    if run is not None and not args.run_id and run["status"] == "unchanged":
        sys.stdout.write(f"latest run {run['run_id']} found nothing new; the tables are from the run below\n\n")
        run = latest_run(lakehouse, built_tables=True)
    if run is None:
        raise EcomError(f"no pipeline run recorded{' with id ' + args.run_id if args.run_id else ''}; run `ecom run`")
    sys.stdout.write(quality_report(run))
    if lakehouse.exists("silver", "orders"):
        sys.stdout.write(anomaly_report(lakehouse))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    _print_report(_open_lakehouse(args), args)
    return 0


def cmd_sql(args: argparse.Namespace) -> int:
    from ecom_lakehouse.tools.render import render_table
    from ecom_lakehouse.tools.report import create_report_views

    lakehouse = _open_lakehouse(args)
    if lakehouse.exists("gold", "profit"):  # the profit_by_* views, for this session only
        create_report_views(lakehouse.spark, lakehouse.config)
    rows = [r.asDict() for r in lakehouse.spark.sql(args.query).limit(args.limit).collect()]
    sys.stdout.write(render_table({"result": rows}))
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from ecom_lakehouse.tools.generate import generate_dataset

    files = generate_dataset(
        args.out, orders=args.orders, seed=args.seed, bad_orders=args.bad_orders, anomalies=args.anomalies
    )
    log.info(
        "wrote %d order lines in %d file(s), %d customers, %d product rows to %s",
        files.order_lines, len(files.orders), files.customers_count, files.products_count, args.out,
    )  # fmt: skip
    return 0


def cmd_notebook_run(args: argparse.Namespace) -> int:
    from ecom_lakehouse.tools.notebook import run_notebook
    from ecom_lakehouse.tools.render import render_table

    params = dict(_key_value(p) for p in args.param)
    lakehouse = _open_lakehouse(args, create=True)
    run = run_notebook(lakehouse.spark, args.path, params)
    for result in run.results:
        rows = [r.asDict() for r in result.df.limit(50).collect()]
        sys.stdout.write(render_table({f"cell {result.cell}": rows}))
    return 0


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise EcomError(f"--param {text!r}: expected key=value")
    return key, value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``ecom``."""
    parser = argparse.ArgumentParser(prog="ecom", description=__doc__)
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors on stderr")
    sub = parser.add_subparsers(dest="command", required=True)

    def lakehouse_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument("--lakehouse", default=DEFAULT_LAKEHOUSE, help="local lakehouse directory (default ./lakehouse)")
        p.add_argument(
            "--remote", metavar="sc://HOST:PORT",
            help="run on this Spark Connect endpoint (default: $SPARK_REMOTE, else the warm local server); "
            "its own catalog holds the tables",
        )  # fmt: skip
        p.add_argument("--catalog", help="with --remote or Databricks Connect: the catalog of the tables")

    formats = ["table", "csv", "json", *RENDERED_FILES]
    all_help = "table: every row of the customer reports (default: their top and bottom 10 by profit)"
    output_help = "write to this file instead of stdout (html: default report.html; png: a folder, default report_png)"
    run = sub.add_parser("run", help="run bronze -> silver -> gold locally, then print the report")
    run.add_argument("--input", help="input directory, file or s3:// URI (default: the bundled sample)")
    lakehouse_arg(run)
    run.add_argument("--format", choices=formats, default="table")
    run.add_argument("--output", help=output_help)
    run.add_argument("--full-refresh", action="store_true", help="rebuild every table from the current input files")
    run.add_argument(
        "--checkpoint-location", metavar="DIR",
        help="where the orders stream keeps its checkpoint (default: <lakehouse>/_checkpoints; needed with --remote)",
    )  # fmt: skip
    run.add_argument("--all", action="store_true", help=all_help)
    run.add_argument("--no-report", action="store_true", help="end with the run summary; print no report")
    run.add_argument(
        "--wait-lock", type=float, default=0.0, metavar="SECONDS",
        help="wait this long for another run on the same lakehouse to finish (default: fail at once)",
    )  # fmt: skip
    run.set_defaults(func=cmd_run)

    report = sub.add_parser("report", help="run the SQL report over existing tables")
    lakehouse_arg(report)
    report.add_argument("--format", choices=formats, default="table")
    report.add_argument("--output", help=output_help)
    report.add_argument(
        "--all", action="store_true", help="print every row of the customer reports (default: top/bottom)"
    )
    report.set_defaults(func=cmd_report)

    quality = sub.add_parser("quality", help="print the data-quality report of the latest run (or --run-id)")
    quality.add_argument("--run-id")
    lakehouse_arg(quality)
    quality.set_defaults(func=cmd_quality)

    sql = sub.add_parser("sql", help="ad-hoc SQL over the local tables")
    sql.add_argument("query")
    sql.add_argument("--limit", type=int, default=1000)
    lakehouse_arg(sql)
    sql.set_defaults(func=cmd_sql)

    generate = sub.add_parser("generate", help="write synthetic raw data in the three source formats")
    generate.add_argument("--out", required=True)
    generate.add_argument("--orders", type=int, default=3000)
    generate.add_argument("--seed", type=int, default=42)
    generate.add_argument("--bad-orders", type=int, default=0, help="order lines to corrupt on purpose")
    generate.add_argument(
        "--anomalies", type=int, default=0,
        help="order lines given a value error (x100 price or profit, zeroed profit), listed in _anomalies.csv",
    )  # fmt: skip
    generate.set_defaults(func=cmd_generate)

    notebook = sub.add_parser("notebook", help="run a Databricks source-format notebook locally")
    notebook_sub = notebook.add_subparsers(dest="notebook_command", required=True)
    nb_run = notebook_sub.add_parser("run", help="execute the notebook cell by cell on local Spark")
    nb_run.add_argument("path")
    nb_run.add_argument("--param", action="append", default=[], help="widget value key=value (repeatable)")
    lakehouse_arg(nb_run)
    nb_run.set_defaults(func=cmd_notebook_run)

    from ecom_lakehouse.tools.extraction.cli import register as register_upload
    from ecom_lakehouse.tools.remote.cli import register as register_remote
    from ecom_lakehouse.tools.server_cli import register as register_server

    register_server(sub)
    register_upload(sub)
    register_remote(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ecom`` console script; returns the exit code."""
    from ecom_lakehouse.tools.console import terminal

    args = build_parser().parse_args(argv)
    started = time.time()
    # pyspark warns once its retries to a server are spent; the error that follows says it better
    warnings.filterwarnings("ignore", message=r"\[RETRIES_EXCEEDED\]")
    with terminal(quiet=args.quiet):
        try:
            return int(args.func(args) or 0)
        except EcomError as exc:
            print(f"ecom: error: {exc}", file=sys.stderr)
            return 2
        except Exception as exc:  # one line for the user; the traceback with -v would be noise for expected failures
            hint = _server_failure_hint(exc, started, getattr(args, "remote", None))
            if hint is not None:
                print(f"ecom: error: lost the Spark server ({_grpc_status(exc)}): {hint}", file=sys.stderr)
                return 1
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            print(f"ecom: error: {exc.__class__.__name__}: {first_line}", file=sys.stderr)
            return 1
        finally:
            if "pyspark" in sys.modules:
                from ecom_lakehouse.spark import stop_sessions

                stop_sessions()


def _grpc_status(exc: Exception) -> str:
    """``UNAVAILABLE`` from a gRPC error's text (its repr names the status code), else the exception's class."""
    found = re.search(r"StatusCode\.([A-Z_]+)", str(exc))
    return found.group(1) if found else exc.__class__.__name__


def _server_failure_hint(exc: Exception, since: float, remote: str | None) -> str | None:
    """Why the warm server went away, when the command failed because it did (the server's own record of it).

    Only for a command on the local server: a failing ``--remote`` endpoint or Databricks Connect is not ours to
    explain."""
    if "pyspark.sql.connect" not in sys.modules:
        return None
    from pyspark.errors.exceptions.connect import SparkConnectGrpcException

    from ecom_lakehouse import server
    from ecom_lakehouse.spark import CONNECT, remote_url, spark_mode

    try:
        if remote_url(remote) or spark_mode() != CONNECT:
            return None
    except ValueError:  # an unusable endpoint or mode: the command's own error says so
        return None

    if not isinstance(exc, SparkConnectGrpcException | ConnectionError) and "UNAVAILABLE" not in str(exc):
        return None
    return server.failure_hint(since)


if __name__ == "__main__":
    sys.exit(main())
