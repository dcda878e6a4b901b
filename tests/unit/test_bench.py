"""The benchmark's DuckDB reference and results writer (no Spark): the reference keeps every valid order line once,
quarantines the defective ones, totals profit exactly and flags the value anomalies with the pipeline's rules and
constants; the increment continues a dataset with new lines; the tables, targets and cases come out as specified."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import random
import re
import subprocess
import sys
import time
from argparse import ArgumentTypeError
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path

import pytest

duckdb = pytest.importorskip("duckdb")
pytest.importorskip("psutil")
pytest.importorskip("pyarrow")

from bench import duckdb_reference  # noqa: E402
from bench import run as bench_run  # noqa: E402
from bench.duckdb_reference import REPORT_NAMES, clean_name_sql, discover_sources, render_json, run_reference  # noqa: E402
from bench.run import (  # noqa: E402
    INCREMENTAL_COLUMNS,
    REAL_COLUMNS,
    TABLE_COLUMNS,
    WARMUP_LINES,
    BenchServer,
    _case_failed,
    _snapshot,
    bench_env,
    build_parser,
    compare_reports,
    ensure_dataset,
    ensure_increment,
    evaluate_targets,
    increment_lines,
    increment_records,
    incremental_rows,
    load_report,
    measure,
    new_order_id,
    parse_cases,
    parse_sizes,
    peak_gib,
    real_rows,
    render_markdown,
    reports_identical,
    size_label,
    table_rows,
    write_orders_file,
)
from ecom_lakehouse.quality import thresholds  # noqa: E402
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
    changed = json.loads(json.dumps(loaded, default=str), parse_float=Decimal)
    changed["profit_by_year"][-1]["anomaly_lines"] = int(changed["profit_by_year"][-1]["anomaly_lines"]) + 1
    assert compare_reports(loaded, changed)["profit_by_year"]["mismatches"] == 1


def test_reference_gold_counts_the_pipelines_anomaly_rules():
    expectations = pytest.importorskip("ecom_lakehouse.quality.expectations")
    assert list(duckdb_reference._ANOMALY_REASONS) == [e.reason for e in expectations.anomalies_for("orders")]


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


def _parity(*, year_mismatches: int = 0, names_differing: int = 0) -> dict[str, object]:
    parity: dict[str, object] = {
        name: {"match": True, "rows": 4, "mismatches": 0, "examples": []} for name in REPORT_NAMES
    }
    if year_mismatches:
        parity["profit_by_year"] = {"match": False, "rows": 4, "mismatches": year_mismatches, "examples": []}
    parity["customer_name_differences"] = names_differing
    parity["customer_name_examples"] = []
    return parity


def _fake_results() -> dict[str, object]:
    def engine(wall: float, size: int, peak: float) -> dict[str, object]:
        return {"ok": True, "wall_s": wall, "rows_per_s": size / wall, "peak_rss_gib": peak, "runs": [], "steps": {}}

    def timed(walls: tuple[float, ...], peak: float, server: float | None = None) -> dict[str, object]:
        """A real-case result: its runs, their median, least and most; with ``server``, a warm one."""
        runs = [{"wall_s": w, "exit_code": 0, "server": {"running": True, "rss_bytes": 2**30,
                 "heap_used_bytes": 2**29, "same_server": True} if server else None} for w in walls]  # fmt: skip
        result = {"ok": True, "wall_s": sorted(walls)[len(walls) // 2], "min_s": min(walls), "max_s": max(walls),
                  "peak_rss_gib": peak, "runs": runs}  # fmt: skip
        if server is not None:
            result.update(server_peak_rss_gib=server, total_peak_rss_gib=round(peak + server, 3), all_warm=True)
        return result

    def incremental(size: int, wall: float, full: float, peak: float) -> dict[str, object]:
        return {
            "lines_added": size // 100,
            "increment": {"file": "orders_increment.jsonl", "lines": size // 100, "seconds": 1.0, "bytes": 2**20},
            "full_build_s": full,
            "full_build_source": "full case",
            "pipeline": engine(wall, size // 100, peak),
            "report_run": {"wall_s": 30.0, "peak_rss_bytes": 2 * 2**30, "exit_code": 0},
            "duckdb": engine(full / 3, size + size // 100, 1.0),
            "ratio_to_full": round(wall / full, 4),
            "parity": _parity(),
            "ok": True,
        }

    return {
        "machine": {"date": "2026-01-01T00:00:00+00:00", "cores_logical": 2, "memory_gib": 24.0},
        "config": {"seed": 42, "bad_orders": 25, "repeat": 1, "duckdb_threads": 2},
        "startup": {
            "cold_server_start": timed((14.0, 12.5, 13.0), 1.2),
            "warm_connect": timed((0.9, 0.8, 1.1), 0.1, 1.3),
        },
        "server": {
            "home": "/w/server",
            "events": [{"event": "warm-up", "why": "real case", "wall_s": 28.0, "exit_code": 0}],
        },
        "real": {
            "input": "/data/pei",
            "available": True,
            "order_lines": 9994,
            "repeat": 3,
            "cold": timed((30.0, 31.0, 29.5), 2.0),
            "warm": timed((6.5, 6.2, 7.0), 0.3, 1.6),
            "nothing_new": timed((3.0, 2.8, 3.1), 0.25, 1.6),
            "report": timed((1.5, 1.4, 1.6), 0.2, 1.6),
            "duckdb": timed((1.4, 1.3, 1.5), 0.2),
            "parity_cold": _parity(names_differing=1),
            "parity_warm": _parity(),
            "parity_report": _parity(),
        },
        "sizes": [
            {
                "size": 1_000_000,
                "generation": {"seconds": 20.0, "bytes": 2**28},
                "pipeline": engine(100.0, 1_000_000, 3.0),
                "duckdb": engine(25.0, 1_000_000, 1.0),
                "ratio": 4.0,
                "parity": _parity(),
                "incremental": incremental(1_000_000, 30.0, 100.0, 2.5),
            },
            {
                "size": 10_000_000,
                "generation": {"seconds": 200.0, "bytes": 2**31},
                "pipeline": engine(600.0, 10_000_000, 9.5),
                "duckdb": engine(250.0, 10_000_000, 4.0),
                "ratio": 2.4,
                "parity": _parity(),
                "incremental": incremental(10_000_000, 48.0, 600.0, 4.0),
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


def test_incremental_table_shows_the_share_of_the_full_build():
    results = _fake_results()
    assert incremental_rows(results) == [
        ["1,000,000", "10,000", "100.0", "30.0", "30.0 %", "≤ 20 %", "2.50", "33.3"],
        ["10,000,000", "100,000", "600.0", "48.0", "8.0 %", "≤ 10 %", "4.00", "200.0"],
    ]
    results["sizes"][0]["incremental"]["full_build_source"] = "base build"  # the case built its own lakehouse
    assert incremental_rows(results)[0][2] == "100.0 (built here)"
    markdown = render_markdown(results)
    assert "| " + " | ".join(INCREMENTAL_COLUMNS) + " |" in markdown
    assert "| 10,000,000 | 100,000 | 600.0 | 48.0 | 8.0 % | ≤ 10 % | 4.00 | 200.0 |" in markdown
    assert "- 1,000,000 + 10,000 lines, incremental run: profit_by_year exact (0 of 4 differ)" in markdown


def test_real_dataset_table_sets_cold_warm_and_duckdb_side_by_side():
    results = _fake_results()
    assert list(REAL_COLUMNS) == ["engine / mode", "median s", "min s", "max s", "ratio to DuckDB", "peak GiB"]
    assert real_rows(results["real"]) == [
        ["pipeline cold", "30.0", "29.5", "31.0", "21.43", "2.00"],
        ["pipeline warm", "6.5", "6.2", "7.0", "4.64", "1.90 (server 1.60)"],  # the server is outside the tree
        ["pipeline warm, nothing-new run", "3.0", "2.8", "3.1", "2.14", "1.85 (server 1.60)"],
        ["`ecom report` warm", "1.5", "1.4", "1.6", "1.07", "1.80 (server 1.60)"],
        ["DuckDB reference", "1.4", "1.3", "1.5", "1.00", "0.20"],
    ]
    markdown = render_markdown(results)
    assert "`/data/pei`: 9,994 order lines" in markdown
    assert "| " + " | ".join(REAL_COLUMNS) + " |" in markdown
    assert "| pipeline warm | 6.5 | 6.2 | 7.0 | 4.64 | 1.90 (server 1.60) |" in markdown
    cold = "- pipeline cold: `ecom -q run --format json --output F`, no server running: it starts one"
    assert f"{cold}; runs 30.0, 31.0, 29.5 s." in markdown
    assert (
        "The server after the last warm run (`ecom server status --json`): 1.00 GiB resident, heap 512.0 MiB used."
        in markdown
    )
    assert "- real dataset (9,994 lines), warm run: profit_by_year exact" in markdown
    assert "- real dataset (9,994 lines), `ecom report` (warm): profit_by_year exact" in markdown
    assert "- real dataset (9,994 lines), cold run: profit_by_year exact (0 of 4 differ)" in markdown
    missing = {**_fake_results(), "real": {"input": "/nowhere", "available": False}}
    assert "Not run: /nowhere does not exist." in render_markdown(missing)
    passed = {t["name"]: t["passed"] for t in evaluate_targets(missing)}
    assert passed["real_warm"] is passed["real_cold"] is passed["report_warm"] is None


def test_real_dataset_marks_a_warm_run_that_found_no_warm_server():
    results = _fake_results()
    results["real"]["warm"]["all_warm"] = False
    results["real"]["warm"]["runs"][1]["server"]["same_server"] = False
    markdown = render_markdown(results)
    assert "  - pipeline warm: a run found no warm server (it started one); its time is not a warm time" in markdown
    targets = {t["name"]: t for t in evaluate_targets(results)}
    assert targets["real_warm"]["measured"] == "6.50 s (a run found no warm server)"
    assert targets["report_warm"]["measured"] == "1.50 s"


def test_targets_pass_or_fail_per_target():
    targets = {t["name"]: t for t in evaluate_targets(_fake_results())}
    assert list(targets) == [
        "ratio_at_10M", "peak_memory", "scaling_10M_1M", "incremental_10M", "incremental_1M", "real_warm", "real_cold",
        "report_warm", "reports_identical",
    ]  # fmt: skip
    assert (targets["ratio_at_10M"]["value"], targets["ratio_at_10M"]["passed"]) == (2.4, True)
    assert (targets["peak_memory"]["value"], targets["peak_memory"]["passed"]) == (9.5, False)
    assert (targets["scaling_10M_1M"]["value"], targets["scaling_10M_1M"]["passed"]) == (6.0, True)
    assert (targets["incremental_10M"]["value"], targets["incremental_10M"]["passed"]) == (8.0, True)
    assert (targets["incremental_1M"]["value"], targets["incremental_1M"]["passed"]) == (30.0, False)
    assert (targets["real_warm"]["value"], targets["real_warm"]["passed"]) == (6.5, True)
    assert (targets["real_cold"]["value"], targets["real_cold"]["passed"]) == (30.0, True)
    assert (targets["report_warm"]["value"], targets["report_warm"]["passed"]) == (1.5, True)
    # one name differing on the real data is enough for the reports not to be identical
    assert (targets["reports_identical"]["value"], targets["reports_identical"]["passed"]) == (1, False)
    assert targets["reports_identical"]["measured"] == "1 of 7 cases differ"
    markdown = render_markdown(_fake_results())
    assert re.search(
        r"\| pipeline peak memory ≤ 8 GiB \(every pipeline run; warm: with the server's\) \| 9\.50 GiB \| ≤ 8 GiB "
        r"\| FAIL \|",
        markdown,
    )
    assert "| pipeline time ≤ 2.5 × DuckDB time at 10M lines (full build, warm) | 2.40 × | ≤ 2.5 × | pass |" in markdown
    assert (
        "| run adding 1 % new lines ≤ 20 % of the full build's time at 1M lines (both warm) | 30.00 % | ≤ 20 % "
        "| FAIL |" in markdown
    )
    assert "| real dataset, warm `ecom run`, median of 3 ≤ 8 s | 6.50 s | ≤ 8 s | pass |" in markdown
    assert (
        "| real dataset, cold `ecom run` (server start included), median of 3 ≤ 35 s | 30.00 s | ≤ 35 s | pass |"
        in markdown
    )
    assert "| real dataset, warm `ecom report`, median of 3 ≤ 2 s | 1.50 s | ≤ 2 s | pass |" in markdown
    quick = {"sizes": [{k: v for k, v in _fake_results()["sizes"][0].items() if k != "incremental"}]}
    assert [t["passed"] for t in evaluate_targets(quick)] == [None, True, None, None, None, None, None, None, True]


def test_real_dataset_targets_fail_over_their_limits():
    results = _fake_results()
    results["real"]["warm"]["wall_s"] = 8.01
    results["real"]["cold"]["wall_s"] = 36.0
    results["real"]["report"]["wall_s"] = 2.5
    passed = {t["name"]: t["passed"] for t in evaluate_targets(results)}
    assert (passed["real_warm"], passed["real_cold"], passed["report_warm"]) == (False, False, False)
    results["sizes"][0]["incremental"]["ratio_to_full"] = 0.2  # exactly 20 % of the full build passes
    assert {t["name"]: t["passed"] for t in evaluate_targets(results)}["incremental_1M"] is True


def test_peak_memory_target_counts_incremental_and_real_runs():
    results = _fake_results()
    for entry in results["sizes"]:
        entry["pipeline"]["peak_rss_gib"] = 1.0
    assert {t["name"]: t["value"] for t in evaluate_targets(results)}["peak_memory"] == 4.0  # the 10M increment
    results["real"]["cold"]["peak_rss_gib"] = 8.5
    assert {t["name"]: t["passed"] for t in evaluate_targets(results)}["peak_memory"] is False


def test_peak_memory_of_a_warm_command_adds_the_servers():
    results = _fake_results()
    for entry in results["sizes"]:
        entry["pipeline"]["peak_rss_gib"] = 1.0
    results["real"]["warm"].update(peak_rss_gib=0.3, server_peak_rss_gib=4.4, total_peak_rss_gib=4.6)
    assert {t["name"]: t["value"] for t in evaluate_targets(results)}["peak_memory"] == 4.6  # not the client's 0.3
    warm = {
        **results["sizes"][0]["pipeline"],
        "peak_rss_gib": 0.4,
        "server_peak_rss_gib": 2.6,
        "total_peak_rss_gib": 3.0,
    }
    results["sizes"][0]["pipeline"] = warm
    assert table_rows(results)[0][6] == "3.00 (server 2.60)"
    assert "the `ecom` process tree plus the server's JVM, sampled at the same instants" in render_markdown(results)
    assert peak_gib({"peak_rss_bytes": 2**30, "total_peak_rss_bytes": 3 * 2**30}) == 3.0  # one run's measurement
    assert peak_gib({"peak_rss_bytes": 2**30, "total_peak_rss_bytes": None}) == 1.0


def test_reports_identical_needs_every_figure_and_every_name():
    assert reports_identical(_parity())
    assert not reports_identical(_parity(names_differing=2))
    assert not reports_identical(_parity(year_mismatches=1))


def test_a_case_fails_on_a_failed_run_or_a_profit_by_year_difference():
    results = _fake_results()
    assert not _case_failed(results["sizes"][1]["incremental"])
    assert not _case_failed(results["real"])  # a differing name is reported, it does not fail the run
    assert _case_failed({**results["real"], "parity": _parity(year_mismatches=1)})
    assert _case_failed({**results["real"], "duckdb": {"ok": False, "runs": []}})
    for key in ("parity_cold", "parity_warm", "parity_report"):
        assert _case_failed({**results["real"], key: _parity(year_mismatches=1)})
    for key in ("cold", "warm", "nothing_new", "report"):
        assert _case_failed({**results["real"], key: {"ok": False, "runs": []}})
    assert _case_failed({"ok": False, "base_build": {"ok": False}})
    assert not _case_failed({"skipped": "--skip-pipeline"})
    assert not _case_failed(None)


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


def test_cases_parse_in_the_harness_order_and_default_to_all():
    assert parse_cases("real, full") == ["full", "real"]
    assert parse_cases("incremental,incremental") == ["incremental"]
    for wrong in ("", "full,fast", " , "):
        with pytest.raises(ArgumentTypeError):
            parse_cases(wrong)
    defaults = build_parser().parse_args([])
    assert defaults.cases == ["full", "incremental", "real"]
    assert (defaults.sizes, defaults.repeat) == ([100_000, 1_000_000, 10_000_000], None)
    chosen = build_parser().parse_args(["--sizes", "20k", "--cases", "full,incremental", "--repeat", "3"])
    assert (chosen.cases, chosen.sizes, chosen.repeat) == (["full", "incremental"], [20_000], 3)


# ---------------------------------------------------------------------------------------------------------------
# The value-anomaly rules of the reference: the pipeline's constants, rules and order
# ---------------------------------------------------------------------------------------------------------------


def test_reference_reads_the_pipelines_thresholds_without_importing_spark():
    code = (
        "import sys, bench.duckdb_reference as r, ecom_lakehouse.quality.thresholds as t; "
        "assert r.COST_SHARE_BANDS is t.COST_SHARE_BANDS and r.PRICE_SCALE_LIMIT is t.PRICE_SCALE_LIMIT; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pyspark', 'py4j')))"
    )
    root = Path(__file__).resolve().parents[2]
    imported = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True).stdout
    assert imported.strip() == "[]"


def test_reference_declares_the_pipelines_rules_in_the_same_order():
    expectations = pytest.importorskip("ecom_lakehouse.quality.expectations")

    def declared(dataset: str, severity: object) -> list[str]:
        return [e.reason for e in expectations.expectations_for(dataset) if e.severity is severity and not e.preempts]

    quarantine, flag = expectations.Severity.QUARANTINE, expectations.Severity.FLAG
    reference = duckdb_reference
    pairs = [
        (reference._ORDER_ERRORS, declared("orders", quarantine)),  # malformed_record: the reference fails instead
        (reference._ORDER_WARNINGS, declared("orders", flag)),
        (reference._CUSTOMER_ERRORS, declared("customers", quarantine)),
        (reference._CUSTOMER_WARNINGS, declared("customers", flag)),
        (reference._PRODUCT_ERRORS, declared("products", quarantine)),
        (reference._PRODUCT_WARNINGS, declared("products", flag)),
    ]
    for rules, pipeline in pairs:
        assert [reason for reason, _ in rules] == pipeline


_LINE_COLUMNS = "sub_category, quantity, sales, discount, profit, unit_price_max"


def _anomaly_flags(lines: list[tuple[object, ...]]) -> list[list[str]]:
    """The reference's value-anomaly flags of hand-made enriched lines (its SQL, on a DuckDB table)."""
    con = duckdb.connect()
    types = "sub_category VARCHAR, quantity INTEGER, sales DECIMAL(18,2), discount DECIMAL(6,4), profit DECIMAL(18,2)"
    con.execute(f"CREATE TABLE lines (n INTEGER, {types}, unit_price_max DECIMAL(20,8))").fetchall()
    con.executemany(
        f"INSERT INTO lines (n, {_LINE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [(i, *(str(v) if isinstance(v, Decimal) else v for v in line)) for i, line in enumerate(lines)],
    )
    rules = [(r, c) for r, c in duckdb_reference._ORDER_WARNINGS if r not in ("customer_unknown", "product_unknown")]
    rules = [(r, c) for r, c in rules if r != "duplicate_line_other_row_id"]
    low, high = duckdb_reference._cost_share_sql(0), duckdb_reference._cost_share_sql(1)
    query = (
        f"SELECT {duckdb_reference._reasons(rules)} FROM (SELECT *, {low} AS _cost_share_low, "
        f"{high} AS _cost_share_high FROM lines) ORDER BY n"
    )
    return [row[0] for row in con.execute(query).fetchall()]


