"""Upload the raw source files to S3, verified end to end, idempotent, with a manifest written last.

Layout: ``s3://BUCKET/PREFIX<dataset>/ingest_date=YYYY-MM-DD/<file name>`` where the dataset is recognised
from the file name by the source patterns in conf/pipeline.yml, and one manifest per completed run at
``PREFIX_manifests/<run id>.json``.

Integrity: every file is hashed locally (SHA-256, streamed) before anything is sent. A single-part upload
carries that digest as ``x-amz-checksum-sha256``; a multipart upload carries the locally computed digest of
each part with that part, so S3 rejects (BadDigest) any byte that differs from what was hashed, including a
file changed or swapped after hashing. The full-file digest is stored as object metadata ``sha256`` (S3's own
multipart checksum is composite, a digest of the part digests) and drives the skip-unchanged check; after each
upload the object is HEADed and its size, metadata and S3 checksum are compared with the local values.

Resilience: botocore retries throttling, 5xx and dropped connections (standard or adaptive mode); a failed or
interrupted multipart upload is aborted by the transfer manager and, should that abort itself fail, once more
by this module using the upload id it recorded, so no parts are left behind. S3 only makes an object visible
when its PutObject or CompleteMultipartUpload succeeds, so a failure never leaves a partial object.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import mimetypes
import os
import re
import secrets
import stat
import threading
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import IO, Any, Protocol
from urllib.parse import urlparse

import boto3
from boto3.s3.transfer import TransferConfig, create_transfer_manager
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    CredentialRetrievalError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    ProfileNotFound,
)
from s3transfer.subscribers import BaseSubscriber
from s3transfer.utils import ChunksizeAdjuster

from ecom_lakehouse import __version__
from ecom_lakehouse.config import PipelineConfig, load_config
from ecom_lakehouse.errors import SourceError, UploadError
from ecom_lakehouse.tools.extraction.settings import (
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_MULTIPART_CHUNKSIZE,
    DEFAULT_MULTIPART_THRESHOLD,
    DEFAULT_PREFIX,
    MANIFEST_DIR,
    MANIFEST_VERSION,
    METADATA_RUN_ID,
    METADATA_SHA256,
    MIB,
    MIN_PART_SIZE,
    OUTCOME_FAILED,
    OUTCOME_PLANNED,
    OUTCOME_SKIPPED,
    OUTCOME_UPLOADED,
    RETRY_MODES,
    SSE_CHOICES,
)

#: Every S3 API operation this module (and the transfer manager it drives) calls, with the IAM action that
#: authorises it. conf/iam/uploader-policy.json must allow all of them; tests/integration/test_extraction.py checks both
#: that the policy covers these actions and that a real run calls no operation missing from this table.
IAM_ACTIONS: Mapping[str, str] = {
    "ListObjectsV2": "s3:ListBucket",
    "HeadObject": "s3:GetObject",
    "PutObject": "s3:PutObject",
    "CreateMultipartUpload": "s3:PutObject",
    "UploadPart": "s3:PutObject",
    "CompleteMultipartUpload": "s3:PutObject",
    "AbortMultipartUpload": "s3:AbortMultipartUpload",
    "ListMultipartUploads": "s3:ListBucketMultipartUploads",
}
#: Actions on the KMS key that S3 performs on the uploader's behalf with ``--sse aws:kms`` (Decrypt is needed
#: to complete a multipart upload of an SSE-KMS object).
SSE_KMS_IAM_ACTIONS: tuple[str, ...] = ("kms:GenerateDataKey", "kms:Encrypt", "kms:Decrypt")

_READ_BLOCK = MIB
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")
_FATAL_ACCESS_CODES = {
    "AccessDenied",
    "403",
    "Forbidden",
    "AllAccessDisabled",
    "AccountProblem",
    "KMS.DisabledException",
}
_FATAL_CREDENTIAL_CODES = {
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "ExpiredTokenException",
    "InvalidToken",
    "TokenRefreshRequired",
    "InvalidClientTokenId",
    "AuthorizationHeaderMalformed",
}
_FATAL_BUCKET_CODES = {"NoSuchBucket", "PermanentRedirect", "InvalidBucketName"}
_CONTENT_TYPES = {
    ".json": "application/json",
    ".jsonl": "application/x-ndjson",
    ".ndjson": "application/x-ndjson",
    ".csv": "text/csv",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


@dataclass(frozen=True)
class UploadOptions:
    """Where and how to upload. Credentials are never an option: they come from the standard AWS chain.

    Attributes:
        bucket: target bucket name (no ``s3://``).
        prefix: key prefix, normalised to end with ``/`` (empty for the bucket root).
        endpoint_url: an S3-compatible endpoint (path-style addressing is used with it), e.g. a local test server.
        region: AWS region; by default from the environment / profile.
        profile: a named profile from the shared AWS config files.
        sse: ``AES256``, ``aws:kms`` or ``None`` (send no server-side-encryption header).
        kms_key_id: KMS key id/ARN/alias for ``aws:kms`` (default: the bucket's / account's S3 KMS key).
        multipart_threshold: files of at least this many bytes go up as multipart uploads.
        multipart_chunksize: part size in bytes (at least 5 MiB; doubled as needed to stay within 10,000 parts).
        max_concurrency: parallel part uploads of one file.
        max_attempts: botocore attempts per request, the first included.
        retry_mode: botocore retry mode, ``standard`` or ``adaptive``.
        connect_timeout: seconds to establish a connection.
        read_timeout: seconds to wait for a response.
        ingest_date: the ``ingest_date=`` partition; by default the UTC date at the start of the run.
    """

    bucket: str
    prefix: str = DEFAULT_PREFIX
    endpoint_url: str | None = None
    region: str | None = None
    profile: str | None = None
    sse: str | None = "AES256"
    kms_key_id: str | None = None
    multipart_threshold: int = DEFAULT_MULTIPART_THRESHOLD
    multipart_chunksize: int = DEFAULT_MULTIPART_CHUNKSIZE
    max_concurrency: int = 4
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    retry_mode: str = "standard"
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    ingest_date: date | None = None

    def __post_init__(self) -> None:
        if self.bucket.startswith("s3://"):
            raise ValueError(f"--bucket takes a bucket name, not a URL: use {self.bucket[5:].split('/')[0]!r}")
        if not _BUCKET_NAME.match(self.bucket) or ".." in self.bucket:
            raise ValueError(f"invalid bucket name {self.bucket!r} (3-63 lowercase letters, digits, '.', '-')")
        object.__setattr__(self, "prefix", _normalise_prefix(self.prefix))
        if self.sse == "none":
            object.__setattr__(self, "sse", None)
        if self.sse not in (None, "AES256", "aws:kms"):
            raise ValueError(f"--sse must be one of {', '.join(SSE_CHOICES)}, not {self.sse!r}")
        if self.kms_key_id and self.sse != "aws:kms":
            raise ValueError("--kms-key-id needs --sse aws:kms")
        if self.multipart_threshold < MIN_PART_SIZE or self.multipart_chunksize < MIN_PART_SIZE:
            raise ValueError("multipart threshold and chunk size must be at least 5 MiB (S3's minimum part size)")
        if self.max_concurrency < 1 or not 1 <= self.max_attempts <= 20:
            raise ValueError("max concurrency must be >= 1 and max attempts between 1 and 20")
        if self.retry_mode not in RETRY_MODES:
            raise ValueError(f"retry mode must be one of {', '.join(RETRY_MODES)}")
        if self.endpoint_url:
            parsed = urlparse(self.endpoint_url)
            if parsed.scheme not in ("http", "https") or not parsed.hostname:
                raise ValueError(f"--endpoint-url must be an http(s) URL, not {self.endpoint_url!r}")
            if parsed.username or parsed.password:
                raise ValueError("--endpoint-url must not embed credentials; use the standard AWS credential chain")

    def part_size_for(self, size: int) -> int | None:
        """The part size the transfer manager will use for a file of ``size`` bytes, or None for a single PUT."""
        if size < self.multipart_threshold:
            return None
        return ChunksizeAdjuster().adjust_chunksize(self.multipart_chunksize, size)


@dataclass(frozen=True)
class SourceFile:
    """One raw file, hashed, with the key it goes to.

    Attributes:
        name: file name inside SOURCE_DIR.
        path: absolute path (SOURCE_DIR resolved).
        dataset: dataset recognised from the name (``orders``, ``customers``, ``products``).
        key: the object key it is uploaded to.
        size: bytes.
        sha256: hex SHA-256 of the whole file.
        part_size: bytes per part for a multipart upload, None for a single PUT.
        part_checksums: base64 SHA-256 of each part (multipart only), sent with each part.
        identity: (device, inode, size, mtime_ns) when hashed; the file is re-checked against it before upload.
    """

    name: str
    path: Path
    dataset: str
    key: str
    size: int
    sha256: str
    part_size: int | None = None
    part_checksums: tuple[str, ...] = ()
    identity: tuple[int, int, int, int] = (0, 0, 0, 0)

    @property
    def multipart(self) -> bool:
        """Whether the file goes up as a multipart upload."""
        return self.part_size is not None

    @property
    def sha256_b64(self) -> str:
        """The full-file digest in the base64 form S3 uses for ``ChecksumSHA256``."""
        return base64.b64encode(bytes.fromhex(self.sha256)).decode("ascii")

    @property
    def expected_s3_checksum(self) -> str:
        """The ``ChecksumSHA256`` S3 reports for the object: full-file, or composite ``<b64>-<parts>``."""
        if not self.multipart:
            return self.sha256_b64
        joined = b"".join(base64.b64decode(part) for part in self.part_checksums)
        return f"{base64.b64encode(hashlib.sha256(joined).digest()).decode('ascii')}-{len(self.part_checksums)}"


@dataclass(frozen=True)
class FileResult:
    """What happened to one file in a run.

    Attributes:
        source: the file.
        outcome: ``uploaded``, ``skipped-unchanged``, ``failed`` or ``planned`` (dry run).
        error: one-line reason when failed.
        replaced: an object with different content was overwritten under the same key.
        uploaded_by_run_id: the run that wrote the object now under the key (from its metadata when skipped).
        s3_checksum: the ``ChecksumSHA256`` S3 reported after the upload (None if the server reports none).
    """

    source: SourceFile
    outcome: str
    error: str | None = None
    replaced: bool = False
    uploaded_by_run_id: str | None = None
    s3_checksum: str | None = None

    def as_manifest_entry(self) -> dict[str, Any]:
        """The file's entry in the run manifest."""
        src = self.source
        return {
            "file": src.name,
            "dataset": src.dataset,
            "key": src.key,
            "size": src.size,
            "sha256": src.sha256,
            "outcome": self.outcome,
            "multipart_parts": len(src.part_checksums) if src.multipart else None,
            "s3_checksum_sha256": self.s3_checksum,
            "replaced": self.replaced,
            "uploaded_by_run_id": self.uploaded_by_run_id,
        }


@dataclass
class RunReport:
    """The outcome of a run: per-file results and, when the run completed, the manifest key.

    Attributes:
        run_id: UTC timestamp plus a short random suffix.
        bucket: target bucket.
        prefix: normalised key prefix.
        ingest_date: the partition date.
        started_at: UTC start.
        files: per-file results, in upload order.
        manifest_key: the manifest written last, None on a dry run or when anything failed.
        dry_run: nothing was sent.
    """

    run_id: str
    bucket: str
    prefix: str
    ingest_date: date
    started_at: datetime
    files: list[FileResult] = field(default_factory=list)
    manifest_key: str | None = None
    dry_run: bool = False

    @property
    def failed(self) -> list[FileResult]:
        """Results whose outcome is ``failed``."""
        return [result for result in self.files if result.outcome == OUTCOME_FAILED]

    def count(self, outcome: str) -> int:
        """How many files had ``outcome``."""
        return sum(1 for result in self.files if result.outcome == outcome)

    def manifest(self, finished_at: datetime) -> dict[str, Any]:
        """The manifest document of a completed run."""
        uploaded = [r for r in self.files if r.outcome == OUTCOME_UPLOADED]
        return {
            "manifest_version": MANIFEST_VERSION,
            "run_id": self.run_id,
            "tool": f"ecom-lakehouse {__version__}",
            "started_at": _iso(self.started_at),
            "finished_at": _iso(finished_at),
            "bucket": self.bucket,
            "prefix": self.prefix,
            "ingest_date": self.ingest_date.isoformat(),
            "totals": {
                "files": len(self.files),
                "uploaded": len(uploaded),
                "skipped_unchanged": self.count(OUTCOME_SKIPPED),
                "bytes_uploaded": sum(r.source.size for r in uploaded),
            },
            "files": [result.as_manifest_entry() for result in self.files],
        }


class UploadListener(Protocol):
    """Receives progress events; the CLI renders them as a progress bar or log lines."""

    def file_started(self, source: SourceFile) -> None:
        """A file's upload starts (after the unchanged check)."""

    def bytes_sent(self, amount: int) -> None:
        """``amount`` more bytes were sent (negative when a retried request rewinds); called from worker threads."""

    def file_finished(self, result: FileResult) -> None:
        """A file has its final outcome."""


class _SilentListener:
    def file_started(self, source: SourceFile) -> None:
        pass

    def bytes_sent(self, amount: int) -> None:
        pass

    def file_finished(self, result: FileResult) -> None:
        pass


class _FatalUploadError(UploadError):
    """An error that would fail every remaining file too (credentials, bucket, permissions, endpoint)."""


# ----------------------------------------------------------------------------------------------------------------
# Planning: scan SOURCE_DIR, recognise datasets, hash.
# ----------------------------------------------------------------------------------------------------------------


def plan_upload(
    source_dir: str | Path,
    options: UploadOptions,
    ingest_date: date,
    config: PipelineConfig | None = None,
) -> list[SourceFile]:
    """Scan SOURCE_DIR, recognise each file's dataset and hash it; nothing is sent.

    Hidden entries (names starting with ``.``, e.g. ``.DS_Store``) are ignored. Every other entry must be a regular
    file (not a symlink, directory or special file), non-empty and recognised by a source pattern in
    conf/pipeline.yml; otherwise the whole run is refused before anything is uploaded.

    Args:
        source_dir: directory holding the raw files (not searched recursively).
        options: upload options (prefix and multipart settings decide keys and part checksums).
        ingest_date: the ``ingest_date=`` partition of the keys.
        config: pipeline configuration; loaded from conf/pipeline.yml by default.

    Returns:
        The files in name order.

    Raises:
        SourceError: missing or empty directory, unrecognised, empty or unsafe entries.
    """
    root = _resolve_source_dir(source_dir)
    sources = (config or load_config()).sources
    entries = sorted(os.scandir(root), key=lambda entry: entry.name)
    candidates = [entry for entry in entries if not entry.name.startswith(".")]
    if not candidates:
        hidden = f" ({len(entries)} hidden entries ignored)" if entries else ""
        raise SourceError(f"no source files in {root}{hidden}")

    unsafe, unknown, ambiguous, empty = [], [], [], []
    recognised: list[tuple[os.DirEntry[str], str, os.stat_result]] = []
    for entry in candidates:
        info = entry.stat(follow_symlinks=False)
        if stat.S_ISLNK(info.st_mode):
            unsafe.append(f"{entry.name} (symlink to {os.readlink(entry.path)})")
            continue
        if not stat.S_ISREG(info.st_mode):
            unsafe.append(f"{entry.name} ({'directory' if stat.S_ISDIR(info.st_mode) else 'not a regular file'})")
            continue
        if Path(os.path.realpath(entry.path)).parent != root:
            unsafe.append(f"{entry.name} (resolves outside {root})")
            continue
        datasets = [name for name, spec in sources.items() if spec.matches(entry.name)]
        if not datasets:
            unknown.append(entry.name)
        elif len(datasets) > 1:
            ambiguous.append(f"{entry.name} ({' and '.join(datasets)})")
        elif info.st_size == 0:
            empty.append(entry.name)
        else:
            recognised.append((entry, datasets[0], info))

    if unsafe:
        raise SourceError(f"refusing unsafe entries in {root} (only regular files are uploaded): {', '.join(unsafe)}")
    if unknown:
        raise SourceError(
            f"unrecognised file(s) in {root}: {', '.join(unknown)} "
            f"(expected {', '.join(sources)} files per the source patterns in conf/pipeline.yml)"
        )
    if ambiguous:
        raise SourceError(
            f"file(s) matching more than one dataset pattern in conf/pipeline.yml: {', '.join(ambiguous)}"
        )
    if empty:
        raise SourceError(f"empty file(s) in {root}: {', '.join(empty)}")

    partition = f"ingest_date={ingest_date.isoformat()}"
    plan = []
    for entry, dataset, info in recognised:
        path = root / entry.name
        part_size = options.part_size_for(info.st_size)
        with _open_regular(path, _identity(info)) as handle:
            sha256, parts = _hash(handle, info.st_size, part_size, path)
        plan.append(
            SourceFile(
                name=entry.name,
                path=path,
                dataset=dataset,
                key=f"{options.prefix}{dataset}/{partition}/{entry.name}",
                size=info.st_size,
                sha256=sha256,
                part_size=part_size,
                part_checksums=parts,
                identity=_identity(info),
            )
        )
    return plan


def _normalise_prefix(prefix: str) -> str:
    cleaned = prefix.strip().strip("/")
    if not cleaned:
        return ""
    segments = cleaned.split("/")
    if any(segment in ("", ".", "..") for segment in segments) or "\\" in cleaned:
        raise ValueError(f"invalid --prefix {prefix!r} (no empty, '.' or '..' segments, no backslashes)")
    return cleaned + "/"


def _resolve_source_dir(source_dir: str | Path) -> Path:
    path = Path(source_dir).expanduser()
    if not path.exists():
        raise SourceError(f"source directory {path} does not exist")
    if not path.is_dir():
        raise SourceError(f"source {path} is not a directory")
    return path.resolve(strict=True)


def _identity(info: os.stat_result) -> tuple[int, int, int, int]:
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)


