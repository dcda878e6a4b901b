"""One pipeline run at a time per local lakehouse (on Databricks the job's ``max_concurrent_runs: 1`` does this)."""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ecom_lakehouse.errors import EcomError

LOCK_NAME = ".ecom-run.lock"


class LockedError(EcomError):
    """Another run holds the lakehouse."""


@contextmanager
def lakehouse_lock(root: Path | None, wait_seconds: float = 0.0) -> Iterator[None]:
    """Hold an exclusive lock on the lakehouse directory for the duration of a run.

    The lock is an OS file lock: it disappears with the process, even a killed one, so it never goes stale.

    Args:
        root: the local lakehouse directory; None (Databricks) takes no lock.
        wait_seconds: how long to wait for another run to finish before giving up.

    Raises:
        LockedError: another run still holds the lock after ``wait_seconds``.
    """
    if root is None:
        yield
        return
    root.mkdir(parents=True, exist_ok=True)
    path = root / LOCK_NAME
    with open(path, "a+", encoding="utf-8") as handle:
        deadline = time.monotonic() + wait_seconds
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    handle.seek(0)
                    holder = handle.read().strip() or "unknown"
                    raise LockedError(
                        f"{root}: another ecom run is in progress ({holder}); wait for it or pass --wait-lock SECONDS"
                    ) from None
                time.sleep(0.2)
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()
            fcntl.flock(handle, fcntl.LOCK_UN)
