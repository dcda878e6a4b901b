"""Phone normalisation as Column expressions.

The export mixes text and numeric cells: ``421.580.0902x9815``, ``(563)647-4830x5318``, ``001-542-415-0246x314``,
``7185624866`` and numbers that lost a leading zero (``67435855`` style 9-digit values), plus garbage:
``#ERROR!`` and negative numbers such as ``-6181``.

Rule: the extension is what follows an ``x``; the main part must hold only digits and the separators
``( ) . - +`` and space. Its digits, after dropping a ``001`` (US international dialling) or ``1`` (country)
prefix, must be 10 (a 9-digit numeric cell is a 10-digit number that lost its leading zero and is zero-padded).
The result is E.164 (``+1`` and 10 digits). Anything else is unusable: null, and the customer is flagged.
"""

from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F

_SHAPE = r"^\+?[0-9().\- ]+(x[0-9]+)?$"


def _main_digits(raw: Column) -> Column:
    main = F.regexp_replace(F.lower(F.trim(raw)), r"x[0-9]+$", "")
    digits = F.regexp_replace(main, r"[^0-9]", "")
    digits = F.when((F.length(digits) == 13) & digits.startswith("001"), F.substring(digits, 4, 10)).otherwise(digits)
    digits = F.when((F.length(digits) == 11) & digits.startswith("1"), F.substring(digits, 2, 10)).otherwise(digits)
    return F.when(F.length(digits) == 9, F.lpad(digits, 10, "0")).otherwise(digits)


def is_phone_usable(raw: Column) -> Column:
    """True when :func:`normalize_phone` can produce a number; false (never null) otherwise."""
    shaped = F.lower(F.trim(raw)).rlike(_SHAPE) & ~F.trim(raw).startswith("-")
    return F.coalesce(shaped & (F.length(_main_digits(raw)) == 10), F.lit(False))


def normalize_phone(raw: Column) -> Column:
    """E.164 form (``+1XXXXXXXXXX``) of a raw phone, or null when unusable."""
    return F.when(is_phone_usable(raw), F.concat(F.lit("+1"), _main_digits(raw)))


def phone_extension(raw: Column) -> Column:
    """The digits after ``x`` in a usable phone, or null."""
    extension = F.regexp_extract(F.lower(F.trim(raw)), r"x([0-9]+)$", 1)
    return F.when(is_phone_usable(raw) & (extension != ""), extension)
