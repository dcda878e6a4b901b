"""The pipeline's work re-implemented independently in DuckDB SQL: the benchmark's reference and a cross-check.

It reads the same three sources, applies the same typing, quality rules, cleaning, dimension rules and joins, and
computes the same gold aggregate and four report queries, writing every layer as Parquet under ``--out``::

    <out>/bronze/{orders_raw,customers_raw,products_raw}.parquet
    <out>/silver/{customers,products,orders_enriched,quarantine}.parquet
    <out>/gold/profit_aggregate.parquet

Sources: orders are JSON arrays or JSON Lines read with every field as VARCHAR; products are RFC-4180 CSV (``""``
escapes a quote); the customers workbook is read with fastexcel (Rust calamine; DuckDB's excel extension needs
network access to install) into an Arrow table that is registered in DuckDB; that read is timed as part of the run, as
the pipeline also reads the workbook with fastexcel.

Known differences from the Spark pipeline (none affects which order lines are kept or any profit figure on the
generated data):

- Customer names: the Spark rules use Java regex look-arounds, RE2 has none. Each rule is rewritten with capture
  groups and repeated where consumed context can hide the next match (twice; rule 5 three times). The
  name-particle exception of rule 5 (a negative look-ahead) is done by tagging particles with a private-use marker
  character that rule 6 removes. Checked against a direct transcription of the Java rules: equal on every
  generated name and on 200,000 random strings; runs of eight or more one-letter words (``a b c d e f g h``)
  differ, and so do names with a vertical tab (not in RE2's ``\\s``) or a final line break
  (RE2's ``$`` is only the end of the text).
- A JSON or CSV record that does not parse fails the run instead of being quarantined as ``malformed_record``.
- Workbook cells are fastexcel's text as it is: error cells (``#N/A``) arrive as null, numbers with decimals are
  rounded to 9 places, dates read ``2016-08-21 00:00:00``; the pipeline keeps error cells' text and reads a workbook
  holding such cells with openpyxl (``2016-08-21T00:00:00``). A whitespace-only cell is blank here by Arrow's idea of
  whitespace, there by Python's ``str.strip()``.
- Quarantine ``record`` JSON lists null fields as ``null`` (Spark's ``to_json`` omits them); ``_source_file`` is a
  plain path for orders and products.
- The value-anomaly rules (``price_out_of_scale``, ``profit_margin_implausible``, ``profit_zero_implausible``) are
  the pipeline's comparisons multiplied out, in exact DECIMAL arithmetic, with their constants copied from
  ``quality/expectations.py``. Spark caps a product's precision at 38 digits by rounding its scale: the right-hand
  side of ``price_out_of_scale`` keeps 8 decimals there (``decimal(38,8)``), all 12 here, which can only matter for a
  sales amount within 10^-8 of the limit.
- Row ID and Quantity must be an optionally signed run of digits (``12.0`` is not an integer); Spark's ANSI
  ``try_cast`` should agree, but that edge was not checked against Spark.

Run: ``python -m bench.duckdb_reference --input DIR --out DIR [--threads 2]``; the report JSON (the format of
``ecom run --format json``) goes to stdout, step timings to stderr.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from datetime import time as dt_time
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from ecom_lakehouse.fields import CUSTOMER_FIELDS, ORDER_FIELDS, PRODUCT_FIELDS, REPORT_NAMES
from ecom_lakehouse.quality.thresholds import COST_SHARE_ANY, COST_SHARE_BANDS, PRICE_SCALE_LIMIT, PROFIT_TOLERANCE
from ecom_lakehouse.tools.render import render_json

__all__ = ["REPORT_NAMES", "ReferenceResult", "clean_name_sql", "discover_sources", "render_json", "run_reference"]

UNKNOWN = "Unknown"


# File-name patterns, as in conf/pipeline.yml (used when the package configuration cannot be loaded).
_DEFAULT_PATTERNS = {
    "orders": r"^orders?([_\-. ].*)?\.(json|jsonl|ndjson)$",
    "customers": r"^customers?([_\-. ].*)?\.xlsx$",
    "products": r"^products?([_\-. ].*)?\.csv$",
}
_INGEST_DATE = re.compile(r"/ingest_date=(\d{4}-\d{2}-\d{2})/")

Rows = list[dict[str, Any]]


def snake(name: str) -> str:
    """The bronze column name of a source field (``Row ID`` -> ``row_id``, ``Sub-Category`` -> ``sub_category``)."""
    return re.sub(r"[^0-9a-z]+", "_", name.strip().lower()).strip("_")


def _sql(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


# ---------------------------------------------------------------------------------------------------------------
# Customer names: the rules of ecom_lakehouse/silver/names.py rewritten for RE2 (no look-arounds)
# ---------------------------------------------------------------------------------------------------------------

LOOK_ALIKES = {"0": "o", "1": "l", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "!": "i", "$": "s"}
NAME_PARTICLES = ("van", "von", "de", "da", "di", "du", "del", "der", "la", "le")
_L = r"\p{L}"
_LL = r"\p{Ll}"
_NOISE_RUN = r"[^\p{L}]*[^\p{L}\s'\-][^\p{L}]*"
_PARTICLE_MARK = "\ue000"  # private use: neither a letter nor a space, so rule 6 removes it


def _name_rules() -> list[tuple[str, str, int]]:
    """(RE2 pattern, replacement, passes) in the order of names.py.

    A Java rule ``(?<=A)X(?=B)`` becomes ``(A)X(B)`` -> ``\\1..\\2``. Consuming B can hide a match that starts
    right after it (``a0b0c``); a hidden match is then never next to another hidden one, so a second pass finds
    the rest. Rule 5 consumes a whole next letter, which with one-letter words hides two matches in a row
    (``a b c d``), hence three passes there (exact up to seven one-letter words in a row).
    """
    rules: list[tuple[str, str, int]] = [(r"[\x{00A0}\x{2007}\x{202F}\x{2000}-\x{200B}\t]", " ", 1)]
    for char, letter in LOOK_ALIKES.items():
        c = f"[{char}]"
        rules += [
            (rf"({_L}){c}({_L})", rf"\1{letter}\2", 2),
            (rf"({_L}){c}{c}({_L}|\s|$)", rf"\1{letter * 2}\2", 2),
            (rf"(^|\s){c}({_LL}{_LL})", rf"\1{letter.upper()}\2", 1),
        ]
    particles = "|".join(NAME_PARTICLES)
    rules += [
        # 3. a noise run between a letter and a lowercase letter
        (rf"({_L}){_NOISE_RUN}({_LL})", r"\1\2", 2),
        # 4. two or more spaces between a letter and a lowercase letter
        (rf"({_L})\s{{2,}}({_LL})", r"\1\2", 2),
        # 5. a lowercase fragment after one space joins the word before it, unless it is a name particle: tag
        #    particles first (the tag then counts as the letter before the next fragment, as the particle would)
        (rf"( )({particles})(\s)", rf"\1\2{_PARTICLE_MARK}\3", 2),
        (rf"([\p{{L}}\x{{E000}}]) ({_LL}+)(\s+{_L})", r"\1\2\3", 3),
        # 6. only letters, spaces, apostrophes and hyphens; ' and - survive only alone between two letters
        (r"[^\p{L}\s'\-]", "", 1),
        (r"['\-]{2,}", "", 1),
        (r"(^|[^\p{L}])['\-]", r"\1", 1),
        (r"['\-]([^\p{L}]|$)", r"\1", 1),
        (r"\s+", " ", 1),
    ]
    return rules


def clean_name_sql(column: str) -> str:
    """SQL expression repairing the raw customer name in ``column`` (null when nothing of a name is left)."""
    expr = column
    for pattern, replacement, passes in _name_rules():
        for _ in range(passes):
            expr = f"regexp_replace({expr}, {_sql(pattern)}, {_sql(replacement)}, 'g')"
    return f"nullif(trim({expr}, ' '), '')"


# ---------------------------------------------------------------------------------------------------------------
# Sources
# ---------------------------------------------------------------------------------------------------------------


def _patterns() -> dict[str, re.Pattern[str]]:
    try:
        from ecom_lakehouse.config import load_config

        return {dataset: spec.pattern for dataset, spec in load_config().sources.items()}
    except Exception:  # the package or its configuration is not available: same patterns, built in
        return {dataset: re.compile(p, re.IGNORECASE) for dataset, p in _DEFAULT_PATTERNS.items()}


def discover_sources(input_dir: str | Path) -> dict[str, list[Path]]:
    """The raw files of each dataset under a local folder, recognised by name like the pipeline does.

    Hidden files and folders (``.x``, ``_x``) are skipped; under an ``ingest_date=YYYY-MM-DD`` layout only the newest
    date's files are kept.

    Args:
        input_dir: a folder (searched recursively) or a single file.

    Returns:
        Dataset name -> sorted file paths.

    Raises:
        FileNotFoundError: the input is missing or a dataset has no file.
    """
    root = Path(input_dir).resolve()
    if not root.exists():
        raise FileNotFoundError(f"{root}: input path does not exist")
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    patterns = _patterns()
    found: dict[str, list[Path]] = {dataset: [] for dataset in patterns}
    for path in files:
        relative = path.relative_to(root).parts if path != root else (path.name,)
        if any(part.startswith((".", "_")) for part in relative):
            continue
        for dataset, pattern in patterns.items():
            if pattern.match(path.name):
                found[dataset].append(path)
                break
    missing = [dataset for dataset, paths in found.items() if not paths]
    if missing:
        raise FileNotFoundError(f"{root}: no source file for {', '.join(missing)}")
    out = {}
    for dataset, paths in found.items():
        dates = {p: m.group(1) for p in paths if (m := _INGEST_DATE.search(p.as_posix()))}
        out[dataset] = [p for p in paths if dates.get(p) == max(dates.values())] if dates else paths
    return out


def _first_char(path: Path) -> str:
    with path.open("rb") as handle:
        return handle.read(4096).decode("utf-8", errors="replace").lstrip("\ufeff \t\r\n")[:1]


def _cell_text(value: object) -> str | None:
    """A workbook cell as source text: integral floats without ``.0``, dates as ISO text, booleans lower case."""
    if value is None:
        return None
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime | date | dt_time):
        return value.isoformat()
    return str(value)


def _text_column(column: pa.Array) -> pa.Array:
    """A column of workbook cells as text: fastexcel's text as it is, any other value through :func:`_cell_text`."""
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        return column
    return pa.array([_cell_text(v) for v in column.to_pylist()], pa.string())


