"""Data-quality expectations, declared once, applied by one engine.

Each :class:`Expectation` names a rule, the dataset it applies to, a severity and a reason code. Its check is a
small function returning a boolean Column that is true when a record *violates* the rule (null counts as not
violated). :func:`with_quality_results` adds two array columns, in the dqx style, instead of dropping rows:

- ``_errors``: reason codes of violated ``QUARANTINE`` rules: the record goes to the quarantine table;
- ``_warnings``: reason codes of violated ``FLAG`` rules: the record is kept, and flagged.

Raw source text is in the ``_raw`` struct; typed columns are the silver names (see ``silver/``).

The value-anomaly rules on order lines (``price_out_of_scale``, ``profit_margin_implausible``,
``profit_zero_implausible``, ``profit_exceeds_sales``) judge a line by itself, its product's listing and its
sub-category only, never by other order lines: a line's flags do not depend on which other lines are in the run,
so an incremental run flags a new line exactly as a full rebuild does. Their statistics are the product's listed
prices (``unit_price_max`` of silver products, joined with the product) and constants learned once from the real
export (``thresholds.py``, where each value is explained). They never change a line: finance totals are the same with
or without them.
An anomaly rule also declares its ``effect``: the money the anomaly puts at stake on the line, to rank them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from ecom_lakehouse.quality.thresholds import COST_SHARE_ANY, COST_SHARE_BANDS, PRICE_SCALE_LIMIT, PROFIT_TOLERANCE

ERRORS = "_errors"
WARNINGS = "_warnings"


class Severity(StrEnum):
    """What happens to a record that violates an expectation."""

    QUARANTINE = "quarantine"
    FLAG = "flag"


@dataclass(frozen=True)
class Expectation:
    """One data-quality rule."""

    dataset: str
    reason: str
    severity: Severity
    check: Callable[[], Column]
    description: str
    preempts: bool = False  # when violated, the record's other rules are not reported (they cannot be judged)
    # Value-anomaly rules: the money the anomaly puts at stake on a flagged line (DECIMAL, signed), to rank them.
    effect: Callable[[], Column] | None = None


def _raw(name: str) -> Column:
    return F.col(f"_raw.`{name}`")


def _blank(column: Column) -> Column:
    return column.isNull() | (F.trim(column) == "")


def _present_but_untyped(raw: str, typed: str) -> Column:
    return ~_blank(_raw(raw)) & F.col(typed).isNull()


def _band(index: int) -> Column:
    """The low (0) or high (1) end of the line's sub-category cost share band (DECIMAL(3,2)): one map literal."""
    entries = [(F.lit(name), F.lit(bounds[index]).cast("decimal(3,2)")) for name, bounds in COST_SHARE_BANDS.items()]
    by_sub_category = F.create_map(*[part for entry in entries for part in entry])
    return F.coalesce(by_sub_category[F.col("sub_category")], F.lit(COST_SHARE_ANY[index]).cast("decimal(3,2)"))


def _judgeable() -> Column:
    # A margin needs a positive sales amount and a discount below 100 %.
    return (F.col("sales") > 0) & (F.col("discount") >= 0) & (F.col("discount") < 1)


def _price_out_of_scale() -> Column:
    # sales / quantity / (1 - discount) > limit x highest listed price, multiplied out: exact DECIMAL, no division.
    list_units = F.col("quantity") * (F.lit(1) - F.col("discount"))
    return (
        (F.col("quantity") > 0)
        & _judgeable()
        & (F.col("sales") > F.lit(PRICE_SCALE_LIMIT) * list_units * F.col("unit_price_max"))
    )


def _profit_off_band() -> Column:
    # The profit misses [sales - high x list value, sales - low x list value] by more than the tolerance, with list
    # value = sales / (1 - discount); multiplied out by (1 - discount) > 0, so exact DECIMAL and no division. A line
    # whose price is out of scale is not judged: its margin is computed from a wrong sales amount.
    net = F.lit(1) - F.col("discount")
    cost = F.col("sales") - F.col("profit")
    tolerance = F.lit(PROFIT_TOLERANCE)
    too_low = (cost - tolerance) * net > _band(1) * F.col("sales")
    too_high = (cost + tolerance) * net < _band(0) * F.col("sales")
    return _judgeable() & (too_low | too_high) & ~F.coalesce(_price_out_of_scale(), F.lit(False))


def _profit_beyond_band() -> Column:
    """Signed distance from the profit to the nearest profit the line's sub-category makes plausible (DECIMAL)."""
    list_value = F.col("sales") / (F.lit(1) - F.col("discount"))
    lowest = F.col("sales") - _band(1) * list_value
    highest = F.col("sales") - _band(0) * list_value
    return F.round(F.col("profit") - F.greatest(F.least(F.col("profit"), highest), lowest), 2)


Q, W = Severity.QUARANTINE, Severity.FLAG

