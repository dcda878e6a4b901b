"""Tests for the synthetic data generator: formats, quirks, defects and reproducibility (pure Python, no Spark)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from ecom_lakehouse.config import load_config
from ecom_lakehouse.quality.thresholds import COST_SHARE_BANDS
from ecom_lakehouse.tools.generate import (
    ANOMALIES_CSV,
    ANOMALY_KINDS,
    CUSTOMER_HEADER,
    DEFECT_KINDS,
    ORDER_KEYS,
    PRODUCT_HEADER,
    GeneratedFiles,
    generate_dataset,
)

SAMPLE_DIR = Path(__file__).resolve().parents[2] / "src" / "ecom_lakehouse" / "sample"
DATE = re.compile(r"^\d{1,2}/\d{1,2}/\d{4}$")
LINES = 3000


def _load_orders(files: GeneratedFiles) -> list[dict[str, Any]]:
    if files.orders[0].suffix == ".json":
        return json.loads(files.orders[0].read_text(encoding="utf-8"))
    return [json.loads(line) for path in files.orders for line in path.read_text(encoding="utf-8").splitlines()]


def _load_customers(path: Path) -> tuple[list[str], list[tuple[Any, ...]], list[str]]:
    workbook = openpyxl.load_workbook(path, read_only=True)
    try:
        rows = list(workbook["Worksheet"].iter_rows(values_only=True))
        return workbook.sheetnames, rows, [str(c) for c in rows[0]]
    finally:
        workbook.close()


def _load_products(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.reader(handle))


def _parse_date(text: str) -> dt.date:
    day, month, year = (int(part) for part in text.split("/"))
    return dt.date(year, month, day)


def _defect_of(line: dict[str, Any]) -> list[str]:
    found = []
    if isinstance(line["Profit"], str):
        found.append("profit_percent")
    if not DATE.match(line["Order Date"]):
        found.append("order_date_iso")
    if line["Quantity"] <= 0:
        found.append("quantity_non_positive")
    if line["Discount"] > 1:
        found.append("discount_out_of_range")
    if line["Row ID"] is None:
        found.append("row_id_null")
    return found


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> GeneratedFiles:
    return generate_dataset(tmp_path_factory.mktemp("gen"), orders=LINES, seed=42)


@pytest.fixture(scope="module")
def orders(dataset: GeneratedFiles) -> list[dict[str, Any]]:
    return _load_orders(dataset)


def test_result_describes_the_files(dataset: GeneratedFiles) -> None:
    assert [p.name for p in dataset.orders] == ["orders_export.json"]
    assert dataset.customers.name == "customers_export.xlsx"
    assert dataset.products.name == "products_export.csv"
    assert dataset.order_lines == LINES
    assert dataset.customers_count == round(LINES / 12.6)
    assert dataset.products_count == len(_load_products(dataset.products)) - 1
    assert all(p.is_file() for p in [*dataset.orders, dataset.customers, dataset.products])


def test_same_seed_is_byte_identical_and_other_seed_differs(tmp_path: Path) -> None:
    first = generate_dataset(tmp_path / "a", orders=400, seed=7)
    second = generate_dataset(tmp_path / "b", orders=400, seed=7)
    other = generate_dataset(tmp_path / "c", orders=400, seed=8)
    for name in ("orders_export.json", "customers_export.xlsx", "products_export.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
        assert (tmp_path / "a" / name).read_bytes() != (tmp_path / "c" / name).read_bytes(), name
    assert first == GeneratedFiles(
        orders=[tmp_path / "a" / "orders_export.json"],
        customers=tmp_path / "a" / "customers_export.xlsx",
        products=tmp_path / "a" / "products_export.csv",
        order_lines=400,
        customers_count=second.customers_count,
        products_count=second.products_count,
    )
    assert other.order_lines == 400


def test_orders_json_is_a_pretty_printed_array(dataset: GeneratedFiles, orders: list[dict[str, Any]]) -> None:
    text = dataset.orders[0].read_text(encoding="utf-8")
    assert text.startswith('[\n  {\n    "Row ID": 1,\n    "Order ID": ')
    assert text == json.dumps(orders, indent=2)  # exactly json.dumps(indent=2): no trailing newline
    assert len(orders) == LINES
    assert [line["Row ID"] for line in orders] == list(range(1, LINES + 1))
    assert all(tuple(line) == ORDER_KEYS for line in orders)


def test_order_values_look_like_the_export(orders: list[dict[str, Any]]) -> None:
    for line in orders:
        assert re.fullmatch(r"(CA|US)-(2014|2015|2016|2017)-\d{6}", line["Order ID"])
        assert line["Order ID"][3:7] == line["Order Date"][-4:]
        assert DATE.match(line["Order Date"]) and DATE.match(line["Ship Date"])
        assert 0 <= (_parse_date(line["Ship Date"]) - _parse_date(line["Order Date"])).days <= 7
        assert line["Ship Mode"] in {"Standard Class", "Second Class", "First Class", "Same Day"}
        assert re.fullmatch(r"[A-Z][A-Za-z]-\d{5}", line["Customer ID"])
        assert re.fullmatch(r"(FUR|OFF|TEC)-[A-Z]{2}-\d{8}", line["Product ID"])
        assert type(line["Quantity"]) is int and 1 <= line["Quantity"] <= 14
        assert type(line["Price"]) is float and line["Price"] > 0 and round(line["Price"], 2) == line["Price"]
        assert type(line["Profit"]) is float and round(line["Profit"], 2) == line["Profit"]
        assert line["Discount"] == 0 or 0 < line["Discount"] < 1
    dates = [line["Order Date"] for line in orders]
    assert any(re.match(r"^\d/", d) for d in dates) and any(re.match(r"^\d{1,2}/\d/", d) for d in dates)
    assert any(re.match(r"^\d{2}/\d{2}/", d) for d in dates)
    discounts = Counter(type(line["Discount"]).__name__ for line in orders)
    assert discounts["int"] > 0 and discounts["float"] > 0
    assert all(line["Discount"] == 0 for line in orders if type(line["Discount"]) is int)
    assert any(line["Profit"] < 0 for line in orders) and any(line["Profit"] > 0 for line in orders)
    per_order = defaultdict(set)
    for line in orders:
        per_order[line["Order ID"]].add(tuple(line[k] for k in ("Order Date", "Ship Date", "Ship Mode", "Customer ID")))
    assert all(len(v) == 1 for v in per_order.values())  # one header per order
    assert max(Counter(line["Order ID"] for line in orders).values()) > 1  # several lines per order
    assert not any(_defect_of(line) for line in orders)


def test_products_csv_quirks(dataset: GeneratedFiles, orders: list[dict[str, Any]]) -> None:
    raw = dataset.products.read_bytes()
    assert raw.count(b"\n") == raw.count(b"\r\n") > 0
    assert not raw.endswith(b"\n")  # like the export: no line break after the last row
    text = raw.decode("utf-8")
    assert re.search(r'^[^\r\n]*,"[^"\r\n]*,[^"\r\n]*",', text, re.M)  # a quoted name with a comma
    assert '""' in text
    rows = _load_products(dataset.products)
    assert tuple(rows[0]) == PRODUCT_HEADER
    body = rows[1:]
    assert len(body) == dataset.products_count
    assert all(len(row) == 6 for row in body)
    names = [row[3] for row in body]
    assert any("," in n for n in names) and any('"' in n for n in names) and any("\u00a0" in n for n in names)
    assert any(re.fullmatch(r"\d+\.\d{8}", row[5]) for row in body)  # e.g. 42.33333333
    by_id: dict[str, list[list[str]]] = defaultdict(list)
    for row in body:
        by_id[row[0]].append(row)
    duplicated = [rows for rows in by_id.values() if len(rows) > 1]
    assert 1 <= len(duplicated) <= 0.04 * len(by_id)
    for first, second in duplicated:
        assert first[1:3] == second[1:3] and first[3] != second[3] and first[5] != second[5]
    used = {line["Product ID"] for line in orders}
    missing = used - set(by_id)
    assert 1 <= len(missing) <= 0.04 * len(used)
    assert set(by_id) <= used  # every listed product is sold


def test_customers_xlsx_quirks(dataset: GeneratedFiles, orders: list[dict[str, Any]]) -> None:
    sheets, rows, header = _load_customers(dataset.customers)
    assert sheets == ["Worksheet"]
    assert tuple(header) == CUSTOMER_HEADER
    body = [dict(zip(CUSTOMER_HEADER, row, strict=False)) for row in rows[1:]]
    assert len(body) == dataset.customers_count

    ids = [c["Customer ID"] for c in body]
    assert len(set(ids)) == len(ids)
    assert {line["Customer ID"] for line in orders} == set(ids)  # all referenced, every customer has orders

    names = [c["Customer Name"] for c in body]
    assert any(n is None for n in names)
    present = [n for n in names if n is not None]
    assert any(re.search(r"[A-Za-z]\d|\d[A-Za-z]", n) for n in present)  # digits glued to letters
    assert any(re.search(r"[@#$%^&*()<>_]", n) for n in present)
    assert any(n != n.strip() for n in present)
    assert any(n.endswith("-") for n in present)
    assert any(re.search(r"[äöüÄÖÜ]", n) for n in present)
    assert any("'" in n and re.fullmatch(r"[A-Za-z' ]+", n) for n in present)
    assert any(len(n.split()) == 3 and re.fullmatch(r"[A-Za-z ]+", n) for n in present)
    assert any(re.fullmatch(r"[A-Z][a-z]+ [a-z]+", n) for n in present)

    phones = [c["phone"] for c in body]
    numeric = [p for p in phones if isinstance(p, int)]
    assert any(p < 0 for p in numeric) and any(len(str(p)) == 10 for p in numeric)
    assert any(len(str(p)) == 9 for p in numeric)
    assert "#ERROR!" in phones
    assert any(isinstance(p, str) and re.fullmatch(r"[\d().\-]+x\d+", p) for p in phones)

    postal = [c["Postal Code"] for c in body]
    assert sum(isinstance(p, int) for p in postal) >= len(postal) - 2
    assert any(isinstance(p, str) and re.fullmatch(r"0\d{4}", p) for p in postal)
    assert all("\n" in c["address"] for c in body)
    assert {c["Country"] for c in body} == {"United States"}
    assert {c["Segment"] for c in body} <= {"Consumer", "Corporate", "Home Office"}
    assert {c["Region"] for c in body} <= {"East", "West", "Central", "South"}


def test_bad_orders_get_exactly_one_defect_each(tmp_path: Path) -> None:
    clean = _load_orders(generate_dataset(tmp_path / "clean", orders=500, seed=3))
    dirty = _load_orders(generate_dataset(tmp_path / "dirty", orders=500, seed=3, bad_orders=5))
    defects = [(i, _defect_of(line)) for i, line in enumerate(dirty) if _defect_of(line)]
    assert len(defects) == 5
    assert sorted(kind for _, kinds in defects for kind in kinds) == sorted(DEFECT_KINDS)
    changed = [i for i, (a, b) in enumerate(zip(clean, dirty, strict=True)) if a != b]
    assert changed == [i for i, _ in defects]  # the defects come on top of the same clean data
    for i, kinds in defects:
        line = dirty[i]
        if kinds == ["profit_percent"]:
            assert re.fullmatch(r"-?\d+\.\d{1,2}%", line["Profit"])
        if kinds == ["order_date_iso"]:
            assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", line["Order Date"])
            assert dt.date.fromisoformat(line["Order Date"]) == _parse_date(clean[i]["Order Date"])
        if kinds == ["discount_out_of_range"]:
            assert line["Discount"] == 1.5


def test_jsonl_parts(tmp_path: Path) -> None:
    files = generate_dataset(tmp_path, orders=500, seed=5, jsonl_threshold=100, lines_per_file=150, bad_orders=5)
    assert [p.name for p in files.orders] == [f"orders_part-{i:05d}.jsonl" for i in range(4)]
    assert not (tmp_path / "orders_export.json").exists()
    counts = []
    row_ids = []
    for path in files.orders:
        lines = path.read_text(encoding="utf-8").splitlines()
        counts.append(len(lines))
        for text in lines:
            line = json.loads(text)
            assert text == json.dumps(line)
            assert tuple(line) == ORDER_KEYS
            row_ids.append(line["Row ID"])
    assert counts == [150, 150, 150, 50] and sum(counts) == 500
    assert sorted(r for r in row_ids if r is not None) == [r for r in range(1, 501) if r in row_ids]
    assert row_ids.count(None) == 1


def test_rerun_replaces_stale_order_files(tmp_path: Path) -> None:
    generate_dataset(tmp_path, orders=300, seed=1, jsonl_threshold=100, lines_per_file=100)
    assert len(list(tmp_path.glob("orders_part-*.jsonl"))) == 3
    files = generate_dataset(tmp_path, orders=300, seed=1)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["customers_export.xlsx", "orders_export.json", "products_export.csv"]
    assert len(_load_orders(files)) == 300


def test_small_dataset_keeps_minimum_sizes(tmp_path: Path) -> None:
    files = generate_dataset(tmp_path, orders=60, seed=11)
    assert files.customers_count == 50
    assert len(_load_orders(files)) == 60
    _, rows, _ = _load_customers(files.customers)
    assert {line["Customer ID"] for line in _load_orders(files)} == {row[0] for row in rows[1:]}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"orders": 0}, {"orders": 10, "bad_orders": 11}, {"orders": 10, "bad_orders": -1}, {"lines_per_file": 0},
        {"orders": 10, "anomalies": -1}, {"orders": 10, "bad_orders": 5, "anomalies": 6},
    ],
)  # fmt: skip
def test_rejects_bad_arguments(tmp_path: Path, kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        generate_dataset(tmp_path, **kwargs)


def test_committed_sample_matches_the_generator(tmp_path: Path) -> None:
    """The sample is `ecom generate --out src/ecom_lakehouse/sample --orders 3000 --seed 42 --bad-orders 6
    --anomalies 9`."""
    assert sorted(p.name for p in SAMPLE_DIR.iterdir() if p.name != "README.md") == [
        ANOMALIES_CSV,
        "customers_export.xlsx",
        "orders_export.json",
        "products_export.csv",
    ]
    generate_dataset(tmp_path, orders=3000, seed=42, bad_orders=6, anomalies=9)
    for name in ("orders_export.json", "products_export.csv", ANOMALIES_CSV):
        assert (SAMPLE_DIR / name).read_bytes() == (tmp_path / name).read_bytes(), name
    # Compare the workbook by content: its bytes depend on the openpyxl version.
    assert _load_customers(SAMPLE_DIR / "customers_export.xlsx") == _load_customers(tmp_path / "customers_export.xlsx")
    sample = json.loads((SAMPLE_DIR / "orders_export.json").read_text(encoding="utf-8"))
    assert sum(bool(_defect_of(line)) for line in sample) == 6
    assert sum(p.stat().st_size for p in SAMPLE_DIR.iterdir()) < 2_000_000


def test_products_csv_round_trips_through_the_csv_module(dataset: GeneratedFiles) -> None:
    rows = _load_products(dataset.products)
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL).writerows(rows)
    assert out.getvalue()[:-2] == dataset.products.read_bytes().decode("utf-8")


# The generator's economics and value anomalies (the kinds found in the real export).

CATEGORY_OF = {"CH": "Chairs", "FU": "Furnishings", "TA": "Tables", "BO": "Bookcases", "PA": "Paper", "BI": "Binders",
               "AR": "Art", "ST": "Storage", "AP": "Appliances", "LA": "Labels", "EN": "Envelopes", "SU": "Supplies",
               "FA": "Fasteners", "PH": "Phones", "AC": "Accessories", "MA": "Machines", "CO": "Copiers"}  # fmt: skip


def _cost_share(line: dict[str, Any]) -> float:
    """(sales - profit) / list value, list value = sales / (1 - discount)."""
    return (line["Price"] - line["Profit"]) * (1 - line["Discount"]) / line["Price"]


def _truth(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def test_profit_follows_a_fixed_cost_share_per_product_within_the_real_bands(orders: list[dict[str, Any]]) -> None:
    shares: dict[str, list[float]] = defaultdict(list)
    for line in orders:
        if line["Price"] >= 20:  # cents rounding moves a tiny line's cost share
            shares[line["Product ID"]].append(_cost_share(line))
    for product_id, values in shares.items():
        low, high = COST_SHARE_BANDS[CATEGORY_OF[product_id[4:6]]]
        assert max(values) - min(values) < 0.002, product_id  # one cost share per product, whatever the discount
        assert float(low) - 0.002 < values[0] < float(high) + 0.002, product_id
    zero = [line for line in orders if line["Profit"] == 0]
    assert zero  # genuine zero-profit lines exist: a discount of exactly 1 - cost share breaks even
    assert all(abs(_cost_share(line) - (1 - line["Discount"])) < 1e-9 for line in zero)


def test_anomalies_come_on_top_of_the_same_data_and_are_recorded(tmp_path: Path) -> None:
    clean_files = generate_dataset(tmp_path / "clean", orders=3000, seed=4, bad_orders=5)
    files = generate_dataset(tmp_path / "dirty", orders=3000, seed=4, bad_orders=5, anomalies=30)
    assert clean_files.anomalies is None and clean_files.anomaly_lines == 0
    assert not (tmp_path / "clean" / ANOMALIES_CSV).exists()
    assert files.anomalies == tmp_path / "dirty" / ANOMALIES_CSV and files.anomaly_lines == 30
    assert (tmp_path / "dirty" / "products_export.csv").read_bytes() == clean_files.products.read_bytes()
    clean, dirty = _load_orders(clean_files), _load_orders(files)
    truth = _truth(files.anomalies)
    assert list(truth[0]) == ["row_id", "kind", "field", "clean_value", "value"]
    assert [int(row["row_id"]) for row in truth] == sorted(int(row["row_id"]) for row in truth)
    assert Counter(row["kind"] for row in truth) == dict.fromkeys(ANOMALY_KINDS, 10)
    changed = {i + 1 for i, (a, b) in enumerate(zip(clean, dirty, strict=True)) if a != b}
    assert changed == {int(row["row_id"]) for row in truth}  # the defects stay as they were
    assert not any(_defect_of(dirty[int(row["row_id"]) - 1]) for row in truth)
    listed = {row[0] for row in _load_products(files.products)[1:]}
    for row in truth:
        before, after = clean[int(row["row_id"]) - 1], dirty[int(row["row_id"]) - 1]
        field = row["field"]
        assert {k for k in ORDER_KEYS if before[k] != after[k]} == {field}
        assert (float(row["clean_value"]), float(row["value"])) == (before[field], after[field])
        assert type(after[field]) is float
        if row["kind"] == "price_decimal_lost":
            assert field == "Price" and after["Price"] == round(before["Price"] * 100, 2)
            assert before["Product ID"] in listed
        elif row["kind"] == "profit_decimal_lost":
            assert field == "Profit" and after["Profit"] == round(before["Profit"] * 100, 2)
            assert abs(before["Profit"]) >= 2
        else:
            assert field == "Profit" and after["Profit"] == 0.0 and abs(before["Profit"]) >= 2
            assert before["Product ID"] in listed
            low, high = COST_SHARE_BANDS[CATEGORY_OF[before["Product ID"][4:6]]]
            assert (
                not float(low) <= 1 - before["Discount"] <= float(high)
            )  # no product of the sub-category breaks even there


def test_anomalies_are_reproducible_and_stale_truth_is_removed(tmp_path: Path) -> None:
    first = generate_dataset(tmp_path / "a", orders=500, seed=9, anomalies=12)
    second = generate_dataset(tmp_path / "b", orders=500, seed=9, anomalies=12)
    assert first.anomalies is not None and second.anomalies is not None
    assert first.anomalies.read_bytes() == second.anomalies.read_bytes()
    jsonl = generate_dataset(tmp_path / "c", orders=500, seed=9, anomalies=12, jsonl_threshold=100, lines_per_file=200)
    assert jsonl.anomalies is not None and jsonl.anomalies.read_bytes() == first.anomalies.read_bytes()
    assert _load_orders(jsonl) == _load_orders(first)
    generate_dataset(tmp_path / "a", orders=500, seed=9)
    assert not (tmp_path / "a" / ANOMALIES_CSV).exists()


def test_truth_file_is_never_read_as_a_source() -> None:
    config = load_config()
    assert ANOMALIES_CSV.startswith("_")  # source discovery skips names starting with "_"
    assert not any(spec.matches(ANOMALIES_CSV) for spec in config.sources.values())