def read_customers_arrow(paths: list[Path]) -> pa.Table:
    """Read the customer workbooks with fastexcel, every cell as text: first sheet, header on its first non-empty row,
    blank rows skipped, all in Arrow.

    Returns:
        One string column per customer field (snake_case), plus ``_source_file`` and ``_source_row``.
    """
    import fastexcel
    import pyarrow.compute as pc

    names = [snake(f) for f in CUSTOMER_FIELDS]
    schema = pa.schema(
        [*(pa.field(n, pa.string()) for n in (*names, "_source_file")), pa.field("_source_row", pa.int32())]
    )
    tables = []
    for path in paths:
        sheet = fastexcel.read_excel(str(path)).load_sheet(0, header_row=None, skip_rows=0, dtypes="string")
        columns = [_text_column(c) for c in sheet.to_arrow().columns]  # item i of a column is sheet row i + 1
        blank = pa.array([], pa.bool_())
        for k, column in enumerate(columns):
            empty = pc.fill_null(pc.equal(pc.utf8_trim_whitespace(column), ""), True)
            blank = empty if k == 0 else pc.and_(blank, empty)
        filled = pc.indices_nonzero(pc.invert(blank))
        header = [(c[filled[0].as_py()].as_py() or "").strip() for c in columns] if len(filled) else []
        missing = [f for f in CUSTOMER_FIELDS if f not in header]
        if missing:
            raise ValueError(f"{path}: workbook lacks column(s) {', '.join(missing)}")
        records = filled[1:]
        arrays = [columns[header.index(f)].take(records) for f in CUSTOMER_FIELDS]
        arrays.append(pa.array([path.resolve().as_uri()] * len(records), pa.string()))
        arrays.append(pc.cast(pc.add(records, 1), pa.int32()))
        tables.append(pa.Table.from_arrays(arrays, schema=schema))
    return pa.concat_tables(tables) if tables else schema.empty_table()


