from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from ecom_lakehouse import gold
from ecom_lakehouse.bronze import to_bronze, to_delta_safe_name
from ecom_lakehouse.io import sources
from ecom_lakehouse.quality.expectations import ERRORS, EXPECTATIONS, WARNINGS, filter_quarantined, filter_valid
from ecom_lakehouse.silver import to_quarantine
from ecom_lakehouse.silver.customers import build_customers, checked_customers, pad_postal_code
from ecom_lakehouse.silver.orders import checked_orders, parse_date, select_orders_enriched, to_money
from ecom_lakehouse.silver.products import build_products, checked_products
from tests.helpers import customer, order, product, write_customers, write_orders_array, write_products

RUN_AT = datetime(2026, 1, 1, tzinfo=UTC)


def bronze_orders(spark, tmp_path, lines, name="Orders.json"):
    path = write_orders_array(tmp_path / name, lines)
    return to_bronze(sources.read_orders(spark, [str(path)]), "run-1", RUN_AT)


def bronze_customers(spark, tmp_path, rows):
    path = write_customers(tmp_path / "Customer.xlsx", rows)
    return to_bronze(sources.read_customers(spark, [str(path)]), "run-1", RUN_AT)


def bronze_products(spark, tmp_path, rows):
    path = write_products(tmp_path / "Products.csv", rows)
    return to_bronze(sources.read_products(spark, [str(path)]), "run-1", RUN_AT)


@pytest.mark.parametrize(
    ("name", "safe"),
    [("Row ID", "row_id"), ("Sub-Category", "sub_category"), ("Price per product", "price_per_product"),
     ("email", "email"), ("Postal Code", "postal_code"), (" Ship  Mode ", "ship_mode"),
     ("_source_file", "_source_file")],
)  # fmt: skip
def test_to_delta_safe_name(name, safe):
    assert to_delta_safe_name(name) == safe


def test_bronze_keeps_source_text_and_adds_ingestion_metadata(spark, tmp_path):
    df = bronze_orders(spark, tmp_path, [order(1, discount=0.2, price=573.17)])
    row = df.first()
    assert row.row_id == "1" and row.discount == "0.2" and row.price == "573.17"
    assert row._run_id == "run-1" and row._ingested_at == datetime(2026, 1, 1)
    assert row._source_file.endswith("/Orders.json")


def test_expectation_reason_codes_are_unique_per_dataset():
    keys = [(e.dataset, e.reason) for e in EXPECTATIONS]
    assert len(keys) == len(set(keys))


def test_parse_date_uses_the_exact_export_format(spark):
    df = spark.createDataFrame([("21/8/2016",), ("1/12/2017",), ("01/02/2015",), ("2016-08-21",), ("31/2/2016",),
                                ("8/21/2016",), (None,), ("",)], "raw string")  # fmt: skip
    parsed = [r[0] for r in df.select(parse_date(F.col("raw"))).collect()]
    assert parsed == [date(2016, 8, 21), date(2017, 12, 1), date(2015, 2, 1), None, None, None, None, None]


def test_to_money_rounds_half_up_to_two_decimals_as_decimal(spark):
    df = spark.createDataFrame(
        [("63.685",), ("-0.005",), ("12",), ("1e2",), ("12.5%",), ("abc",), (None,)], "raw string"
    )
    out = df.select(to_money(F.col("raw")).alias("m"))
    assert out.schema["m"].dataType.simpleString() == "decimal(18,2)"
    assert [r.m for r in out.collect()] == [Decimal("63.69"), Decimal("-0.01"), Decimal("12.00"), Decimal("100.00"),
                                            None, None, None]  # fmt: skip


def test_pad_postal_code(spark):
    df = spark.createDataFrame([("5408",), ("05408",), ("98105",), ("12345-6789",), ("",), (None,)], "raw string")
    assert [r[0] for r in df.select(pad_postal_code(F.col("raw"))).collect()] == [
        "05408", "05408", "98105", "12345-6789", None, None,
    ]  # fmt: skip


