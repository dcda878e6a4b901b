from __future__ import annotations

import pytest
from pyspark.sql import functions as F

from ecom_lakehouse.silver.phones import is_phone_usable, normalize_phone, phone_extension

CASES = [
    # raw, E.164, extension
    ("421.580.0902x9815", "+14215800902", "9815"),
    ("001-542-415-0246x314", "+15424150246", "314"),
    ("(563)647-4830x5318", "+15636474830", "5318"),
    ("7185624866", "+17185624866", None),
    ("67435855 3".replace(" ", ""), "+10674358553", None),  # 9 digits: a numeric cell that lost its leading 0
    ("785-624-4866", "+17856244866", None),
    ("+1 785 624 4866", "+17856244866", None),
    ("#ERROR!", None, None),
    ("-6181", None, None),
    ("-618", None, None),
    ("12345", None, None),
    ("call me", None, None),
    ("", None, None),
    (None, None, None),
]


@pytest.fixture(scope="module")
def normalised(spark):
    df = spark.createDataFrame([(raw,) for raw, _, _ in CASES], "raw string")
    rows = df.select(
        "raw",
        normalize_phone(F.col("raw")).alias("phone"),
        phone_extension(F.col("raw")).alias("ext"),
        is_phone_usable(F.col("raw")).alias("usable"),
    ).collect()
    return {r.raw: r for r in rows}


@pytest.mark.parametrize(("raw", "phone", "ext"), CASES)
def test_normalize_phone(normalised, raw, phone, ext):
    row = normalised[raw]
    assert (row.phone, row.ext) == (phone, ext)
    assert row.usable is (phone is not None)
