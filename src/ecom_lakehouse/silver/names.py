"""Customer-name repair as Spark Column expressions (built-in regexes only, no Python UDF).

The export's names carry injected noise: digits and symbols (``Gary567 Hansen``, ``Pete@#$ Takahito``), noise
with spaces inside a word (``Ge 1234orge Bell``, ``B         ecky Martin``, ``Kat rina Edelman``) and look-alike
substitutions (``Bi1l``, ``Wa55erman``, ``N0ra``, ``C@thy``, ``Dan!els``, ``5chnelling``). Legitimate names keep
Unicode letters, apostrophes and hyphens inside a word, lowercase surnames and three-word names
(``Peter Bühler``, ``Sean O'Donnell``, ``Corey-Lock``, ``Dorris liebe``, ``Darrin Van Huff``).

The rules, applied in order:

1. Non-breaking and other Unicode spaces become plain spaces.
2. Look-alikes are read back as letters when they sit inside a word: one character, or a pair of the same
   character, between letters (``Bi1l``, ``Wa55erman``); a pair at the end of a word (``Ji11``); one at the start
   of a word before two lowercase letters, upper-cased (``5chnelling``). Mapping: 0 o, 1 l, 3 e, 4 a, 5 s, 7 t,
   @ a, ! i, $ s. Longer or mixed runs (``Gary567``, ``Brosin34a``) are noise, not letters.
3. A noise run (non-letters holding at least one character other than a space, apostrophe or hyphen) between
   a letter and a lowercase letter is removed, joining the word (``Tho   12 =-.mas`` -> ``Thomas``).
4. Two or more spaces between a letter and a lowercase letter join the word (``B         ecky`` -> ``Becky``).
5. One space before a lowercase fragment that is followed by another word joins the fragment to the word before
   it (``Kat rina Edelman`` -> ``Katrina Edelman``), except name particles (van, von, de, da, di, du, del, der,
   la, le). A lowercase last word is a legitimate surname and stays (``Dorris liebe``).
6. Every remaining character that is not a letter, space, apostrophe or hyphen is removed; apostrophes and
   hyphens survive only between two letters (``Joy Bell-`` -> ``Joy Bell``); spaces collapse; ends are trimmed.
7. Nothing left means no name: null (flagged ``is_name_missing`` by the customer build).
"""

from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F

LOOK_ALIKES: dict[str, str] = {"0": "o", "1": "l", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "!": "i", "$": "s"}
NAME_PARTICLES = ("van", "von", "de", "da", "di", "du", "del", "der", "la", "le")

_LETTER = r"\p{L}"
_NOISE_RUN = r"[^\p{L}]*[^\p{L}\s'\-][^\p{L}]*"


def _java_quote(char: str) -> str:
    return "\\" + char if char in "$!@" else char


def _read_look_alikes(name: Column) -> Column:
    for char, letter in LOOK_ALIKES.items():
        c = _java_quote(char)
        name = F.regexp_replace(name, rf"(?<={_LETTER}){c}(?={_LETTER})", letter)
        name = F.regexp_replace(name, rf"(?<={_LETTER}){c}{c}(?={_LETTER}|\s|$)", letter * 2)
        name = F.regexp_replace(name, rf"(?<=^|\s){c}(?=\p{{Ll}}{{2}})", letter.upper())
    return name


def clean_customer_name(raw: Column) -> Column:
    """Repair a raw customer name; see the module docstring for the rules.

    Args:
        raw: the name as it came from the source.

    Returns:
        The repaired name, or null when nothing of a name is left.
    """
    name = F.regexp_replace(raw, r"[\u00A0\u2007\u202F\u2000-\u200B\t]", " ")
    name = _read_look_alikes(name)
    name = F.regexp_replace(name, rf"(?<={_LETTER}){_NOISE_RUN}(?=\p{{Ll}})", "")
    name = F.regexp_replace(name, rf"(?<={_LETTER})\s{{2,}}(?=\p{{Ll}})", "")
    particles = "|".join(NAME_PARTICLES)
    name = F.regexp_replace(name, rf"(?<={_LETTER}) (?!(?:{particles})\s)(\p{{Ll}}+)(?=\s+\p{{L}})", "$1")
    name = F.regexp_replace(name, r"[^\p{L}\s'\-]", "")
    name = F.regexp_replace(name, r"(?<!\p{L})['\-]+|['\-]+(?!\p{L})", "")
    name = F.trim(F.regexp_replace(name, r"\s+", " "))
    return F.when(name == "", F.lit(None).cast("string")).otherwise(name)
