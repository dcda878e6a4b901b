"""Bad input across the three formats: each case either fails the run with a message naming the file (and the
record or field), or quarantines exactly the bad records with the right reasons while reconciliation holds."""

from __future__ import annotations

import json

import pytest
from openpyxl import Workbook

from ecom_lakehouse.config import load_config
from ecom_lakehouse.errors import SourceError
from ecom_lakehouse.io.sources import CUSTOMER_FIELDS
from ecom_lakehouse.io.tables import Lakehouse
from ecom_lakehouse.run.lifecycle import run_pipeline
from ecom_lakehouse.run.state import PipelineRun
from ecom_lakehouse.run.steps import ingest_bronze
from tests.helpers import customer, order, product, write_customers, write_orders_array, write_products


def _valid_input(folder):
    folder.mkdir(parents=True, exist_ok=True)
    write_orders_array(folder / "Orders.json", [order(1), order(2, customer_id="BB-2")])
    write_customers(folder / "Customers.xlsx", [customer("AA-10001", "Aaron Able"), customer("BB-2", "Bea Bold")])
    write_products(folder / "Products.csv", [product("FUR-CH-10000001", "Chair", "50")])
    return folder


def _lakehouse(spark, tmp_path, name):
    schemas = {f"{layer}_schema": f"bad_{name}_{layer}" for layer in ("bronze", "silver", "gold")}
    return Lakehouse.open(spark, load_config().with_overrides(**schemas), tmp_path / "lh")


FAILING = {
    "truncated_json_array": (
        lambda d: (d / "Orders.json").write_text(json.dumps([order(1), order(2)], indent=2)[:-40]),
        r"Orders\.json: not valid JSON at line \d+ column \d+",
    ),
    "empty_orders_file": (lambda d: (d / "Orders.json").write_text(""), r"Orders\.json: empty file"),
    "orders_missing_a_field": (
        lambda d: write_orders_array(d / "Orders.json", [{k: v for k, v in order(1).items() if k != "Profit"}]),
        r"Orders\.json: required field\(s\) Profit missing",
    ),
    "orders_not_utf8": (
        lambda d: (d / "Orders.json").write_bytes(
            json.dumps([order(1, ship_mode="Zürich")], ensure_ascii=False).encode("latin-1")
        ),
        r"Orders\.json: not UTF-8 text",
    ),
    "csv_unbalanced_quote": (
        lambda d: (d / "Products.csv").write_text(
            "Product ID,Category,Sub-Category,Product Name,State,Price per product\r\n"
            'FUR-CH-1,Furniture,Chairs,"Chair, Black,Texas,5\r\nFUR-CH-2,Furniture,Chairs,Stool,Texas,3\r\n'
        ),
        r"Products\.csv: (malformed CSV near line \d+|record at line \d+ has \d+ fields)",
    ),
    "csv_wrong_field_count": (
        lambda d: (d / "Products.csv").write_text(
            "Product ID,Category,Sub-Category,Product Name,State,Price per product\r\nFUR-CH-1,Furniture,Chairs\r\n"
        ),
        r"Products\.csv: record at line 2 has 3 fields, the header has 6",
    ),
    "csv_missing_column": (
        lambda d: (d / "Products.csv").write_text("Product ID,Category,Product Name\r\nA,B,C\r\n"),
        r"Products\.csv: header lacks required column\(s\) Sub-Category, State, Price per product",
    ),
    "csv_empty": (lambda d: (d / "Products.csv").write_text(""), r"Products\.csv: empty file"),
    "csv_not_utf8": (
        lambda d: (d / "Products.csv").write_bytes(
            "Product ID,Category,Sub-Category,Product Name,State,Price per product\r\nA,B,C,Caf\xe9,D,1\r\n".encode(
                "latin-1"
            )
        ),
        r"Products\.csv: not UTF-8 text",
    ),
    "xlsx_not_a_workbook": (
        lambda d: (d / "Customers.xlsx").write_bytes(b"PK\x03\x04 truncated"),
        r"Customers\.xlsx: not a readable \.xlsx workbook",
    ),
    "xlsx_missing_column": (
        lambda d: _workbook(d / "Customers.xlsx", [c for c in CUSTOMER_FIELDS if c != "Country"]),
        r"Customers\.xlsx: sheet 'Sheet' lacks required column\(s\) Country",
    ),
}


def _workbook(path, header):
    workbook = Workbook()
    workbook.active.append(header)
    workbook.save(path)


@pytest.mark.parametrize("case", sorted(FAILING))
def test_unreadable_input_fails_the_run_with_a_clear_message(spark, tmp_path, case):
    folder = _valid_input(tmp_path / "in")
    damage, message = FAILING[case]
    damage(folder)
    lakehouse = _lakehouse(spark, tmp_path, case)
    with pytest.raises(SourceError, match=message):
        ingest_bronze(lakehouse, str(folder), PipelineRun(lakehouse, "run-bad"))


