"""Synthetic raw data in exactly the three source formats of the real export, reproducible by seed.

The generator writes the same three files the source system exports, with the same layout and the same
quirks, so that the bronze/silver pipeline can be exercised at any size without the real data:

* ``orders_export.json`` -- one pretty-printed JSON array (2-space indent, no trailing newline), one object per order
  line with the keys ``Row ID, Order ID, Order Date, Ship Date, Ship Mode, Customer ID, Product ID, Quantity,
  Price, Discount, Profit`` in that order. Dates are ``d/M/yyyy`` without zero padding, ``Price`` is the line's
  sales amount, ``Discount`` is the integer ``0`` when there is no discount and a float otherwise, ``Profit``
  can be negative and follows the real export's economics: each product has a fixed cost share of its list price,
  in its sub-category's range, so profit = sales - cost share x list price x quantity (some lines make exactly
  zero, as in the real data). Lines of one order share Order ID, dates, ship mode and customer and are scattered through
  the file. Above ``jsonl_threshold`` lines the orders go to JSON Lines files ``orders_part-00000.jsonl``, ...
  instead (one ``json.dumps`` object per line, at most ``lines_per_file`` lines per file).
* ``customers_export.xlsx`` -- one sheet ``Worksheet`` with the header ``Customer ID, Customer Name, email, phone,
  address, Segment, Country, City, State, Postal Code, Region``. Quirks: dirty names (digits, symbols, stray
  spaces, look-alike characters, padding, trailing hyphen), legitimate unusual names that cleaning must keep
  (umlauts, apostrophes, hyphens, lowercase surnames, three-word names, McX/MacX/DeX), a few empty names,
  phones mixing text (``#ERROR!``, extensions) and numeric cells (10- and 9-digit ints, negative ints), postal
  codes as ints (leading zeros lost) and occasionally as zero-padded strings, and multi-line addresses.
  Customer IDs are built from the clean name's initials as written (``Dl-13600`` for a lowercase surname).
* ``products_export.csv`` -- UTF-8, CRLF line endings, RFC-4180 minimal quoting, no line break after the last row,
  header ``Product ID,Category,Sub-Category,Product Name,State,Price per product``. Names contain commas,
  ``""``-escaped double quotes and non-breaking spaces; about 2% of Product IDs appear on two rows with
  different names and prices; about 2% of the Product IDs used by orders are missing from the file; a few
  prices carry up to 8 decimals.

Every customer in the workbook has orders and every Product ID has order lines whenever there are at least as
many order lines as customers and products. The same ``seed`` gives byte-identical files (the xlsx is written
with fixed zip timestamps and fixed document properties); the three files use independent random streams
derived from the seed, so adding ``bad_orders`` changes only the defective lines, and adding ``anomalies`` (value
errors: a price or a profit whose decimal point was lost, a zeroed profit) only the anomalous lines, which
``_anomalies.csv`` lists beside the data (a name the pipeline never reads).
"""

from __future__ import annotations

import bisect
import csv
import datetime as dt
import json
import math
import os
import random
import shutil
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from openpyxl import Workbook
from openpyxl.writer.excel import ExcelWriter

__all__ = ["ANOMALIES_CSV", "ANOMALY_KINDS", "DEFECT_KINDS", "GeneratedFiles", "generate_dataset"]

ORDERS_JSON = "orders_export.json"
ORDERS_JSONL_TEMPLATE = "orders_part-{index:05d}.jsonl"
CUSTOMERS_XLSX = "customers_export.xlsx"
PRODUCTS_CSV = "products_export.csv"
# The truth file of the injected anomalies. Its leading "_" keeps it out of the pipeline's input: source discovery
# skips names starting with "_" or "." (and it matches no pattern in conf/pipeline.yml either).
ANOMALIES_CSV = "_anomalies.csv"
ANOMALY_HEADER: tuple[str, ...] = ("row_id", "kind", "field", "clean_value", "value")

#: The defects injected by ``bad_orders``, in the order they are cycled through.
DEFECT_KINDS: tuple[str, ...] = (
    "profit_percent",  # Profit is a string with a "%" suffix, e.g. "12.5%"
    "order_date_iso",  # Order Date is yyyy-MM-dd, e.g. "2016-08-21"
    "quantity_non_positive",  # Quantity is 0 or negative
    "discount_out_of_range",  # Discount is 1.5
    "row_id_null",  # Row ID is null
)

#: The value errors injected by ``anomalies``, in the order they are cycled through: the kinds found in the real
#: export. Unlike defects, they parse and type cleanly; only the values are wrong.
ANOMALY_KINDS: tuple[str, ...] = (
    "price_decimal_lost",  # Price x 100: the line's sales amount lost its decimal point, 47.97 -> 4797.0
    "profit_decimal_lost",  # Profit x 100: the profit lost its decimal point, 54.04 -> 5404.0, -34.36 -> -3436.0
    "profit_zeroed",  # Profit is 0.0 on a line whose sub-category cannot break even at the line's discount
)
# A profit anomaly is only injected where it moves the profit by at least this much beyond what the line's
# sub-category makes plausible: 0.40 -> 40.0 is a plausible profit on most lines, and a line that would have made
# 0.30 whatever its product is no visible error when it shows 0.00.
_MATERIAL_PROFIT = 2.0

ORDER_KEYS: tuple[str, ...] = (
    "Row ID",
    "Order ID",
    "Order Date",
    "Ship Date",
    "Ship Mode",
    "Customer ID",
    "Product ID",
    "Quantity",
    "Price",
    "Discount",
    "Profit",
)
CUSTOMER_HEADER: tuple[str, ...] = (
    "Customer ID",
    "Customer Name",
    "email",
    "phone",
    "address",
    "Segment",
    "Country",
    "City",
    "State",
    "Postal Code",
    "Region",
)
PRODUCT_HEADER: tuple[str, ...] = (
    "Product ID",
    "Category",
    "Sub-Category",
    "Product Name",
    "State",
    "Price per product",
)

_CHUNK_LINES = 20_000
_FIRST_DATE = dt.date(2014, 1, 1)
_ZIP_TIMESTAMP = (2018, 1, 1, 0, 0, 0)
_DOC_TIMESTAMP = dt.datetime(2018, 1, 1, 0, 0, 0)

# ---------------------------------------------------------------------------------------------------------------
# Distributions (shaped after the real export)
# ---------------------------------------------------------------------------------------------------------------


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


