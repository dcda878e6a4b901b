"""An incremental run gives, row for row, what checking all of bronze again gives: generated data, then a file with
new lines, corrections, duplicates, conflicts and lines identical to existing ones, then changed dimensions; after
each run, silver orders, the quarantined order lines and gold equal a full recompute from the same bronze."""

from __future__ import annotations

import csv
import json
import shutil

import pytest
from openpyxl import load_workbook

from ecom_lakehouse.config import load_config
from ecom_lakehouse.io.tables import Lakehouse
from ecom_lakehouse.run import steps
from ecom_lakehouse.run.history import latest_run
from ecom_lakehouse.run.lifecycle import run_pipeline
from ecom_lakehouse.run.state import PipelineRun
from ecom_lakehouse.tools.generate import generate_dataset

SCHEMAS = {f"{layer}_schema": f"eq_{layer}" for layer in ("bronze", "silver", "gold")}
FULL_SCHEMAS = {f"{layer}_schema": f"eqfull_{layer}" for layer in ("bronze", "silver", "gold")}


def _table(spark, root, schema, table):
    return spark.read.format("delta").load(str(root / schema / table))


def _assert_equal_to_a_full_recompute(spark, lakehouse, tmp_path, name):
    """Copy the lakehouse's bronze and dimensions, recompute silver orders and gold from all of bronze, compare."""
    full_root = tmp_path / f"full_{name}"
    for schema in ("eq_bronze", "eq_silver", "eq_gold"):
        shutil.copytree(lakehouse.root / schema, full_root / schema.replace("eq_", "eqfull_"))
    full = Lakehouse.open(spark, load_config().with_overrides(**FULL_SCHEMAS), full_root)
    recompute = PipelineRun(full, f"recompute-{name}", full_refresh=True)  # every line checked, every table rebuilt
    steps.build_silver_orders(full, recompute)
    steps.build_gold(full, recompute)
    pairs = [("silver", "orders_enriched", None), ("silver", "quarantine", "dataset = 'orders'"),
             ("gold", "profit_aggregate", None)]  # fmt: skip
    for layer, table, where in pairs:
        incremental = _table(spark, lakehouse.root, f"eq_{layer}", table)
        recomputed = _table(spark, full_root, f"eqfull_{layer}", table)
        if where:
            incremental, recomputed = incremental.where(where), recomputed.where(where)
        recomputed = recomputed.select(*incremental.columns)
        only_incremental = [r.asDict() for r in incremental.exceptAll(recomputed).limit(3).collect()]
        only_recomputed = [r.asDict() for r in recomputed.exceptAll(incremental).limit(3).collect()]
        assert (only_incremental, only_recomputed) == ([], []), f"{table} after {name}: " + _first_difference(
            only_incremental, only_recomputed
        )
        assert incremental.count() == recomputed.count()


def _first_difference(left, right):
    if not left or not right:
        return f"{len(left)} rows only incremental, {len(right)} only recomputed: {(left or right)[:1]}"
    by_key = {r.get("row_id"): r for r in right}
    row = left[0]
    other = by_key.get(row.get("row_id"), right[0])
    return f"row {row.get('row_id')}: " + ", ".join(
        f"{k}: {row[k]!r} != {other.get(k)!r}" for k in row if row[k] != other.get(k)
    )


@pytest.fixture
def source(tmp_path):
    folder = tmp_path / "in"
    generate_dataset(folder, orders=1500, seed=11, bad_orders=8, anomalies=6)
    return folder


def _number(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _corrections_and_new_lines(source):
    lines = json.loads((source / "orders_export.json").read_text(encoding="utf-8"))
    valid = [line for line in lines if str(line["Row ID"]).isdigit() and _number(line["Profit"]) is not None]
    first_new = max(int(line["Row ID"]) for line in valid) + 1
    batch = []
    for i, line in enumerate(valid[:20]):  # corrected lines: profit changed
        batch.append({**line, "Profit": round(_number(line["Profit"]) + 1.25 + i, 2)})
    batch.append({**valid[20], "Order Date": "2016-01-01"})  # a correction that is now invalid: leaves silver
    for i, line in enumerate(valid[30:130]):  # new lines
        batch.append({**line, "Row ID": first_new + i, "Order ID": f"CA-2018-{900000 + i}"})
    for i, line in enumerate(valid[200:205]):  # identical to existing lines, under new Row IDs
        batch.append({**line, "Row ID": first_new + 200 + i})
    twin = {**valid[300], "Row ID": first_new + 300, "Order ID": "CA-2018-990000"}
    batch += [twin, dict(twin)]  # an identical copy in the same file
    clash = {**valid[301], "Row ID": first_new + 301, "Order ID": "CA-2018-990001"}
    batch += [clash, {**clash, "Profit": 999.99}]  # a conflict
    (source / "orders_2018.json").write_text(json.dumps(batch), encoding="utf-8")


def _changed_dimensions(source):
    workbook = load_workbook(source / "customers_export.xlsx")
    sheet = workbook.active
    names = [c.value for c in sheet[1]]
    sheet.cell(row=2, column=names.index("Customer Name") + 1, value="Renamed Customer")
    sheet.cell(row=3, column=names.index("Country") + 1, value="Canada")
    workbook.save(source / "customers_export.xlsx")
    with (source / "products_export.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    header = rows[0]
    rows[1][header.index("Category")] = "Technology"
    rows[2][header.index("Price per product")] = "0.5"
    with (source / "products_export.csv").open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle, lineterminator="\r\n").writerows(rows)


def test_incremental_runs_equal_a_full_recompute(spark, tmp_path, source):
    lakehouse = Lakehouse.open(spark, load_config().with_overrides(**SCHEMAS), tmp_path / "lh")
    run_pipeline(lakehouse, str(source))
    assert latest_run(lakehouse)["incremental"] is False  # the first run builds everything

    _corrections_and_new_lines(source)
    second = run_pipeline(lakehouse, str(source))
    record = latest_run(lakehouse)
    assert record["status"] == "succeeded" and record["incremental"] is True
    assert second.rows["spark_catalog.eq_silver.orders_enriched"] < 200  # only what changed was written
    assert int(record["reconciliation"]["orders.superseded"]) == 21
    _assert_equal_to_a_full_recompute(spark, lakehouse, tmp_path, "lines")

    _changed_dimensions(source)
    run_pipeline(lakehouse, str(source))
    record = latest_run(lakehouse)
    assert record["status"] == "succeeded" and record["incremental"] is True
    assert "silver_dimensions" in record["plan"]
    _assert_equal_to_a_full_recompute(spark, lakehouse, tmp_path, "dimensions")