@contextmanager
def _open_regular(path: Path, expected: tuple[int, int, int, int]) -> Iterator[IO[bytes]]:
    """Open without following symlinks and check it is still the regular file that was scanned or hashed."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise SourceError(f"cannot open {path}: {exc.strerror or exc}") from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or _identity(info) != expected:
            raise SourceError(f"{path.name} changed or was replaced since it was scanned; re-run the upload")
        handle = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with handle:
        yield handle


def _hash(handle: IO[bytes], size: int, part_size: int | None, path: Path) -> tuple[str, tuple[str, ...]]:
    """Stream the file once: full-file SHA-256 (hex) and, for multipart, each part's SHA-256 (base64)."""
    whole = hashlib.sha256()
    parts: list[str] = []
    boundary = part_size or size
    part = hashlib.sha256()
    in_part = 0
    total = 0
    while True:
        block = handle.read(min(_READ_BLOCK, boundary - in_part))
        if not block:
            break
        whole.update(block)
        part.update(block)
        in_part += len(block)
        total += len(block)
        if in_part == boundary:
            parts.append(base64.b64encode(part.digest()).decode("ascii"))
            part, in_part = hashlib.sha256(), 0
    if in_part:
        parts.append(base64.b64encode(part.digest()).decode("ascii"))
    if total != size:
        raise SourceError(f"{path.name} changed size while being hashed ({size} -> {total} bytes); re-run the upload")
    expected_parts = math.ceil(size / part_size) if part_size else 0
    if part_size and len(parts) != expected_parts:  # pragma: no cover - guarded by the size check above
        raise SourceError(f"{path.name}: internal error splitting into {expected_parts} parts")
    return whole.hexdigest(), tuple(parts) if part_size else ()


