"""The source files' required fields and the report's names: the contracts shared by the pipeline, the DuckDB
reference in ``bench/`` and the tests (no Spark import here)."""

from __future__ import annotations

ORDER_FIELDS = (
    "Row ID", "Order ID", "Order Date", "Ship Date", "Ship Mode", "Customer ID",
    "Product ID", "Quantity", "Price", "Discount", "Profit",
)  # fmt: skip
CUSTOMER_FIELDS = (
    "Customer ID", "Customer Name", "email", "phone", "address", "Segment",
    "Country", "City", "State", "Postal Code", "Region",
)  # fmt: skip
PRODUCT_FIELDS = ("Product ID", "Category", "Sub-Category", "Product Name", "State", "Price per product")
REPORT_NAMES = ("profit_by_year", "profit_by_year_category", "profit_by_customer", "profit_by_customer_year")
