"""Drive the deployed bundle on a Databricks workspace: ``ecom remote run | status | report``.

Built on ``databricks-sdk``. Authentication is the standard Databricks unified authentication of the SDK and the
Databricks CLI: ``DATABRICKS_HOST`` / ``DATABRICKS_TOKEN`` (or any other ``DATABRICKS_*`` auth variables), or a
profile of ``~/.databrickscfg`` (``DATABRICKS_CONFIG_PROFILE`` or ``--profile``; ``databricks auth login`` writes one).

Every SDK failure is translated into a one-line :class:`~ecom_lakehouse.errors.RemoteError`, which the ``ecom`` CLI
prints as ``ecom: error: ...`` (exit 2). The SDK itself is imported lazily so that ``ecom --help`` stays fast.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

from ecom_lakehouse.errors import RemoteError

if TYPE_CHECKING:
    from databricks.sdk import WorkspaceClient

__all__ = ["RETRY_TIMEOUT_SECONDS", "api_errors", "connect", "error_reason", "one_line"]

RETRY_TIMEOUT_SECONDS = 60

_LOGIN_HINT = (
    "set DATABRICKS_HOST and DATABRICKS_TOKEN, or use a ~/.databrickscfg profile (--profile NAME; "
    "`databricks auth login --host https://<workspace>` writes one)"
)
# The SDK appends debug details to its messages: the resolved configuration, the environment, a docs link.
_SDK_NOISE = re.compile(r"(\.\s+Config:\s|,\s*please check https?://).*$")


def one_line(text: object) -> str:
    """Collapse whitespace (newlines included) so a message prints as one line."""
    return " ".join(str(text).split())


def error_reason(exc: BaseException) -> str:
    """An SDK exception's message on one line, without the SDK's debug suffix and the final period."""
    return _SDK_NOISE.sub("", one_line(exc)).rstrip(" .") or type(exc).__name__


def connect(profile: str | None = None, *, retry_timeout_seconds: int = RETRY_TIMEOUT_SECONDS) -> WorkspaceClient:
    """A workspace client configured by the standard Databricks configuration.

    Args:
        profile: ``~/.databrickscfg`` profile name; ``None`` lets the SDK pick (environment variables,
            ``DATABRICKS_CONFIG_PROFILE`` or the ``DEFAULT`` profile).
        retry_timeout_seconds: how long the SDK retries connection errors and 429/503 answers before giving up
            (the SDK's own default, 300 s, would keep a mistyped host hanging for minutes, twice).

    Returns:
        The client (credentials are checked by the server on the first call).

    Raises:
        RemoteError: databricks-sdk is not installed, or no usable configuration or credentials were found.
    """
    try:
        from databricks.sdk import WorkspaceClient
        from databricks.sdk.config import Config
    except ImportError as exc:
        raise RemoteError("`ecom remote` needs databricks-sdk: pip install databricks-sdk") from exc
    sdk_logger = logging.getLogger("databricks.sdk")
    if sdk_logger.level == logging.NOTSET:  # the CLI logs INFO; the SDK's INFO lines would interleave with progress
        sdk_logger.setLevel(logging.WARNING)
    try:
        return WorkspaceClient(config=Config(profile=profile, retry_timeout_seconds=retry_timeout_seconds))
    except ValueError as exc:
        where = f" (profile {profile!r})" if profile else ""
        raise RemoteError(
            f"Databricks authentication is not configured{where}: {error_reason(exc)}; {_LOGIN_HINT}"
        ) from exc


@contextlib.contextmanager
def api_errors(w: WorkspaceClient) -> Iterator[None]:
    """Translate databricks-sdk exceptions raised inside the block into one-line :class:`RemoteError`.

    HTTP 401 and 403 get an explicit authentication / permission message naming the host; an unreachable host
    (the SDK retries connection errors, then raises ``TimeoutError``) says so. ``RemoteError`` passes through.

    Args:
        w: the client whose host is named in the messages.
    """
    from databricks.sdk.errors import DatabricksError, PermissionDenied, Unauthenticated
    from requests import RequestException

    host = w.config.host
    login = f"`databricks auth login --host {host}`"
    try:
        yield
    except Unauthenticated as exc:
        raise RemoteError(
            f"authentication failed for {host} (HTTP 401): {error_reason(exc)}; check the token (DATABRICKS_TOKEN "
            f"or the profile's) or log in again: {login}"
        ) from exc
    except PermissionDenied as exc:
        raise RemoteError(
            f"access denied by {host} (HTTP 403): {error_reason(exc)}; either the token is invalid or expired (check "
            f"DATABRICKS_TOKEN or the profile's, or log in again: {login}) or the identity lacks a permission"
        ) from exc
    except DatabricksError as exc:
        code = f" {exc.error_code}" if getattr(exc, "error_code", None) else ""
        raise RemoteError(
            f"Databricks API error from {host} ({type(exc).__name__}{code}): {error_reason(exc)}"
        ) from exc
    except TimeoutError as exc:
        cause = f": {error_reason(exc.__cause__)}" if exc.__cause__ else ""
        raise RemoteError(f"cannot reach {host} ({error_reason(exc)}){cause}") from exc
    except RequestException as exc:
        raise RemoteError(f"cannot reach {host}: {error_reason(exc)}") from exc