# ----------------------------------------------------------------------------------------------------------------
# Uploading.
# ----------------------------------------------------------------------------------------------------------------


def make_s3_client(options: UploadOptions) -> Any:
    """An S3 client from the standard credential chain, with retries and timeouts from ``options``.

    Args:
        options: endpoint, region, profile, retry and timeout settings.

    Returns:
        A botocore S3 client.

    Raises:
        UploadError: the profile does not exist.
    """
    try:
        session = boto3.session.Session(profile_name=options.profile, region_name=options.region)
    except ProfileNotFound as exc:
        raise UploadError(f"AWS profile {options.profile!r} not found in the AWS config files") from exc
    config = Config(
        retries={"mode": options.retry_mode, "max_attempts": options.max_attempts},
        connect_timeout=options.connect_timeout,
        read_timeout=options.read_timeout,
        max_pool_connections=max(10, options.max_concurrency * 2),
        user_agent_extra=f"ecom-lakehouse/{__version__}",
        s3={"addressing_style": "path"} if options.endpoint_url else None,
    )
    return session.client("s3", endpoint_url=options.endpoint_url, config=config)


def new_run_id(now: datetime) -> str:
    """A run id: the UTC timestamp plus 8 random hex digits, e.g. ``20240501T103000Z-1a2b3c4d``.

    Args:
        now: an aware datetime.

    Returns:
        The id, sortable by time.
    """
    return f"{now.astimezone(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}"