# ---------------------------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class ReferenceResult:
    """What :func:`run_reference` produced.

    Attributes:
        report: the four report results, rows as dicts (``year`` int, ``profit`` Decimal), in report order.
        counts: row counts per table written, plus reconciliation figures.
        timings: seconds per step, in order.
        rule_counts: records per rule in the tables written, as the pipeline's run log counts them
            (``dataset.reason`` -> count: quarantine reasons plus the flags of the kept rows), zero for rules not hit.
    """

    report: dict[str, Rows]
    counts: dict[str, int | str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    rule_counts: dict[str, int] = field(default_factory=dict)


_MACROS = r"""
CREATE OR REPLACE MACRO trimmed(x) AS nullif(trim(replace(x, chr(160), ' '), ' '), '');
CREATE OR REPLACE MACRO is_blank(x) AS coalesce(trim(x, ' ') = '', true);
CREATE OR REPLACE MACRO to_integer(x) AS CASE WHEN regexp_full_match(x, '[+-]?[0-9]+') THEN TRY_CAST(x AS BIGINT) END;
CREATE OR REPLACE MACRO parse_date(x) AS CASE WHEN regexp_full_match(trim(x, ' '), '[0-9]{1,2}/[0-9]{1,2}/[0-9]{4}')
    THEN CAST(try_strptime(trim(x, ' '), '%d/%m/%Y') AS DATE) END;
CREATE OR REPLACE MACRO to_money(x) AS TRY_CAST(round(TRY_CAST(trim(x, ' ') AS DECIMAL(38, 10)), 2) AS DECIMAL(18, 2));
"""

_CONTENT = "order_id, order_date, ship_date, ship_mode, customer_id, product_id, quantity, sales, discount, profit"


def _orders_source_sql(files: list[Path], ingested_at: str, run_id: str) -> str:
    arrays = [f for f in files if _first_char(f) == "["]
    lines = [f for f in files if f not in arrays]
    columns = "{" + ", ".join(f"{_sql(f)}: 'VARCHAR'" for f in ORDER_FIELDS) + "}"
    selects = []
    for group, fmt in ((arrays, "array"), (lines, "newline_delimited")):
        if group:
            paths = "[" + ", ".join(_sql(str(p)) for p in group) + "]"
            fields = ", ".join(f'"{f}" AS {snake(f)}' for f in ORDER_FIELDS)
            selects.append(
                f"SELECT {fields}, filename AS _source_file FROM read_json({paths}, format = '{fmt}', "
                f"columns = {columns}, filename = true)"
            )
    return (
        f"SELECT *, TIMESTAMPTZ {_sql(ingested_at)} AS _ingested_at, {_sql(run_id)} AS _run_id "
        f"FROM ({' UNION ALL BY NAME '.join(selects)})"
    )


def _products_source_sql(files: list[Path], ingested_at: str, run_id: str) -> str:
    paths = "[" + ", ".join(_sql(str(p)) for p in files) + "]"
    fields = ", ".join(f'"{f}" AS {snake(f)}' for f in PRODUCT_FIELDS)
    return (
        f"SELECT {fields}, filename AS _source_file, TIMESTAMPTZ {_sql(ingested_at)} AS _ingested_at, "
        f"{_sql(run_id)} AS _run_id FROM read_csv({paths}, header = true, all_varchar = true, delim = ',', "
        "quote = '\"', escape = '\"', strict_mode = true, filename = true)"
    )


def _reasons(checks: list[tuple[str, str]]) -> str:
    """A list of the reason codes whose check is true (null counts as not violated), in declaration order."""
    items = ", ".join(f"CASE WHEN coalesce({check}, false) THEN {_sql(reason)} END" for reason, check in checks)
    return f"list_filter([{items}]::VARCHAR[], lambda r: r IS NOT NULL)"


_ORDER_ERRORS = [
    ("row_id_missing", "_row_id_blank"),
    ("row_id_not_integer", "NOT _row_id_blank AND row_id IS NULL"),
    ("row_id_duplicate", "_row_id_variants = 1 AND _row_id_rank > 1"),
    ("row_id_conflict", "_row_id_variants > 1"),
    ("order_date_invalid", "order_date IS NULL"),
    ("ship_date_invalid", "ship_date IS NULL"),
    ("ship_before_order", "ship_date < order_date"),
    ("quantity_invalid", "coalesce(quantity <= 0, true)"),
    ("discount_invalid", "coalesce(NOT discount BETWEEN 0 AND 1, true)"),
    ("price_invalid", "sales IS NULL"),
    ("profit_invalid", "profit IS NULL"),
]


def _decimal_sql(value: Decimal, precision: int, scale: int) -> str:
    """An exact DECIMAL literal."""
    return f"CAST({_sql(str(value))} AS DECIMAL({precision}, {scale}))"


def _cost_share_sql(index: int) -> str:
    """The low (0) or high (1) end of the line's sub-category cost-share band, DECIMAL(3,2); the line's
    ``sub_category`` is already ``Unknown`` for a product missing from the products file."""
    cases = " ".join(
        f"WHEN {_sql(name)} THEN {_decimal_sql(bounds[index], 3, 2)}" for name, bounds in COST_SHARE_BANDS.items()
    )
    return f"CASE sub_category {cases} ELSE {_decimal_sql(COST_SHARE_ANY[index], 3, 2)} END"


# The value-anomaly rules of quality/expectations.py, multiplied out (no division), in exact DECIMAL arithmetic.
# A line is judgeable with a positive sales amount and a discount below 100 %.
_JUDGEABLE = "(sales > 0 AND discount >= 0 AND discount < 1)"
# sales / quantity / (1 - discount) > limit x the product's highest listed price.
_PRICE_OUT_OF_SCALE = (
    f"(quantity > 0 AND {_JUDGEABLE} AND sales > {_decimal_sql(PRICE_SCALE_LIMIT, 4, 0)} "
    "* (CAST(quantity AS DECIMAL(10, 0)) * (1 - discount)) * unit_price_max)"
)
# The profit misses [sales - high x list value, sales - low x list value] by more than the tolerance (list value =
# sales / (1 - discount); multiplied by 1 - discount > 0). A line whose price is out of scale is not judged.
_TOLERANCE = _decimal_sql(PROFIT_TOLERANCE, 4, 2)
_PROFIT_OFF_BAND = (
    f"({_JUDGEABLE} AND ((sales - profit - {_TOLERANCE}) * (1 - discount) > _cost_share_high * sales "
    f"OR (sales - profit + {_TOLERANCE}) * (1 - discount) < _cost_share_low * sales) "
    f"AND NOT coalesce({_PRICE_OUT_OF_SCALE}, false))"
)
# An order line counts as a value anomaly in gold when it carries one of these flags (the rules with an effect).
_ANOMALY_REASONS = (
    "price_out_of_scale",
    "profit_margin_implausible",
    "profit_zero_implausible",
    "profit_exceeds_sales",
)
_FLAGGED = "list_has_any(quality_flags, [" + ", ".join(f"'{r}'" for r in _ANOMALY_REASONS) + "])"
_ORDER_WARNINGS = [
    ("customer_unknown", "NOT is_customer_known"),
    ("product_unknown", "NOT is_product_known"),
    ("price_out_of_scale", _PRICE_OUT_OF_SCALE),
    ("profit_margin_implausible", f"profit != 0 AND {_PROFIT_OFF_BAND}"),
    ("profit_zero_implausible", f"profit = 0 AND {_PROFIT_OFF_BAND}"),
    ("profit_exceeds_sales", "profit > sales"),
    ("duplicate_line_other_row_id", "_same_content"),
]


def _exec(con: duckdb.DuckDBPyConnection, sql: str) -> list[tuple[Any, ...]]:
    """Execute and drain (DuckDB refuses new work on a connection with an undrained result)."""
    return con.execute(sql).fetchall()


class _Steps:
    def __init__(self) -> None:
        self.timings: dict[str, float] = {}

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        yield
        self.timings[name] = round(time.perf_counter() - started, 3)
        print(f"duckdb-reference: {name} {self.timings[name]:.2f} s", file=sys.stderr, flush=True)


def run_reference(
    input_dir: str | Path, out_dir: str | Path, *, threads: int = 2, memory_limit: str | None = None
) -> ReferenceResult:
    """Run bronze -> silver -> gold and the four report queries in DuckDB; write every table as Parquet.

    Args:
        input_dir: folder with the raw orders, customers and products files.
        out_dir: output folder; replaced if it exists.
        threads: DuckDB worker threads.
        memory_limit: DuckDB ``memory_limit`` (e.g. ``"8GB"``); DuckDB's default when None.

    Returns:
        The report, row counts and step timings.

    Raises:
        RuntimeError: the layers do not reconcile (lines lost or double-counted, or silver != gold profit).
    """
    steps = _Steps()
    out = Path(out_dir).resolve()
    if out.exists():
        shutil.rmtree(out)
    for layer in ("bronze", "silver", "gold"):
        (out / layer).mkdir(parents=True)
    run_id = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
    ingested_at = datetime.now(UTC).isoformat()
    con = duckdb.connect(config={"threads": threads, "preserve_insertion_order": False})
    _exec(con, f"SET temp_directory = {_sql(str(out / '.tmp'))}")
    if memory_limit:
        _exec(con, f"SET memory_limit = {_sql(memory_limit)}")
    _exec(con, _MACROS)
    counts: dict[str, int | str] = {}

    def copy(query: str, layer: str, table: str) -> None:
        path = _sql(str(out / layer / f"{table}.parquet"))
        counts[table] = _exec(con, f"COPY ({query}) TO {path} (FORMAT parquet)")[0][0]

    def parquet(layer: str, table: str, *, row_number: bool = False) -> str:
        path = _sql(str(out / layer / f"{table}.parquet"))
        return f"read_parquet({path}{', file_row_number = true' if row_number else ''})"

    sources = discover_sources(input_dir)

    # ---- bronze: the sources as they came, every field as text
    with steps.step("bronze_orders"):
        copy(_orders_source_sql(sources["orders"], ingested_at, run_id), "bronze", "orders_raw")
    with steps.step("bronze_customers"):
        customers_arrow = read_customers_arrow(sources["customers"])
        con.register("customers_source", customers_arrow)
        copy(
            f"SELECT *, TIMESTAMPTZ {_sql(ingested_at)} AS _ingested_at, {_sql(run_id)} AS _run_id "
            "FROM customers_source",
            "bronze",
            "customers_raw",
        )
        con.unregister("customers_source")
        del customers_arrow
    with steps.step("bronze_products"):
        copy(_products_source_sql(sources["products"], ingested_at, run_id), "bronze", "products_raw")

    # ---- silver customers
    with steps.step("silver_customers"):
        _silver_customers(con, parquet("bronze", "customers_raw"))
        customers = "SELECT * EXCLUDE (_errors, _warnings) FROM customers_checked WHERE len(_errors) = 0"
        copy(customers, "silver", "customers")
    # ---- silver products
    with steps.step("silver_products"):
        _silver_products(con, parquet("bronze", "products_raw"))
        copy("SELECT * FROM products", "silver", "products")
    # ---- silver orders
    with steps.step("silver_orders"):
        _checked_orders(con, parquet("bronze", "orders_raw", row_number=True))
        copy(_orders_enriched_sql(), "silver", "orders_enriched")
    with steps.step("silver_quarantine"):
        copy(
            _quarantine_sql(parquet("bronze", "orders_raw", row_number=True), parquet("bronze", "customers_raw")),
            "silver",
            "quarantine",
        )
        for dataset in ("orders", "customers", "products"):
            counts[f"quarantine_{dataset}"] = con.execute(
                f"SELECT count(*) FROM {parquet('silver', 'quarantine')} WHERE dataset = {_sql(dataset)}"
            ).fetchall()[0][0]
        _exec(con, "DROP TABLE orders_checked")
    with steps.step("quality_counts"):
        rule_counts = _rule_counts(con, parquet)

    # ---- gold, reconciled
    with steps.step("gold"):
        copy(
            "SELECT year, category, sub_category, customer_id, customer_name, "
            "CAST(sum(profit) AS DECIMAL(28, 2)) AS profit, count(*) AS order_lines, "
            f"count(*) FILTER (WHERE {_FLAGGED}) AS anomaly_lines, "
            f"CAST(coalesce(sum(profit) FILTER (WHERE {_FLAGGED}), 0) AS DECIMAL(28, 2)) AS anomaly_profit "
            f"FROM {parquet('silver', 'orders_enriched')} GROUP BY ALL",
            "gold",
            "profit_aggregate",
        )
        _reconcile(con, counts, parquet)

    # ---- the four report queries (notebooks/05_profit_report.sql; Spark sorts nulls first in ascending order)
    with steps.step("report"):
        gold = parquet("gold", "profit_aggregate")
        queries = {
            "profit_by_year": f"SELECT year, CAST(sum(profit) AS DECIMAL(28, 2)) AS profit, "
            "CAST(sum(anomaly_profit) AS DECIMAL(28, 2)) AS anomaly_profit, "
            f"CAST(sum(anomaly_lines) AS BIGINT) AS anomaly_lines FROM {gold} "
            "GROUP BY year ORDER BY year NULLS FIRST",
            "profit_by_year_category": f"SELECT year, category, CAST(sum(profit) AS DECIMAL(28, 2)) AS profit "
            f"FROM {gold} GROUP BY year, category ORDER BY year NULLS FIRST, category NULLS FIRST",
            "profit_by_customer": f"SELECT customer_id, customer_name, CAST(sum(profit) AS DECIMAL(28, 2)) AS profit "
            f"FROM {gold} GROUP BY customer_id, customer_name "
            "ORDER BY profit DESC NULLS LAST, customer_id NULLS FIRST",
            "profit_by_customer_year": f"SELECT customer_id, customer_name, year, "
            f"CAST(sum(profit) AS DECIMAL(28, 2)) AS profit FROM {gold} GROUP BY customer_id, customer_name, year "
            "ORDER BY customer_id NULLS FIRST, year NULLS FIRST",
        }
        report: dict[str, Rows] = {}
        for name, query in queries.items():
            cursor = con.execute(query)
            columns = [d[0] for d in cursor.description]
            report[name] = [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
    con.close()
    shutil.rmtree(out / ".tmp", ignore_errors=True)
    return ReferenceResult(report=report, counts=counts, timings=steps.timings, rule_counts=rule_counts)


def _rule_counts(con: duckdb.DuckDBPyConnection, parquet: Any) -> dict[str, int]:
    """Records per rule: the quarantine's reasons and the kept rows' flags (quality/counts.py's definition)."""
    declared = {
        "orders": [*_ORDER_ERRORS, *_ORDER_WARNINGS],
        "customers": [*_CUSTOMER_ERRORS, *_CUSTOMER_WARNINGS],
        "products": [*_PRODUCT_ERRORS, *_PRODUCT_WARNINGS],
    }
    counts = {f"{dataset}.{reason}": 0 for dataset, rules in declared.items() for reason, _ in rules}
    flags = " UNION ALL ".join(
        f"SELECT {_sql(dataset)} AS dataset, unnest(quality_flags) AS reason FROM {parquet('silver', table)}"
        for dataset, table in (("orders", "orders_enriched"), ("customers", "customers"), ("products", "products"))
    )
    query = (
        f"SELECT dataset, reason, count(*) FROM (SELECT dataset, unnest(reasons) AS reason "
        f"FROM {parquet('silver', 'quarantine')} UNION ALL {flags}) GROUP BY dataset, reason"
    )
    for dataset, reason, count in _exec(con, query):
        counts[f"{dataset}.{reason}"] = count
    return counts


_CUSTOMER_ERRORS = [("customer_id_missing", "customer_id IS NULL"), ("customer_id_duplicate", "_id_rank > 1")]
_CUSTOMER_WARNINGS = [
    ("name_missing", "customer_name IS NULL"),
    ("phone_unusable", "NOT is_blank(phone_raw) AND phone IS NULL"),
]


def _silver_customers(con: duckdb.DuckDBPyConnection, bronze: str) -> None:
    name = clean_name_sql("customer_name_raw")
    errors, warnings = _reasons(_CUSTOMER_ERRORS), _reasons(_CUSTOMER_WARNINGS)
    _exec(
        con,
        f"""
        CREATE TEMP TABLE customers_checked AS
        WITH raw AS (
            SELECT *, customer_name AS customer_name_raw, phone AS phone_raw,
                lower(trim(phone, ' ')) AS _phone_text, trim(postal_code, ' ') AS _postal
            FROM {bronze}
        ), digits AS (
            SELECT *, regexp_replace(regexp_replace(_phone_text, 'x[0-9]+$', ''), '[^0-9]', '', 'g') AS _d0 FROM raw
        ), digits1 AS (
            SELECT *, CASE WHEN length(_d0) = 13 AND starts_with(_d0, '001') THEN substr(_d0, 4, 10) ELSE _d0 END AS _d1
            FROM digits
        ), digits2 AS (
            SELECT *, CASE WHEN length(_d1) = 11 AND starts_with(_d1, '1') THEN substr(_d1, 2, 10) ELSE _d1 END AS _d2
            FROM digits1
        ), phones AS (
            SELECT *,
                CASE WHEN length(_d2) = 9 THEN lpad(_d2, 10, '0') ELSE _d2 END AS _digits,
                coalesce(regexp_matches(_phone_text, '^\\+?[0-9().\\- ]+(x[0-9]+)?$')
                    AND NOT starts_with(trim(phone_raw, ' '), '-')
                    AND length(CASE WHEN length(_d2) = 9 THEN lpad(_d2, 10, '0') ELSE _d2 END) = 10, false) AS _usable
            FROM digits2
        ), typed AS (
            SELECT
                trimmed(customer_id) AS customer_id,
                {name} AS customer_name,
                customer_name_raw,
                trimmed(email) AS email,
                CASE WHEN _usable THEN '+1' || _digits END AS phone,
                CASE WHEN _usable AND regexp_extract(_phone_text, 'x([0-9]+)$', 1) != ''
                    THEN regexp_extract(_phone_text, 'x([0-9]+)$', 1) END AS phone_extension,
                phone_raw,
                trimmed(address) AS address,
                trimmed(segment) AS segment,
                trimmed(country) AS country,
                trimmed(city) AS city,
                trimmed(state) AS state,
                CASE WHEN regexp_full_match(_postal, '[0-9]{{1,5}}') THEN lpad(_postal, 5, '0')
                    WHEN _postal != '' THEN _postal END AS postal_code,
                trimmed(region) AS region,
                _source_file, _source_row, _run_id
            FROM phones
        ), ranked AS (
            SELECT *, row_number() OVER (PARTITION BY customer_id ORDER BY _source_file, _source_row) AS _id_rank
            FROM typed
        ), checked AS (
            SELECT *, {errors} AS _errors, {warnings} AS _warnings FROM ranked
        )
        SELECT customer_id, customer_name, customer_name_raw, email, phone, phone_extension, phone_raw,
            address, segment, country, city, state, postal_code, region,
            list_contains(_warnings, 'name_missing') AS is_name_missing,
            coalesce(customer_name != trim(customer_name_raw, ' '), false) AS is_name_repaired,
            list_contains(_warnings, 'phone_unusable') AS is_phone_unusable,
            _warnings AS quality_flags, _source_file, _source_row, _run_id, _errors, _warnings
        FROM checked
    """,
    )


_PRODUCT_ERRORS = [("product_id_missing", "product_id IS NULL")]
_PRODUCT_WARNINGS = [("unit_price_invalid", "unit_price IS NULL")]


def _silver_products(con: duckdb.DuckDBPyConnection, bronze: str) -> None:
    errors, warnings = _reasons(_PRODUCT_ERRORS), _reasons(_PRODUCT_WARNINGS)
    attributes = "product_name, unit_price, state, category, sub_category"
    order = ", ".join(f"{a} ASC NULLS LAST" for a in attributes.split(", "))
    _exec(
        con,
        f"""
        CREATE TEMP TABLE products_checked AS
        WITH typed AS (
            SELECT trimmed(product_id) AS product_id, trimmed(category) AS category,
                trimmed(sub_category) AS sub_category,
                regexp_replace(trimmed(product_name), '\\s+', ' ', 'g') AS product_name,
                trimmed(state) AS state,
                TRY_CAST(trimmed(price_per_product) AS DECIMAL(20, 8)) AS unit_price,
                product_id AS _raw_product_id, category AS _raw_category, sub_category AS _raw_sub_category,
                product_name AS _raw_product_name, state AS _raw_state, price_per_product AS _raw_price_per_product,
                _source_file, _run_id
            FROM {bronze}
        )
        SELECT *, {errors} AS _errors, {warnings} AS _warnings FROM typed
    """,
    )
    _exec(
        con,
        f"""
        CREATE TEMP TABLE products AS
        SELECT product_id, category, sub_category, product_name, state, unit_price, unit_price_min, unit_price_max,
            source_rows, has_conflicting_duplicates, _warnings AS quality_flags, _source_file, _run_id
        FROM (
            SELECT *,
                count(*) OVER (PARTITION BY product_id) AS source_rows,
                min(unit_price) OVER (PARTITION BY product_id) AS unit_price_min,
                max(unit_price) OVER (PARTITION BY product_id) AS unit_price_max,
                count(DISTINCT struct_pack({attributes})) OVER (PARTITION BY product_id) > 1
                    AS has_conflicting_duplicates,
                row_number() OVER (PARTITION BY product_id ORDER BY {order}) AS _pick
            FROM products_checked WHERE len(_errors) = 0
        )
        WHERE _pick = 1
    """,
    )


def _checked_orders(con: duckdb.DuckDBPyConnection, bronze: str) -> None:
    """``orders_checked``: typed lines with the line-key statistics and ``_errors`` (all quarantine rules)."""
    _exec(
        con,
        f"""
        CREATE TEMP TABLE orders_typed AS
        SELECT *, hash({_CONTENT}) AS _content_hash FROM (
            SELECT
                file_row_number AS _line,
                is_blank(row_id) AS _row_id_blank,
                to_integer(trimmed(row_id)) AS row_id,
                trimmed(order_id) AS order_id,
                parse_date(order_date) AS order_date,
                parse_date(ship_date) AS ship_date,
                trimmed(ship_mode) AS ship_mode,
                trimmed(customer_id) AS customer_id,
                trimmed(product_id) AS product_id,
                TRY_CAST(to_integer(trimmed(quantity)) AS INTEGER) AS quantity,
                to_money(price) AS sales,
                TRY_CAST(trimmed(discount) AS DECIMAL(6, 4)) AS discount,
                to_money(profit) AS profit,
                _source_file, _run_id
            FROM {bronze}
        )
    """,
    )
    # Only Row IDs and contents seen more than once need work: the 64-bit hash finds candidate contents, the
    # exact comparison is on the columns themselves (GROUP BY / PARTITION BY treat nulls as equal, like Spark's
    # hash of the JSON form).
    _exec(
        con,
        f"""
        CREATE TEMP TABLE orders_key_stats AS
        WITH repeated AS (
            SELECT row_id FROM orders_typed WHERE row_id IS NOT NULL GROUP BY row_id HAVING count(*) > 1
        ), candidates AS (
            SELECT _content_hash FROM orders_typed GROUP BY _content_hash HAVING count(*) > 1
        ), same_content AS (
            SELECT _line FROM (
                SELECT _line, count(DISTINCT row_id) OVER (PARTITION BY {_CONTENT}) AS _row_ids
                FROM orders_typed SEMI JOIN candidates USING (_content_hash)
            ) WHERE _row_ids > 1
        ), key_stats AS (
            SELECT _line,
                count(DISTINCT struct_pack({_CONTENT})) OVER (PARTITION BY row_id) AS _row_id_variants,
                row_number() OVER (PARTITION BY row_id ORDER BY _source_file, {_CONTENT}) AS _row_id_rank
            FROM orders_typed SEMI JOIN repeated USING (row_id)
        )
        SELECT _line, k._row_id_variants, k._row_id_rank, s._line IS NOT NULL AS _same_content
        FROM key_stats k FULL OUTER JOIN same_content s USING (_line)
    """,
    )
    _exec(
        con,
        f"""
        CREATE TEMP TABLE orders_checked AS
        SELECT * EXCLUDE (_content_hash), {_reasons(_ORDER_ERRORS)} AS _errors FROM (
            SELECT t.*,
                CASE WHEN t.row_id IS NOT NULL THEN coalesce(k._row_id_variants, 1) END AS _row_id_variants,
                CASE WHEN t.row_id IS NOT NULL THEN coalesce(k._row_id_rank, 1) END AS _row_id_rank,
                coalesce(k._same_content, false) AS _same_content
            FROM orders_typed t LEFT JOIN orders_key_stats k USING (_line)
        )
    """,
    )
    _exec(con, "DROP TABLE orders_typed")
    _exec(con, "DROP TABLE orders_key_stats")


def _enriched_sql(where: str) -> str:
    """Checked order lines (filtered by ``where``) joined with the dimensions, with warnings."""
    return f"""
        SELECT *, {_cost_share_sql(0)} AS _cost_share_low, {_cost_share_sql(1)} AS _cost_share_high FROM (
            SELECT o.*,
                coalesce(c.customer_name, '{UNKNOWN}') AS customer_name, coalesce(c.country, '{UNKNOWN}') AS country,
                coalesce(c.segment, '{UNKNOWN}') AS segment, coalesce(c.region, '{UNKNOWN}') AS region,
                c.customer_id IS NOT NULL AS is_customer_known,
                coalesce(p.category, '{UNKNOWN}') AS category,
                coalesce(p.sub_category, '{UNKNOWN}') AS sub_category,
                coalesce(p.product_name, '{UNKNOWN}') AS product_name, p.unit_price, p.unit_price_max,
                p.product_id IS NOT NULL AS is_product_known
            FROM (SELECT * FROM orders_checked WHERE {where}) o
            LEFT JOIN (SELECT customer_id, customer_name, country, segment, region
                       FROM customers_checked WHERE len(_errors) = 0) c ON o.customer_id = c.customer_id
            LEFT JOIN (SELECT product_id, category, sub_category, product_name, unit_price, unit_price_max
                       FROM products) p ON o.product_id = p.product_id
        )
    """


def _orders_enriched_sql() -> str:
    return f"""
        SELECT row_id, order_id, order_date, ship_date, year(order_date) AS year, ship_mode,
            customer_id, customer_name, country, segment, region,
            product_id, product_name, category, sub_category,
            quantity, sales, discount, profit, is_customer_known, is_product_known,
            {_reasons(_ORDER_WARNINGS)} AS quality_flags, _source_file, _run_id
        FROM ({_enriched_sql("len(_errors) = 0")})
    """


def _quarantine_sql(orders_bronze: str, customers_bronze: str) -> str:
    """Rejected records of the three datasets: reasons, warnings and the raw record as JSON."""
    order_record = ", ".join(f"{snake(f)} := r.{snake(f)}" for f in ORDER_FIELDS)
    customer_record = ", ".join(f"{snake(f)} := r.{snake(f)}" for f in CUSTOMER_FIELDS)
    product_record = ", ".join(f"{snake(f)} := _raw_{snake(f)}" for f in PRODUCT_FIELDS)
    return f"""
        SELECT 'orders' AS dataset, q._errors AS reasons, q._warnings AS warnings,
            to_json(struct_pack({order_record}))::VARCHAR AS record, q._source_file AS source_file,
            NULL::INTEGER AS source_row, q._run_id AS run_id
        FROM (SELECT *, {_reasons(_ORDER_WARNINGS)} AS _warnings FROM ({_enriched_sql("len(_errors) > 0")})) q
        JOIN {orders_bronze} r ON r.file_row_number = q._line
        UNION ALL
        SELECT 'customers', c._errors, c._warnings, to_json(struct_pack({customer_record}))::VARCHAR,
            c._source_file, c._source_row, c._run_id
        FROM customers_checked c JOIN {customers_bronze} r USING (_source_file, _source_row)
        WHERE len(c._errors) > 0
        UNION ALL
        SELECT 'products', _errors, _warnings, to_json(struct_pack({product_record}))::VARCHAR,
            _source_file, NULL::INTEGER, _run_id
        FROM products_checked WHERE len(_errors) > 0
    """


def _reconcile(con: duckdb.DuckDBPyConnection, counts: dict[str, int | str], parquet: Any) -> None:
    silver_lines, silver_profit = con.execute(
        f"SELECT count(*), sum(profit) FROM {parquet('silver', 'orders_enriched')}"
    ).fetchall()[0]
    gold_profit = con.execute(f"SELECT sum(profit) FROM {parquet('gold', 'profit_aggregate')}").fetchall()[0][0]
    bronze_lines = counts["orders_raw"]
    quarantined = counts["quarantine_orders"]
    counts["silver_profit"] = str(silver_profit)
    counts["gold_profit"] = str(gold_profit)
    if bronze_lines != silver_lines + quarantined:  # type: ignore[operator]
        raise RuntimeError(f"order lines do not reconcile: bronze {bronze_lines} != {silver_lines} + {quarantined}")
    if silver_profit != gold_profit:
        raise RuntimeError(f"profit does not reconcile: silver {silver_profit} != gold {gold_profit}")


# ---------------------------------------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Command line: run the reference, print the report JSON on stdout and the timings on stderr."""
    parser = argparse.ArgumentParser(prog="python -m bench.duckdb_reference", description=__doc__.splitlines()[0])
    parser.add_argument("--input", required=True, help="folder with the raw files")
    parser.add_argument("--out", required=True, help="output folder for the Parquet tables (replaced)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--memory-limit", default=None, help="DuckDB memory_limit, e.g. 8GB (default: DuckDB's)")
    parser.add_argument("--format", choices=["json", "none"], default="json", help="report on stdout")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    result = run_reference(args.input, args.out, threads=args.threads, memory_limit=args.memory_limit)
    if args.format == "json":
        sys.stdout.write(render_json(result.report))
        sys.stdout.flush()
    result.timings["total"] = round(time.perf_counter() - started, 3)
    print("duckdb-reference timings: " + json.dumps(result.timings), file=sys.stderr)
    print("duckdb-reference counts: " + json.dumps(result.counts), file=sys.stderr)
    print("duckdb-reference rule counts: " + json.dumps(result.rule_counts), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