_YEARS = {2014: 20.0, 2015: 21.0, 2016: 26.0, 2017: 33.0}
_ORDER_PREFIXES = {"CA": 83.0, "US": 17.0}
_SHIP_MODES = {"Standard Class": 59.7, "Second Class": 19.5, "First Class": 15.4, "Same Day": 5.4}
_SHIP_DAYS = {
    "Standard Class": {4: 40.0, 5: 30.0, 6: 20.0, 7: 10.0},
    "Second Class": {2: 35.0, 3: 30.0, 4: 20.0, 5: 15.0},
    "First Class": {1: 25.0, 2: 45.0, 3: 30.0},
    "Same Day": {0: 95.0, 1: 5.0},
}
# fmt: off
_LINES_PER_ORDER = {
    1: 50.7, 2: 24.4, 3: 12.0, 4: 6.7, 5: 3.2, 6: 1.4, 7: 1.0, 8: 0.32, 9: 0.2, 10: 0.06, 11: 0.04, 12: 0.02, 14: 0.02,
}
_QUANTITIES = {
    1: 9.0, 2: 24.0, 3: 24.1, 4: 11.9, 5: 12.3, 6: 5.7, 7: 6.1, 8: 2.6, 9: 2.6, 10: 0.57, 11: 0.34, 12: 0.23, 13: 0.27,
    14: 0.29,
}
# Integer 0 for "no discount", floats otherwise: the real file mixes the two.
_DISCOUNTS: dict[int | float, float] = {
    0: 48.0, 0.2: 36.6, 0.7: 4.2, 0.8: 3.0, 0.3: 2.3, 0.4: 2.1, 0.6: 1.4, 0.1: 0.9, 0.5: 0.7, 0.15: 0.5, 0.32: 0.27,
    0.45: 0.11,
}
# fmt: on

# (category, prefix, sub-category, code, weight, min list price, max list price, min and max cost share in percent,
# items). A product's cost share is its unit cost as a share of its list price, fixed per product: a whole percent
# drawn from the sub-category's range, which is the range of the real export's products (their profit / sales,
# discount removed, sits on whole percents between 50 and 100). A line's profit is its sales minus cost share x list
# price x quantity, so its margin follows from its discount, 1 - cost share / (1 - discount): a discount above
# 1 - cost share loses money and a discount of exactly 1 - cost share makes exactly zero, as in the real data.
_SUBCATEGORIES: tuple[tuple[str, str, str, str, float, float, float, int, int, tuple[str, ...]], ...] = (
    ("Furniture", "FUR", "Chairs", "CH", 89, 40, 700, 70, 95, ("Task Chair", "Executive Chair", "Stacking Chair")),
    ("Furniture", "FUR", "Furnishings", "FU", 186, 2, 150, 50, 95, ("Wall Clock", "Desk Lamp", "Frame", "Chairmat")),
    ("Furniture", "FUR", "Tables", "TA", 56, 80, 800, 64, 94, ("Conference Table", "Folding Table", "Desk")),
    ("Furniture", "FUR", "Bookcases", "BO", 50, 60, 700, 70, 94, ("Bookcase", "Shelf Unit", "Library Cabinet")),
    ("Office Supplies", "OFF", "Paper", "PA", 277, 3, 40, 50, 55, ("Copy Paper", "Message Book", "Notepads")),
    ("Office Supplies", "OFF", "Binders", "BI", 211, 2, 60, 50, 55, ("Ring Binder", "Binding Covers", "Report Cover")),
    ("Office Supplies", "OFF", "Art", "AR", 157, 1, 40, 50, 75, ("Pencils", "Markers", "Highlighters", "Crayons")),
    ("Office Supplies", "OFF", "Storage", "ST", 132, 10, 350, 70, 100, ("File Cart", "Storage Box", "Drawer Unit")),
    ("Office Supplies", "OFF", "Appliances", "AP", 97, 8, 500, 55, 77, ("Surge Protector", "Desk Fan", "Heater")),
    ("Office Supplies", "OFF", "Labels", "LA", 70, 2, 25, 50, 54, ("Address Labels", "File Labels", "Tab Labels")),
    ("Office Supplies", "OFF", "Envelopes", "EN", 44, 4, 50, 50, 55, ("Envelopes", "Mailers", "Clasp Envelopes")),
    ("Office Supplies", "OFF", "Supplies", "SU", 36, 2, 60, 70, 99, ("Scissors", "Letter Opener", "Paper Trimmer")),
    ("Office Supplies", "OFF", "Fasteners", "FA", 34, 1, 20, 50, 100, ("Paper Clips", "Staples", "Push Pins")),
    ("Technology", "TEC", "Phones", "PH", 189, 15, 700, 50, 100, ("Smartphone", "Headset", "Cordless Phone")),
    ("Technology", "TEC", "Accessories", "AC", 147, 8, 300, 52, 94, ("Flash Drive", "Keyboard", "Wireless Mouse")),
    ("Technology", "TEC", "Machines", "MA", 63, 60, 2500, 50, 74, ("Laser Printer", "Shredder", "Label Maker")),
    ("Technology", "TEC", "Copiers", "CO", 13, 300, 2500, 50, 70, ("Copier", "Multifunction Copier", "Fax Copier")),
)

_BRANDS = _words(
    "Aldora Brixton Calder Dunmore Everly Fenwick Garrick Halden Ivora Jarvis Kestrel Lumina Marlow "
    "Norcross Orin Pemberly Quillon Redstone Sable Tamarack Umber Vantage Westbrook Yarrow Zenith"
)
_ADJECTIVES = ("Leather", "Recycled", "Heavy-Duty", "Premium", "Compact", "Deluxe", "Classic", "Ergonomic", "Slim")
_COLORS = ("Black", "White", "Gray", "Blue", "Burgundy", "Walnut", "Clear", "Assorted Colors", "12/Pack", "50/Box")

_FIRST_NAMES = _words(
    "Adam Alice Amy Andrew Anna Ben Beth Brian Carl Carol Chris Claire Dan Diana Ed Ella Frank Gina Greg "
    "Hannah Ian Irene Jack Jill Joel Julia Karl Kate Laura Leon Lisa Mark Molly Nick Nina Oscar Olivia "
    "Paul Rosa Sam Sara Simon Tess Tom Vera Will Zoe"
)
_LAST_NAMES = _words(
    "Abbott Barlow Bishop Carson Dalton Ellis Fisher Foster Garner Hale Hollis Ingram Jensen Keller "
    "Lawson Lowell Mills Norris Osborne Parker Quinn Russell Sawyer Sloane Stills Tanner Tilson Vance "
    "Wallace Whitlow Wilson Yates"
)
_UMLAUT_SURNAMES = ("Brückner", "Köhler", "Jäger", "Schäfer", "Möller", "Krüger", "Löffler", "Häusler")
_APOSTROPHE_SURNAMES = ("O'Hara", "O'Neill", "O'Malley", "D'Angelo", "O'Keefe", "D'Arcy", "O'Sullivan")
_CAMEL_SURNAMES = ("McAllister", "MacLeod", "DeLuca", "McKenna", "MacAulay", "VanderMeer", "DeWitt", "McBride")
_PARTICLES = ("Van", "De", "Da", "Le")
_SECOND_GIVEN = ("Ann", "Jo", "Lou", "Beth", "Lee", "Mae")
_SYMBOLS = "@#$%^&*()_<>[];'=-.,"
# Look-alike substitutions seen in the real names: Bi1l, Ji11, Wa55erman, N0ra, C@thy, Dan!els, 5chnelling.
_LOOKALIKES = (("ll", "1l"), ("ll", "11"), ("ss", "55"), ("o", "0"), ("a", "@"), ("i", "!"), (" S", " 5"))