def upload_raw_files(
    source_dir: str | Path,
    options: UploadOptions,
    *,
    dry_run: bool = False,
    client: Any | None = None,
    listener: UploadListener | None = None,
    config: PipelineConfig | None = None,
    now: datetime | None = None,
) -> RunReport:
    """Upload every raw file in SOURCE_DIR, skipping unchanged ones, then write the run manifest.

    All input is validated and hashed before anything is sent. Files are uploaded one after another (the parts of
    a multipart upload in parallel). A file that fails (retries exhausted, integrity mismatch) is reported and the
    run goes on with the next; an error that would fail every file (credentials, bucket, permissions, endpoint)
    stops the run. The manifest is written last and only when no file failed.

    Args:
        source_dir: directory holding the raw files.
        options: bucket, prefix and transfer settings.
        dry_run: only plan (hash and compute keys); no credentials are needed and nothing is sent.
        client: an S3 client to use instead of :func:`make_s3_client` (tests).
        listener: progress events.
        config: pipeline configuration; conf/pipeline.yml by default.
        now: the run's start time (tests).

    Returns:
        The run report; ``report.failed`` is non-empty when some file failed (and no manifest was written).

    Raises:
        SourceError: bad input (nothing was sent).
        UploadError: a run-wide failure (credentials, bucket, permissions, endpoint, manifest).
        KeyboardInterrupt: after the in-flight multipart upload has been aborted.
    """
    started = (now or datetime.now(UTC)).astimezone(UTC)
    ingest_date = options.ingest_date or started.date()
    report = RunReport(new_run_id(started), options.bucket, options.prefix, ingest_date, started, dry_run=dry_run)
    plan = plan_upload(source_dir, options, ingest_date, config)
    if dry_run:
        report.files = [FileResult(source, OUTCOME_PLANNED) for source in plan]
        return report
    _Uploader(client or make_s3_client(options), options, report, listener or _SilentListener()).run(plan)
    return report


