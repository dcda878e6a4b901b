"""The uploader's defaults and outcome names, without boto3: ``ecom --help`` and the argument parser need them on a
machine without the ``upload`` extra."""

from __future__ import annotations

MIB = 1024 * 1024
#: S3's minimum size of every part but the last of a multipart upload.
MIN_PART_SIZE = 5 * MIB
DEFAULT_MULTIPART_THRESHOLD = 64 * MIB
DEFAULT_MULTIPART_CHUNKSIZE = 16 * MIB
DEFAULT_MAX_ATTEMPTS = 8
DEFAULT_PREFIX = "raw/"
SSE_CHOICES = ("AES256", "aws:kms", "none")
RETRY_MODES = ("standard", "adaptive")
METADATA_SHA256 = "sha256"
METADATA_RUN_ID = "run-id"
MANIFEST_DIR = "_manifests"
MANIFEST_VERSION = 1
OUTCOME_UPLOADED = "uploaded"
OUTCOME_SKIPPED = "skipped-unchanged"
OUTCOME_FAILED = "failed"
OUTCOME_PLANNED = "planned"