_SEGMENTS = {"Consumer": 52.0, "Corporate": 30.0, "Home Office": 18.0}
# (city, state, region, first zip, last zip, weight); the zip ranges below 10000 lose their leading zero as ints.
_GEOGRAPHY: tuple[tuple[str, str, str, int, int, float], ...] = (
    ("New York City", "New York", "East", 10001, 10040, 10.0),
    ("Buffalo", "New York", "East", 14201, 14226, 1.0),
    ("Philadelphia", "Pennsylvania", "East", 19102, 19143, 5.0),
    ("Pittsburgh", "Pennsylvania", "East", 15203, 15237, 1.0),
    ("Columbus", "Ohio", "East", 43201, 43235, 2.0),
    ("Cleveland", "Ohio", "East", 44102, 44135, 1.5),
    ("Boston", "Massachusetts", "East", 2108, 2136, 1.2),
    ("Providence", "Rhode Island", "East", 2903, 2909, 0.6),
    ("Manchester", "New Hampshire", "East", 3101, 3109, 0.4),
    ("Burlington", "Vermont", "East", 5401, 5408, 0.4),
    ("Hartford", "Connecticut", "East", 6103, 6120, 0.8),
    ("Newark", "New Jersey", "East", 7102, 7114, 1.0),
    ("Wilmington", "Delaware", "East", 19801, 19810, 0.8),
    ("Baltimore", "Maryland", "East", 21201, 21239, 0.8),
    ("Washington", "District of Columbia", "East", 20001, 20037, 0.4),
    ("Los Angeles", "California", "West", 90001, 90068, 6.0),
    ("San Francisco", "California", "West", 94102, 94134, 5.0),
    ("San Diego", "California", "West", 92101, 92130, 2.0),
    ("Seattle", "Washington", "West", 98101, 98199, 4.0),
    ("Portland", "Oregon", "West", 97201, 97239, 1.0),
    ("Denver", "Colorado", "West", 80202, 80249, 1.5),
    ("Phoenix", "Arizona", "West", 85003, 85054, 1.5),
    ("Las Vegas", "Nevada", "West", 89101, 89149, 0.6),
    ("Salt Lake City", "Utah", "West", 84101, 84124, 0.4),
    ("Albuquerque", "New Mexico", "West", 87102, 87123, 0.3),
    ("Boise", "Idaho", "West", 83702, 83716, 0.2),
    ("Billings", "Montana", "West", 59101, 59106, 0.2),
    ("Houston", "Texas", "Central", 77002, 77099, 4.0),
    ("Dallas", "Texas", "Central", 75201, 75254, 2.0),
    ("San Antonio", "Texas", "Central", 78201, 78260, 1.0),
    ("Chicago", "Illinois", "Central", 60601, 60661, 3.0),
    ("Detroit", "Michigan", "Central", 48201, 48235, 1.5),
    ("Indianapolis", "Indiana", "Central", 46201, 46278, 0.8),
    ("Milwaukee", "Wisconsin", "Central", 53202, 53233, 0.6),
    ("Minneapolis", "Minnesota", "Central", 55401, 55455, 0.6),
    ("Kansas City", "Missouri", "Central", 64105, 64157, 0.5),
    ("Oklahoma City", "Oklahoma", "Central", 73102, 73170, 0.6),
    ("Omaha", "Nebraska", "Central", 68102, 68164, 0.3),
    ("Des Moines", "Iowa", "Central", 50309, 50322, 0.2),
    ("Sioux Falls", "South Dakota", "Central", 57103, 57110, 0.1),
    ("Jacksonville", "Florida", "South", 32202, 32277, 1.5),
    ("Miami", "Florida", "South", 33125, 33186, 1.0),
    ("Atlanta", "Georgia", "South", 30303, 30350, 1.2),
    ("Charlotte", "North Carolina", "South", 28202, 28277, 1.2),
    ("Richmond", "Virginia", "South", 23219, 23235, 1.2),
    ("Nashville", "Tennessee", "South", 37203, 37221, 1.0),
    ("Louisville", "Kentucky", "South", 40202, 40299, 0.8),
    ("Birmingham", "Alabama", "South", 35203, 35244, 0.4),
    ("Jackson", "Mississippi", "South", 39201, 39213, 0.3),
    ("New Orleans", "Louisiana", "South", 70112, 70130, 0.3),
    ("Little Rock", "Arkansas", "South", 72201, 72227, 0.4),
    ("Columbia", "South Carolina", "South", 29201, 29229, 0.2),
)
_STATE_CODES = ("AL", "AZ", "CA", "CO", "FL", "GA", "IA", "ID", "IL", "KS", "MI", "MN", "NC", "NY", "OH", "SC", "TX")
_STREET_SUFFIXES = ("Lane", "Ridges", "Turnpike", "Ways", "Prairie", "Corner", "Street", "Avenue", "Road", "Knolls")
_TOWN_PREFIXES = ("", "", "", "North ", "South ", "East ", "West ", "Lake ", "Port ", "New ")
_TOWN_STEMS = _FIRST_NAMES + _LAST_NAMES
_TOWN_SUFFIXES = ("ton", "fort", "berg", "side", "stad", "ville", "burgh", "haven", "mouth", "view")

# Name, phone and product-name quirks: kind -> share of the rows (each kind appears at least once).
_NAME_KINDS = {
    "empty": 0.01,
    "dirty_digits": 0.015,
    "dirty_symbols": 0.015,
    "dirty_stray_space": 0.012,
    "dirty_noise": 0.012,
    "dirty_lookalike": 0.015,
    "dirty_padding": 0.015,
    "dirty_trailing_hyphen": 0.005,
    "umlaut": 0.008,
    "apostrophe": 0.015,
    "hyphen": 0.008,
    "lowercase_surname": 0.004,
    "three_words": 0.008,
    "camel_case": 0.02,
}
_PHONE_KINDS = {"error": 0.13, "int10": 0.075, "negative": 0.04, "int9": 0.01}
_PRODUCT_NAME_KINDS = {"comma": 0.22, "quote": 0.08, "nbsp": 0.025}


@dataclass(frozen=True)
class GeneratedFiles:
    """What :func:`generate_dataset` wrote.

    Attributes:
        orders: the order files, ``[orders_export.json]`` or the ``orders_part-NNNNN.jsonl`` parts in order.
        customers: the ``customers_export.xlsx`` workbook.
        products: the ``products_export.csv`` file.
        order_lines: number of order lines written (the ``orders`` argument).
        customers_count: number of customer rows in the workbook.
        products_count: number of data rows in ``products_export.csv`` (duplicated Product IDs count twice).
        anomalies: the ``_anomalies.csv`` truth file, when anomalies were asked for.
        anomaly_lines: number of order lines that carry an injected anomaly (rows of the truth file).
    """

    orders: list[Path]
    customers: Path
    products: Path
    order_lines: int
    customers_count: int
    products_count: int
    anomalies: Path | None = None
    anomaly_lines: int = 0


