"""The value-anomaly rules: each on crafted lines (fires on its case, not on the near miss, nulls judged not
violated), wired through silver, and measured: recall and precision on generated data with injected anomalies,
precision on the real export."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from pyspark.sql import functions as F
from pyspark.sql import types as T

from ecom_lakehouse.bronze import to_bronze
from ecom_lakehouse.io import sources
from ecom_lakehouse.quality.expectations import WARNINGS, anomalies_for, expectations_for, filter_valid
from ecom_lakehouse.silver.customers import build_customers, checked_customers
from ecom_lakehouse.silver.orders import checked_orders
from ecom_lakehouse.silver.products import build_products, checked_products
from ecom_lakehouse.tools.generate import ANOMALY_KINDS, generate_dataset
from tests.helpers import customer, order, product, write_customers, write_orders_array, write_products

RUN_AT = datetime(2026, 1, 1, tzinfo=UTC)
ANOMALY_RULES = [e.reason for e in anomalies_for("orders")]
RULES = {e.reason: e for e in expectations_for("orders")}

LINE_SCHEMA = T.StructType([
    T.StructField("case", T.StringType()),
    T.StructField("sub_category", T.StringType()),
    T.StructField("quantity", T.IntegerType()),
    T.StructField("sales", T.DecimalType(18, 2)),
    T.StructField("discount", T.DecimalType(6, 4)),
    T.StructField("profit", T.DecimalType(18, 2)),
    T.StructField("unit_price_max", T.DecimalType(20, 8)),
])  # fmt: skip


def _line(case, sub_category, quantity, sales, discount, profit, unit_price_max="50"):
    def dec(value):
        return None if value is None else Decimal(value)

    return (case, sub_category, quantity, dec(sales), dec(discount), dec(profit), dec(unit_price_max))


# (case, sub-category, quantity, sales, discount, profit, highest listed price) -> the anomaly rules that fire.
# Paper's cost share band is 0.50-0.55: at discount 0 a 100.00 line may make 45.00-50.00, 44.00-51.00 with the
# 1.00 tolerance; at discount 0.2 the list value is 125.00 and the plausible profit 31.25-37.50.
CASES = [
    (_line("clean", "Paper", 2, "100", "0", "47.50"), []),
    (_line("profit_low_near_miss", "Paper", 2, "100", "0", "44.00"), []),
    (_line("profit_low", "Paper", 2, "100", "0", "43.99"), ["profit_margin_implausible"]),
    (_line("profit_high_near_miss", "Paper", 2, "100", "0", "51.00"), []),
    (_line("profit_high", "Paper", 2, "100", "0", "51.01"), ["profit_margin_implausible"]),
    (_line("discounted_near_miss", "Paper", 2, "100", "0.2", "30.30"), []),
    (_line("discounted_low", "Paper", 2, "100", "0.2", "30.00"), ["profit_margin_implausible"]),
    (_line("profit_x100", "Chairs", 2, "203.52", "0", "5404"), ["profit_margin_implausible", "profit_exceeds_sales"]),
    (_line("loss_x100", "Furnishings", 6, "63.55", "0.6", "-3436"), ["profit_margin_implausible"]),
    (_line("deep_discount_loss", "Binders", 3, "2.00", "0.8", "-3.04"), []),  # 0.8 off: a loss is normal
    (_line("unknown_sub_category_in_any_band", "Unknown", 2, "100", "0", "10.00"), []),
    (_line("unknown_sub_category_off_any_band", "Unknown", 2, "100", "0", "60.00"), ["profit_margin_implausible"]),
    (_line("zero_impossible", "Paper", 2, "100", "0", "0"), ["profit_zero_implausible"]),
    (_line("zero_impossible_labels", "Labels", 6, "29.46", "0", "0"), ["profit_zero_implausible"]),
    (_line("zero_at_cost_storage", "Storage", 3, "501.81", "0", "0"), []),  # Storage goes up to cost share 1.00
    (_line("zero_breaks_even_chairs", "Chairs", 3, "451.15", "0.2", "0"), []),  # cost share 0.80 at 20 % off
    (_line("zero_immaterial", "Paper", 1, "1.50", "0", "0"), []),  # would make 0.68-0.75: within the tolerance
    (_line("price_x100", "Chairs", 2, "8000", "0.2", "8.00"), ["price_out_of_scale"]),  # 8000 / 1.6 = 100 x 50
    (_line("price_limit_near_miss", "Chairs", 2, "1600.00", "0.2", "100.00"), []),  # 1600 / 1.6 = exactly 20 x 50
    (_line("price_limit", "Chairs", 2, "1600.01", "0.2", "100.00"), ["price_out_of_scale"]),
    (_line("price_unlisted_product", "Unknown", 2, "8000", "0.2", "1600.00", None), []),
    (_line("exceeds", "Phones", 1, "100", "0", "100.01"), ["profit_margin_implausible", "profit_exceeds_sales"]),
    (_line("null_profit", "Paper", 2, "100", "0", None), []),
    (_line("null_discount", "Paper", 2, "100", None, "0"), []),
    (_line("null_sales", "Paper", 2, None, "0", "0"), []),
    (_line("null_sub_category", None, 2, "100", "0", "60.00"), ["profit_margin_implausible"]),  # the any band
    (_line("full_discount", "Paper", 2, "0", "1", "-5.00"), []),
    (_line("negative_sales", "Paper", 2, "-100", "0", "0"), ["profit_exceeds_sales"]),  # no margin to judge
]


def test_each_rule_fires_on_its_case_and_not_on_the_near_miss(spark):
    df = spark.createDataFrame([line for line, _ in CASES], LINE_SCHEMA)
    fired = [F.when(F.coalesce(RULES[r].check(), F.lit(False)), F.lit(r)) for r in ANOMALY_RULES]
    rows = df.select("case", F.filter(F.array(*fired), lambda c: c.isNotNull()).alias("fired")).collect()
    assert {r.case: r.fired for r in rows} == {line[0]: rules for line, rules in CASES}


def test_effects_are_the_money_at_stake(spark):
    lines = [
        _line("profit_x100", "Appliances", 3, "203.52", "0", "5404"),  # plausible profit at most 91.58
        _line("zero_impossible", "Paper", 6, "31.10", "0.2", "0"),  # should have made at least 9.72
        _line("price_x100", "Chairs", 2, "8000", "0.2", "8.00"),
    ]
    df = spark.createDataFrame(lines, LINE_SCHEMA)
    effects = {r: RULES[r].effect() for r in ANOMALY_RULES}
    row = {r.case: r for r in df.select("case", *[c.alias(r) for r, c in effects.items()]).collect()}
    assert row["profit_x100"].profit_margin_implausible == Decimal("5312.42")
    assert row["profit_x100"].profit_exceeds_sales == Decimal("5200.48")
    assert row["zero_impossible"].profit_zero_implausible == Decimal("-9.72")
    assert row["price_x100"].price_out_of_scale == Decimal("7920.00")
    assert all(type(getattr(row["profit_x100"], r)) is Decimal for r in ANOMALY_RULES)  # DECIMAL, never a float


def _bronze(spark, reader, paths):
    return to_bronze(reader(spark, [str(p) for p in paths]), "run-1", RUN_AT)


def _flags(spark, orders: list[Path], customers: Path, products: Path) -> dict[int, list[str]]:
    """Row ID -> anomaly flags of every valid line, through bronze and silver as the pipeline builds them."""
    customers_df = build_customers(checked_customers(_bronze(spark, sources.read_customers, [customers])))
    products_df = build_products(checked_products(_bronze(spark, sources.read_products, [products])))
    checked = checked_orders(_bronze(spark, sources.read_orders, orders), customers_df, products_df)
    anomaly = F.filter(WARNINGS, lambda c: c.isin(*ANOMALY_RULES))
    rows = checked.transform(filter_valid).select("row_id", anomaly.alias("flags")).collect()
    return {r.row_id: list(r.flags) for r in rows}


def test_silver_products_keep_the_price_range_and_the_line_is_judged_against_it(spark, tmp_path):
    write_customers(tmp_path / "Customer.xlsx", [customer("AA-10001")])
    write_products(tmp_path / "Products.csv", [
        product("FUR-CH-10000001", "Chair", "50"),
        product("FUR-CH-10000001", "Other chair", "2.5"),  # a conflicting duplicate: the range is 2.5 to 50
    ])  # fmt: skip
    write_orders_array(tmp_path / "Orders.json", [
        order(1, quantity=2, price=80.0, profit=12.0),  # 40 a unit: 16 x the cheapest row, 0.8 x the dearest
        order(2, quantity=2, price=8000.0, profit=12.0),  # 4000 a unit: 80 x the dearest row
        order(3, quantity=2, price=100.0, profit=0),  # Chairs at discount 0: cost share 1.00, above 0.95
    ])  # fmt: skip
    products_df = build_products(checked_products(_bronze(spark, sources.read_products, [tmp_path / "Products.csv"])))
    listed = products_df.select("unit_price", "unit_price_min", "unit_price_max").first()
    assert (listed.unit_price_min, listed.unit_price_max) == (Decimal("2.5"), Decimal("50"))
    flags = _flags(spark, [tmp_path / "Orders.json"], tmp_path / "Customer.xlsx", tmp_path / "Products.csv")
    assert flags == {1: [], 2: ["price_out_of_scale"], 3: ["profit_zero_implausible"]}


def _truth(path: Path) -> dict[int, str]:
    with path.open(encoding="utf-8", newline="") as handle:
        return {int(row["row_id"]): row["kind"] for row in csv.DictReader(handle)}


# Which rule catches each injected kind (a lost decimal point in a profit above the sales is caught by both).
CAUGHT_BY = {
    "price_decimal_lost": "price_out_of_scale",
    "profit_decimal_lost": "profit_margin_implausible",
    "profit_zeroed": "profit_zero_implausible",
}
RECALL_TARGET = 0.95  # of each injected kind, caught by its rule
CLEAN_FLAGGED_LIMIT = 0.005  # share of clean lines carrying any anomaly flag


@pytest.mark.parametrize(("lines", "anomalies", "seed"), [(1_500, 45, 11), (6_000, 180, 12)])
def test_recall_and_precision_on_generated_anomalies(spark, tmp_path, lines, anomalies, seed):
    files = generate_dataset(tmp_path, orders=lines, seed=seed, bad_orders=5, anomalies=anomalies)
    assert files.anomalies is not None and files.anomaly_lines == anomalies
    truth = _truth(files.anomalies)
    flags = _flags(spark, files.orders, files.customers, files.products)
    assert len(flags) == lines - 5  # the defective lines are quarantined; every anomalous line is kept
    for kind in ANOMALY_KINDS:
        injected = [row_id for row_id, k in truth.items() if k == kind]
        caught = [row_id for row_id in injected if CAUGHT_BY[kind] in flags[row_id]]
        assert len(caught) >= RECALL_TARGET * len(injected), (kind, sorted(set(injected) - set(caught)))
    clean_flagged = sorted(row_id for row_id, f in flags.items() if f and row_id not in truth)
    assert len(clean_flagged) <= CLEAN_FLAGGED_LIMIT * (len(flags) - len(truth)), clean_flagged


# The real export, as measured (README "Data quality"): every flagged line judged a true anomaly.
REAL_PRICE_X100 = [*range(4880, 4884), *range(5158, 5166), *range(5235, 5243), *range(6830, 6834)]
REAL_PROFIT_X100 = [896, 3111, 4111, 4395, 4835, 8226, 9686]
REAL_EXPECTED = {
    "price_out_of_scale": REAL_PRICE_X100,  # the 24 prices whose decimal point was lost (x100)
    "profit_margin_implausible": [1, *REAL_PROFIT_X100],  # the 7 profits x100, and Row 1 (discount 0.3 for 0.1)
    "profit_zero_implausible": [6250, 6288, 6340, 6388, 6410],  # zeroed where the sub-category cannot break even
    "profit_exceeds_sales": [3111, 4395, 4835, 8226],  # four of the profits x100
}
REAL_FLAGGED_LIMIT = 0.01  # of the lines carrying any anomaly flag


@pytest.mark.real_data
def test_precision_on_the_real_export(spark, real_data_dir):
    flags = _flags(
        spark, [real_data_dir / "Orders.json"], real_data_dir / "Customer.xlsx", real_data_dir / "Products.csv"
    )
    by_rule = {rule: sorted(row_id for row_id, f in flags.items() if rule in f) for rule in ANOMALY_RULES}
    assert by_rule == REAL_EXPECTED  # a looser rule flags more, a stricter one misses a known error
    flagged = {row_id for row_id, f in flags.items() if f}
    assert len(flagged) == 37 and len(flagged) <= REAL_FLAGGED_LIMIT * len(flags)
    assert set(REAL_PRICE_X100) <= flagged
