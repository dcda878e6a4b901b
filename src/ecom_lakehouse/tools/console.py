"""What ``ecom`` shows on the terminal: one line per finished step, warnings and errors, nothing else.

On a terminal (a TTY) the lines are coloured by rich and a live status line says which table is being written; in CI,
pipes and files they are plain ``HH:MM:SS message`` lines. The pipeline announces the start of a table write with a
DEBUG record carrying ``ecom_status`` (the live line's text) and its end with an INFO record.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

STATUS = "ecom_status"  # the ``extra`` key of a record that only updates the live status line
# Libraries that log what ecom reports itself (its one-line errors) or what nobody acts on.
_QUIET_LOGGERS = (
    "py4j",
    "botocore",
    "urllib3",
    "s3transfer",
    "pyspark",
    "SQLQueryContextLogger",
    "DataFrameQueryContextLogger",
)


class _PlainFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__(datefmt="%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        level = "" if record.levelno == logging.INFO else f"{record.levelname.lower()}: "
        return f"{self.formatTime(record, self.datefmt)} {level}{record.getMessage()}"


class _StatusFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not hasattr(record, STATUS)


class _LiveHandler(logging.Handler):
    """rich on a TTY: records print above a live status line that shows the table being written."""

    def __init__(self, console: Any) -> None:
        super().__init__(logging.DEBUG)
        from rich.logging import RichHandler

        self._console = console
        self._status: Any = None
        self._lines = RichHandler(console=console, show_path=False, markup=False, log_time_format="%H:%M:%S")

    def emit(self, record: logging.LogRecord) -> None:
        text = getattr(record, STATUS, None)
        if text is not None:
            if self._status is None:
                self._status = self._console.status(text)
                self._status.start()
            else:
                self._status.update(text)
            return
        if record.levelno >= logging.INFO:
            self._lines.emit(record)

    def close(self) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None
        super().close()


@contextmanager
def terminal(*, quiet: bool = False) -> Iterator[None]:
    """Route the package's log records to stderr for the duration of a command (see the module docstring)."""
    root = logging.getLogger("ecom_lakehouse")
    root.setLevel(logging.DEBUG)
    root.propagate = False
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.CRITICAL)
    handler = _handler()
    if quiet:
        handler.setLevel(logging.WARNING)
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)
        handler.close()


def _handler() -> logging.Handler:
    if sys.stderr.isatty():
        try:
            from rich.console import Console

            return _LiveHandler(Console(stderr=True))
        except ImportError:  # rich is in the `local` extra; plain lines without it
            pass
    plain = logging.StreamHandler(sys.stderr)
    plain.setFormatter(_PlainFormatter())
    plain.addFilter(_StatusFilter())
    plain.setLevel(logging.INFO)
    return plain
