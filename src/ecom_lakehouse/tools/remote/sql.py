"""Run the profit report's queries on a Databricks SQL warehouse through the Statement Execution API.

The statements are :func:`ecom_lakehouse.tools.report.report_queries` (the SELECTs of
``notebooks/05_profit_report.sql``);
they name the report views relative to the default catalog and schema of the statement, which default to
``main`` / ``ecom_gold`` (the bundle's prod names; a dev deployment's gold schema is ``dev_<short user>_ecom_gold``).

Results use the INLINE disposition and the JSON_ARRAY format: every value arrives as a string or null and is
converted by the column type in the result manifest (DECIMAL -> :class:`decimal.Decimal`, INT/BIGINT -> int,
STRING -> str, ...), so the rows match what ``ecom report`` gets from local Spark.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import Any

from databricks.sdk import WorkspaceClient
from databricks.sdk.errors import DatabricksError
from databricks.sdk.service.sql import (
    Disposition,
    ExecuteStatementRequestOnWaitTimeout,
    Format,
    ResultData,
    StatementResponse,
)

from ecom_lakehouse.errors import RemoteError
from ecom_lakehouse.tools.remote import error_reason, one_line

log = logging.getLogger(__name__)

DEFAULT_CATALOG = "main"
DEFAULT_SCHEMA = "ecom_gold"
DEFAULT_TIMEOUT_SECONDS = 600.0
DEFAULT_POLL_SECONDS = 2.0
_WAIT_TIMEOUT = "30s"  # server-side wait of the first call (allowed: 0s or 5s..50s)
_ACTIVE = frozenset({"PENDING", "RUNNING"})

Rows = list[dict[str, object]]


def _boolean(text: str) -> bool:
    return text.strip().lower() == "true"


_CONVERTERS: dict[str, Callable[[str], object]] = {
    "DECIMAL": Decimal,
    "BYTE": int,
    "TINYINT": int,
    "SHORT": int,
    "SMALLINT": int,
    "INT": int,
    "INTEGER": int,
    "LONG": int,
    "BIGINT": int,
    "FLOAT": float,
    "DOUBLE": float,
    "BOOLEAN": _boolean,
    "DATE": date.fromisoformat,
}


def convert_value(text: str | None, type_name: str) -> object:
    """Convert one JSON_ARRAY value (a string, or ``None`` for SQL NULL) by its column's type name.

    Args:
        text: the value as the API returns it.
        type_name: the column's ``type_name`` (``DECIMAL``, ``INT``, ``LONG``, ``STRING``, ...).

    Returns:
        ``Decimal`` for DECIMAL, ``int`` for the integer types, ``float``, ``bool``, ``datetime.date``; the string
        itself for STRING and every other type (timestamps, intervals, complex types); ``None`` for NULL.
    """
    if text is None:
        return None
    converter = _CONVERTERS.get(type_name.upper())
    return text if converter is None else converter(text)


def execute_query(
    w: WorkspaceClient,
    statement: str,
    *,
    warehouse_id: str,
    catalog: str | None = DEFAULT_CATALOG,
    schema: str | None = DEFAULT_SCHEMA,
    label: str = "statement",
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
    poll_seconds: float = DEFAULT_POLL_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Rows:
    """Execute one SELECT on a SQL warehouse and return all its rows, converted by column type.

    Waits up to 30 s in the first call, then polls ``get_statement`` while the statement is PENDING or RUNNING
    (a stopped warehouse takes a few minutes to start) and fetches every result chunk.

    Args:
        w: the workspace client.
        statement: the SQL text.
        warehouse_id: the SQL warehouse.
        catalog: default catalog of the statement.
        schema: default schema of the statement.
        label: name used in messages (e.g. the report name).
        timeout_seconds: cancel the statement and fail after this long.
        poll_seconds: pause between polls.
        sleep: the pause function (injectable for tests).
        clock: monotonic clock in seconds (injectable for tests).

    Returns:
        The rows as dicts, keys in column order.

    Raises:
        RemoteError: the statement failed, was cancelled or closed, or timed out.
    """
    started = clock()
    response = w.statement_execution.execute_statement(
        statement=statement,
        warehouse_id=warehouse_id,
        catalog=catalog,
        schema=schema,
        wait_timeout=_WAIT_TIMEOUT,
        on_wait_timeout=ExecuteStatementRequestOnWaitTimeout.CONTINUE,
        disposition=Disposition.INLINE,
        format=Format.JSON_ARRAY,
    )
    statement_id = response.statement_id or ""
    deadline = started + timeout_seconds
    try:
        while _state(response) in _ACTIVE:
            remaining = deadline - clock()
            if remaining <= 0:
                _cancel(w, statement_id)
                raise RemoteError(
                    f"{label}: statement {statement_id} still {_state(response)} after {timeout_seconds:g} s on "
                    f"warehouse {warehouse_id}; cancelled it (a stopped warehouse can take minutes to start: "
                    "raise --timeout)"
                )
            sleep(min(poll_seconds, remaining))
            response = w.statement_execution.get_statement(statement_id)
    except KeyboardInterrupt:
        _cancel(w, statement_id)
        raise
    state = _state(response)
    if state != "SUCCEEDED":
        raise RemoteError(f"{label}: statement {state} on warehouse {warehouse_id}: {_error_text(response)}")
    rows = _rows(w, response, label)
    log.info("%s: %d rows in %.1f s", label, len(rows), clock() - started)
    return rows


def run_remote_report(
    w: WorkspaceClient,
    *,
    warehouse_id: str,
    catalog: str | None = DEFAULT_CATALOG,
    schema: str | None = DEFAULT_SCHEMA,
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
    poll_seconds: float = DEFAULT_POLL_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Rows]:
    """Run the four report queries on a SQL warehouse, one after the other.

    Args:
        w: the workspace client.
        warehouse_id: the SQL warehouse.
        catalog: catalog holding the gold schema (default ``main``).
        schema: the gold schema holding the report views (default ``ecom_gold``; ``dev_<user>_ecom_gold`` for a
            dev deployment).
        timeout_seconds: per statement.
        poll_seconds: pause between polls.
        sleep: the pause function (injectable for tests).
        clock: monotonic clock in seconds (injectable for tests).

    Returns:
        ``{name: rows}`` for each of :data:`ecom_lakehouse.tools.report.REPORT_NAMES`, as ``ecom report`` renders them.
    """
    from ecom_lakehouse.tools.report import report_queries

    results: dict[str, Rows] = {}
    for name, query in report_queries().items():
        results[name] = execute_query(
            w,
            query,
            warehouse_id=warehouse_id,
            catalog=catalog,
            schema=schema,
            label=name,
            timeout_seconds=timeout_seconds,
            poll_seconds=poll_seconds,
            sleep=sleep,
            clock=clock,
        )
    return results


def _state(response: StatementResponse) -> str:
    state = response.status.state if response.status is not None else None
    return state.value if state is not None else "UNKNOWN"


def _error_text(response: StatementResponse) -> str:
    error = response.status.error if response.status is not None else None
    if error is None or not error.message:
        return "no error message"
    code = f" [{error.error_code.value}]" if error.error_code is not None else ""
    return one_line(error.message) + code


def _cancel(w: WorkspaceClient, statement_id: str) -> None:
    if not statement_id:
        return
    try:
        w.statement_execution.cancel_execution(statement_id)
    except DatabricksError as exc:  # best effort: the statement may have just finished
        log.warning("could not cancel statement %s: %s", statement_id, error_reason(exc))


def _columns(response: StatementResponse) -> list[tuple[str, str]]:
    manifest = response.manifest
    columns = list(manifest.schema.columns or []) if manifest is not None and manifest.schema is not None else []
    if all(c.position is not None for c in columns):
        columns.sort(key=lambda c: c.position or 0)
    return [(c.name or f"col{i}", _type_key(c)) for i, c in enumerate(columns)]


def _type_key(column: Any) -> str:
    if column.type_name is not None:
        return str(column.type_name.value)
    # An enum value this SDK does not know: fall back to the type text, e.g. "DECIMAL(28,2)" -> "DECIMAL".
    return (column.type_text or "STRING").split("(", 1)[0].strip().upper()


def _rows(w: WorkspaceClient, response: StatementResponse, label: str) -> Rows:
    columns = _columns(response)
    manifest = response.manifest
    total_chunks = (manifest.total_chunk_count if manifest is not None else None) or 0
    statement_id = response.statement_id or ""
    chunk: ResultData | None = response.result
    if chunk is None and total_chunks:
        chunk = w.statement_execution.get_statement_result_chunk_n(statement_id, 0)
    rows: Rows = []
    seen: set[int] = set()
    while chunk is not None:
        if chunk.external_links:
            raise RemoteError(f"{label}: the warehouse returned external links; only INLINE results are supported")
        index = chunk.chunk_index if chunk.chunk_index is not None else len(seen)
        seen.add(index)
        for values in chunk.data_array or []:
            if len(values) != len(columns):
                raise RemoteError(f"{label}: a row has {len(values)} values for {len(columns)} columns")
            rows.append({name: convert_value(value, kind) for (name, kind), value in zip(columns, values, strict=True)})
        following = chunk.next_chunk_index
        if following is None and index + 1 < total_chunks:
            following = index + 1
        if following is None or following in seen:
            break
        chunk = w.statement_execution.get_statement_result_chunk_n(statement_id, following)
    expected = manifest.total_row_count if manifest is not None else None
    if expected is not None and expected != len(rows):
        raise RemoteError(f"{label}: received {len(rows)} rows, the result manifest announces {expected}")
    if manifest is not None and manifest.truncated:
        log.warning("%s: the result was truncated by the warehouse", label)
    return rows