def _python_flags(sub_category, quantity, sales, discount, profit, unit_price_max) -> list[str]:
    """The rules of quality/expectations.py in plain Python Decimal arithmetic, with the pipeline's constants."""
    low, high = thresholds.COST_SHARE_BANDS.get(sub_category, thresholds.COST_SHARE_ANY)
    judgeable = sales > 0 and 0 <= discount < 1
    out_of_scale = bool(
        quantity > 0
        and judgeable
        and unit_price_max is not None
        and sales / quantity / (1 - discount) > thresholds.PRICE_SCALE_LIMIT * unit_price_max
    )
    off_band = False
    if judgeable and not out_of_scale:
        list_value = sales / (1 - discount)
        lowest, highest = sales - high * list_value, sales - low * list_value
        off_band = profit < lowest - thresholds.PROFIT_TOLERANCE or profit > highest + thresholds.PROFIT_TOLERANCE
    flags = [
        ("price_out_of_scale", out_of_scale),
        ("profit_margin_implausible", off_band and profit != 0),
        ("profit_zero_implausible", off_band and profit == 0),
        ("profit_exceeds_sales", profit > sales),
    ]
    return [reason for reason, fired in flags if fired]


def test_anomaly_rules_at_their_boundaries():
    d = Decimal
    lines = [
        # price_out_of_scale: sales / quantity / (1 - discount) against 20 x the highest listed price (10.00)
        ("Binders", 2, d("400.00"), d("0"), d("190.00"), d("10")),  # exactly 20 x: not out of scale
        ("Binders", 2, d("400.01"), d("0"), d("190.00"), d("10")),
        ("Binders", 2, d("200.01"), d("0.5"), d("95.00"), d("10")),  # 20 x at half the list price
        ("Binders", 2, d("400.01"), d("0"), d("190.00"), None),  # product without a price: not judged
        # Binders cost share 0.50-0.55: sales 100, no discount -> plausible profit 45-50, +-1.00 tolerance
        ("Binders", 1, d("100.00"), d("0"), d("44.00"), d("100")),
        ("Binders", 1, d("100.00"), d("0"), d("43.99"), d("100")),
        ("Binders", 1, d("100.00"), d("0"), d("51.00"), d("100")),
        ("Binders", 1, d("100.00"), d("0"), d("51.01"), d("100")),
        # zero profit at 80 % discount: the list value 100 costs 50-55, so the line should lose 30-35
        ("Binders", 1, d("20.00"), d("0.8"), d("0.00"), d("100")),
        ("Phones", 1, d("20.00"), d("0"), d("0.00"), d("100")),  # Phones go up to cost share 1.00: break-even is fine
        ("Unknown", 1, d("100.00"), d("0"), d("60.00"), None),  # Unknown: any band 0.50-1.00
        ("Binders", 1, d("10.00"), d("0"), d("10.01"), d("100")),  # profit over sales, off band too
        ("Binders", 1, d("0.00"), d("0"), d("5.00"), d("100")),  # no sales: only profit_exceeds_sales is judged
        ("Binders", 1, d("100.00"), d("1"), d("0.00"), d("100")),  # 100 % discount: not judged
    ]
    expected = [
        [], ["price_out_of_scale"], ["price_out_of_scale"], [],
        [], ["profit_margin_implausible"], [], ["profit_margin_implausible"],
        ["profit_zero_implausible"], [], ["profit_margin_implausible"],
        ["profit_margin_implausible", "profit_exceeds_sales"], ["profit_exceeds_sales"], [],
    ]  # fmt: skip
    assert _anomaly_flags(lines) == expected
    assert [_python_flags(*line) for line in lines] == expected


