"""Orders reach bronze through the stream (Spark's file source locally, Auto Loader on Databricks) with a checkpoint,
and keep every guarantee the file ledger gave: each file exactly once when a run dies midway, a re-upload of the same
content not twice, a run with nothing new unchanged, a full refresh starting over with a new checkpoint, and a
lakehouse built before the stream upgraded without re-ingesting what it holds. The stream and the exactly-once
recovery run again in classic mode (an in-process JVM: the stream's Python side differs)."""

from __future__ import annotations

import shutil

import pytest

from ecom_lakehouse.config import load_config
from ecom_lakehouse.io import arrivals, sources
from ecom_lakehouse.io.tables import Lakehouse
from ecom_lakehouse.run import lifecycle
from ecom_lakehouse.run.history import latest_run
from ecom_lakehouse.run.lifecycle import run_pipeline
from tests.helpers import customer, order, product, write_customers, write_orders_array, write_products


@pytest.fixture
def lakehouse(spark, tmp_path):
    return Lakehouse.open(spark, load_config(), tmp_path / "lh")


def _upload(root, day, lines, name="Orders.json"):
    """The uploader's layout: <dataset>/ingest_date=YYYY-MM-DD/<file>."""
    folder = root / "orders" / f"ingest_date={day}"
    folder.mkdir(parents=True, exist_ok=True)
    return write_orders_array(folder / name, lines)


@pytest.fixture
def raw(tmp_path):
    root = tmp_path / "raw"
    _upload(root, "2026-12-01", [order(1, profit=10), order(2, profit=20)])
    for dataset in ("customers", "products"):
        (root / dataset / "ingest_date=2026-12-01").mkdir(parents=True)
    write_customers(root / "customers" / "ingest_date=2026-12-01" / "Customers.xlsx", [customer("AA-10001")])
    write_products(root / "products" / "ingest_date=2026-12-01" / "Products.csv", [product("FUR-CH-10000001")])
    return root


def _log(lakehouse):
    return sorted(
        (r.path.rsplit("/raw/", 1)[1], r.event, r.reason or "")
        for r in lakehouse.read("bronze", "files").collect()
    )  # fmt: skip


def _bronze_lines(lakehouse):
    return sorted(
        (int(r.row_id), r._source_file.rsplit("/raw/", 1)[1]) for r in lakehouse.read("bronze", "orders").collect()
    )


@pytest.mark.classic
def test_orders_arrive_through_the_stream_and_its_checkpoint(lakehouse, raw):
    run = run_pipeline(lakehouse, str(raw))
    assert run.checkpoint == str(lakehouse.root / "_checkpoints" / "ecom_bronze.orders_files" / "initial")
    offsets = sorted(
        p.name for p in (lakehouse.root / "_checkpoints/ecom_bronze.orders_files/initial/offsets").glob("[0-9]*")
    )
    assert offsets == ["0"]  # the stream committed one batch
    assert _log(lakehouse) == [("orders/ingest_date=2026-12-01/Orders.json", "arrived", "")]
    assert _bronze_lines(lakehouse) == [(1, "orders/ingest_date=2026-12-01/Orders.json"),
                                        (2, "orders/ingest_date=2026-12-01/Orders.json")]  # fmt: skip
    assert latest_run(lakehouse)["checkpoint"] == run.checkpoint

    again = run_pipeline(lakehouse, str(raw))  # nothing new: the stream finds nothing, no table changes
    assert latest_run(lakehouse)["status"] == "unchanged" and again.changed == set()
    assert len(_log(lakehouse)) == 1