def generate_dataset(
    out_dir: str | Path,
    orders: int = 3000,
    seed: int = 42,
    *,
    bad_orders: int = 0,
    anomalies: int = 0,
    jsonl_threshold: int = 200_000,
    lines_per_file: int = 1_000_000,
) -> GeneratedFiles:
    """Write a synthetic Orders/Customers/Products dataset in the real export's formats.

    Sizes follow the real export: ``max(50, orders / 12.6)`` customers and ``max(50, orders / 5.4)`` Product
    IDs used by orders (about 2% of them missing from ``products_export.csv``, about 2% on two rows). Orders are written
    chunk by chunk, so memory grows with the number of customers and products, not with the number of lines.

    ``bad_orders`` lines, picked by the seeded random generator (distinct lines), get exactly one defect each,
    cycling through :data:`DEFECT_KINDS`:

    * ``profit_percent``: ``Profit`` is a string with a ``%`` suffix, e.g. ``"12.5%"``;
    * ``order_date_iso``: ``Order Date`` is ``yyyy-MM-dd``, e.g. ``"2016-08-21"``;
    * ``quantity_non_positive``: ``Quantity`` is ``0`` or negative;
    * ``discount_out_of_range``: ``Discount`` is ``1.5``;
    * ``row_id_null``: ``Row ID`` is ``null``.

    Clean lines never look like any of these. The defects come from their own random stream, so a dataset with
    defects equals the one without except on the defective lines.

    ``anomalies`` lines get one value error each, cycling through :data:`ANOMALY_KINDS` (the kinds of the real
    export: lines that pass every structural check but carry an impossible value):

    * ``price_decimal_lost``: ``Price`` x 100 (``47.97`` -> ``4797.0``);
    * ``profit_decimal_lost``: ``Profit`` x 100 (``54.04`` -> ``5404.0``), on a line with a profit or loss of at
      least 1.00;
    * ``profit_zeroed``: ``Profit`` is ``0.0``, on a line with a profit or loss of at least 1.00 whose discount no
      product of its sub-category breaks even at (elsewhere a zero profit is normal, see ``_SUBCATEGORIES``).

    Positions are drawn from their own random stream; each anomaly lands on the first line at or after its drawn
    position that it fits and that has no defect, so a dataset with anomalies equals the one without except on the
    anomalous lines (and the defects stay where they were). ``_anomalies.csv`` records each one (``row_id, kind,
    field, clean_value, value``), named so that the pipeline never reads it as a source.

    Existing ``orders_export.json``, ``orders_part-*.jsonl`` and ``_anomalies.csv`` files in ``out_dir`` are removed
    first so that a rerun with another size does not leave stale files behind.

    Args:
        out_dir: directory to write into; created if missing.
        orders: number of order lines (not orders); at least 1.
        seed: random seed; the same seed and arguments give byte-identical files.
        bad_orders: number of order lines that get one defect each; between 0 and ``orders``.
        anomalies: number of order lines that get one value error each; between 0 and ``orders - bad_orders``.
            An anomaly drawn so close to the end that no fitting line follows is not placed (the truth file and
            ``anomaly_lines`` say what was).
        jsonl_threshold: above this many lines, write JSON Lines parts instead of one JSON array.
        lines_per_file: maximum lines per JSON Lines part.

    Returns:
        The paths written and the row counts.

    Raises:
        ValueError: if a size argument is out of range.
    """
    if orders < 1:
        raise ValueError(f"orders must be at least 1, got {orders}")
    if not 0 <= bad_orders <= orders:
        raise ValueError(f"bad_orders must be between 0 and orders ({orders}), got {bad_orders}")
    if not 0 <= anomalies <= orders - bad_orders:
        raise ValueError(
            f"anomalies must be between 0 and orders - bad_orders ({orders - bad_orders}), got {anomalies}"
        )
    if jsonl_threshold < 0:
        raise ValueError(f"jsonl_threshold must not be negative, got {jsonl_threshold}")
    if lines_per_file < 1:
        raise ValueError(f"lines_per_file must be at least 1, got {lines_per_file}")

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    n_customers = max(50, round(orders / 12.6))
    n_products = max(50, round(orders / 5.4))

    customers_path = out / CUSTOMERS_XLSX
    customer_ids = _write_customers(customers_path, n_customers, random.Random(f"{seed}:customers"))

    products_path = out / PRODUCTS_CSV
    catalog, products_rows = _write_products(
        products_path, n_products, random.Random(f"{seed}:products"), random.Random(f"{seed}:costs")
    )

    for stale in [out / ORDERS_JSON, *out.glob("orders_part-*.jsonl"), out / ANOMALIES_CSV]:
        if stale.is_file():
            stale.unlink()
    defects = _pick_defects(orders, bad_orders, random.Random(f"{seed}:defects"))
    placer = None
    if anomalies:
        placer = _Anomalies(_pick_anomalies(orders, anomalies, random.Random(f"{seed}:anomalies")), catalog, defects)
    order_paths = _write_orders(
        out,
        orders,
        customer_ids,
        catalog,
        defects,
        placer,
        random.Random(f"{seed}:orders"),
        jsonl=orders > jsonl_threshold,
        lines_per_file=lines_per_file,
    )
    return GeneratedFiles(
        orders=order_paths,
        customers=customers_path,
        products=products_path,
        order_lines=orders,
        customers_count=len(customer_ids),
        products_count=products_rows,
        **_truth(out / ANOMALIES_CSV, placer),
    )


def _truth(path: Path, placer: _Anomalies | None) -> dict[str, Any]:
    if placer is None:
        return {}
    placer.write(path)
    return {"anomalies": path, "anomaly_lines": len(placer.placed)}


# ---------------------------------------------------------------------------------------------------------------
# Shared helpers
# ---------------------------------------------------------------------------------------------------------------


def _table(weights: Mapping[Any, float], resolution: int = 10_000) -> tuple[Any, ...]:
    """Expand weights into a lookup table, so that ``table[int(random() * len(table))]`` samples them."""
    total = sum(weights.values())
    table: list[Any] = []
    for value, weight in weights.items():
        table.extend([value] * max(1, round(weight / total * resolution)))
    return tuple(table)


def _assign_kinds(rng: random.Random, n: int, shares: Mapping[str, float], default: str) -> list[str]:
    """Give each of ``n`` rows a quirk kind: every kind at least once (when n allows), the rest ``default``."""
    kinds: list[str] = []
    for kind, share in shares.items():
        kinds.extend([kind] * max(1, round(share * n)))
    kinds = kinds[:n]
    kinds.extend([default] * (n - len(kinds)))
    rng.shuffle(kinds)
    return kinds


def _weighted_index(rng: random.Random, cumulative: Sequence[float]) -> int:
    return bisect.bisect_right(cumulative, rng.random() * cumulative[-1])


def _cumulative(weights: Sequence[float]) -> list[float]:
    out: list[float] = []
    running = 0.0
    for weight in weights:
        running += weight
        out.append(running)
    return out


