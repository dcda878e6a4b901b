from __future__ import annotations

import json
from datetime import date, datetime, time

import fastexcel
import pytest
from openpyxl import Workbook, load_workbook
from pyspark.sql import types as T

from ecom_lakehouse.config import load_config
from ecom_lakehouse.errors import SourceError
from ecom_lakehouse.fields import CUSTOMER_FIELDS
from ecom_lakehouse.io import sources
from tests.helpers import customer, order, write_customers, write_orders_array, write_orders_jsonl, write_products


@pytest.mark.parametrize(
    ("name", "dataset"),
    [
        ("Orders.json", "orders"), ("Order.json", "orders"), ("orders_2017.json", "orders"),
        ("ORDERS.JSONL", "orders"), ("order-part-1.ndjson", "orders"),
        ("Customer.xlsx", "customers"), ("customers.XLSX", "customers"), ("Customers_eu.xlsx", "customers"),
        ("Products.csv", "products"), ("product.csv", "products"),
        ("Orders.csv", None), ("preorders.json", None), ("Customer.xls", None), ("ordersheet.json", None),
    ],
)  # fmt: skip
def test_source_patterns_recognise_names(name, dataset):
    matches = [spec.dataset for spec in load_config().sources.values() if spec.matches(name)]
    assert matches == ([dataset] if dataset else [])


def test_discover_sources_finds_each_dataset_and_ignores_others(spark, tmp_path):
    write_orders_array(tmp_path / "Order.json", [order()])
    write_orders_jsonl(tmp_path / "orders_2017.jsonl", [order(2)])
    write_customers(tmp_path / "Customers.xlsx", [customer()])
    write_products(tmp_path / "Product.csv", [])
    (tmp_path / "README.txt").write_text("not data")
    found = sources.discover_sources(spark, str(tmp_path), load_config())
    assert [p.rsplit("/", 1)[-1] for p in found["orders"]] == ["Order.json", "orders_2017.jsonl"]
    assert [p.rsplit("/", 1)[-1] for p in found["customers"]] == ["Customers.xlsx"]
    assert [p.rsplit("/", 1)[-1] for p in found["products"]] == ["Product.csv"]


def test_discover_sources_names_the_missing_dataset(spark, tmp_path):
    write_orders_array(tmp_path / "Orders.json", [order()])
    with pytest.raises(SourceError, match=r"no source file for customers, products"):
        sources.discover_sources(spark, str(tmp_path), load_config())


def test_discover_sources_missing_input(spark, tmp_path):
    with pytest.raises(SourceError, match="does not exist"):
        sources.discover_sources(spark, str(tmp_path / "nope"), load_config())


def test_read_orders_accepts_array_and_json_lines_as_strings(spark, tmp_path):
    write_orders_array(tmp_path / "a.json", [order(1, discount=0.2), order(2, discount=0)])
    write_orders_jsonl(tmp_path / "b.jsonl", [order(3, price=1.5)])
    df = sources.read_orders(spark, [str(tmp_path / "a.json"), str(tmp_path / "b.jsonl")])
    rows = {r["Row ID"]: r for r in df.collect()}
    assert sorted(rows) == ["1", "2", "3"]
    assert rows["1"]["Discount"] == "0.2" and rows["2"]["Discount"] == "0"
    assert rows["3"]["Price"] == "1.5"
    assert rows["3"][sources.SOURCE_FILE].endswith("/b.jsonl")
    assert all(r[sources.CORRUPT_RECORD] is None for r in rows.values())


def test_read_orders_keeps_malformed_records(spark, tmp_path):
    path = tmp_path / "orders.jsonl"
    path.write_text(json.dumps(order(1)) + '\n{"Row ID": 2, "Order ID": \n', encoding="utf-8")
    rows = sources.read_orders(spark, [str(path)]).collect()
    assert len(rows) == 2
    bad = [r for r in rows if r[sources.CORRUPT_RECORD] is not None]
    assert len(bad) == 1 and '"Row ID": 2' in bad[0][sources.CORRUPT_RECORD]