def test_customers_one_row_per_id_with_repairs_and_flags(spark, tmp_path):
    bronze = bronze_customers(
        spark,
        tmp_path,
        [
            customer("AA-1", "Gary567 Hansen", phone=7185624866, postal_code=5408),
            customer("AA-2", None, phone="#ERROR!"),
            customer("AA-1", "Second Copy"),  # duplicate id: first row kept, this one quarantined
            customer(None, "No Id"),
        ],
    )
    checked = checked_customers(bronze)
    silver = {r.customer_id: r for r in build_customers(checked).collect()}
    assert sorted(silver) == ["AA-1", "AA-2"]
    assert silver["AA-1"].customer_name == "Gary Hansen" and silver["AA-1"].customer_name_raw == "Gary567 Hansen"
    assert silver["AA-1"].is_name_repaired and not silver["AA-1"].is_name_missing
    assert silver["AA-1"].phone == "+17185624866" and silver["AA-1"].postal_code == "05408"
    assert silver["AA-2"].customer_name is None and silver["AA-2"].is_name_missing
    assert silver["AA-2"].phone is None and silver["AA-2"].is_phone_unusable
    assert silver["AA-2"].quality_flags == ["name_missing", "phone_unusable"]
    quarantined = checked.transform(filter_quarantined).transform(to_quarantine("customers")).collect()
    reasons = sorted((r.source_row, tuple(r.reasons)) for r in quarantined)
    assert reasons == [(4, ("customer_id_duplicate",)), (5, ("customer_id_missing",))]
    assert all('"customer_name"' in r.record and r.source_file.endswith("Customer.xlsx") for r in quarantined)


def test_products_collapse_duplicates_deterministically_and_flag_conflicts(spark, tmp_path):
    rows = [
        product("FUR-BO-1", "Sauder Library, Oak", "119.833"),
        product("FUR-BO-1", "DMI Eclipse Bookcase", "400.784"),
        product("OFF-PA-2", "Xerox\u00a01957", "5.184"),
        product("OFF-PA-2", "Xerox\u00a01957", "5.184"),
        product("", "No id", "1"),
        product("TEC-AC-3", "Bad price", "n/a"),
    ]
    forward = build_products(checked_products(bronze_products(spark, tmp_path / "", rows)))
    (tmp_path / "rev").mkdir()
    backward = build_products(checked_products(bronze_products(spark, tmp_path / "rev", rows[::-1])))
    result = {r.product_id: r for r in forward.collect()}
    assert sorted(result) == ["FUR-BO-1", "OFF-PA-2", "TEC-AC-3"]
    assert result["FUR-BO-1"].product_name == "DMI Eclipse Bookcase"  # smallest name wins, whatever the file order
    assert result["FUR-BO-1"].has_conflicting_duplicates and result["FUR-BO-1"].source_rows == 2
    assert result["OFF-PA-2"].product_name == "Xerox 1957" and not result["OFF-PA-2"].has_conflicting_duplicates
    assert result["TEC-AC-3"].unit_price is None and result["TEC-AC-3"].quality_flags == ["unit_price_invalid"]
    assert {(r.product_id, r.product_name) for r in backward.collect()} == {
        (r.product_id, r.product_name) for r in result.values()
    }


@pytest.fixture(scope="module")
def dimensions(spark, tmp_path_factory):
    """Silver customers and products for the order tests, built once (cached) for the module."""
    folder = tmp_path_factory.mktemp("dims")
    customers = build_customers(checked_customers(bronze_customers(spark, folder, [
        customer("AA-10001", "Aaron Able"), customer("BB-2", "Bea Bold"),
    ])))  # fmt: skip
    products = build_products(checked_products(bronze_products(spark, folder, [
        product("FUR-CH-10000001", "Chair", "50"),
        product("FUR-CH-10000001", "Other chair", "60"),  # a duplicate must not multiply the order line
    ])))  # fmt: skip
    return customers.cache(), products.cache()


def test_orders_enriched_keeps_every_line_once_and_labels_unknowns(spark, tmp_path, dimensions):
    customers, products = dimensions
    lines = [
        order(1, profit=63.685, price=300.0, quantity=2),
        order(2, customer_id="ZZ-404"),
        order(3, product_id="OFF-XX-404"),
        order(4, profit=0),
    ]
    checked = checked_orders(bronze_orders(spark, tmp_path, lines), customers, products)
    silver = {r.row_id: r for r in checked.transform(filter_valid).transform(select_orders_enriched).collect()}
    assert sorted(silver) == [1, 2, 3, 4]
    first = silver[1]
    assert (first.order_date, first.ship_date, first.year) == (date(2016, 8, 21), date(2016, 8, 25), 2016)
    assert first.profit == Decimal("63.69") and first.sales == Decimal("300.00") and first.discount == Decimal("0")
    assert (first.customer_name, first.country, first.category, first.sub_category) == (
        "Aaron Able", "United States", "Furniture", "Chairs",
    )  # fmt: skip
    assert first.quality_flags == []
    assert (silver[2].customer_name, silver[2].country, silver[2].is_customer_known) == ("Unknown", "Unknown", False)
    assert silver[2].quality_flags == ["customer_unknown"]
    assert (silver[3].category, silver[3].sub_category, silver[3].is_product_known) == ("Unknown", "Unknown", False)
    assert "product_unknown" in silver[3].quality_flags
    assert "profit_zero_implausible" in silver[4].quality_flags  # a chair sold at no discount makes a profit