EXPECTATIONS: tuple[Expectation, ...] = (
    # orders: record structure and line key
    Expectation("orders", "malformed_record", Q, lambda: F.col("_raw._corrupt_record").isNotNull(),
                "the JSON record could not be parsed", preempts=True),
    Expectation("orders", "row_id_missing", Q, lambda: _blank(_raw("row_id")), "Row ID is empty"),
    Expectation("orders", "row_id_not_integer", Q, lambda: _present_but_untyped("row_id", "row_id"),
                "Row ID is not an integer"),
    Expectation("orders", "row_id_duplicate", Q,
                lambda: (F.col("_row_id_variants") == 1) & (F.col("_row_id_rank") > 1),
                "an identical copy of a line already read (only the first copy is kept)"),
    Expectation("orders", "row_id_conflict", Q, lambda: F.col("_row_id_variants") > 1,
                "the same Row ID carries different contents; no copy can be trusted"),
    # orders: fields
    Expectation("orders", "order_date_invalid", Q, lambda: F.col("order_date").isNull(),
                "Order Date is missing or not d/M/yyyy"),
    Expectation("orders", "ship_date_invalid", Q, lambda: F.col("ship_date").isNull(),
                "Ship Date is missing or not d/M/yyyy"),
    Expectation("orders", "ship_before_order", Q, lambda: F.col("ship_date") < F.col("order_date"),
                "Ship Date is before Order Date"),
    Expectation("orders", "quantity_invalid", Q, lambda: F.coalesce(F.col("quantity") <= 0, F.lit(True)),
                "Quantity is not a positive integer"),
    Expectation("orders", "discount_invalid", Q,
                lambda: F.coalesce(~F.col("discount").between(0, 1), F.lit(True)),
                "Discount is not a number in [0, 1]"),
    Expectation("orders", "price_invalid", Q, lambda: F.col("sales").isNull(), "Price is missing or not a number"),
    Expectation("orders", "profit_invalid", Q, lambda: F.col("profit").isNull(), "Profit is missing or not a number"),
    # orders: kept and flagged
    Expectation("orders", "customer_unknown", W, lambda: ~F.col("is_customer_known"),
                "Customer ID not in the customers source; labelled Unknown"),
    Expectation("orders", "product_unknown", W, lambda: ~F.col("is_product_known"),
                "Product ID not in the products source; labelled Unknown"),
    # orders: value anomalies, kept and flagged (a line's own values, its product's listing, constants)
    Expectation("orders", "price_out_of_scale", W, _price_out_of_scale,
                "unit price (sales / quantity / (1 - discount)) over 20 x the product's highest listed price: "
                "a lost decimal point", effect=lambda: F.round(F.col("sales") * Decimal("0.99"), 2)),
    Expectation("orders", "profit_margin_implausible", W, lambda: (F.col("profit") != 0) & _profit_off_band(),
                "cost share (sales - profit) x (1 - discount) / sales outside the sub-category's range by more "
                "than 1.00 of profit", effect=_profit_beyond_band),
    Expectation("orders", "profit_zero_implausible", W, lambda: (F.col("profit") == 0) & _profit_off_band(),
                "zero profit at a discount where no product of the sub-category breaks even (by more than 1.00)",
                effect=_profit_beyond_band),
    Expectation("orders", "profit_exceeds_sales", W, lambda: F.col("profit") > F.col("sales"),
                "profit is larger than the line's sales amount",
                effect=lambda: F.col("profit") - F.col("sales")),
    Expectation("orders", "duplicate_line_other_row_id", W, lambda: F.col("_same_content_lines") > 1,
                "an identical line exists under another Row ID"),
    # customers
    Expectation("customers", "customer_id_missing", Q, lambda: F.col("customer_id").isNull(), "Customer ID is empty"),
    Expectation("customers", "customer_id_duplicate", Q, lambda: F.col("_id_rank") > 1,
                "Customer ID already seen on an earlier row (the first row is kept)"),
    Expectation("customers", "name_missing", W, lambda: F.col("customer_name").isNull(),
                "no usable name; reported as Unknown"),
    Expectation("customers", "phone_unusable", W, lambda: ~_blank(_raw("phone")) & F.col("phone").isNull(),
                "phone is not a usable number; set to null"),
    # products
    Expectation("products", "malformed_record", Q, lambda: F.col("_raw._corrupt_record").isNotNull(),
                "the CSV record could not be parsed", preempts=True),
    Expectation("products", "product_id_missing", Q, lambda: F.col("product_id").isNull(), "Product ID is empty"),
    Expectation("products", "unit_price_invalid", W, lambda: F.col("unit_price").isNull(),
                "Price per product is missing or not a number"),
)  # fmt: skip


def expectations_for(dataset: str) -> list[Expectation]:
    """The declared expectations of one dataset, in declaration order."""
    return [e for e in EXPECTATIONS if e.dataset == dataset]


def anomalies_for(dataset: str) -> list[Expectation]:
    """The dataset's value-anomaly rules: the flags that declare an ``effect``, in declaration order."""
    return [e for e in expectations_for(dataset) if e.effect is not None]


def _reasons(expectations: list[Expectation]) -> Column:
    codes = [F.when(F.coalesce(e.check(), F.lit(False)), F.lit(e.reason)) for e in expectations]
    return F.filter(F.array(*codes), lambda c: c.isNotNull()) if codes else F.array().cast("array<string>")


def with_quality_results(dataset: str) -> Callable[[DataFrame], DataFrame]:
    """Curried transform adding ``_errors`` and ``_warnings`` for the dataset's expectations.

    Args:
        dataset: ``orders``, ``customers`` or ``products``.

    Returns:
        A ``DataFrame -> DataFrame`` function for ``df.transform``.
    """
    rules = expectations_for(dataset)

    def transform(df: DataFrame) -> DataFrame:
        errors = _reasons([e for e in rules if e.severity is Q])
        warnings = _reasons([e for e in rules if e.severity is W])
        for rule in (e for e in rules if e.preempts):
            fired = F.coalesce(rule.check(), F.lit(False))
            errors = F.when(fired, F.array(F.lit(rule.reason))).otherwise(errors)
            warnings = F.when(fired, F.array().cast("array<string>")).otherwise(warnings)
        return df.withColumn(ERRORS, errors).withColumn(WARNINGS, warnings)

    return transform


def filter_valid(df: DataFrame) -> DataFrame:
    """Rows that violate no quarantine rule."""
    return df.where(F.size(ERRORS) == 0)


def filter_quarantined(df: DataFrame) -> DataFrame:
    """Rows that violate at least one quarantine rule."""
    return df.where(F.size(ERRORS) > 0)
