"""The data-quality report ``ecom quality`` prints: one run's record from ``pipeline_runs`` and the value anomalies of
the current order lines, as text; and the summary ``ecom run`` ends with."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ecom_lakehouse.quality.expectations import EXPECTATIONS

if TYPE_CHECKING:
    from ecom_lakehouse.io.tables import Lakehouse


def quality_report(run: dict) -> str:
    """Plain-text data-quality report of one run."""
    by_key = {f"{e.dataset}.{e.reason}": e for e in EXPECTATIONS}
    lines = [
        f"run {run['run_id']}: {run['status']}" + (" (full refresh)" if run.get("full_refresh") else ""),
        f"  started {run['started_at']}, ended {run.get('ended_at') or '-'}, input {run.get('input_path') or '-'}",
    ]
    if run.get("error"):
        lines.append(f"  error in step {run.get('step') or '-'}: {run['error']}")
    if run.get("seconds"):
        lines.append("  seconds per step: " + ", ".join(f"{k} {v:.1f}" for k, v in run["seconds"].items()))
    lines += ["", "rows written per table:"]
    lines += [f"  {table:<55} {rows:>10}" for table, rows in sorted((run.get("rows") or {}).items())]
    lines += ["", "reconciliation:"]
    lines += [f"  {k:<55} {v:>10}" for k, v in sorted((run.get("reconciliation") or {}).items())]
    lines += ["", f"  {'rule':<40} {'severity':<10} {'records':>8}  description"]
    for key, count in sorted((run.get("rule_counts") or {}).items()):
        rule = by_key.get(key)
        severity, description = (rule.severity.value, rule.description) if rule else ("?", "")
        lines.append(f"  {key:<40} {severity:<10} {count:>8}  {description}")
    return "\n".join(lines) + "\n"


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{key} {n:,}" for key, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def run_summary(run: dict, wall_seconds: float) -> list[str]:
    """The few lines ``ecom run`` ends with: the outcome, rows per table, quarantined and flagged records by
    reason, and the reconciliation."""
    lines = [f"run {run['run_id']}: {run['status']} in {wall_seconds:.1f} s"]
    if run["status"] == "unchanged":
        return [*lines, "  nothing new in the input: every table is as the previous run left it"]
    by_schema: dict[str, list[str]] = {}
    for table, n in (run.get("rows") or {}).items():
        schema, name = table.split(".")[-2:]
        by_schema.setdefault(schema, []).append(f"{name} {n:,}")
    lines += [f"  rows written to {schema}: {', '.join(parts)}" for schema, parts in by_schema.items()]
    severity = {f"{e.dataset}.{e.reason}": e.severity.value for e in EXPECTATIONS}
    counts = {k: n for k, n in (run.get("rule_counts") or {}).items() if n}
    quarantined = {k: n for k, n in counts.items() if severity.get(k) == "quarantine"}
    flagged = {k: n for k, n in counts.items() if severity.get(k) != "quarantine"}
    lines.append(f"  quarantined by reason: {_counts(quarantined) or 'none'}")
    lines.append(f"  kept and flagged: {_counts(flagged) or 'none'}")
    figures = run.get("reconciliation") or {}
    if figures:
        f = figures.get
        lines.append(
            f"  reconciliation ok: order lines {f('orders.bronze')} = {f('orders.silver')} in silver + "
            f"{f('orders.quarantined')} quarantined + {f('orders.superseded')} superseded; "
            f"profit {f('profit.silver')} in silver = gold"
        )
    return lines


TOP_ANOMALIES = 10
_LINE_COLUMNS = ("row_id", "year", "customer_id", "product_id", "sub_category", "quantity", "sales", "discount",
                 "profit")  # fmt: skip


def anomaly_report(lakehouse: Lakehouse) -> str:
    """The value-anomaly rules on the current silver order lines: per rule, the lines it flags, the money at stake
    (its ``effect``), the profit those lines carry per year, and the lines with the largest effect."""
    from pyspark.sql import functions as F

    from ecom_lakehouse.quality.expectations import anomalies_for

    orders = lakehouse.read("silver", "orders")
    lines = ["", "value anomalies (kept and counted in every total; the lines an analyst should check):"]
    for rule in anomalies_for("orders"):
        flagged = orders.where(F.array_contains("quality_flags", rule.reason)).withColumn("effect", rule.effect())
        per_year = flagged.groupBy("year").agg(F.count(F.lit(1)).alias("n"), F.sum("profit").alias("profit"))
        years = sorted(per_year.collect(), key=lambda r: r["year"])
        total = sum(r["n"] for r in years)
        lines.append(f"  {rule.reason}: {total:,} lines. {rule.description}")
        if not total:
            continue
        lines.append(
            "    profit they carry, per year: " + ", ".join(f"{r['year']} {r['profit']} ({r['n']})" for r in years)
        )
        top = flagged.orderBy(F.abs("effect").desc(), "row_id").limit(TOP_ANOMALIES).select(*_LINE_COLUMNS, "effect")
        rows = [r.asDict() for r in top.collect()]
        header = "  ".join(f"{c:>12}" for c in (*_LINE_COLUMNS, "effect"))
        lines += [f"    {header}"] + ["    " + "  ".join(f"{_text(r[c]):>12}" for c in r) for r in rows]
    return "\n".join(lines) + "\n"


def _text(value: object) -> str:
    return "" if value is None else str(value)