def _format_price(value: float, decimals: int) -> str:
    """``4`` / ``5.5`` / ``81.882`` / ``42.33333333``: the real file drops trailing zeros."""
    return f"{value:.{decimals}f}".rstrip("0").rstrip(".")


# ---------------------------------------------------------------------------------------------------------------
# customers_export.xlsx
# ---------------------------------------------------------------------------------------------------------------


def _clean_name(rng: random.Random, kind: str) -> str:
    first, last = rng.choice(_FIRST_NAMES), rng.choice(_LAST_NAMES)
    if kind == "umlaut":
        return f"{first} {rng.choice(_UMLAUT_SURNAMES)}"
    if kind == "apostrophe":
        return f"{first} {rng.choice(_APOSTROPHE_SURNAMES)}"
    if kind == "camel_case":
        return f"{first} {rng.choice(_CAMEL_SURNAMES)}"
    if kind == "hyphen":
        if rng.random() < 0.5:
            return f"{first}-{last}"  # one hyphenated token, like the real "Corey-Lock"
        return f"{first} {last}-{rng.choice(_LAST_NAMES)}"
    if kind == "lowercase_surname":
        return f"{first} {last.lower()}"
    if kind == "three_words":
        if rng.random() < 0.5:
            return f"{first} {rng.choice(_PARTICLES)} {last}"
        return f"{first} {rng.choice(_SECOND_GIVEN)} {last}"
    return f"{first} {last}"


def _insert(rng: random.Random, name: str, text: str) -> str:
    """Insert ``text`` strictly inside one of the name's words."""
    words = name.split(" ")
    index = rng.randrange(len(words))
    word = words[index]
    cut = rng.randint(1, max(1, len(word) - 1))
    words[index] = word[:cut] + text + word[cut:]
    return " ".join(words)


def _dirty_name(rng: random.Random, name: str, kind: str) -> str:
    digits = "".join(rng.choice("0123456789") for _ in range(rng.randint(2, 4)))
    symbols = "".join(rng.choice(_SYMBOLS) for _ in range(rng.randint(2, 4)))
    if kind == "dirty_digits":
        variant = rng.randrange(3)
        if variant == 0:
            return digits + name
        if variant == 1:
            return f"{name} {digits}"
        return _insert(rng, name, digits)
    if kind == "dirty_symbols":
        return _insert(rng, name, symbols) if rng.random() < 0.7 else name + symbols
    if kind == "dirty_stray_space":
        return _insert(rng, name, " " * rng.choice((1, 1, 5, 9)))
    if kind == "dirty_noise":
        return _insert(rng, name, " " * rng.randint(1, 3) + digits + (symbols if rng.random() < 0.3 else ""))
    if kind == "dirty_lookalike":
        padded = " " + name  # so that " S" also matches a word at the start
        candidates = [
            (i, old, new) for old, new in _LOOKALIKES for i in range(len(padded)) if padded.startswith(old, i)
        ]
        if not candidates:
            return _insert(rng, name, digits)
        i, old, new = rng.choice(candidates)
        return (padded[:i] + new + padded[i + len(old) :])[1:]
    if kind == "dirty_padding":
        variant = rng.randrange(4)
        if variant == 0:
            return " " + rng.choice(("&&", "_", ")(*&", "=--", "")) + name
        if variant == 1:
            return " " * rng.randint(2, 13) + name
        if variant == 2:
            return f" {name} "
        return name + rng.choice(("#", " ", "%^&*(", "__"))
    if kind == "dirty_trailing_hyphen":
        return name + "-"
    return name


def _initials(clean: str) -> str:
    """Customer ID initials as the source system builds them: from the name as written."""
    tokens = clean.split(" ")
    if len(tokens) == 1:
        return tokens[0][0].upper() + tokens[0][1]
    return tokens[0][0].upper() + tokens[1][0]


def _phone(rng: random.Random, kind: str) -> str | int:
    if kind == "error":
        return "#ERROR!"
    if kind == "int10":
        return rng.randint(2_000_000_000, 9_999_999_999)
    if kind == "int9":
        return rng.randint(100_000_000, 999_999_999)  # a 0xxxxxxxxx number that lost its leading zero
    if kind == "negative":
        return -rng.randint(1000, 99999)
    area, exchange, line = rng.randint(200, 999), rng.randint(100, 999), rng.randint(0, 9999)
    variant = rng.randrange(4)
    if variant == 0:
        text = f"({area}){exchange}-{line:04d}"
    elif variant == 1:
        text = f"{area}.{exchange}.{line:04d}"
    elif variant == 2:
        text = f"{area}-{exchange}-{line:04d}"
    else:
        text = f"001-{area}-{exchange}-{line:04d}"
    if rng.random() < 0.6:
        text += "x" + str(rng.randint(100, 99999))
    return text


def _address(rng: random.Random) -> str:
    number = "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 5)))
    street = f"{number} {rng.choice(_LAST_NAMES)} {rng.choice(_STREET_SUFFIXES)}"
    roll = rng.random()
    if roll < 0.25:
        street += f" Suite {rng.randint(100, 999)}"
    elif roll < 0.45:
        street += f" Apt. {rng.randint(100, 999)}"
    town = rng.choice(_TOWN_PREFIXES) + rng.choice(_TOWN_STEMS) + rng.choice(_TOWN_SUFFIXES)
    return f"{street}\n{town}, {rng.choice(_STATE_CODES)} {rng.randint(501, 99950):05d}"


def _customer_numbers(rng: random.Random, n: int) -> Iterator[int]:
    """Five-digit Customer ID numbers on a step-15 grid like the real ones, distinct while the grid lasts."""
    grid = range(10_005, 100_000, 15)
    yield from rng.sample(grid, min(n, len(grid)))
    while True:  # beyond ~6,000 customers: any five-digit number, the caller keeps IDs unique
        yield rng.randint(10_000, 99_999)