QUARANTINE_CASES = [
    (order(None), ["row_id_missing"]),
    (order("7a"), ["row_id_not_integer"]),
    (order(10, order_date="2016-08-21"), ["order_date_invalid"]),
    (order(11, ship_date="32/1/2016"), ["ship_date_invalid"]),
    (order(12, order_date="25/8/2016", ship_date="21/8/2016"), ["ship_before_order"]),
    (order(13, quantity=0), ["quantity_invalid"]),
    (order(14, quantity=-2), ["quantity_invalid"]),
    (order(15, quantity=2.5), ["quantity_invalid"]),
    (order(16, discount=1.5), ["discount_invalid"]),
    (order(17, price="12.5%"), ["price_invalid"]),
    (order(18, profit="12.5%"), ["profit_invalid"]),
    (order(19, profit=None), ["profit_invalid"]),
]


@pytest.fixture(scope="module")
def quarantined_cases(spark, tmp_path_factory, dimensions):
    """Every case of QUARANTINE_CASES in one file beside a good line (distinct Row IDs: the cases cannot interact),
    checked once: the valid row ids and the quarantine records by their raw Row ID."""
    customers, products = dimensions
    folder = tmp_path_factory.mktemp("cases")
    checked = checked_orders(
        bronze_orders(spark, folder, [order(1), *(line for line, _ in QUARANTINE_CASES)]), customers, products
    )
    valid = [r.row_id for r in checked.transform(filter_valid).collect()]
    records = checked.transform(filter_quarantined).transform(to_quarantine("orders")).collect()
    return valid, {json.loads(r.record).get("row_id"): r for r in records}


@pytest.mark.parametrize(("line", "reasons"), QUARANTINE_CASES, ids=[r[0] for _, r in QUARANTINE_CASES])
def test_bad_order_lines_go_to_quarantine_with_their_reason(quarantined_cases, line, reasons):
    valid, by_row_id = quarantined_cases
    assert valid == [1] and len(by_row_id) == len(QUARANTINE_CASES)
    raw_row_id = None if line["Row ID"] is None else str(line["Row ID"])
    record = by_row_id[raw_row_id]
    assert record.reasons == reasons
    assert record.source_file.endswith("/Orders.json") and record.run_id == "run-1"


def test_duplicate_row_ids(spark, tmp_path, dimensions):
    customers, products = dimensions
    lines = [order(1, profit=5), order(1, profit=5), order(2, profit=1), order(2, profit=2), order(3), order(4)]
    checked = checked_orders(bronze_orders(spark, tmp_path, lines), customers, products).cache()
    valid = {r.row_id: r for r in checked.transform(filter_valid).collect()}
    assert sorted(valid) == [1, 3, 4]  # identical copies: one kept; conflicting copies: none trusted
    reasons = sorted((r.row_id, tuple(r[ERRORS])) for r in checked.transform(filter_quarantined).collect())
    assert reasons == [(1, ("row_id_duplicate",)), (2, ("row_id_conflict",)), (2, ("row_id_conflict",))]
    # Row IDs 3 and 4 have identical contents: kept, both flagged
    assert all("duplicate_line_other_row_id" in valid[i][WARNINGS] for i in (3, 4))
    assert "duplicate_line_other_row_id" not in valid[1][WARNINGS]


def test_anomaly_flags_keep_the_line(spark, tmp_path, dimensions):
    customers, products = dimensions
    lines = [order(1, price=100.0, quantity=2, profit=150.0), order(2, price=10000.0, quantity=2)]
    checked = checked_orders(bronze_orders(spark, tmp_path, lines), customers, products)
    flags = {r.row_id: r[WARNINGS] for r in checked.transform(filter_valid).collect()}
    assert "profit_exceeds_sales" in flags[1] and "price_out_of_scale" not in flags[1]  # 100 = 2 x 50
    assert "price_out_of_scale" in flags[2]  # 5,000 a chair listed at 50 and 60: a lost decimal point