def test_read_products_handles_rfc4180_quotes_commas_nbsp_and_crlf(spark, tmp_path):
    path = tmp_path / "Products.csv"
    path.write_bytes(
        "Product ID,Category,Sub-Category,Product Name,State,Price per product\r\n"
        'FUR-CH-1,Furniture,Chairs,"Leather Task Chair, Black",New York,81.882\r\n'
        'FUR-FU-2,Furniture,Furnishings,"Executive 13"" Wall Clock, ""Round""",Texas,25.38\r\n'
        "TEC-AC-3,Technology,Accessories,Imation\u00a0Secure USB,Ohio,72.99\r\n".encode()
    )
    rows = {r["Product ID"]: r for r in sources.read_products(spark, [str(path)]).collect()}
    assert rows["FUR-CH-1"]["Product Name"] == "Leather Task Chair, Black"
    assert rows["FUR-FU-2"]["Product Name"] == 'Executive 13" Wall Clock, "Round"'
    assert rows["FUR-FU-2"]["State"] == "Texas"
    assert rows["TEC-AC-3"]["Product Name"] == "Imation\u00a0Secure USB"
    assert rows["TEC-AC-3"]["Price per product"] == "72.99"  # no stray \r from CRLF


def test_read_products_rejects_a_header_without_required_columns(spark, tmp_path):
    path = tmp_path / "Products.csv"
    path.write_text("Product ID,Category,Product Name\r\nA,B,C\r\n")
    with pytest.raises(SourceError, match=r"Products.csv: header lacks required column\(s\) Sub-Category"):
        sources.read_products(spark, [str(path)])


def test_read_customers_turns_cells_into_source_text(spark, tmp_path):
    path = write_customers(
        tmp_path / "Customer.xlsx",
        [
            customer("AA-1", "Ann Lee", phone=7185624866, postal_code=5408),
            [None] * 11,  # a blank row is not a record
            customer("AA-2", None, phone="#ERROR!", postal_code="05408"),
        ],
    )
    rows = sources.read_customers(spark, [str(path)]).orderBy(sources.SOURCE_ROW).collect()
    assert [r["Customer ID"] for r in rows] == ["AA-1", "AA-2"]
    assert rows[0]["phone"] == "7185624866" and rows[0]["Postal Code"] == "5408"
    assert rows[1]["Customer Name"] is None and rows[1]["phone"] == "#ERROR!"
    assert [r[sources.SOURCE_ROW] for r in rows] == [2, 4]
    assert rows[0][sources.SOURCE_FILE] == "file:" + str(path.resolve())


def test_read_customers_names_the_file_and_missing_column(spark, tmp_path):
    workbook = Workbook()
    workbook.active.append(["Customer ID", "Customer Name"])
    workbook.save(tmp_path / "Customer.xlsx")
    with pytest.raises(SourceError, match=r"Customer.xlsx: sheet 'Sheet' lacks required column\(s\) email"):
        sources.read_customers(spark, [str(tmp_path / "Customer.xlsx")])


def test_read_customers_rejects_a_file_that_is_not_a_workbook(spark, tmp_path):
    (tmp_path / "Customer.xlsx").write_text("not a zip")
    with pytest.raises(SourceError, match=r"Customer\.xlsx: not a readable \.xlsx workbook"):
        sources.read_customers(spark, [str(tmp_path / "Customer.xlsx")])


def _fast_path_only(monkeypatch):
    """Fail the test if a workbook is read with openpyxl instead of fastexcel."""

    def openpyxl_read(source, path):
        raise AssertionError(f"{path} was read with openpyxl")

    monkeypatch.setattr(sources, "_read_openpyxl", openpyxl_read)


def test_read_customers_keeps_error_cells_and_15_digit_numbers_on_the_fast_path(spark, tmp_path, monkeypatch):
    cells = {"phone": "#N/A", "postal_code": "#DIV/0!", "city": "#ERROR!", "address": 123456789012345}
    path = write_customers(tmp_path / "Customer.xlsx", [customer("AA-1", "#NAME?", **cells)])  # #ERROR! is text
    _fast_path_only(monkeypatch)
    (row,) = sources.read_customers(spark, [str(path)]).collect()
    cells = [row[c] for c in ("Customer Name", "phone", "Postal Code", "City", "address")]
    assert cells == ["#NAME?", "#N/A", "#DIV/0!", "#ERROR!", "123456789012345"]