QUARANTINED = {
    # Row ID -> the reasons expected for it (orders), or a key -> reasons for customers/products
    3: ["order_date_invalid"],  # ISO date
    4: ["order_date_invalid", "ship_date_invalid"],  # US month/day order
    5: ["price_invalid"],  # non-numeric price
    6: ["profit_invalid"],  # %-suffixed profit
    7: ["quantity_invalid"],  # negative quantity
    8: ["quantity_invalid"],  # decimal quantity
    9: ["discount_invalid"],  # discount above 1
    10: ["ship_before_order"],
    11: ["row_id_duplicate"],  # the second, identical copy
    12: ["row_id_conflict", "row_id_conflict"],  # two different copies: both
}


def test_bad_records_are_quarantined_with_their_reasons_and_reconciliation_holds(spark, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    good = [order(1), order(2, customer_id="ZZ-404"), order(13, product_id="OFF-XX-404")]
    bad = [
        order(3, order_date="2016-08-21"), order(4, order_date="8/21/2016", ship_date="8/25/2016"),
        order(5, price="abc"), order(6, profit="12.5%"), order(7, quantity=-2), order(8, quantity=2.5),
        order(9, discount=1.5), order(10, order_date="25/8/2016", ship_date="21/8/2016"),
        order(11, profit=1), order(11, profit=1), order(12, profit=1), order(12, profit=2),
    ]  # fmt: skip
    write_orders_array(folder / "Orders.json", good + bad)
    # JSON Lines with a byte-order mark, a malformed line, a missing Row ID, a non-integer Row ID and an extra field
    (folder / "orders_extra.jsonl").write_bytes(
        b"\xef\xbb\xbf"
        + (json.dumps({**order(20), "Coupon": "X1"}) + "\n").encode()
        + b'{"Row ID": 21, "Order ID": \n'
        + (json.dumps(order(None)) + "\n" + json.dumps(order("7a")) + "\n").encode()
    )
    workbook = Workbook()
    sheet = workbook.active
    sheet.title = "Customers 2026"  # another sheet name
    sheet.append([None] * 3)  # blank rows before the header
    sheet.append([*CUSTOMER_FIELDS, "Loyalty Tier"])  # an extra column
    sheet.append([*customer("AA-10001", "Aaron Able"), "gold"])
    sheet.append([None] * 12)  # a blank row between records
    sheet.append([*customer("BB-2", "Bea Bold"), None])
    sheet.append([*customer("BB-2", "Bea Copy"), None])  # duplicate id
    sheet.append([*customer(None, "No Id"), None])  # missing id
    workbook.save(folder / "Customers.xlsx")
    (folder / "Products.csv").write_text(
        "Product ID,Category,Sub-Category,Product Name,State,Price per product,Supplier\r\n"
        'FUR-CH-10000001,Furniture,Chairs,"Chair, Black",Texas,50,Acme\r\n'
        ",Furniture,Chairs,No id,Texas,5,Acme\r\n"
    )
    lakehouse = _lakehouse(spark, tmp_path, "quarantine")
    run_pipeline(lakehouse, str(folder))  # raises if reconciliation breaks

    quarantine = lakehouse.read("silver", "quarantine").collect()
    orders = {}
    for row in (r for r in quarantine if r.dataset == "orders"):
        key = json.loads(row.record).get("row_id")
        orders.setdefault(key, []).extend(row.reasons)
    expected = {str(k): v for k, v in QUARANTINED.items()}
    expected[None] = ["malformed_record", "row_id_missing"]  # the broken line; the line without a Row ID
    expected["7a"] = ["row_id_not_integer"]
    assert {k: sorted(v) for k, v in orders.items()} == {k: sorted(v) for k, v in expected.items()}
    by_dataset = {(r.dataset, tuple(r.reasons), r.source_row) for r in quarantine if r.dataset != "orders"}
    assert by_dataset == {
        ("customers", ("customer_id_duplicate",), 6), ("customers", ("customer_id_missing",), 7),
        ("products", ("product_id_missing",), None),
    }  # fmt: skip

    silver = {r.row_id: r for r in lakehouse.read("silver", "orders").collect()}
    assert sorted(silver) == [1, 2, 11, 13, 20]
    assert silver[2].customer_name == "Unknown" and "customer_unknown" in silver[2].quality_flags
    assert silver[13].category == "Unknown" and "product_unknown" in silver[13].quality_flags
    bronze_orders = lakehouse.read("bronze", "orders")
    assert "coupon" in bronze_orders.columns  # schema drift kept in bronze
    assert bronze_orders.where("row_id = '20'").first().coupon == "X1"
    assert "loyalty_tier" in lakehouse.read("bronze", "customers").columns
    assert "supplier" in lakehouse.read("bronze", "products").columns
    assert lakehouse.read("silver", "customers").count() == 2