def test_anomaly_rules_equal_a_plain_decimal_transcription_on_random_lines():
    rng = random.Random(5)
    sub_categories = [*duckdb_reference.COST_SHARE_BANDS, "Unknown"]
    lines = []
    for _ in range(3_000):
        quantity = rng.randint(1, 14)
        price = Decimal(rng.randint(1, 500_000)) / 100
        discount = rng.choice([Decimal(0), Decimal("0.1"), Decimal("0.2"), Decimal("0.45"), Decimal("0.8")])
        sales = (price * quantity * (1 - discount) * rng.choice([1, 1, 1, 19, 21, 100])).quantize(Decimal("0.01"))
        cost_share = Decimal(rng.randint(30, 110)) / 100
        profit = (sales - cost_share * sales / (1 - discount)).quantize(Decimal("0.01"))
        profit = rng.choice([profit, profit, Decimal(0), profit * 100, sales + 1])
        max_price = rng.choice([price, price * 2, None])
        lines.append((rng.choice(sub_categories), quantity, sales, discount, profit.quantize(Decimal("0.01")),
                      max_price))  # fmt: skip
    got = _anomaly_flags(lines)
    expected = [_python_flags(*line) for line in lines]
    assert got == expected
    fired = {reason for flags in expected for reason in flags}
    assert fired == {
        "price_out_of_scale",
        "profit_margin_implausible",
        "profit_zero_implausible",
        "profit_exceeds_sales",
    }


