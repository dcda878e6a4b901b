"""Small writers of raw source files in the export's formats, for tests that craft their own input."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from openpyxl import Workbook

from ecom_lakehouse.io.sources import CUSTOMER_FIELDS, ORDER_FIELDS, PRODUCT_FIELDS


def order(row_id: object = 1, **overrides: object) -> dict[str, object]:
    """One valid order line (as the JSON export has it), with overrides by source field name or snake_case."""
    line: dict[str, object] = {
        "Row ID": row_id, "Order ID": "CA-2016-100001", "Order Date": "21/8/2016", "Ship Date": "25/8/2016",
        "Ship Mode": "Standard Class", "Customer ID": "AA-10001", "Product ID": "FUR-CH-10000001",
        "Quantity": 2, "Price": 100.0, "Discount": 0, "Profit": 12.34,
    }  # fmt: skip
    names = {f.lower().replace(" ", "_"): f for f in ORDER_FIELDS}
    for key, value in overrides.items():
        line[names.get(key, key)] = value
    return line


def write_orders_array(path: Path, lines: Sequence[dict[str, object]]) -> Path:
    path.write_text(json.dumps(list(lines), indent=2), encoding="utf-8")
    return path


def write_orders_jsonl(path: Path, lines: Sequence[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return path


def customer(customer_id: object = "AA-10001", name: object = "Aaron Able", **overrides: object) -> list[object]:
    values: dict[str, object] = {
        "Customer ID": customer_id, "Customer Name": name, "email": "a@example.com", "phone": "785-624-4866",
        "address": "1 Main St\nTown, KS 66002", "Segment": "Consumer", "Country": "United States", "City": "Town",
        "State": "Kansas", "Postal Code": 66002, "Region": "Central",
    }  # fmt: skip
    names = {f.lower().replace(" ", "_"): f for f in CUSTOMER_FIELDS}
    for key, value in overrides.items():
        values[names.get(key, key)] = value
    return [values[f] for f in CUSTOMER_FIELDS]


def write_customers(path: Path, rows: Sequence[Sequence[object]], *, sheet: str = "Worksheet") -> Path:
    workbook = Workbook()
    worksheet = workbook.active
    worksheet.title = sheet
    worksheet.append(list(CUSTOMER_FIELDS))
    for row in rows:
        worksheet.append(list(row))
    workbook.save(path)
    return path


def product(product_id: str = "FUR-CH-10000001", name: str = "Chair", price: str = "50", **overrides: str) -> list[str]:
    values = {"Product ID": product_id, "Category": "Furniture", "Sub-Category": "Chairs", "Product Name": name,
              "State": "Kansas", "Price per product": price}  # fmt: skip
    names = {f.lower().replace(" ", "_").replace("-", "_"): f for f in PRODUCT_FIELDS}
    for key, value in overrides.items():
        values[names.get(key, key)] = value
    return [values[f] for f in PRODUCT_FIELDS]


def write_products_text(path: Path, text: str) -> Path:
    path.write_bytes(text.encode("utf-8"))
    return path


def write_products(path: Path, rows: Sequence[Sequence[str]]) -> Path:
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(PRODUCT_FIELDS)
    writer.writerows(rows)
    return write_products_text(path, buffer.getvalue())