class _TransferSubscriber(BaseSubscriber):
    """Tells the transfer manager the (already hashed) size and forwards byte progress."""

    def __init__(self, size: int, listener: UploadListener) -> None:
        self._size = size
        self._listener = listener

    def on_queued(self, future: Any, **kwargs: Any) -> None:
        future.meta.provide_transfer_size(self._size)

    def on_progress(self, future: Any, bytes_transferred: int, **kwargs: Any) -> None:
        self._listener.bytes_sent(bytes_transferred)


class _ClientHooks:
    """botocore event handlers for one run: per-part checksums in, multipart upload ids out."""

    def __init__(self, client: Any, bucket: str) -> None:
        self._events = client.meta.events
        self._bucket = bucket
        self._lock = threading.Lock()
        self._part_checksums: dict[str, tuple[str, ...]] = {}
        self.upload_ids: dict[str, set[str]] = {}
        self._tag = f"ecom-upload-{id(self)}"

    def __enter__(self) -> _ClientHooks:
        self._events.register("before-parameter-build.s3.UploadPart", self._add_part_checksum, self._tag + "-part")
        self._events.register("after-call.s3.CreateMultipartUpload", self._record_upload_id, self._tag + "-create")
        return self

    def __exit__(self, *exc: object) -> None:
        self._events.unregister("before-parameter-build.s3.UploadPart", unique_id=self._tag + "-part")
        self._events.unregister("after-call.s3.CreateMultipartUpload", unique_id=self._tag + "-create")

    def expect_parts(self, key: str, checksums: tuple[str, ...]) -> None:
        with self._lock:
            self._part_checksums[key] = checksums

    def forget(self, key: str) -> None:
        with self._lock:
            self._part_checksums.pop(key, None)
            self.upload_ids.pop(key, None)

    def _add_part_checksum(self, params: dict[str, Any], **kwargs: Any) -> None:
        if params.get("Bucket") != self._bucket:
            return
        with self._lock:
            checksums = self._part_checksums.get(params.get("Key", ""))
        number = params.get("PartNumber")
        if checksums and isinstance(number, int) and 1 <= number <= len(checksums):
            # S3 verifies the part against the digest computed when the file was hashed (BadDigest otherwise).
            params["ChecksumSHA256"] = checksums[number - 1]

    def _record_upload_id(self, parsed: dict[str, Any], **kwargs: Any) -> None:
        upload_id, key = parsed.get("UploadId"), parsed.get("Key")
        if upload_id and key:
            with self._lock:
                self.upload_ids.setdefault(key, set()).add(upload_id)


