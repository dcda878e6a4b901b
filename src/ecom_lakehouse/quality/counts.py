"""Records per declared rule in the current tables, recorded with every succeeded run."""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from ecom_lakehouse.io.tables import Lakehouse
from ecom_lakehouse.quality.expectations import EXPECTATIONS


def rule_counts(lakehouse: Lakehouse) -> dict[str, int]:
    """Records per declared rule in the current tables (``dataset.reason`` -> count), zero for rules not hit."""
    counts = {f"{e.dataset}.{e.reason}": 0 for e in EXPECTATIONS}
    frames: list[DataFrame] = [
        lakehouse.read("silver", "quarantine").select("dataset", F.explode("reasons").alias("reason"))
    ]
    for dataset in ("customers", "products", "orders"):
        frames.append(
            lakehouse.read("silver", dataset).select(
                F.lit(dataset).alias("dataset"), F.explode("quality_flags").alias("reason")
            )
        )
    union = frames[0]
    for frame in frames[1:]:
        union = union.unionByName(frame)
    for row in union.groupBy("dataset", "reason").count().collect():
        counts[f"{row.dataset}.{row.reason}"] = row["count"]
    return counts