def test_reference_flags_exactly_the_injected_anomalies(tmp_path):
    files = generate_dataset(tmp_path / "input", orders=3_000, seed=42, bad_orders=5, anomalies=60)
    result = run_reference(tmp_path / "input", tmp_path / "out", threads=2)
    kinds = {
        "price_decimal_lost": "price_out_of_scale",
        "profit_decimal_lost": "profit_margin_implausible",
        "profit_zeroed": "profit_zero_implausible",
    }
    with files.anomalies.open(encoding="utf-8", newline="") as handle:
        truth = {int(row["row_id"]): kinds[row["kind"]] for row in csv.DictReader(handle)}
    silver = tmp_path / "out" / "silver" / "orders_enriched.parquet"
    anomalies = ", ".join(f"'{k}'" for k in kinds.values())
    flagged = dict(
        duckdb.sql(
            f"SELECT row_id, list_filter(quality_flags, lambda f: f IN ({anomalies})) AS f "
            f"FROM read_parquet('{silver}') WHERE len(f) > 0"
        ).fetchall()
    )
    assert {row_id: flags for row_id, flags in flagged.items()} == {row_id: [kind] for row_id, kind in truth.items()}
    counts = result.rule_counts
    assert sum(counts[f"orders.{kind}"] for kind in kinds.values()) == len(truth) == 60
    assert counts["orders.row_id_missing"] == 1 and counts["orders.price_invalid"] == 0
    assert set(counts) >= {"orders.profit_exceeds_sales", "customers.phone_unusable", "products.unit_price_invalid"}