def _write_customers(path: Path, n: int, rng: random.Random) -> list[str]:
    """Stream ``n`` customers into the workbook; return their IDs in row order."""
    name_kinds = _assign_kinds(rng, n, _NAME_KINDS, "plain")
    phone_kinds = _assign_kinds(rng, n, _PHONE_KINDS, "text")
    string_postal = set(rng.sample(range(n), max(1, round(n * 0.002))))
    segments = _table(_SEGMENTS, 100)
    geo_cumulative = _cumulative([g[5] for g in _GEOGRAPHY])
    leading_zero_geo = [g for g in _GEOGRAPHY if g[4] < 10_000]
    numbers = _customer_numbers(rng, n)

    workbook = Workbook(write_only=True)
    workbook.properties.creator = "ecom-lakehouse generate"
    workbook.properties.created = _DOC_TIMESTAMP
    workbook.properties.modified = _DOC_TIMESTAMP
    sheet = workbook.create_sheet("Worksheet")
    sheet.append(list(CUSTOMER_HEADER))

    ids: list[str] = []
    issued: set[str] = set()
    for i in range(n):
        kind = name_kinds[i]
        clean = _clean_name(rng, "plain" if kind.startswith("dirty_") or kind == "empty" else kind)
        name = None if kind == "empty" else _dirty_name(rng, clean, kind)
        customer_id = f"{_initials(clean)}-{next(numbers)}"
        while customer_id in issued:
            customer_id = f"{_initials(clean)}-{next(numbers)}"
        issued.add(customer_id)
        ids.append(customer_id)

        email = f"{rng.choice(_FIRST_NAMES)}{rng.choice(_LAST_NAMES)}{rng.randint(100, 999)}@gmail.com".lower()
        if i in string_postal:
            city, state, region, low, high, _ = rng.choice(leading_zero_geo)
            postal: int | str = f"{rng.randint(low, high):05d}"
        else:
            city, state, region, low, high, _ = _GEOGRAPHY[_weighted_index(rng, geo_cumulative)]
            postal = rng.randint(low, high)
        sheet.append(
            [
                customer_id,
                name,
                email,
                _phone(rng, phone_kinds[i]),
                _address(rng),
                segments[int(rng.random() * len(segments))],
                "United States",
                city,
                state,
                postal,
                region,
            ]
        )
    _save_workbook(workbook, path)
    return ids


class _FixedTimeZipFile(zipfile.ZipFile):
    """A ZipFile that stamps every member with one fixed time, so the xlsx is byte-identical across runs."""

    def _info(self, name: str) -> zipfile.ZipInfo:
        info = zipfile.ZipInfo(name, date_time=_ZIP_TIMESTAMP)
        info.compress_type = self.compression
        info.external_attr = 0o600 << 16
        return info

    def writestr(self, zinfo_or_arcname: Any, data: Any, *args: Any, **kwargs: Any) -> None:
        if not isinstance(zinfo_or_arcname, zipfile.ZipInfo):
            zinfo_or_arcname = self._info(zinfo_or_arcname)
        super().writestr(zinfo_or_arcname, data, *args, **kwargs)

    def write(self, filename: Any, arcname: Any = None, *args: Any, **kwargs: Any) -> None:
        info = self._info(str(arcname if arcname is not None else filename))
        info.file_size = os.path.getsize(filename)
        with open(filename, "rb") as src, self.open(info, "w") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)


def _save_workbook(workbook: Workbook, path: Path) -> None:
    # Workbook.save() stamps the current time into docProps/core.xml and the zip entries; write it ourselves.
    archive = _FixedTimeZipFile(path, "w", zipfile.ZIP_DEFLATED, allowZip64=True)
    ExcelWriter(workbook, archive).save()


# ---------------------------------------------------------------------------------------------------------------
# products_export.csv
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Catalog:
    """Every Product ID orders may use: its list price, its cost share (a fraction, e.g. ``0.52``), its
    sub-category's cost share range (whole percents, e.g. ``(50, 55)``) and whether the products file lists it."""

    ids: list[str]
    prices: list[float]
    costs: list[float]
    cost_ranges: list[tuple[int, int]]
    listed: list[bool]


def _product_name(rng: random.Random, items: tuple[str, ...], kind: str) -> str:
    brand, item = rng.choice(_BRANDS), rng.choice(items)
    adjective = rng.choice(_ADJECTIVES) + " " if rng.random() < 0.4 else ""
    model = f" {rng.choice('ABCDEGHKMRSTX')}{rng.randint(10, 999)}" if rng.random() < 0.3 else ""
    if kind == "quote":
        return f'{brand} {rng.randint(2, 30)}" {adjective}{item}{model}'
    name = f"{brand} {adjective}{item}{model}"
    if kind == "comma":
        return f"{name}, {rng.choice(_COLORS)}"
    if kind == "nbsp":
        spaces = [i for i, char in enumerate(name) if char == " "]
        i = rng.choice(spaces)
        return name[:i] + "\u00a0" + name[i + 1 :]
    return name


def _unit_price(rng: random.Random, low: float, high: float, long_decimals: bool) -> tuple[float, str]:
    value = math.exp(rng.uniform(math.log(low), math.log(high)))
    if long_decimals:  # an average price, e.g. 127.00 / 3 = 42.33333333
        value = round(round(value * rng.choice((3, 6, 7, 9, 11, 13)), 2) / rng.choice((3, 6, 7, 9, 11, 13)), 8)
        return value, _format_price(value, 8)
    decimals = 2 if rng.random() < 0.55 else 3
    value = round(value, decimals)
    return value, _format_price(value, decimals)


def _write_products(path: Path, n: int, rng: random.Random, cost_rng: random.Random) -> tuple[_Catalog, int]:
    """Write products_export.csv; return the catalog orders draw from and the number of data rows written.

    The cost shares (which the file does not show) come from ``cost_rng``, so they do not change the file.
    """
    sub_cumulative = _cumulative([s[4] for s in _SUBCATEGORIES])
    state_cumulative = _cumulative([g[5] for g in _GEOGRAPHY])
    name_kinds = _assign_kinds(rng, n, _PRODUCT_NAME_KINDS, "plain")
    long_decimals = set(rng.sample(range(n), max(1, round(n * 0.02))))
    n_missing = n_duplicated = max(1, round(n * 0.02))
    picked = rng.sample(range(n), n_missing + n_duplicated)
    missing, duplicated = set(picked[:n_missing]), picked[n_missing:]
    # The second row of a duplicated ID comes later in the file, like in the real export.
    duplicate_after: dict[int, list[int]] = {}
    first_rows: dict[int, tuple[str, str]] = dict.fromkeys(duplicated, ("", ""))  # name and price of the first row
    for i in duplicated:
        duplicate_after.setdefault(rng.randint(i, n - 1), []).append(i)

    # Draw distinct 8-digit numbers per sub-category code.
    subcategory_of = [_weighted_index(rng, sub_cumulative) for _ in range(n)]
    counts = [0] * len(_SUBCATEGORIES)
    for s in subcategory_of:
        counts[s] += 1
    numbers = [iter(rng.sample(range(max(10_000, 4 * c)), c)) for c in counts]

    ids: list[str] = []
    prices: list[float] = []
    costs: list[float] = []
    cost_ranges: list[tuple[int, int]] = []
    rows = 0
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
        writer.writerow(PRODUCT_HEADER)
        for i in range(n):
            row = _SUBCATEGORIES[subcategory_of[i]]
            category, prefix, subcategory, code, _, low, high, cost_low, cost_high, items = row
            product_id = f"{prefix}-{code}-{10_000_000 + next(numbers[subcategory_of[i]])}"
            price, price_text = _unit_price(rng, low, high, i in long_decimals)
            state = _GEOGRAPHY[_weighted_index(rng, state_cumulative)][1]
            name = _product_name(rng, items, name_kinds[i])
            ids.append(product_id)
            prices.append(price)
            costs.append(cost_rng.randint(cost_low, cost_high) / 100)
            cost_ranges.append((cost_low, cost_high))
            if i not in missing:
                writer.writerow((product_id, category, subcategory, name, state, price_text))
                rows += 1
            if i in first_rows:
                first_rows[i] = (name, price_text)
            for j in duplicate_after.get(i, ()):
                other_category, _, other_subcategory, *_, other_items = _SUBCATEGORIES[subcategory_of[j]]
                other_name = _product_name(rng, other_items, "plain")
                while other_name == first_rows[j][0]:
                    other_name = _product_name(rng, other_items, "plain")
                other_price = _format_price(round(prices[j] * rng.uniform(0.4, 1.6) + 0.01, 3), 3)
                while other_price == first_rows[j][1]:
                    other_price = _format_price(round(prices[j] * rng.uniform(0.4, 1.6) + 0.01, 3), 3)
                other_state = _GEOGRAPHY[_weighted_index(rng, state_cumulative)][1]
                writer.writerow((ids[j], other_category, other_subcategory, other_name, other_state, other_price))
                rows += 1
    # The real export has no line break after the last row.
    with path.open("r+b") as handle:
        handle.seek(-2, os.SEEK_END)
        handle.truncate()
    listed = [i not in missing for i in range(n)]
    return _Catalog(ids=ids, prices=prices, costs=costs, cost_ranges=cost_ranges, listed=listed), rows