def test_malformed_json_record_is_quarantined_with_its_text(spark, tmp_path, dimensions):
    customers, products = dimensions
    path = tmp_path / "orders.jsonl"
    path.write_text('{"Row ID": 1, "Order ID": "A"\n', encoding="utf-8")
    bronze = to_bronze(sources.read_orders(spark, [str(path)]), "run-1", RUN_AT)
    quarantined = checked_orders(bronze, customers, products).transform(filter_quarantined)
    record = quarantined.transform(to_quarantine("orders")).first()
    assert record.reasons[0] == "malformed_record" and '\\"Order ID\\": \\"A\\"' in record.record


def test_gold_aggregates_profit_at_its_grain_as_decimal(spark):
    schema = (
        "year int, category string, sub_category string, customer_id string, customer_name string, "
        "profit decimal(18,2), quality_flags array<string>"
    )
    silver = spark.createDataFrame(
        [(2016, "Furniture", "Chairs", "AA-1", "Ann", Decimal("1.10"), []),
         (2016, "Furniture", "Chairs", "AA-1", "Ann", Decimal("2.25"), ["price_out_of_scale", "customer_unknown"]),
         (2017, "Furniture", "Chairs", "AA-1", "Ann", Decimal("-0.05"), ["product_unknown"]),
         (2016, "Unknown", "Unknown", "AA-1", "Ann", Decimal("5.00"), None)],
        schema,
    )  # fmt: skip
    expected = spark.createDataFrame(
        [(2016, "Furniture", "Chairs", "AA-1", "Ann", Decimal("3.35"), 2, 1, Decimal("2.25")),
         (2016, "Unknown", "Unknown", "AA-1", "Ann", Decimal("5.00"), 1, 0, Decimal("0.00")),
         (2017, "Furniture", "Chairs", "AA-1", "Ann", Decimal("-0.05"), 1, 0, Decimal("0.00"))],
        "year int, category string, sub_category string, customer_id string, customer_name string, "
        "profit decimal(28,2), order_lines long, anomaly_lines long, anomaly_profit decimal(28,2)",
    )  # fmt: skip
    actual = gold.aggregate_profit(silver)
    assert_df_equality(actual, expected, ignore_row_order=True, ignore_nullable=True, ignore_metadata=True)
    assert actual.schema["profit"].metadata["comment"].startswith("Sum of the order lines")


def test_gold_changes_from_silver_change_feed_add_up_to_the_new_aggregate(spark):
    """Pre and post images, inserts and deletes -> the signed sums that turn the old gold into the new one."""
    columns = "year int, category string, sub_category string, customer_id string, customer_name string, " \
        "profit decimal(18,2), quality_flags array<string>, _change_type string"  # fmt: skip
    changes = spark.createDataFrame(
        [(2016, "F", "Chairs", "AA-1", "Ann", Decimal("2.00"), [], "update_preimage"),
         (2016, "F", "Chairs", "AA-1", "Ann", Decimal("2.50"), ["profit_margin_implausible"], "update_postimage"),
         (2016, "F", "Chairs", "AA-1", "Ann", Decimal("1.00"), [], "delete"),
         (2017, "F", "Chairs", "BB-2", "Bea", Decimal("4.00"), [], "insert"),
         (2017, "F", "Chairs", "BB-2", "Bea", Decimal("4.00"), [], "update_preimage"),  # an unchanged rewrite
         (2017, "F", "Chairs", "BB-2", "Bea", Decimal("4.00"), [], "update_postimage")],
        columns,
    )  # fmt: skip
    rows = {r.customer_id: r for r in gold.profit_changes(changes).collect()}
    assert (rows["AA-1"].profit, rows["AA-1"].order_lines) == (Decimal("-0.50"), -1)
    assert (rows["AA-1"].anomaly_lines, rows["AA-1"].anomaly_profit) == (1, Decimal("2.50"))
    assert (rows["BB-2"].profit, rows["BB-2"].order_lines, rows["BB-2"].anomaly_lines) == (Decimal("4.00"), 1, 0)


def test_source_fingerprint_matches_paths_whatever_scheme_spark_reports(spark):
    from ecom_lakehouse.bronze import with_source_fingerprint

    df = spark.createDataFrame(
        [("dbfs:/Volumes/main/raw/in%20box/Orders.json",), ("s3a://bucket/raw/Products.csv",), ("file:/tmp/x.csv",)],
        "_source_file string",
    )
    prints = {"file:/Volumes/main/raw/in%20box/Orders.json": "a1", "s3a://bucket/raw/Products.csv": "b2"}
    assert [r._source_sha256 for r in df.transform(with_source_fingerprint(prints)).collect()] == ["a1", "b2", None]
