"""Shared fixtures: one local Spark session for the whole suite, and the optional real dataset."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
REAL_DATA = Path(os.environ.get("ECOM_REAL_DATA", REPO_ROOT.parent / "shared" / "data" / "pei"))
SAMPLE_DIR = REPO_ROOT / "src" / "ecom_lakehouse" / "sample"

os.environ.setdefault("ECOM_SHUFFLE_PARTITIONS", "2")
os.environ.setdefault("ECOM_DRIVER_MEMORY", "2g")


@pytest.fixture(scope="session")
def spark() -> Iterator[object]:
    """The one local Spark + Delta session of the test run."""
    from ecom_lakehouse.spark import get_spark

    session = get_spark("ecom-lakehouse-tests")
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    """The shared assignment dataset; tests using it skip when it is absent (a fresh clone does not have it)."""
    if not all((REAL_DATA / name).is_file() for name in ("Orders.json", "Customer.xlsx", "Products.csv")):
        pytest.skip(f"real dataset not found at {REAL_DATA} (set ECOM_REAL_DATA to its folder to run this test)")
    return REAL_DATA