def test_silver_products_keep_the_range_of_listed_prices(reference):
    products = reference["out"] / "silver" / "products.parquet"
    rows = duckdb.sql(
        f"SELECT count(*), count(*) FILTER (WHERE unit_price_min <= unit_price AND unit_price <= unit_price_max), "
        f"count(*) FILTER (WHERE source_rows > 1 AND unit_price_min < unit_price_max) FROM read_parquet('{products}')"
    ).fetchall()[0]
    assert rows[0] == rows[1] and rows[2] > 0  # a product listed twice at two prices keeps both ends


# ---------------------------------------------------------------------------------------------------------------
# The incremental case's new lines
# ---------------------------------------------------------------------------------------------------------------


def _lines(n: int) -> list[dict[str, object]]:
    return [
        {"Row ID": i + 1, "Order ID": f"CA-2016-{100_000 + i // 2}", "Customer ID": f"C-{i % 7}", "Profit": i / 4}
        for i in range(n)
    ]


def test_increment_records_are_new_lines_of_the_same_customers_and_products():
    base = _lines(1_000)
    base[300]["Row ID"] = None  # a defective line stays defective
    new = list(increment_records(base, 1_000, increment_lines(1_000)))
    assert increment_lines(1_000) == 10 and increment_lines(50) == 1
    assert [line["Row ID"] for line in new] == [1_001, 1_002, 1_003, None, 1_005, 1_006, 1_007, 1_008, 1_009, 1_010]
    picked = [base[i] for i in range(0, 1_000, 100)]
    for line, source in zip(new, picked, strict=True):
        assert list(line) == list(source)  # same keys, same order
        assert {k: v for k, v in line.items() if k not in ("Row ID", "Order ID")} == {
            k: v for k, v in source.items() if k not in ("Row ID", "Order ID")
        }
        assert line["Order ID"].startswith("CA-2016-") and line["Order ID"] != source["Order ID"]
    assert len({line["Order ID"] for line in new}) == 10
    assert base[0]["Row ID"] == 1  # the source lines are not changed


def test_increment_keeps_the_lines_of_one_order_together_and_parses_text_lazily():
    texts = [json.dumps(line) for line in _lines(8)]
    texts[1] = "not json: never parsed because never picked"
    new = list(increment_records(texts, 8, 4))  # every second line: 0, 2, 4, 6 -> orders 100000, 100001, ...
    assert [line["Row ID"] for line in new] == [9, 10, 11, 12]
    assert [line["Order ID"] for line in new] == [new_order_id("CA-2016-1", k) for k in range(4)]
    same_order = list(increment_records([{"Row ID": 1, "Order ID": "X-1"}, {"Row ID": 2, "Order ID": "X-1"}], 2, 2))
    assert [line["Order ID"] for line in same_order] == ["X-10000000", "X-10000000"]
    assert new_order_id("US-2017-118983", 5) == "US-2017-10000005" and new_order_id("odd", 0) == "INC-10000000"


@pytest.mark.parametrize("jsonl", [False, True])
def test_orders_file_round_trips_in_both_formats(tmp_path, jsonl):
    lines = [{"Row ID": 1, "Price": 47.97, "Discount": 0, "Profit": "12.5%"}, {"Row ID": 2, "Price": 1e-05}]
    path = tmp_path / ("orders_x.jsonl" if jsonl else "orders_x.json")
    assert write_orders_file(path, lines, jsonl=jsonl) == 2
    text = path.read_text(encoding="utf-8")
    parsed = [json.loads(t) for t in text.splitlines()] if jsonl else json.loads(text)
    assert parsed == lines
    assert text.startswith("{" if jsonl else '[\n  {\n    "Row ID": 1,')