# ---------------------------------------------------------------------------------------------------------------
# orders_export.json / orders_part-NNNNN.jsonl
# ---------------------------------------------------------------------------------------------------------------


def _pick_defects(n_lines: int, bad_orders: int, rng: random.Random) -> dict[int, tuple[str, Any]]:
    """Map 0-based line positions to (defect kind, payload), cycling through DEFECT_KINDS in file order."""
    positions = sorted(rng.sample(range(n_lines), bad_orders))
    defects: dict[int, tuple[str, Any]] = {}
    for index, position in enumerate(positions):
        kind = DEFECT_KINDS[index % len(DEFECT_KINDS)]
        payload: Any = None
        if kind == "quantity_non_positive":
            payload = -rng.randint(0, 3)
        defects[position] = (kind, payload)
    return defects


def _pick_anomalies(n_lines: int, anomalies: int, rng: random.Random) -> dict[int, str]:
    """Map drawn 0-based line positions to anomaly kinds, cycling through ANOMALY_KINDS in file order."""
    positions = sorted(rng.sample(range(n_lines), anomalies))
    return {position: ANOMALY_KINDS[index % len(ANOMALY_KINDS)] for index, position in enumerate(positions)}


class _Anomalies:
    """Places the drawn anomalies on the lines as they are written, and records them.

    Each anomaly lands on the first line at or after its drawn position that it fits: never a defective line (it
    is quarantined, so its anomaly would never be seen), and only where the error is visible in what a line-level
    check may know (the line, its product's listing, its sub-category):

    * a lost decimal point in the price: a line whose product is listed in the products file (an unlisted product
      has no price to compare with; its line is flagged ``product_unknown`` anyway);
    * a lost decimal point in the profit: a profit or loss of at least ``_MATERIAL_PROFIT``;
    * a zeroed profit: a listed product, and a discount at which every product of the sub-category (whatever its
      cost share in the sub-category's range) makes a profit, or a loss, of at least ``_MATERIAL_PROFIT``. At
      other discounts zero is a normal outcome for some product of the sub-category (the real export has dozens of
      genuine zero-profit lines), and a zero there is no error any line-level check can see.
    """

    def __init__(self, drawn: dict[int, str], catalog: _Catalog, defects: Mapping[int, object]) -> None:
        self._drawn = drawn
        self._ranges = catalog.cost_ranges
        self._list_prices = catalog.prices
        self._listed = catalog.listed
        self._defects = defects
        self._pending: list[str] = []
        self.placed: list[tuple[int, str, str, float, float]] = []  # row id, kind, field, clean value, new value

    def _fits(self, kind: str, product: int, quantity: int, price: float, profit: float) -> bool:
        if kind == "price_decimal_lost":
            return self._listed[product]
        if kind == "profit_decimal_lost":
            return abs(profit) >= _MATERIAL_PROFIT
        low, high = self._ranges[product]
        list_value = self._list_prices[product] * quantity
        least_profit = price - high / 100 * list_value  # the profit of the sub-category's costliest product
        least_loss = low / 100 * list_value - price  # the loss of its cheapest one
        return self._listed[product] and max(least_profit, least_loss) >= _MATERIAL_PROFIT

    def apply(self, position: int, product: int, quantity: int, price: float, profit: float) -> tuple[float, float]:
        """The line's (price, profit), with an anomaly when one is due and fits the line."""
        kind = self._drawn.get(position)
        if kind is not None:
            self._pending.append(kind)
        if not self._pending or position in self._defects:
            return price, profit
        fitting = [k for k in self._pending if self._fits(k, product, quantity, price, profit)]
        if not fitting:
            return price, profit
        kind = fitting[0]
        self._pending.remove(kind)
        if kind == "price_decimal_lost":
            new_price = round(price * 100, 2) + 0.0
            self.placed.append((position + 1, kind, "Price", price, new_price))
            return new_price, profit
        new_profit = round(profit * 100, 2) + 0.0 if kind == "profit_decimal_lost" else 0.0
        self.placed.append((position + 1, kind, "Profit", profit, new_profit))
        return price, new_profit

    def write(self, path: Path) -> None:
        """Write the truth file: one row per anomaly placed, by Row ID."""
        with path.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(ANOMALY_HEADER)
            for row_id, kind, field, clean, value in sorted(self.placed):
                writer.writerow((row_id, kind, field, repr(clean), repr(value)))


# A line as generated: order id, order date index, ship date index, ship mode, customer id, product index,
# quantity, price, discount, profit.
_Line = tuple[Any, ...]


