"""The value-anomaly thresholds, learned once from the real export (9,994 lines; see README "Data quality").

Plain Python, no Spark: the pipeline's rules (``expectations.py``) and the DuckDB reference (``bench/``) read the
same values from here.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

__all__ = ["COST_SHARE_ANY", "COST_SHARE_BANDS", "PRICE_SCALE_LIMIT", "PROFIT_TOLERANCE"]

# A line's list unit price is sales / quantity / (1 - discount). The products file lists each product at its price
# in one state, after that state's discount (up to 80 %), so a clean line's list unit price is at most 5.6 times the
# highest listed price of its product (5 = 1 / (1 - 0.8), the rest is cents rounding on tiny prices); a price whose
# decimal point was lost is 100 to 500 times it. 20 sits between the two, about their geometric middle: 3.5 times
# above the largest clean ratio and 5 times below the smallest wrong one. Comparing with the highest listed price
# means that a product listed twice at very different prices (a conflicting duplicate) never makes a line look wrong.
PRICE_SCALE_LIMIT = Decimal("20")

# Cost share = (sales - profit) / list value, with list value = sales / (1 - discount): the cost of the goods as a
# share of their undiscounted price. In the export it is a property of the product, the same on all its lines
# whatever the discount (median spread 0.0004 between a product's lines), on whole percents from 0.50 to 1.00, and
# each sub-category keeps to a range. These ranges are the smallest and largest product cost share per sub-category,
# each product's cost share being the median over its lines (products with 3 lines or more), so that no single wrong
# line can move them. A median +- k x MAD band does not fit: the cost shares are multi-modal (Phones: 0.50-0.55,
# 0.70-0.75 and 0.95-1.00), so the k that keeps the genuine 1.00 Phones (k = 14) makes Furnishings' band -0.3 to
# 1.6, which catches nothing. A line's margin follows from its cost share: 1 - cost share / (1 - discount).
COST_SHARE_BANDS: Mapping[str, tuple[Decimal, Decimal]] = {
    sub_category: (Decimal(low), Decimal(high))
    for sub_category, low, high in (
        ("Accessories", "0.52", "0.94"), ("Appliances", "0.55", "0.77"), ("Art", "0.50", "0.75"),
        ("Binders", "0.50", "0.55"), ("Bookcases", "0.70", "0.94"), ("Chairs", "0.70", "0.95"),
        ("Copiers", "0.50", "0.70"), ("Envelopes", "0.50", "0.55"), ("Fasteners", "0.50", "1.00"),
        ("Furnishings", "0.50", "0.95"), ("Labels", "0.50", "0.54"), ("Machines", "0.50", "0.74"),
        ("Paper", "0.50", "0.55"), ("Phones", "0.50", "1.00"), ("Storage", "0.70", "1.00"),
        ("Supplies", "0.70", "0.99"), ("Tables", "0.64", "0.94"),
    )
}  # fmt: skip
# Lines of products missing from the products file (sub-category Unknown), or of a sub-category not listed above.
COST_SHARE_ANY: tuple[Decimal, Decimal] = (Decimal("0.50"), Decimal("1.00"))
# A line is judged off its band only when its profit misses the nearest plausible profit by more than this much
# money. The export rounds some profits and prices to whole units (858 integer profits, where cents rounding would
# give about 100), which takes a small line off its band by up to 0.49 without being an error anyone would correct;
# 1.00 is twice that.
PROFIT_TOLERANCE = Decimal("1.00")
