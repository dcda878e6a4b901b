"""Exception types raised by the pipeline; each message names the file, record and field where known."""

from __future__ import annotations


class EcomError(Exception):
    """Base class for errors the CLI reports as one line with a non-zero exit."""


class ConfigError(EcomError):
    """The configuration in conf/ is missing or inconsistent."""


class SourceError(EcomError):
    """A source file is missing, unreadable or lacks a required column."""


class ReconciliationError(EcomError):
    """Row counts or profit totals do not reconcile between layers."""


class UploadError(EcomError):
    """Uploading raw files to object storage failed (credentials, bucket, permissions, network or integrity)."""


class RemoteError(EcomError):
    """A Databricks workspace call failed: authentication, job lookup, API error or a failed SQL statement."""