def test_increment_continues_a_generated_dataset_and_the_reference_counts_it(tmp_path):
    work = tmp_path / "work"
    generation = ensure_dataset(2_000, work, seed=42, bad_orders=5)
    input_dir = work / "2000" / "input"
    increment = ensure_increment(2_000, work, generation)
    assert (increment["file"], increment["lines"], increment["reused"]) == ("orders_increment.json", 20, False)
    assert ensure_increment(2_000, work, generation)["reused"]
    path = work / "2000" / "increment" / increment["file"]
    new = json.loads(path.read_text(encoding="utf-8"))
    base = json.loads((input_dir / "orders_export.json").read_text(encoding="utf-8"))
    assert [line["Row ID"] or 2_001 + k for k, line in enumerate(new)] == list(range(2_001, 2_021))
    assert {line["Order ID"] for line in new}.isdisjoint({line["Order ID"] for line in base})
    customers = {line["Customer ID"] for line in base}
    assert {line["Customer ID"] for line in new} <= customers

    before = run_reference(input_dir, tmp_path / "before", threads=2)
    placed = input_dir / increment["file"]
    placed.write_bytes(path.read_bytes())
    assert placed in discover_sources(input_dir)["orders"]  # picked up as an orders file, by name
    after = run_reference(input_dir, tmp_path / "after", threads=2)
    new_valid = _valid_lines(new)
    assert after.counts["orders_enriched"] == before.counts["orders_enriched"] + len(new_valid)
    added = sum((_money(line["Profit"]) for line in new_valid), Decimal(0))
    assert Decimal(after.counts["gold_profit"]) == Decimal(before.counts["gold_profit"]) + added
    assert (
        after.rule_counts["orders.duplicate_line_other_row_id"]
        == before.rule_counts["orders.duplicate_line_other_row_id"]
    )  # new contents, not copies

    # an increment left behind by an interrupted run is removed when the dataset is next used
    assert ensure_dataset(2_000, work, seed=42, bad_orders=5)["reused"]
    assert not placed.exists()


def test_lakehouse_snapshot_links_parquet_and_copies_the_rest(tmp_path):
    source = tmp_path / "lakehouse"
    (source / "silver" / "orders" / "_delta_log").mkdir(parents=True)
    (source / "silver" / "orders" / "part-0.parquet").write_bytes(b"data")
    (source / "silver" / "orders" / "_delta_log" / "00000.json").write_text("{}", encoding="utf-8")
    _snapshot(source, tmp_path / "copy")
    linked = tmp_path / "copy" / "silver" / "orders" / "part-0.parquet"
    log = tmp_path / "copy" / "silver" / "orders" / "_delta_log" / "00000.json"
    assert linked.read_bytes() == b"data" and log.read_text(encoding="utf-8") == "{}"
    assert os.stat(linked).st_ino == os.stat(source / "silver" / "orders" / "part-0.parquet").st_ino
    assert os.stat(log).st_ino != os.stat(source / "silver" / "orders" / "_delta_log" / "00000.json").st_ino


# ---------------------------------------------------------------------------------------------------------------
# Cold and warm: the bench's own server, measured with a fake `ecom` (no Spark)
# ---------------------------------------------------------------------------------------------------------------

# A fake `ecom`: `server start|stop|status --json`, `run` and `report`, its state in $ECOM_SERVER_HOME like the real
# one's; its "server" is a detached Python process holding 96 MiB (its JVM pid is its own pid). `run` and `report`
# start one when none runs, as a child (so a cold run holds it in its tree), and copy $FAKE_REPORT to --output.
# Every call is logged to calls.jsonl beside the server home.
_FAKE_ECOM = r"""
import json, os, shutil, signal, subprocess, sys, time
from pathlib import Path

import psutil

home = Path(os.environ["ECOM_SERVER_HOME"])
home.mkdir(parents=True, exist_ok=True)
state = home / "state.json"
argv = [a for a in sys.argv[1:] if a != "-q"]


def gone(pid):
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def running():
    if state.is_file():
        found = json.loads(state.read_text())
        if not gone(found["pid"]):
            return found
    return None


def start():
    code = "import time; block = bytearray(96 * 2**20); time.sleep(float(%r))" % os.environ.get("FAKE_SERVER_S", "120")
    host = subprocess.Popen([sys.executable, "-c", code], start_new_session=True, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state.write_text(json.dumps({"pid": host.pid, "java_pid": host.pid, "started": time.time()}))
    time.sleep(1.0)  # a server takes a while to start: the sampler sees it in the tree
    return host.pid


def option(name):
    return argv[argv.index(name) + 1] if name in argv else None


def log(**event):
    with (home.parent / "calls.jsonl").open("a") as out:
        out.write(json.dumps({"argv": argv, "home": str(home), **event}) + "\n")


if argv[0] == "server":
    found = running()
    if argv[1] == "status":
        if found is None:
            print(json.dumps({"running": False}))
            sys.exit(3)
        rss = psutil.Process(found["java_pid"]).memory_info().rss
        print(json.dumps({"running": True, "pid": found["pid"], "java_pid": found["java_pid"], "port": 15002,
                          "rss_bytes": rss, "heap_used_bytes": 12345, "uptime_seconds": time.time() - found["started"],
                          "sessions": 0, "lakehouses": []}))
    elif argv[1] == "stop":
        if found is not None:
            os.kill(found["pid"], signal.SIGTERM)
            deadline = time.monotonic() + 10
            while not gone(found["pid"]) and time.monotonic() < deadline:
                time.sleep(0.05)
            state.unlink()
        log(event="stop", pid=found and found["pid"])
    elif argv[1] == "start":
        log(event="start", pid=found["pid"] if found else start())
    sys.exit(0)

found = running()
pid = found["pid"] if found else start()
lakehouse = Path(option("--lakehouse"))
log(event=argv[0], new_server=found is None, pid=pid, lakehouse=lakehouse.name, report="--no-report" not in argv)
if argv[0] == "report" and not lakehouse.is_dir():
    print(f"{lakehouse}: no lakehouse here", file=sys.stderr)
    sys.exit(2)
lakehouse.mkdir(parents=True, exist_ok=True)
if option("--output"):
    shutil.copyfile(os.environ["FAKE_REPORT"], option("--output"))
time.sleep(0.3)
"""


