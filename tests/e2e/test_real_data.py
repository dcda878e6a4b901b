"""The pipeline on the real assignment dataset (../shared/data/pei), checked against invariants computed here
independently with pandas. Skipped when the dataset is absent."""

from __future__ import annotations

import json
from decimal import ROUND_HALF_UP, Decimal

import pandas as pd
import pytest
from pyspark.sql import functions as F

from ecom_lakehouse.config import load_config
from ecom_lakehouse.io.tables import Lakehouse
from ecom_lakehouse.run.lifecycle import run_pipeline
from ecom_lakehouse.tools.report import run_report

pytestmark = pytest.mark.real_data
SCHEMAS = {"bronze_schema": "pei_bronze", "silver_schema": "pei_silver", "gold_schema": "pei_gold"}


def _money(value: object) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


@pytest.fixture(scope="module")
def source(real_data_dir):
    orders = pd.DataFrame(json.loads((real_data_dir / "Orders.json").read_text(encoding="utf-8")))
    orders["profit"] = orders["Profit"].map(_money)
    orders["year"] = pd.to_datetime(orders["Order Date"], format="%d/%m/%Y").dt.year
    customers = pd.read_excel(real_data_dir / "Customer.xlsx", dtype=str)
    products = pd.read_csv(real_data_dir / "Products.csv", dtype=str)
    return orders, customers, products


@pytest.fixture(scope="module")
def lakehouse(spark, real_data_dir, tmp_path_factory):
    lakehouse = Lakehouse.open(spark, load_config().with_overrides(**SCHEMAS), tmp_path_factory.mktemp("pei"))
    run_pipeline(lakehouse, str(real_data_dir))
    return lakehouse


def test_every_order_line_exactly_once(lakehouse, source):
    orders, _, _ = source
    silver = lakehouse.read("silver", "orders")
    counts = silver.groupBy("row_id").count()
    assert counts.where("count > 1").count() == 0
    assert {r.row_id for r in silver.select("row_id").collect()} == set(orders["Row ID"])
    assert lakehouse.read("silver", "quarantine").where("dataset = 'orders'").count() == 0


def test_total_profit_in_gold_equals_the_source_total(lakehouse, source):
    orders, _, _ = source
    gold_total = lakehouse.read("gold", "profit").agg(F.sum("profit")).first()[0]
    assert gold_total == sum(orders["profit"], Decimal("0")) == Decimal("278417.03")


def test_report_matches_an_independent_computation(spark, lakehouse, source):
    orders, _, _ = source
    report = run_report(spark, lakehouse.config)
    by_year = orders.groupby("year")["profit"].sum().to_dict()
    assert {r["year"]: r["profit"] for r in report["profit_by_year"]} == by_year
    by_customer = report["profit_by_customer"]
    assert len(by_customer) == len({r["customer_id"] for r in by_customer}) == orders["Customer ID"].nunique()
    expected_by_customer = orders.groupby("Customer ID")["profit"].sum().to_dict()
    assert {r["customer_id"]: r["profit"] for r in by_customer} == expected_by_customer
    expected = orders.groupby(["Customer ID", "year"])["profit"].sum().to_dict()
    assert {(r["customer_id"], r["year"]): r["profit"] for r in report["profit_by_customer_year"]} == expected


def test_dimensions_one_row_per_key_and_unknown_products_labelled(lakehouse, source):
    orders, customers, products = source
    assert lakehouse.read("silver", "customers").count() == customers["Customer ID"].nunique() == 793
    assert lakehouse.read("silver", "products").count() == products["Product ID"].nunique() == 1818
    unknown = (~orders["Product ID"].isin(products["Product ID"])).sum()
    silver = lakehouse.read("silver", "orders")
    assert silver.where("category = 'Unknown' AND NOT is_product_known").count() == unknown == 204
    names = {r.customer_name for r in lakehouse.read("silver", "customers").collect()}
    assert {"Gary Hansen", "Helen Wasserman", "Peter Bühler", "Sean O'Donnell", "Dorris liebe"} <= names
    assert not any(ch.isdigit() for name in names if name for ch in name)