def test_a_reupload_of_the_same_content_is_not_ingested_twice(lakehouse, raw):
    run_pipeline(lakehouse, str(raw))
    shutil.copytree(raw / "orders" / "ingest_date=2026-12-01", raw / "orders" / "ingest_date=2026-12-02")
    run_pipeline(lakehouse, str(raw))
    assert latest_run(lakehouse)["status"] == "unchanged"
    assert len(_bronze_lines(lakehouse)) == 2
    first = f"file:{raw}/orders/ingest_date=2026-12-01/Orders.json"
    assert ("orders/ingest_date=2026-12-02/Orders.json", "skipped",
            f"duplicate: the same content was ingested as {first}") in _log(lakehouse)  # fmt: skip

    run_pipeline(lakehouse, str(raw))  # a skipped file is not looked at again
    assert [e for e in _log(lakehouse) if e[1] == "skipped"] == [e for e in _log(lakehouse) if e[1] == "skipped"][:1]


def test_a_newer_upload_supersedes_and_an_older_one_arriving_late_is_skipped(lakehouse, raw):
    run_pipeline(lakehouse, str(raw))
    _upload(raw, "2026-12-03", [order(1, profit=10), order(2, profit=25)])  # a re-issued export, line 2 corrected
    _upload(raw, "2026-12-02", [order(2, profit=99)])  # an older upload arriving with it: never read
    run_pipeline(lakehouse, str(raw))
    profits = {r.row_id: str(r.profit) for r in lakehouse.read("silver", "orders").collect()}
    assert profits == {1: "10.00", 2: "25.00"}
    assert ("orders/ingest_date=2026-12-02/Orders.json", "skipped",
            "superseded: a newer upload (ingest_date=2026-12-03) arrived with it") in _log(lakehouse)  # fmt: skip

    _upload(raw, "2026-12-02", [order(3, profit=30)], name="orders_late.json")  # late, older than bronze's newest
    run_pipeline(lakehouse, str(raw))
    assert latest_run(lakehouse)["status"] == "unchanged"
    assert ("orders/ingest_date=2026-12-02/orders_late.json", "skipped",
            "superseded: bronze holds the newer upload of ingest_date=2026-12-03") in _log(lakehouse)  # fmt: skip


@pytest.mark.classic
def test_a_file_is_ingested_once_when_the_run_dies_after_the_stream(lakehouse, raw, monkeypatch):
    def die(*args, **kwargs):
        raise RuntimeError("killed after the stream committed, before bronze")

    monkeypatch.setattr(sources, "read_orders", die)
    with pytest.raises(RuntimeError, match="killed after the stream"):
        run_pipeline(lakehouse, str(raw))
    assert _log(lakehouse) == [("orders/ingest_date=2026-12-01/Orders.json", "arrived", "")]
    assert not lakehouse.exists("bronze", "orders")
    monkeypatch.undo()
    run_pipeline(lakehouse, str(raw))  # the file the dead run found is pending: read now, once
    assert [r for r, _ in _bronze_lines(lakehouse)] == [1, 2]
    assert latest_run(lakehouse)["status"] == "succeeded"


def test_a_file_is_ingested_once_when_the_run_dies_after_bronze(lakehouse, raw, monkeypatch):
    def die(run):
        raise RuntimeError("killed after bronze, before silver")

    monkeypatch.setattr(lifecycle, "_plan_after_bronze", die)
    with pytest.raises(RuntimeError, match="killed after bronze"):
        run_pipeline(lakehouse, str(raw))
    assert [r for r, _ in _bronze_lines(lakehouse)] == [1, 2]
    monkeypatch.undo()
    run_pipeline(lakehouse, str(raw))
    assert [r for r, _ in _bronze_lines(lakehouse)] == [1, 2]  # not ingested again
    assert lakehouse.read("silver", "orders").count() == 2
    statuses = [r.status for r in lakehouse.read("silver", "runs").orderBy("recorded_at").collect()]
    assert statuses == ["running", "failed", "running", "succeeded"]