class _Uploader:
    def __init__(self, client: Any, options: UploadOptions, report: RunReport, listener: UploadListener) -> None:
        self._client = client
        self._options = options
        self._report = report
        self._listener = listener
        self._bucket = options.bucket
        self._open_files = ExitStack()

    def run(self, plan: list[SourceFile]) -> None:
        existing = self._existing_keys(plan)
        transfer_config = TransferConfig(
            multipart_threshold=self._options.multipart_threshold,
            multipart_chunksize=self._options.multipart_chunksize,
            max_concurrency=self._options.max_concurrency,
            use_threads=True,
            preferred_transfer_client="classic",
        )
        with _ClientHooks(self._client, self._bucket) as hooks:
            try:
                # Files are closed only after the manager has shut down: on an interrupt it cancels in-flight
                # parts (which may still be reading) and aborts the multipart upload when it leaves its context.
                with ExitStack() as open_files, create_transfer_manager(self._client, transfer_config) as manager:
                    self._open_files = open_files
                    for source in plan:
                        result = self._process(manager, hooks, source, source.key in existing)
                        self._report.files.append(result)
                        self._listener.file_finished(result)
            except (KeyboardInterrupt, _FatalUploadError):
                # The transfer manager has cancelled and aborted in-flight uploads on leaving its context;
                # abort anything whose abort failed (our recorded upload ids), then let the error through.
                for key in list(hooks.upload_ids):
                    self._abort_orphans(hooks, key)
                raise
        if not self._report.failed:
            self._write_manifest()

    # -- steps --------------------------------------------------------------------------------------------------

    def _existing_keys(self, plan: list[SourceFile]) -> set[str]:
        """Keys already present in the target partitions; also the run's pre-flight check of bucket and access.

        Listing (s3:ListBucket, limited to the prefix) is used rather than HEAD on each key because HEAD on a
        missing key answers 403 instead of 404 unless ListBucket is granted on the whole bucket.
        """
        keys: set[str] = set()
        partitions = sorted({source.key.rsplit("/", 1)[0] + "/" for source in plan})
        paginator = self._client.get_paginator("list_objects_v2")
        for partition in partitions:
            try:
                for page in paginator.paginate(Bucket=self._bucket, Prefix=partition):
                    keys.update(item["Key"] for item in page.get("Contents", []))
            except (ClientError, BotoCoreError) as exc:
                raise self._fatal(exc, partition) from exc
        return keys

    def _process(self, manager: Any, hooks: _ClientHooks, source: SourceFile, exists: bool) -> FileResult:
        replaced = False
        try:
            head = self._head(source.key) if exists else None
            if head is not None:
                metadata = head.get("Metadata", {})
                if metadata.get(METADATA_SHA256) == source.sha256 and head.get("ContentLength") == source.size:
                    return FileResult(
                        source,
                        OUTCOME_SKIPPED,
                        uploaded_by_run_id=metadata.get(METADATA_RUN_ID),
                        s3_checksum=head.get("ChecksumSHA256"),
                    )
                replaced = True
            self._listener.file_started(source)
            self._transfer(manager, hooks, source)
            checksum = self._verify(source)
        except _FatalUploadError:
            raise
        except (SourceError, UploadError) as exc:
            return FileResult(source, OUTCOME_FAILED, error=str(exc), replaced=replaced)
        except (ClientError, BotoCoreError) as exc:
            fatal = self._fatal_or_none(exc, source.key)
            if fatal is not None:
                raise fatal from exc
            error = _one_line(str(exc)) + self._abort_orphans(hooks, source.key)
            return FileResult(source, OUTCOME_FAILED, error=error, replaced=replaced)
        except Exception as exc:  # e.g. OSError reading the file, s3transfer errors: this file fails, the run goes on
            error = f"{type(exc).__name__}: {_one_line(str(exc))}" + self._abort_orphans(hooks, source.key)
            return FileResult(source, OUTCOME_FAILED, error=error, replaced=replaced)
        hooks.forget(source.key)
        return FileResult(
            source, OUTCOME_UPLOADED, replaced=replaced, uploaded_by_run_id=self._report.run_id, s3_checksum=checksum
        )

    def _transfer(self, manager: Any, hooks: _ClientHooks, source: SourceFile) -> None:
        extra_args: dict[str, Any] = {
            "Metadata": {METADATA_SHA256: source.sha256, METADATA_RUN_ID: self._report.run_id},
            "ContentType": _CONTENT_TYPES.get(Path(source.name).suffix.lower())
            or mimetypes.guess_type(source.name)[0]
            or "application/octet-stream",
            **self._sse_args(),
        }
        extra_args["ChecksumAlgorithm"] = "SHA256"
        if source.multipart:
            # Composite SHA-256: each part carries its locally computed digest (see _ClientHooks).
            hooks.expect_parts(source.key, source.part_checksums)
        else:
            # The digest computed when the file was hashed, so S3 verifies exactly those bytes arrived.
            extra_args["ChecksumSHA256"] = source.sha256_b64
        handle = self._open_files.enter_context(_open_regular(source.path, source.identity))
        future = manager.upload(
            handle,
            self._bucket,
            source.key,
            extra_args=extra_args,
            subscribers=[_TransferSubscriber(source.size, self._listener)],
        )
        future.result()
        handle.close()

    def _verify(self, source: SourceFile) -> str | None:
        head = self._head(source.key)
        if head is None:
            raise UploadError(f"{source.name}: object {source.key} not found right after its upload")
        problems = []
        if head.get("ContentLength") != source.size:
            problems.append(f"size {head.get('ContentLength')} != {source.size}")
        if head.get("Metadata", {}).get(METADATA_SHA256) != source.sha256:
            problems.append("metadata sha256 differs")
        checksum = head.get("ChecksumSHA256")
        if checksum is not None:
            digest, _, parts = checksum.partition("-")
            want_digest, _, want_parts = source.expected_s3_checksum.partition("-")
            if digest != want_digest or (parts and parts != want_parts):
                problems.append(f"S3 checksum {checksum} != {source.expected_s3_checksum}")
        if problems:
            raise UploadError(
                f"{source.name}: uploaded object s3://{self._bucket}/{source.key} failed verification: "
                + "; ".join(problems)
            )
        return checksum

    def _head(self, key: str) -> dict[str, Any] | None:
        try:
            return self._client.head_object(Bucket=self._bucket, Key=key, ChecksumMode="ENABLED")
        except ClientError as exc:
            if _error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                return None
            fatal = self._fatal_or_none(exc, key)
            if fatal is not None:
                raise fatal from exc
            raise

    def _abort_orphans(self, hooks: _ClientHooks, key: str) -> str:
        """Abort this run's still-open multipart uploads of ``key``; a note for the error message if one is left."""
        ours = hooks.upload_ids.get(key, set())
        if not ours:
            return ""
        try:
            listed = set()
            paginator = self._client.get_paginator("list_multipart_uploads")
            for page in paginator.paginate(Bucket=self._bucket, Prefix=key):
                listed.update(u["UploadId"] for u in page.get("Uploads", []) if u.get("Key") == key)
            left = []
            for upload_id in sorted(ours & listed):
                try:
                    self._client.abort_multipart_upload(Bucket=self._bucket, Key=key, UploadId=upload_id)
                except ClientError as exc:
                    if _error_code(exc) != "NoSuchUpload":
                        left.append(upload_id)
        except (ClientError, BotoCoreError):
            left = sorted(ours)
        hooks.forget(key)
        if left:
            return (
                f" (multipart upload {', '.join(left)} of {key} could not be aborted; a lifecycle rule "
                "AbortIncompleteMultipartUpload removes it, see data_extraction/README.md)"
            )
        return ""

    def _write_manifest(self) -> None:
        key = f"{self._options.prefix}{MANIFEST_DIR}/{self._report.run_id}.json"
        body = (json.dumps(self._report.manifest(datetime.now(UTC)), indent=2) + "\n").encode("utf-8")
        digest = hashlib.sha256(body)
        try:
            self._client.put_object(
                Bucket=self._bucket,
                Key=key,
                Body=body,
                ContentType="application/json",
                ChecksumAlgorithm="SHA256",
                ChecksumSHA256=base64.b64encode(digest.digest()).decode("ascii"),
                Metadata={METADATA_SHA256: digest.hexdigest(), METADATA_RUN_ID: self._report.run_id},
                **self._sse_args(),
            )
        except (ClientError, BotoCoreError) as exc:
            raise UploadError(
                f"all files are in place but the manifest {key} could not be written ({_one_line(str(exc))}); "
                "re-run the upload: unchanged files are skipped"
            ) from exc
        self._report.manifest_key = key

    # -- helpers ------------------------------------------------------------------------------------------------

    def _sse_args(self) -> dict[str, str]:
        if self._options.sse is None:
            return {}
        args = {"ServerSideEncryption": self._options.sse}
        if self._options.kms_key_id:
            args["SSEKMSKeyId"] = self._options.kms_key_id
        return args

    def _fatal(self, exc: Exception, key: str) -> _FatalUploadError | Exception:
        fatal = self._fatal_or_none(exc, key)
        if fatal is not None:
            return fatal
        return UploadError(f"s3://{self._bucket}/{key}: {_one_line(str(exc))}")

    def _fatal_or_none(self, exc: Exception, key: str) -> _FatalUploadError | None:
        location = f"s3://{self._bucket}/{key}"
        if isinstance(exc, NoCredentialsError):
            return _FatalUploadError(
                "no AWS credentials found (environment, shared config/credentials files, SSO, container or instance "
                "role); configure credentials or pass --profile"
            )
        if isinstance(exc, PartialCredentialsError | CredentialRetrievalError):
            return _FatalUploadError(f"AWS credentials could not be loaded ({_one_line(str(exc))})")
        if isinstance(exc, NoRegionError):
            return _FatalUploadError("no AWS region configured; pass --region or set AWS_REGION")
        if isinstance(exc, EndpointConnectionError | ConnectTimeoutError):
            return _FatalUploadError(f"cannot reach the S3 endpoint ({_one_line(str(exc))})")
        if not isinstance(exc, ClientError):
            return None
        code = _error_code(exc)
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        operation = getattr(exc, "operation_name", "request")
        if code in _FATAL_BUCKET_CODES:
            if code == "PermanentRedirect":
                return _FatalUploadError(f"bucket {self._bucket} is in another region; pass --region")
            return _FatalUploadError(f"bucket {self._bucket} does not exist ({code})")
        if code in _FATAL_CREDENTIAL_CODES:
            return _FatalUploadError(f"AWS credentials rejected by S3 ({code}) on {operation} {location}")
        if code in _FATAL_ACCESS_CODES or code.startswith("KMS.") or status == 403:
            return _FatalUploadError(
                f"access denied ({code}) on {operation} {location}; "
                "check the caller's IAM policy (conf/iam/uploader-policy.json) and the bucket policy (TLS, --sse)"
            )
        return None


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
