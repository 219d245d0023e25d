"""Category keys: the one name a categorical value has, however it was typed.

A model server may send a category as the JSON number ``1``, the JSON string ``"1"`` or the
string ``"1.0"``; a CSV file holds it as text, a JSONL file as a number or a string. All of
these are one category. :func:`category_key` turns any raw value into that category's name,
and every place that makes a category name calls it: profiles (from JSONL, CSV, Parquet or
columns), the window's column extraction (both decode paths), the categorical sketch's
encoder, the prediction's class, and so the ``categories`` rows in ClickHouse.

The rules (``docs/statistics.md``, "Categorical features"):

- ``None`` and a float NaN are missing (no key).
- ``True``/``False`` are ``"true"``/``"false"``; so are the strings ``"true"``, ``"True"``,
  ``"TRUE"`` and ``"false"``, ``"False"``, ``"FALSE"`` (the spellings CSV readers take for
  booleans).
- A number (``int``, ``float``, numpy scalars) is the double it is on the wire (JSON numbers
  decode as doubles): an integral value of magnitude at most 2**53 is written as an integer
  (``1``, ``1.0`` and ``1e0`` are ``"1"``; ``-0.0`` is ``"0"``), any other value as Python's
  shortest round-trip ``repr`` (``"0.5"``, ``"1e+20"``, ``"inf"``).
- A string that is a decimal numeral as programs write numbers (``-?``, an integer part
  without a leading zero, an optional fraction, an optional exponent: ``"1"``, ``"1.0"``,
  ``"-2.50"``, ``"1e0"``, ``"1.5E+3"``) is the number it denotes, when it denotes one double
  unambiguously: it has at most 15 significant digits, or its value is exactly a double.
  Longer numerals (``"12345678901234567891"``, an account number) stay as they are, so two
  different identifiers never become one category.
- An array (a list, tuple or NumPy array: an embedding's value) is never a category: it is
  missing.
- Any other string is itself: ``"01"``, ``"+1"``, ``" 1"``, ``".5"``, ``"1."``, ``"nan"``,
  ``"Infinity"``, ``"yes"`` and ``""`` are categories of their own (a leading zero marks a
  code, not a number).

Keys are fixed points (``category_key(category_key(v)) == category_key(v)``), so a profile's
category names look themselves up.

>>> [category_key(v) for v in (1, 1.0, "1", "1.0", "1e0", True, "True", "01", 0.5, None)]
['1', '1', '1', '1', '1', 'true', 'true', '01', '0.5', None]
"""

from __future__ import annotations

import math
import re
from decimal import Decimal

import numpy as np

__all__ = ["category_key", "numeral_value"]

_EXACT = 2**53
_NUMERAL = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_MANTISSA = re.compile(r"-?([0-9]*)\.?([0-9]*)")
_BOOLS = {"true": "true", "True": "true", "TRUE": "true"} | {
    "false": "false",
    "False": "false",
    "FALSE": "false",
}


def _float_key(x: float) -> str | None:
    if x != x:  # NaN: missing
        return None
    if x.is_integer() and -_EXACT <= x <= _EXACT:
        return str(int(x))
    return repr(x)


def _significant(text: str) -> int:
    """Significant digits of a numeral's mantissa (leading and trailing zeros left out)."""
    match = _MANTISSA.match(text)
    assert match is not None  # the numeral matched already
    return len((match.group(1) + match.group(2)).strip("0"))


def _string_key(text: str) -> str:
    found = _BOOLS.get(text)
    if found is not None:
        return found
    if not _NUMERAL.fullmatch(text):
        return text
    x = float(text)
    if math.isinf(x):  # "1e999": no double holds it
        return text
    if _significant(text) > 15 and Decimal(text) != Decimal(x):
        return text  # more digits than a double holds: an identifier, not a number
    key = _float_key(x)
    assert key is not None
    return key


def numeral_value(text: str) -> float | None:
    """The finite number a string denotes when it is a decimal numeral as programs write
    numbers (the rule above: ``"2973.0"``, ``"-1.5e3"``), else ``None`` (``"01"``, ``" 3"``,
    ``"nan"``, ``"1e999"``, ``"?"``). Label metrics read a numeric label sent as text with it.

    >>> [numeral_value(t) for t in ("2973.0", "1e0", "01", "?")]
    [2973.0, 1.0, None, None]
    """
    if not _NUMERAL.fullmatch(text):
        return None
    x = float(text)
    return x if math.isfinite(x) else None


def category_key(value: object) -> str | None:
    """The category name of a raw value, or ``None`` when it is missing (rules above)."""
    kind = type(value)
    if kind is str:
        return _string_key(value)  # type: ignore[arg-type]
    if value is None:
        return None
    if kind is bool or isinstance(value, np.bool_):
        return "true" if value else "false"
    if kind is float or isinstance(value, float | np.floating):
        return _float_key(float(value))  # type: ignore[arg-type]
    if kind is int or isinstance(value, int | np.integer):
        n = int(value)  # type: ignore[call-overload]
        if -_EXACT <= n <= _EXACT:
            return str(n)
        try:
            return _float_key(float(n))  # what the wire's double makes of it
        except OverflowError:
            return "inf" if n > 0 else "-inf"
    if isinstance(value, str):  # a str subclass (numpy.str_)
        return _string_key(str(value))
    if isinstance(value, list | tuple | np.ndarray):
        return None  # an array (an embedding's value) is never a category: missing here
    return str(value)