class _OrdersSink:
    """Formats lines exactly like ``json.dumps(..., indent=2)`` (or one ``json.dumps`` per JSONL line)."""

    def __init__(
        self,
        out_dir: Path,
        product_ids: list[str],
        dates: list[str],
        defects: dict[int, tuple[str, Any]],
        anomalies: _Anomalies | None,
        *,
        jsonl: bool,
        lines_per_file: int,
    ) -> None:
        self._out_dir = out_dir
        self._product_ids = product_ids
        self._dates = dates
        self._defects = defects
        self._anomalies = anomalies
        self._jsonl = jsonl
        self._lines_per_file = lines_per_file
        self._written = 0
        self._handle: Any = None
        self.paths: list[Path] = []
        if not jsonl:
            self._open(out_dir / ORDERS_JSON)
            self._handle.write("[\n")

    def _open(self, path: Path) -> None:
        if self._handle is not None:
            self._handle.close()
        self._handle = path.open("w", encoding="utf-8", newline="\n")
        self.paths.append(path)

    def write(self, lines: list[_Line]) -> None:
        parts: list[str] = []
        product_ids, dates, defects, anomalies = self._product_ids, self._dates, self._defects, self._anomalies
        jsonl = self._jsonl
        separator = ",\n  "
        for oid, order_day, ship_day, mode, customer, product, quantity, price, discount, profit in lines:
            position = self._written
            self._written += 1
            if jsonl and position % self._lines_per_file == 0:
                if parts:
                    self._handle.write("".join(parts))
                    parts = []
                self._open(self._out_dir / ORDERS_JSONL_TEMPLATE.format(index=position // self._lines_per_file))
            if anomalies is not None:
                price, profit = anomalies.apply(position, product, quantity, price, profit)
            if position in defects:
                values = (position + 1, oid, dates[order_day], dates[ship_day], mode, customer, product_ids[product])
                record: dict[str, Any] = dict(
                    zip(ORDER_KEYS, (*values, quantity, price, discount, profit), strict=True)
                )
                _apply_defect(record, *defects[position], order_day=order_day)
                if jsonl:
                    parts.append(json.dumps(record, ensure_ascii=False) + "\n")
                else:
                    text = json.dumps(record, indent=2, ensure_ascii=False).replace("\n", "\n  ")
                    parts.append(("  " if position == 0 else separator) + text)
                continue
            if jsonl:
                parts.append(
                    f'{{"Row ID": {position + 1}, "Order ID": "{oid}", "Order Date": "{dates[order_day]}", '
                    f'"Ship Date": "{dates[ship_day]}", "Ship Mode": "{mode}", "Customer ID": "{customer}", '
                    f'"Product ID": "{product_ids[product]}", "Quantity": {quantity}, "Price": {price!r}, '
                    f'"Discount": {discount!r}, "Profit": {profit!r}}}\n'
                )
            else:
                parts.append(
                    f'{"  " if position == 0 else separator}{{\n    "Row ID": {position + 1},\n'
                    f'    "Order ID": "{oid}",\n    "Order Date": "{dates[order_day]}",\n'
                    f'    "Ship Date": "{dates[ship_day]}",\n    "Ship Mode": "{mode}",\n'
                    f'    "Customer ID": "{customer}",\n    "Product ID": "{product_ids[product]}",\n'
                    f'    "Quantity": {quantity},\n    "Price": {price!r},\n    "Discount": {discount!r},\n'
                    f'    "Profit": {profit!r}\n  }}'
                )
        self._handle.write("".join(parts))

    def close(self) -> None:
        if not self._jsonl:
            self._handle.write("\n]")
        if self._handle is not None:
            self._handle.close()


def _apply_defect(record: dict[str, Any], kind: str, payload: Any, *, order_day: int) -> None:
    if kind == "profit_percent":
        record["Profit"] = f"{record['Profit']!r}%"
    elif kind == "order_date_iso":
        record["Order Date"] = (_FIRST_DATE + dt.timedelta(days=order_day)).isoformat()
    elif kind == "quantity_non_positive":
        record["Quantity"] = payload
    elif kind == "discount_out_of_range":
        record["Discount"] = 1.5
    elif kind == "row_id_null":
        record["Row ID"] = None


def _write_orders(
    out_dir: Path,
    n_lines: int,
    customer_ids: list[str],
    catalog: _Catalog,
    defects: dict[int, tuple[str, Any]],
    anomalies: _Anomalies | None,
    rng: random.Random,
    *,
    jsonl: bool,
    lines_per_file: int,
) -> list[Path]:
    """Generate orders in chunks of whole orders, shuffle each chunk's lines, and stream them to disk."""
    n_days = (dt.date(2018, 1, 1) - _FIRST_DATE).days + 8
    dates = [f"{d.day}/{d.month}/{d.year}" for d in (_FIRST_DATE + dt.timedelta(days=i) for i in range(n_days))]
    year_start = {year: (dt.date(year, 1, 1) - _FIRST_DATE).days for year in _YEARS}
    year_length = {year: (dt.date(year + 1, 1, 1) - dt.date(year, 1, 1)).days for year in _YEARS}
    years, prefixes, modes = _table(_YEARS), _table(_ORDER_PREFIXES), _table(_SHIP_MODES)
    ship_days = {mode: _table(days, 100) for mode, days in _SHIP_DAYS.items()}
    lines_per_order, quantities, discounts = _table(_LINES_PER_ORDER), _table(_QUANTITIES), _table(_DISCOUNTS)
    n_years, n_prefixes, n_modes = len(years), len(prefixes), len(modes)
    n_lpo, n_qty, n_disc = len(lines_per_order), len(quantities), len(discounts)

    # Order numbers: a bijective affine map over the six-digit space per (prefix, year), so IDs look random but never
    # repeat; a bucket that outgrows the space continues with seven-digit numbers.
    space = 900_000
    multiplier = rng.randrange(1, space)
    while math.gcd(multiplier, space) != 1:
        multiplier = rng.randrange(1, space)
    offset = rng.randrange(space)
    issued: dict[tuple[str, int], int] = {}

    prices, costs = catalog.prices, catalog.costs
    n_customers, n_products = len(customer_ids), len(prices)
    rnd = rng.random
    sink = _OrdersSink(out_dir, catalog.ids, dates, defects, anomalies, jsonl=jsonl, lines_per_file=lines_per_file)
    buffer: list[_Line] = []
    remaining, line_no, order_no = n_lines, 0, 0
    while remaining > 0:
        # The first orders go to each customer once, so every customer has orders.
        if order_no < n_customers:
            customer = customer_ids[order_no]
            uncovered = n_customers - order_no - 1
        else:
            customer = customer_ids[int(rnd() * n_customers)]
            uncovered = 0
        count = max(1, min(lines_per_order[int(rnd() * n_lpo)], remaining - uncovered))
        year = years[int(rnd() * n_years)]
        prefix = prefixes[int(rnd() * n_prefixes)]
        mode = modes[int(rnd() * n_modes)]
        order_day = year_start[year] + int(rnd() * year_length[year])
        days = ship_days[mode]
        ship_day = order_day + days[int(rnd() * len(days))]
        serial = issued.get((prefix, year), 0)
        issued[(prefix, year)] = serial + 1
        number = 100_000 + (multiplier * serial + offset) % space if serial < space else 100_000 + serial
        oid = f"{prefix}-{year}-{number}"
        for _ in range(count):
            # Likewise the first lines use each product once.
            product = line_no if line_no < n_products else int(rnd() * n_products)
            quantity = quantities[int(rnd() * n_qty)]
            discount = discounts[int(rnd() * n_disc)]
            price = round(prices[product] * quantity * (1 - discount), 2) + 0.0
            # Profit = sales - cost, with cost = cost share x list price x quantity (see _SUBCATEGORIES).
            profit = round(price - costs[product] * prices[product] * quantity, 2) + 0.0  # + 0.0: -0.0 -> 0.0
            buffer.append((oid, order_day, ship_day, mode, customer, product, quantity, price, discount, profit))
            line_no += 1
        remaining -= count
        order_no += 1
        if len(buffer) >= _CHUNK_LINES or remaining == 0:
            rng.shuffle(buffer)
            sink.write(buffer)
            buffer = []
    sink.close()
    return sink.paths
