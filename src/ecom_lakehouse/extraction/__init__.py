"""Extraction step: upload the raw source files to S3 (``ecom upload``), verified end to end.

See :mod:`ecom_lakehouse.extraction.upload` for the logic and ``data_extraction/README.md`` for operations.
"""

from __future__ import annotations

from ecom_lakehouse.extraction.upload import (
    IAM_ACTIONS,
    SSE_KMS_IAM_ACTIONS,
    FileResult,
    RunReport,
    SourceFile,
    UploadListener,
    UploadOptions,
    make_s3_client,
    plan_upload,
    upload_raw_files,
)

__all__ = [
    "IAM_ACTIONS",
    "SSE_KMS_IAM_ACTIONS",
    "FileResult",
    "RunReport",
    "SourceFile",
    "UploadListener",
    "UploadOptions",
    "make_s3_client",
    "plan_upload",
    "upload_raw_files",
]