def test_read_customers_builds_the_string_schema_from_arrow_across_workbooks(spark, tmp_path, monkeypatch):
    first = write_customers(tmp_path / "Customer.xlsx", [customer("AA-1", phone=718562486, postal_code=5408)])
    workbook = Workbook()
    notes, sheet = workbook.active, workbook.create_sheet("Kunden 2026")
    notes.append(["Customer ID", "Notes"])  # the first sheet lacks the columns
    sheet.append([None] * 3)  # blank rows before the header
    sheet.append([None, "   "])
    sheet.append([*CUSTOMER_FIELDS, "Loyalty Tier"])
    sheet.append([*customer("BB-2", phone=-42), "gold"])
    sheet.append([None, " ", None])  # a blank row between records
    sheet.append(customer("CC-3", phone=True))
    workbook.save(tmp_path / "customers_eu.xlsx")
    _fast_path_only(monkeypatch)
    df = sources.read_customers(spark, [str(first), str(tmp_path / "customers_eu.xlsx")])
    assert df.schema == T.StructType(
        [T.StructField(name, T.StringType(), True) for name in (*CUSTOMER_FIELDS, "Loyalty Tier", sources.SOURCE_FILE)]
    ).add(sources.SOURCE_ROW, T.IntegerType(), False)
    rows = {r["Customer ID"]: r for r in df.collect()}
    assert {k: (r["phone"], r["Postal Code"], r["Loyalty Tier"], r[sources.SOURCE_ROW]) for k, r in rows.items()} == {
        "AA-1": ("718562486", "5408", None, 2),
        "BB-2": ("-42", "66002", "gold", 4),
        "CC-3": ("true", "66002", None, 6),
    }
    assert rows["CC-3"][sources.SOURCE_FILE].endswith("/customers_eu.xlsx")


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (12.5, "12.5"),  # a number with decimals in a text column
        (0.123456789012, "0.123456789012"),  # fastexcel would round it to 9 decimals
        (1e-5, "1e-05"),
        (0, "0"),
        (datetime(2016, 8, 21), "2016-08-21T00:00:00"),
        (date(2017, 1, 2), "2017-01-02T00:00:00"),  # openpyxl reads a date cell as a datetime
        (time(13, 45, 30), "13:45:30"),
        ("   ", "   "),  # openpyxl writes it without xml:space="preserve": calamine would read ""
        ("a_x000D_b", "a_x000D_b"),  # calamine would decode the escape into a CR
    ],
)  # fmt: skip
def test_read_customers_takes_cells_fastexcel_may_render_differently_from_openpyxl(spark, tmp_path, value, text):
    path = write_customers(tmp_path / "Customer.xlsx", [customer("AA-1", phone=value, postal_code=5408)])
    assert sources._read_fastexcel(fastexcel.read_excel(str(path)), str(path)) is None
    (row,) = sources.read_customers(spark, [str(path)]).collect()
    assert (row["phone"], row["Postal Code"]) == (text, "5408")


def test_read_customers_reads_error_cells_calamine_does_not_know_with_openpyxl(spark, tmp_path):
    path = write_customers(tmp_path / "Customer.xlsx", [customer("AA-1"), customer("AA-2")])
    workbook = load_workbook(path)
    cell = workbook.active["D3"]  # phone of AA-2
    cell.value, cell.data_type = "#SPILL!", "e"
    workbook.save(path)
    rows = sources.read_customers(spark, [str(path)]).orderBy(sources.SOURCE_ROW).collect()
    assert [r["phone"] for r in rows] == ["785-624-4866", "#SPILL!"]


def test_discover_sources_takes_the_newest_ingest_date_of_each_dataset(spark, tmp_path):
    for dataset, day, name in [
        ("orders", "2026-01-01", "Orders.json"), ("orders", "2026-01-02", "Orders.json"),
        ("orders", "2026-01-02", "orders_2.json"), ("customers", "2026-01-01", "Customer.xlsx"),
        ("products", "2025-12-31", "Products.csv"), ("products", "2026-01-02", "Products.csv"),
    ]:  # fmt: skip
        folder = tmp_path / "raw" / dataset / f"ingest_date={day}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text("x")
    (tmp_path / "raw" / "_manifests").mkdir()
    (tmp_path / "raw" / "_manifests" / "orders.json").write_text("{}")
    found = sources.discover_sources(spark, str(tmp_path / "raw"), load_config())
    short = {d: ["/".join(p.split("/")[-2:]) for p in paths] for d, paths in found.items()}
    assert short == {
        "orders": ["ingest_date=2026-01-02/Orders.json", "ingest_date=2026-01-02/orders_2.json"],
        "customers": ["ingest_date=2026-01-01/Customer.xlsx"],
        "products": ["ingest_date=2026-01-02/Products.csv"],
    }
