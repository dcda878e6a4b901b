"""The ``upload`` sub-command: argparse wiring, console progress and one-line errors.

``register(subparsers)`` adds the sub-command to the ``ecom`` CLI; ``main()`` runs it stand-alone
(``python data_extraction/upload_raw.py SOURCE_DIR --bucket B``).

Exit codes: 0 success (or dry run), 1 upload failure (some file failed, credentials, bucket, access, network),
2 bad input or usage (source directory, file names, options), 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections.abc import Sequence
from datetime import date
from typing import TYPE_CHECKING, Any, TextIO

from ecom_lakehouse.errors import ConfigError, EcomError, SourceError
from ecom_lakehouse.tools.extraction.settings import (
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_MULTIPART_CHUNKSIZE,
    DEFAULT_MULTIPART_THRESHOLD,
    DEFAULT_PREFIX,
    MIB,
    OUTCOME_FAILED,
    OUTCOME_SKIPPED,
    OUTCOME_UPLOADED,
    RETRY_MODES,
    SSE_CHOICES,
)

if TYPE_CHECKING:
    from ecom_lakehouse.tools.extraction.upload import FileResult, RunReport, SourceFile

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

_BAR_WIDTH = 28
_REDRAW_SECONDS = 0.1


def register(subparsers: Any) -> None:
    """Add the ``upload`` sub-command to an argparse subparsers object.

    Args:
        subparsers: the object returned by ``ArgumentParser.add_subparsers()``.
    """
    parser = subparsers.add_parser(
        "upload",
        help="upload the raw source files to S3 (extraction step)",
        description=(
            "Upload the raw files in SOURCE_DIR to s3://BUCKET/PREFIX<dataset>/ingest_date=YYYY-MM-DD/<file>, "
            "verified with SHA-256, skipping files already uploaded unchanged, then write the run manifest "
            "PREFIX_manifests/<run id>.json. Credentials come from the standard AWS chain only "
            "(environment, --profile / shared config, SSO, container or instance role)."
        ),
    )
    parser.add_argument("source_dir", metavar="SOURCE_DIR", help="directory holding the raw files (not recursive)")
    parser.add_argument("--bucket", required=True, help="target bucket name")
    parser.add_argument("--prefix", default=DEFAULT_PREFIX, help=f"key prefix (default: {DEFAULT_PREFIX})")
    parser.add_argument("--endpoint-url", help="S3-compatible endpoint, e.g. a local test server (path-style)")
    parser.add_argument("--region", help="AWS region (default: from the environment or profile)")
    parser.add_argument("--profile", help="named profile from the AWS config files")
    parser.add_argument(
        "--sse",
        choices=SSE_CHOICES,
        default="AES256",
        help="server-side encryption header sent with every object (default: AES256)",
    )
    parser.add_argument("--kms-key-id", help="KMS key id, ARN or alias for --sse aws:kms")
    parser.add_argument("--dry-run", action="store_true", help="print the plan (hashes, keys); upload nothing")
    parser.add_argument(
        "--ingest-date",
        type=_iso_date,
        help="ingest_date partition YYYY-MM-DD (default: today in UTC); reuse a date to complete a failed run",
    )
    parser.add_argument(
        "--multipart-threshold-mib",
        type=_mebibytes,
        default=DEFAULT_MULTIPART_THRESHOLD // MIB,
        metavar="MIB",
        help=f"multipart upload from this size (default: {DEFAULT_MULTIPART_THRESHOLD // MIB}; minimum 5)",
    )
    parser.add_argument(
        "--multipart-chunk-mib",
        type=_mebibytes,
        default=DEFAULT_MULTIPART_CHUNKSIZE // MIB,
        metavar="MIB",
        help=f"multipart part size (default: {DEFAULT_MULTIPART_CHUNKSIZE // MIB}; minimum 5)",
    )
    parser.add_argument(
        "--max-concurrency", type=int, default=4, metavar="N", help="parallel part uploads (default: 4)"
    )
    parser.add_argument(
        "--max-attempts",
        type=int,
        default=DEFAULT_MAX_ATTEMPTS,
        metavar="N",
        help=f"attempts per request, first included (default: {DEFAULT_MAX_ATTEMPTS})",
    )
    parser.add_argument("--retry-mode", choices=RETRY_MODES, default="standard", help="botocore retry mode")
    parser.add_argument(
        "--progress",
        choices=("auto", "bar", "log"),
        default="auto",
        help="progress display: a bar on stderr when it is a terminal (auto), or plain log lines",
    )
    parser.set_defaults(func=run_upload)


def run_upload(args: argparse.Namespace) -> int:
    """Handler of the ``upload`` sub-command.

    Args:
        args: parsed arguments of the sub-command.

    Returns:
        The process exit code (see the module docstring).
    """
    out, err = sys.stdout, sys.stderr
    try:
        from ecom_lakehouse.tools.extraction.upload import UploadOptions, upload_raw_files
    except ImportError as exc:
        return _error(err, f"ecom upload needs boto3: pip install 'ecom-lakehouse[upload]' ({exc})", EXIT_USAGE)
    try:
        options = UploadOptions(
            bucket=args.bucket,
            prefix=args.prefix,
            endpoint_url=args.endpoint_url,
            region=args.region,
            profile=args.profile,
            sse=args.sse,
            kms_key_id=args.kms_key_id,
            multipart_threshold=args.multipart_threshold_mib * MIB,
            multipart_chunksize=args.multipart_chunk_mib * MIB,
            max_concurrency=args.max_concurrency,
            max_attempts=args.max_attempts,
            retry_mode=args.retry_mode,
            ingest_date=args.ingest_date,
        )
    except ValueError as exc:
        return _error(err, str(exc), EXIT_USAGE)

    bar = args.progress == "bar" or (args.progress == "auto" and _is_tty(err))
    console = _Console(out, err, bar=bar)
    try:
        report = upload_raw_files(args.source_dir, options, dry_run=args.dry_run, listener=console)
    except KeyboardInterrupt:
        console.clear()
        return _error(
            err,
            "interrupted; no manifest written (an in-flight multipart upload is aborted); re-run to complete",
            EXIT_INTERRUPTED,
        )
    except (SourceError, ConfigError) as exc:
        console.clear()
        return _error(err, str(exc), EXIT_USAGE)
    except EcomError as exc:
        console.clear()
        return _error(err, f"{exc}; no manifest written", EXIT_FAILED)
    except Exception as exc:  # never a traceback: one line, non-zero
        console.clear()
        return _error(err, f"unexpected {type(exc).__name__}: {exc}", EXIT_FAILED)

    if report.dry_run:
        _print_plan(out, report, options.bucket)
        return EXIT_OK
    failed = report.failed
    print(
        f"run {report.run_id}: {report.count(OUTCOME_UPLOADED)} uploaded, {report.count(OUTCOME_SKIPPED)} "
        f"skipped-unchanged, {len(failed)} failed"
        + (f"; manifest s3://{options.bucket}/{report.manifest_key}" if report.manifest_key else ""),
        file=out,
    )
    if failed:
        details = "; ".join(f"{r.source.name}: {r.error}" for r in failed)
        return _error(
            err, f"{len(failed)} of {len(report.files)} files failed, no manifest written: {details}", EXIT_FAILED
        )
    print(volume_hint(options.bucket, report.prefix), file=out)
    return EXIT_OK


def volume_hint(bucket: str, prefix: str) -> str:
    """The Unity Catalog raw volume over what was uploaded: the bundle variables that declare it (databricks.yml)."""
    location = f"s3://{bucket}/{prefix}"
    return (
        f"raw volume: an EXTERNAL volume over {location} serves these files to the job (deploy with "
        f"--var raw_volume_type=EXTERNAL --var raw_storage_location={location})"
    )


def main(argv: Sequence[str] | None = None, prog: str = "upload_raw.py") -> int:
    """Run the ``upload`` sub-command stand-alone (the same parser the ``ecom`` CLI registers).

    Args:
        argv: arguments after the program name (default: ``sys.argv[1:]``).
        prog: program name shown in usage messages.

    Returns:
        The exit code.
    """
    parser = argparse.ArgumentParser(prog=prog, description="Upload the raw source files to S3.")
    subparsers = parser.add_subparsers(dest="command", required=True)
    register(subparsers)
    args = parser.parse_args(["upload", *(sys.argv[1:] if argv is None else argv)])
    return int(args.func(args))


# ----------------------------------------------------------------------------------------------------------------
# Console output.
# ----------------------------------------------------------------------------------------------------------------


class _Console:
    """Progress and per-file outcomes: a byte progress bar on stderr (TTY) or plain lines on stdout."""

    def __init__(self, out: TextIO, err: TextIO, *, bar: bool) -> None:
        self._out, self._err, self._bar = out, err, bar
        self._lock = threading.Lock()
        self._source: SourceFile | None = None
        self._sent = 0
        self._started = 0.0
        self._drawn_at = 0.0
        self._milestone = 0
        self._bar_visible = False

    def file_started(self, source: SourceFile) -> None:
        with self._lock:
            self._source, self._sent, self._milestone = source, 0, 0
            self._started = time.monotonic()
            if self._bar:
                self._draw(force=True)
            else:
                kind = f"multipart, {len(source.part_checksums)} parts" if source.multipart else "single PUT"
                self._line(f"uploading {source.name} -> {source.key} ({_size(source.size)}, {kind})")

    def bytes_sent(self, amount: int) -> None:
        with self._lock:
            if self._source is None:
                return
            self._sent = min(max(self._sent + amount, 0), self._source.size)
            if self._bar:
                self._draw()
            elif self._source.multipart:
                quarter = self._sent * 4 // self._source.size
                if 0 < quarter < 4 and quarter > self._milestone:
                    self._milestone = quarter
                    self._line(
                        f"  {self._source.name}: {quarter * 25}% ({_size(self._sent)} of {_size(self._source.size)})"
                    )

    def file_finished(self, result: FileResult) -> None:
        with self._lock:
            self._clear_bar()
            self._source = None
            src = result.source
            if result.outcome == OUTCOME_FAILED:
                self._line(f"failed             {src.name} -> {src.key}: {result.error}")
            else:
                note = " (replaced changed content)" if result.replaced else ""
                self._line(
                    f"{result.outcome:<18} {src.name} -> {src.key} {_size(src.size)} sha256={src.sha256[:12]}...{note}"
                )

    def clear(self) -> None:
        with self._lock:
            self._clear_bar()

    def _line(self, text: str) -> None:
        print(text, file=self._out, flush=True)

    def _draw(self, force: bool = False) -> None:
        now = time.monotonic()
        source = self._source
        if source is None or (not force and now - self._drawn_at < _REDRAW_SECONDS and self._sent < source.size):
            return
        self._drawn_at = now
        fraction = self._sent / source.size if source.size else 1.0
        filled = int(fraction * _BAR_WIDTH)
        elapsed = max(now - self._started, 1e-6)
        rate = f"{_size(int(self._sent / elapsed))}/s" if self._sent else ""
        name = source.name if len(source.name) <= 24 else source.name[:21] + "..."
        text = (
            f"\r{name:<24} [{'#' * filled}{'.' * (_BAR_WIDTH - filled)}] {fraction:4.0%} "
            f"{_size(self._sent)}/{_size(source.size)} {rate}"
        )
        self._err.write(text + "\x1b[K")
        self._err.flush()
        self._bar_visible = True

    def _clear_bar(self) -> None:
        if self._bar_visible:
            self._err.write("\r\x1b[K")
            self._err.flush()
            self._bar_visible = False


def _print_plan(out: TextIO, report: RunReport, bucket: str) -> None:
    print(
        f"dry run {report.run_id}: {len(report.files)} file(s) would go to s3://{bucket}/{report.prefix} "
        f"(ingest_date={report.ingest_date.isoformat()}); nothing uploaded",
        file=out,
    )
    for result in report.files:
        src = result.source
        mode = f"multipart x{len(src.part_checksums)}" if src.multipart else "single"
        print(f"{src.name}\t{src.dataset}\ts3://{bucket}/{src.key}\t{src.size}\t{mode}\tsha256={src.sha256}", file=out)


def _error(err: TextIO, message: str, code: int) -> int:
    print(f"error: {' '.join(message.split())}", file=err, flush=True)
    return code


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _iso_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a YYYY-MM-DD date: {text!r}") from exc


def _mebibytes(text: str) -> int:
    try:
        value = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a whole number of MiB: {text!r}") from exc
    if value < 5:
        raise argparse.ArgumentTypeError("must be at least 5 (MiB): S3's minimum part size")
    return value


def _size(num: int) -> str:
    value = float(num)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"  # pragma: no cover
