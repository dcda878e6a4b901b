"""The benchmark's DuckDB reference and results writer (no Spark): the reference keeps every valid order line once,
quarantines the defective ones and totals profit exactly; the markdown table and targets come out as specified."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path

import pytest

duckdb = pytest.importorskip("duckdb")
pytest.importorskip("psutil")
pytest.importorskip("pyarrow")

from bench.duckdb_reference import REPORT_NAMES, clean_name_sql, render_json, run_reference  # noqa: E402
from bench.run import (  # noqa: E402
    TABLE_COLUMNS,
    compare_reports,
    evaluate_targets,
    load_report,
    measure,
    parse_sizes,
    render_markdown,
    size_label,
    table_rows,
)
from ecom_lakehouse.tools.generate import generate_dataset  # noqa: E402

LINES, BAD = 2_000, 5
_DATE = re.compile(r"^[0-9]{1,2}/[0-9]{1,2}/[0-9]{4}$")


def _date(text: object) -> datetime | None:
    if not isinstance(text, str) or not _DATE.match(text.strip()):
        return None
    try:
        return datetime.strptime(text.strip(), "%d/%m/%Y")
    except ValueError:
        return None


def _number(value: object) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return Decimal(str(value).strip())
    except InvalidOperation:
        return None


def _valid_lines(lines: list[dict[str, object]]) -> list[dict[str, object]]:
    """The order lines no quarantine rule rejects, decided with plain Python (Row IDs are unique here)."""
    valid = []
    for line in lines:
        order_date, ship_date = _date(line["Order Date"]), _date(line["Ship Date"])
        quantity, discount = _number(line["Quantity"]), _number(line["Discount"])
        if (
            isinstance(line["Row ID"], int)
            and order_date is not None
            and ship_date is not None
            and ship_date >= order_date
            and quantity is not None
            and quantity == quantity.to_integral_value()
            and quantity > 0
            and discount is not None
            and 0 <= discount <= 1
            and _number(line["Price"]) is not None
            and _number(line["Profit"]) is not None
        ):
            valid.append({**line, "year": order_date.year})
    return valid


def _money(value: object) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    files = generate_dataset(root / "input", orders=LINES, seed=42, bad_orders=BAD)
    lines = json.loads(files.orders[0].read_text(encoding="utf-8"))
    result = run_reference(root / "input", root / "out", threads=2)
    return {"lines": lines, "result": result, "out": root / "out"}


def test_every_valid_order_line_exactly_once(reference):
    expected = sorted(line["Row ID"] for line in _valid_lines(reference["lines"]))
    assert len(expected) == LINES - BAD
    silver = reference["out"] / "silver" / "orders_enriched.parquet"
    row_ids = [r[0] for r in duckdb.sql(f"SELECT row_id FROM read_parquet('{silver}') ORDER BY row_id").fetchall()]
    assert row_ids == expected


def test_quarantine_holds_exactly_the_defective_lines(reference):
    quarantine = reference["out"] / "silver" / "quarantine.parquet"
    rows = duckdb.sql(f"SELECT reasons, record FROM read_parquet('{quarantine}') WHERE dataset = 'orders'").fetchall()
    assert len(rows) == BAD
    assert all(reasons and json.loads(record) for reasons, record in rows)
    assert reference["result"].counts["quarantine_orders"] == BAD


def test_profit_totals_equal_a_decimal_sum_of_the_valid_lines(reference):
    valid = _valid_lines(reference["lines"])
    by_year: dict[int, Decimal] = {}
    for line in valid:
        by_year[line["year"]] = by_year.get(line["year"], Decimal(0)) + _money(line["Profit"])
    report = reference["result"].report
    assert {r["year"]: r["profit"] for r in report["profit_by_year"]} == by_year
    total = sum(by_year.values(), Decimal(0))
    assert sum((r["profit"] for r in report["profit_by_customer"]), Decimal(0)) == total
    assert Decimal(reference["result"].counts["gold_profit"]) == total


def test_report_json_round_trips_exactly_and_compares_equal(reference, tmp_path):
    path = tmp_path / "report.json"
    path.write_text(render_json(reference["result"].report), encoding="utf-8")
    loaded = load_report(path)
    assert list(loaded) == list(REPORT_NAMES)
    parity = compare_reports(loaded, loaded)
    assert all(parity[name]["match"] for name in loaded)
    changed = json.loads(json.dumps(loaded, default=str), parse_float=Decimal)
    changed["profit_by_year"][0]["profit"] = str(Decimal(changed["profit_by_year"][0]["profit"]) + Decimal("0.01"))
    assert compare_reports(loaded, changed)["profit_by_year"]["mismatches"] == 1


NAME_CASES = [
    ("Gary567 Hansen", "Gary Hansen"),
    ("Tam&^*ara Willing___)ham", "Tamara Willingham"),
    ("Ge 1234orge Bell", "George Bell"),
    ("Tho   12 =-.mas Boland", "Thomas Boland"),
    ("B         ecky Martin", "Becky Martin"),
    ("Kat rina Edelman", "Katrina Edelman"),
    ("Paul  4567Van Hugh", "Paul Van Hugh"),
    ("Bi1l Tyler", "Bill Tyler"),
    ("Ji11 Stevenson", "Jill Stevenson"),
    ("Helen Wa55erman", "Helen Wasserman"),
    ("C@thy Armstrong", "Cathy Armstrong"),
    ("Karen Dan!els", "Karen Daniels"),
    ("Maribeth 5chnelling", "Maribeth Schnelling"),
    ("Joy Bell-", "Joy Bell"),
    ("   _Mike Vitt 12313orini", "Mike Vittorini"),
    ("Peter\u00a0Bühler", "Peter Bühler"),
    ("Sean O'Donnell", "Sean O'Donnell"),
    ("Corey-Lock", "Corey-Lock"),
    ("Dorris liebe", "Dorris liebe"),
    ("Ludwig van Beethoven", "Ludwig van Beethoven"),
    ("Natalie DeCherney", "Natalie DeCherney"),
    ("#$%^ 123", None),
    ("", None),
    (None, None),
    # where a look-around match hides next to another: the Java rules' results
    ("a0b0c0d", "aobocod"),
    ("Ab1c2d3e4f Smith", "Ablcdeeaf Smith"),
    ("Kat rina bell Smith", "Katrinabell Smith"),
    ("Maria de los Santos", "Maria delos Santos"),
    ("Juan de la Cruz", "Juan de la Cruz"),
    ("O''Hara", "OHara"),
]


def test_name_repair_ported_to_re2_gives_the_pipelines_results():
    con = duckdb.connect()
    con.execute("CREATE TABLE names (raw VARCHAR)").fetchall()
    con.executemany("INSERT INTO names VALUES (?)", [(raw,) for raw, _ in NAME_CASES])
    cleaned = dict(con.execute(f"SELECT raw, {clean_name_sql('raw')} FROM names").fetchall())
    assert {raw: cleaned[raw] for raw, _ in NAME_CASES} == dict(NAME_CASES)


def _java_rules(name: str | None) -> str | None:
    """ecom_lakehouse/silver/names.py transcribed with the ``regex`` module, which has Java's look-arounds."""
    import regex

    space = r"[ \t\n\x0B\f\r]"  # Java's \s
    letter = r"\p{L}"
    if name is None:
        return None
    out = regex.sub(r"[\u00A0\u2007\u202F\u2000-\u200B\t]", " ", name)
    look_alikes = {"0": "o", "1": "l", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "!": "i", "$": "s"}
    for char, repl in look_alikes.items():
        c = regex.escape(char)
        out = regex.sub(rf"(?<={letter}){c}(?={letter})", repl, out)
        out = regex.sub(rf"(?<={letter}){c}{c}(?={letter}|{space}|$)", repl * 2, out)
        out = regex.sub(rf"(?<=^|{space}){c}(?=\p{{Ll}}{{2}})", repl.upper(), out)
    out = regex.sub(rf"(?<={letter})[^\p{{L}}]*[^\p{{L}} \t\n\x0B\f\r'\-][^\p{{L}}]*(?=\p{{Ll}})", "", out)
    out = regex.sub(rf"(?<={letter}){space}{{2,}}(?=\p{{Ll}})", "", out)
    particles = "van|von|de|da|di|du|del|der|la|le"
    out = regex.sub(rf"(?<={letter}) (?!(?:{particles}){space})(\p{{Ll}}+)(?={space}+\p{{L}})", r"\1", out)
    out = regex.sub(r"[^\p{L} \t\n\x0B\f\r'\-]", "", out)
    out = regex.sub(r"(?<!\p{L})['\-]+|['\-]+(?!\p{L})", "", out)
    out = regex.sub(rf"{space}+", " ", out).strip(" ")
    return out or None


