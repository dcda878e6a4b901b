"""Shared fixtures: one Spark session for the whole suite, and the optional real dataset.

The session is a client of the warm local Spark server (the default mode), which every ``ecom`` subprocess a test
starts shares; ``ECOM_SPARK_MODE=classic`` runs the tests marked ``classic`` again on an in-process JVM. The suite's
server has a home of its own, so it never replaces or stops a developer's server (``.ci/run`` stops it at the end).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pandas as pd
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
REAL_DATA = Path(os.environ.get("ECOM_REAL_DATA", REPO_ROOT.parent / "shared" / "data" / "pei"))
SAMPLE_DIR = REPO_ROOT / "src" / "ecom_lakehouse" / "sample"

os.environ.setdefault("ECOM_SHUFFLE_PARTITIONS", "2")
os.environ.setdefault("ECOM_DRIVER_MEMORY", "2g")
os.environ.setdefault("ECOM_SERVER_HOME", str(Path.home() / ".cache" / "ecom-lakehouse" / "test-server"))


@pytest.fixture(scope="session")
def spark() -> Iterator[object]:
    """The one Spark + Delta session of the test run (a client of the warm server, or classic in-process)."""
    from ecom_lakehouse.spark import get_spark, stop_sessions

    session = get_spark("ecom-lakehouse-tests")
    yield session
    stop_sessions()


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    """The shared assignment dataset; tests using it skip when it is absent (a fresh clone does not have it)."""
    if not all((REAL_DATA / name).is_file() for name in ("Orders.json", "Customer.xlsx", "Products.csv")):
        pytest.skip(f"real dataset not found at {REAL_DATA} (set ECOM_REAL_DATA to its folder to run this test)")
    return REAL_DATA


def _decimal(value: object) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


@pytest.fixture(scope="session")
def expected_report() -> dict[str, dict]:
    """The four aggregates computed independently with pandas from the raw sample files."""
    orders = pd.DataFrame(json.loads((SAMPLE_DIR / "orders_export.json").read_text()))
    profit = pd.to_numeric(orders["Profit"], errors="coerce")
    order_date = pd.to_datetime(orders["Order Date"], format="%d/%m/%Y", errors="coerce")
    ship_date = pd.to_datetime(orders["Ship Date"], format="%d/%m/%Y", errors="coerce")
    quantity = pd.to_numeric(orders["Quantity"], errors="coerce")
    discount = pd.to_numeric(orders["Discount"], errors="coerce")
    row_id = pd.to_numeric(orders["Row ID"], errors="coerce")
    valid = (profit.notna() & order_date.notna() & ship_date.notna() & (ship_date >= order_date) & (quantity > 0)
             & (quantity == quantity.round()) & discount.between(0, 1) & row_id.notna())  # fmt: skip
    good = orders[valid].assign(year=order_date[valid].dt.year, profit=profit[valid].map(_decimal))
    products = pd.read_csv(SAMPLE_DIR / "products_export.csv", dtype=str).drop_duplicates("Product ID")
    good = good.merge(products[["Product ID", "Category"]], on="Product ID", how="left").fillna({"Category": "Unknown"})
    return {
        "lines": int(valid.sum()),
        "quarantined": int((~valid).sum()),
        "by_year": good.groupby("year")["profit"].sum().to_dict(),
        "by_year_category": good.groupby(["year", "Category"])["profit"].sum().to_dict(),
        "by_customer": good.groupby("Customer ID")["profit"].sum().to_dict(),
        "by_customer_year": good.groupby(["Customer ID", "year"])["profit"].sum().to_dict(),
    }