@pytest.fixture
def fake_ecom(tmp_path, monkeypatch):
    """A fake `ecom` executable, the environment the bench needs for it, and its calls; the fake servers it started
    are ended after the test by their pids."""
    import psutil

    path = tmp_path / "fake_bin" / "ecom"
    path.parent.mkdir()
    path.write_text(f"#!{sys.executable}\n{_FAKE_ECOM}", encoding="utf-8")
    path.chmod(0o755)
    for name in ("ECOM_SERVER_HOME", "ECOM_SPARK_MODE", "SPARK_REMOTE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(bench_run, "machine_info", lambda: {"date": "2026-01-01T00:00:00+00:00", "cores_logical": 2})
    monkeypatch.setattr(bench_run, "_CONNECT_CODE", "import time; time.sleep(0.2)")  # never a real session
    calls = tmp_path / "work" / "calls.jsonl"

    def read_calls() -> list[dict[str, object]]:
        return [json.loads(line) for line in calls.read_text(encoding="utf-8").splitlines()] if calls.is_file() else []

    yield path, read_calls
    for pid in {call.get("pid") for call in read_calls()} - {None}:
        with contextlib.suppress(psutil.Error):
            psutil.Process(pid).kill()


def _real_input(tmp_path, monkeypatch) -> Path:
    """A small generated export as the real input, and its DuckDB report as what the fake `ecom` reports."""
    generate_dataset(tmp_path / "real", orders=300, seed=7, bad_orders=2)
    report = tmp_path / "expected_report.json"
    report.write_text(
        render_json(run_reference(tmp_path / "real", tmp_path / "ref", threads=2).report), encoding="utf-8"
    )
    monkeypatch.setenv("FAKE_REPORT", str(report))
    return tmp_path / "real"


def test_bench_env_gives_the_bench_its_own_server_home(tmp_path):
    env = bench_env({"PATH": "/bin", "ECOM_DRIVER_MEMORY": "6g"}, tmp_path)
    assert env == {"PATH": "/bin", "ECOM_DRIVER_MEMORY": "6g", "ECOM_SERVER_HOME": str(tmp_path / "server")}
    assert bench_env({"ECOM_SERVER_HOME": "/mine"}, tmp_path)["ECOM_SERVER_HOME"] == "/mine"  # the caller's wins
    assert bench_env({"ECOM_SERVER_HOME": ""}, tmp_path)["ECOM_SERVER_HOME"] == str(tmp_path / "server")


def test_a_warm_command_is_measured_with_the_server_beside_its_tree(tmp_path):
    server = subprocess.Popen([sys.executable, "-c", "import time; block = bytearray(200 * 2**20); time.sleep(30)"])
    try:
        time.sleep(1.0)  # the server holds its memory before the command starts
        result = measure(
            [sys.executable, "-c", "import time; time.sleep(1.0)"],
            cwd=tmp_path,
            stdout_path=tmp_path / "out.log",
            stderr_path=tmp_path / "err.log",
            interval=0.1,
            server_pid=server.pid,
        )
    finally:
        server.kill()
        server.wait()
    assert result.exit_code == 0
    assert result.peak_rss_bytes < 100 * 2**20  # the command's own tree: not the server
    assert result.server_peak_rss_bytes > 200 * 2**20
    assert result.total_peak_rss_bytes >= result.server_peak_rss_bytes + 5 * 2**20
    alone = measure(
        [sys.executable, "-c", "pass"], cwd=tmp_path, stdout_path=tmp_path / "o", stderr_path=tmp_path / "e"
    )
    assert (alone.server_peak_rss_bytes, alone.total_peak_rss_bytes, alone.server) == (None, None, None)


def test_real_case_runs_cold_then_warm_on_the_benchs_own_server(tmp_path, fake_ecom, monkeypatch):
    ecom, calls = fake_ecom
    real = _real_input(tmp_path, monkeypatch)
    work, results_dir = tmp_path / "work", tmp_path / "results"
    argv = ["--cases", "real", "--real-input", str(real), "--repeat", "2", "--startup-runs", "1", "--ecom", str(ecom),
            "--work-dir", str(work), "--results-dir", str(results_dir)]  # fmt: skip
    assert bench_run.main(argv) == 0

    log = calls()
    assert {call["home"] for call in log} == {str(work / "server")}  # every command: the bench's own server home
    commands = [
        (c["event"], c.get("lakehouse"), c.get("report"), c.get("new_server")) for c in log if c["event"] != "stop"
    ]
    warm_repeat = [("run", "lakehouse", True, False), ("report", "lakehouse", True, False),
                   ("run", "lakehouse", False, False)]  # fmt: skip
    assert commands == [
        ("start", None, None, None),  # the cold server start (the warm connect is a plain Python process)
        ("run", "lakehouse", True, True),  # cold: every cold run found no server and started one
        ("run", "lakehouse", True, True),
        ("run", "warm_up_lakehouse", True, True),  # a new server warmed by one untimed run
        *warm_repeat,  # then per repeat: warm run, `ecom report` of it, the nothing-new run, all on that server
        *warm_repeat,
    ]
    assert log[-1]["event"] == "stop" and log[-1]["pid"] is not None  # the bench stopped its server at the end
    assert not (work / "server" / "state.json").exists()

    results = json.loads((results_dir / "results.json").read_text(encoding="utf-8"))
    real_result = results["real"]
    for key in ("cold", "warm", "nothing_new", "report", "duckdb"):
        assert real_result[key]["ok"] and len(real_result[key]["runs"]) == 2, key
        assert real_result[key]["min_s"] <= real_result[key]["wall_s"] <= real_result[key]["max_s"]
    mib_96 = 96 * 2**20
    assert all(run["server"] is None for run in real_result["cold"]["runs"])
    assert real_result["cold"]["peak_rss_bytes"] > mib_96  # the server a cold run starts is in its tree
    for key in ("warm", "nothing_new", "report"):
        result = real_result[key]
        assert result["all_warm"] is True
        assert result["peak_rss_bytes"] < mib_96 < result["server_peak_rss_bytes"] <= result["total_peak_rss_bytes"]
        for run in result["runs"]:  # the server's status after every warm command
            assert run["server"]["running"] and run["server"]["same_server"]
            assert run["server"]["rss_bytes"] > mib_96 and run["server"]["heap_used_bytes"] == 12345
    for key in ("parity_cold", "parity_warm", "parity_report"):
        assert reports_identical(real_result[key]), key
    startup = results["startup"]
    assert startup["cold_server_start"]["ok"] and startup["cold_server_start"]["wall_s"] >= 1.0
    assert startup["warm_connect"]["ok"] and startup["warm_connect"]["runs"][0]["server"]["same_server"]
    assert [event["why"] for event in results["server"]["events"]] == ["real case"]
    assert results["server"]["home"] == str(work / "server")
    assert "spark_startup" not in results

    markdown = (results_dir / "results.md").read_text(encoding="utf-8")
    assert "| " + " | ".join(REAL_COLUMNS) + " |" in markdown
    for _, label, _ in bench_run.REAL_ROWS:
        assert f"\n| {label} | " in markdown
    assert "- Cold server start (`ecom server start`, no server running" in markdown
    assert "- Warm connect (a new Python process" in markdown
    assert "warm-ups (untimed `ecom run`): real case" in markdown


def test_size_cases_run_on_a_server_warmed_once_before_them(tmp_path, fake_ecom, monkeypatch):
    ecom, calls = fake_ecom
    _real_input(tmp_path, monkeypatch)
    work = tmp_path / "work"
    argv = ["--cases", "full,incremental", "--sizes", "2000", "--startup-runs", "0", "--skip-duckdb",
            "--ecom", str(ecom), "--work-dir", str(work), "--results-dir", str(tmp_path / "results")]  # fmt: skip
    assert bench_run.main(argv) == 0
    commands = [(c["event"], c.get("lakehouse"), c.get("new_server")) for c in calls() if c["event"] != "stop"]
    assert commands == [
        ("run", "warm_up_lakehouse", True),  # started and warmed on a small generated dataset, once
        ("run", "lakehouse", False),  # the full build, warm
        ("run", "lakehouse", False),  # the run adding 1 % new lines, warm
        ("report", "lakehouse", False),  # the updated lakehouse's report, warm
    ]
    assert calls()[-1]["event"] == "stop"
    assert (work / "warmup" / str(WARMUP_LINES) / "input").is_dir()
    results = json.loads((tmp_path / "results" / "results.json").read_text(encoding="utf-8"))
    entry = results["sizes"][0]
    assert entry["pipeline"]["all_warm"] and entry["pipeline"]["server_peak_rss_bytes"] > 96 * 2**20
    assert entry["incremental"]["pipeline"]["all_warm"]
    assert entry["incremental"]["report_run"]["server"]["same_server"]
    assert entry["incremental"]["full_build_source"] == "full case"
    assert [event["why"] for event in results["server"]["events"]] == ["full and incremental cases"]


def test_a_warm_command_that_finds_no_server_warms_one_again(tmp_path, fake_ecom, monkeypatch):
    ecom, calls = fake_ecom
    real = _real_input(tmp_path, monkeypatch)
    work = tmp_path / "work"
    server = BenchServer(str(ecom), bench_env(dict(os.environ), work), timeout=60)
    try:
        assert server.status() is None  # `status --json` exits 3
        status = server.warm_up(real, tmp_path, why="a test")
        assert status["running"] and status["rss_bytes"] > 96 * 2**20
        server.stop()  # as an idle timeout would
        command = [str(ecom), "-q", "run", "--input", str(real), "--lakehouse", str(tmp_path / "lh"), "--no-report"]
        measured = server.timed("a warm run", command, cwd=tmp_path, logs=tmp_path / "warm", timeout=60)
    finally:
        server.shutdown()
    assert measured.exit_code == 0 and measured.server["same_server"] and measured.server_peak_rss_bytes > 96 * 2**20
    assert [event["why"] for event in server.events] == ["a test", "no server ran before a warm run"]
    assert [c.get("new_server") for c in calls() if c["event"] == "run"] == [True, True, False]
    assert server.status() is None


def test_the_server_is_stopped_when_the_bench_fails(tmp_path, fake_ecom, monkeypatch):
    ecom, calls = fake_ecom

    def broken(*args, **kwargs):
        raise RuntimeError("a case failed")

    monkeypatch.setattr(bench_run, "run_real", broken)
    argv = ["--cases", "real", "--startup-runs", "1", "--ecom", str(ecom), "--work-dir", str(tmp_path / "work"),
            "--results-dir", str(tmp_path / "results")]  # fmt: skip
    with pytest.raises(RuntimeError, match="a case failed"):
        bench_run.main(argv)
    events = [(c["event"], c["pid"]) for c in calls()]
    started = next(pid for event, pid in events if event == "start")
    assert events[-1] == ("stop", started)  # the server the start-up measurement started, stopped by the bench
    assert not (tmp_path / "work" / "server" / "state.json").exists()


def test_the_bench_refuses_an_ecom_that_would_not_use_the_local_server(tmp_path, fake_ecom, monkeypatch):
    ecom, calls = fake_ecom
    argv = ["--cases", "real", "--ecom", str(ecom), "--work-dir", str(tmp_path / "work")]
    monkeypatch.setenv("ECOM_SPARK_MODE", "classic")
    with pytest.raises(SystemExit, match="ECOM_SPARK_MODE=classic"):
        bench_run.main(argv)
    monkeypatch.delenv("ECOM_SPARK_MODE")
    monkeypatch.setenv("SPARK_REMOTE", "sc://elsewhere:15002")
    with pytest.raises(SystemExit, match="SPARK_REMOTE"):
        bench_run.main(argv)
    assert calls() == []


def test_startup_lines_report_medians_of_cold_start_and_warm_connect():
    markdown = render_markdown(_fake_results())
    assert (
        "- Cold server start (`ecom server start`, no server running: JVM, jars, Spark Connect); a cold command pays "
        "it, a warm one does not: median 13.00 s of 3 run(s) (min 12.50, max 14.00), peak 1.20 GiB." in markdown
    )
    assert (
        "part of every warm command: median 0.90 s of 3 run(s) (min 0.80, max 1.10), peak 1.40 (server 1.30) GiB."
        in markdown
    )
    assert (
        "- The bench's server: home `/w/server`; warm-ups (untimed `ecom run`): real case 28.0 s; stopped" in markdown
    )
    assert build_parser().parse_args([]).startup_runs == 3