def test_name_repair_matches_the_java_rules_on_random_strings():
    pytest.importorskip("regex")
    import random

    rng = random.Random(1)
    pieces = [*"abcdeAB ü'-0153@!$#_. ", "  ", " de ", " van ", "ll", "11", "55"]
    raws = sorted({"".join(rng.choice(pieces) for _ in range(rng.randint(1, 12))) for _ in range(10_000)})
    con = duckdb.connect()
    con.execute("CREATE TABLE names (raw VARCHAR)").fetchall()
    con.executemany("INSERT INTO names VALUES (?)", [(raw,) for raw in raws])
    cleaned = con.execute(f"SELECT raw, {clean_name_sql('raw')} FROM names").fetchall()
    expected = {raw: _java_rules(raw) for raw in raws}
    differing = [(raw, got, expected[raw]) for raw, got in cleaned if got != expected[raw]]
    assert differing == []
    assert all(_java_rules(raw) == expected for raw, expected in NAME_CASES)


def _fake_results() -> dict[str, object]:
    def engine(wall: float, size: int, peak: float) -> dict[str, object]:
        return {"ok": True, "wall_s": wall, "rows_per_s": size / wall, "peak_rss_gib": peak, "runs": [], "steps": {}}

    return {
        "machine": {"date": "2026-01-01T00:00:00+00:00", "cores_logical": 2, "memory_gib": 24.0},
        "config": {"seed": 42, "bad_orders": 25, "repeat": 1, "duckdb_threads": 2},
        "spark_startup": {"best_s": 9.5, "peak_rss_gib": 0.6, "runs": [{}]},
        "sizes": [
            {
                "size": 1_000_000,
                "generation": {"seconds": 20.0, "bytes": 2**28},
                "pipeline": engine(100.0, 1_000_000, 3.0),
                "duckdb": engine(25.0, 1_000_000, 1.0),
                "ratio": 4.0,
            },
            {
                "size": 10_000_000,
                "generation": {"seconds": 200.0, "bytes": 2**31},
                "pipeline": engine(600.0, 10_000_000, 9.5),
                "duckdb": engine(250.0, 10_000_000, 4.0),
                "ratio": 2.4,
            },
        ],
    }