def test_full_refresh_starts_the_stream_over_with_a_new_checkpoint(lakehouse, raw):
    first = run_pipeline(lakehouse, str(raw))
    refresh = run_pipeline(lakehouse, str(raw), full_refresh=True)
    assert refresh.checkpoint == first.checkpoint.replace("/initial", f"/{refresh.run_id}")
    assert (lakehouse.root / "_checkpoints" / "ecom_bronze.orders_files" / refresh.run_id / "offsets" / "0").is_file()
    assert len(_bronze_lines(lakehouse)) == 2 and _log(lakehouse) == [
        ("orders/ingest_date=2026-12-01/Orders.json", "arrived", "")
    ]
    later = run_pipeline(lakehouse, str(raw))  # later runs keep the full refresh's checkpoint
    assert later.checkpoint == refresh.checkpoint and latest_run(lakehouse)["status"] == "unchanged"


def test_a_lakehouse_built_before_the_stream_is_upgraded_without_reingesting(lakehouse, raw, caplog):
    run_pipeline(lakehouse, str(raw))
    # As the previous version left it: no arrival log, no checkpoint, runs without one.
    shutil.rmtree(lakehouse.root / "ecom_bronze" / "orders_files")
    shutil.rmtree(lakehouse.root / "_checkpoints")
    runs = lakehouse.read("silver", "runs").drop("checkpoint")
    lakehouse.overwrite(lakehouse.spark.createDataFrame(runs.collect(), runs.schema), "silver", "runs")
    _upload(raw, "2026-11-30", [order(7, profit=70)])  # an older upload the previous version never read

    with caplog.at_level("INFO", logger="ecom_lakehouse"):
        run_pipeline(lakehouse, str(raw))
    assert latest_run(lakehouse)["status"] == "unchanged"
    assert [r for r, _ in _bronze_lines(lakehouse)] == [1, 2]
    assert any("the orders stream starts now; the 1 files bronze holds are not read again, 1 older or duplicate "
               "files are skipped" in m for m in caplog.messages)  # fmt: skip


def test_decide_keeps_one_upload_and_says_why_it_skips_the_rest():
    from datetime import datetime

    def arrival(path):
        return arrivals.Arrival(path, 1, datetime(2026, 12, 1))

    held = {"file:/raw/orders/ingest_date=2026-12-02/a.json": "h1"}
    files = (("2026-12-03", "b.json"), ("2026-12-03", "c.json"), ("2026-12-03", "d.json"), ("2026-12-01", "e.json"))
    pending = [arrival(f"file:/raw/orders/ingest_date={day}/{name}") for day, name in files]
    keep, skipped = arrivals.decide(
        pending, {a.path: sha for a, sha in zip(pending, ["h2", "h1", "h2", "h3"], strict=True)}, held
    )
    assert [a.path.rsplit("/", 1)[1] for a in keep] == ["b.json"]
    assert [(a.path.rsplit("/", 1)[1], why.split(":")[0]) for a, why in skipped] == [
        ("c.json", "duplicate"), ("d.json", "duplicate"), ("e.json", "superseded"),
    ]  # fmt: skip
    flat = [arrival("file:/raw/orders.json"), arrival("file:/raw/orders_2.json")]
    assert arrivals.decide(flat, {flat[0].path: "x", flat[1].path: "y"}, {})[0] == flat  # no uploads: all new files


def test_files_with_spaces_plus_and_equals_signs_in_their_paths_are_matched_to_their_hash(lakehouse, raw):
    """Spark percent-encodes a space in _metadata.file_path, Python's as_uri also '=': the ledger matches them."""
    shutil.rmtree(raw / "orders")
    _upload(raw, "2026-12-01", [order(1, profit=10)], name="orders 2026+q4.json")
    run_pipeline(lakehouse, str(raw))
    hashes = {r._source_sha256 for r in lakehouse.read("bronze", "orders").collect()}
    assert None not in hashes and len(hashes) == 1
    assert None not in {r._source_sha256 for r in lakehouse.read("bronze", "products").collect()}
    run_pipeline(lakehouse, str(raw))
    assert latest_run(lakehouse)["status"] == "unchanged"