def test_results_table_has_the_expected_columns_and_values():
    results = _fake_results()
    assert list(TABLE_COLUMNS) == [
        "size", "pipeline s", "DuckDB s", "ratio", "pipeline rows/s", "DuckDB rows/s", "pipeline peak GiB",
        "DuckDB peak GiB",
    ]  # fmt: skip
    assert table_rows(results) == [
        ["1,000,000", "100.0", "25.0", "4.00", "10,000", "40,000", "3.00", "1.00"],
        ["10,000,000", "600.0", "250.0", "2.40", "16,667", "40,000", "9.50", "4.00"],
    ]
    markdown = render_markdown(results)
    assert "| " + " | ".join(TABLE_COLUMNS) + " |" in markdown
    assert "| 10,000,000 | 600.0 | 250.0 | 2.40 | 16,667 | 40,000 | 9.50 | 4.00 |" in markdown
    assert "pipeline 6.00, DuckDB 10.00" in markdown


def test_targets_pass_or_fail_per_target():
    targets = {t["name"]: t for t in evaluate_targets(_fake_results())}
    assert (targets["ratio_at_10M"]["value"], targets["ratio_at_10M"]["passed"]) == (2.4, True)
    assert (targets["peak_memory"]["value"], targets["peak_memory"]["passed"]) == (9.5, False)
    assert (targets["scaling_10M_1M"]["value"], targets["scaling_10M_1M"]["passed"]) == (6.0, True)
    markdown = render_markdown(_fake_results())
    assert re.search(r"\| pipeline peak memory ≤ 8 GiB \(all sizes\) \| 9\.50 GiB \| ≤ 8 GiB \| FAIL \|", markdown)
    quick = {"sizes": _fake_results()["sizes"][:1]}
    assert [t["passed"] for t in evaluate_targets(quick)] == [None, True, None]


def test_sizes_and_labels():
    assert parse_sizes("100000, 1M,10m,250k") == [100_000, 1_000_000, 10_000_000, 250_000]
    assert [size_label(s) for s in (2_000, 100_000, 1_000_000, 10_000_000)] == ["2k", "100k", "1M", "10M"]


def test_peak_memory_counts_the_whole_process_tree(tmp_path):
    grandchild = "import time; block = bytearray(300 * 2**20); time.sleep(1.5)"
    child = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {grandchild!r}])"
    result = measure(
        [sys.executable, "-c", child],
        cwd=tmp_path,
        stdout_path=tmp_path / "out.log",
        stderr_path=tmp_path / "err.log",
        interval=0.1,
    )
    assert result.exit_code == 0 and not result.timed_out
    assert result.peak_rss_bytes > 300 * 2**20
    assert 1.5 <= result.wall_s < 30


def test_reference_command_line_prints_the_report(tmp_path):
    generate_dataset(tmp_path / "input", orders=300, seed=7, bad_orders=2)
    command = [sys.executable, "-m", "bench.duckdb_reference", "--input", str(tmp_path / "input")]
    done = subprocess.run(
        [*command, "--out", str(tmp_path / "o")],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout, parse_float=Decimal)
    assert sum(r["profit"] for r in report["profit_by_year"]) == sum(r["profit"] for r in report["profit_by_customer"])
    assert "duckdb-reference timings:" in done.stderr
    assert (tmp_path / "o" / "gold" / "profit_aggregate.parquet").is_file()
