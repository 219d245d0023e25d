"""The canonical category key: one name per category, however the value was typed."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from drifthouse.categories import category_key


@pytest.mark.parametrize(
    ("value", "key"),
    [
        pytest.param(None, None, id="none-missing"),
        pytest.param(float("nan"), None, id="nan-missing"),
        pytest.param(np.float64("nan"), None, id="numpy-nan-missing"),
        pytest.param(1, "1", id="int"),
        pytest.param(1.0, "1", id="integral-float"),
        pytest.param("1", "1", id="string"),
        pytest.param("1.0", "1", id="string-fraction"),
        pytest.param("1.000", "1", id="string-trailing-zeros"),
        pytest.param("1e0", "1", id="string-exponent"),
        pytest.param("1E+3", "1000", id="string-upper-exponent"),
        pytest.param(np.int64(1), "1", id="numpy-int"),
        pytest.param(np.float32(1.0), "1", id="numpy-float32"),
        pytest.param(-0.0, "0", id="negative-zero"),
        pytest.param("-0", "0", id="string-negative-zero"),
        pytest.param(-2.5, "-2.5", id="negative-fraction"),
        pytest.param("-2.50", "-2.5", id="string-negative-fraction"),
        pytest.param(0.1, "0.1", id="fraction"),
        pytest.param("0.1", "0.1", id="string-fraction-short"),
        pytest.param(0.1 + 0.2, "0.30000000000000004", id="seventeen-digits"),
        pytest.param("0.30000000000000004", "0.30000000000000004", id="string-seventeen-digits"),
        pytest.param(2**53, "9007199254740992", id="largest-exact-int"),
        pytest.param(2**53 + 2, "9007199254740994.0", id="int-beyond-2-53-as-double"),
        pytest.param(1e20, "1e+20", id="large-float"),
        pytest.param(10**20, "1e+20", id="large-int-as-double"),
        pytest.param("1e20", "1e+20", id="string-large"),
        pytest.param(10**400, "inf", id="int-beyond-doubles"),
        pytest.param(float("inf"), "inf", id="infinity"),
        pytest.param(float("-inf"), "-inf", id="negative-infinity"),
        pytest.param(True, "true", id="true"),
        pytest.param(False, "false", id="false"),
        pytest.param(np.bool_(True), "true", id="numpy-true"),
        pytest.param("True", "true", id="string-True"),
        pytest.param("TRUE", "true", id="string-TRUE"),
        pytest.param("False", "false", id="string-False"),
        pytest.param("01", "01", id="leading-zero-is-a-code"),
        pytest.param("007", "007", id="leading-zeros-are-a-code"),
        pytest.param("+1", "+1", id="plus-sign-kept"),
        pytest.param(" 1", " 1", id="space-kept"),
        pytest.param(".5", ".5", id="no-integer-part-kept"),
        pytest.param("1.", "1.", id="empty-fraction-kept"),
        pytest.param("nan", "nan", id="string-nan-is-a-category"),
        pytest.param("Infinity", "Infinity", id="string-infinity-kept"),
        pytest.param("1e999", "1e999", id="string-overflow-kept"),
        pytest.param("yes", "yes", id="word"),
        pytest.param("", "", id="empty-string"),
        pytest.param("12345678901234567891", "12345678901234567891", id="long-identifier-kept"),
        pytest.param("9007199254740993", "9007199254740993", id="inexact-16-digits-kept"),
        pytest.param("9007199254740992", "9007199254740992", id="exact-16-digits"),
        pytest.param("1234567890123456.0", "1234567890123456", id="exact-16-digits-fraction"),
        pytest.param(np.str_("DE"), "DE", id="numpy-string"),
    ],
)
def test_category_key(value: object, key: str | None) -> None:
    assert category_key(value) == key


_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.from_regex(r"-?(0|[1-9][0-9]{0,25})(\.[0-9]{1,25})?([eE][+-]?[0-9]{1,3})?", fullmatch=True),
)


@given(_VALUES)
def test_keys_are_fixed_points(value: object) -> None:
    key = category_key(value)
    assert key is None or category_key(key) == key


@given(st.floats(allow_nan=False))
def test_a_number_and_the_text_a_program_writes_for_it_are_one_category(x: float) -> None:
    assert category_key(repr(x)) == category_key(x) == category_key(np.float64(x))
    if x.is_integer() and abs(x) <= 2**53:
        assert category_key(str(int(x))) == category_key(int(x)) == category_key(x)


@given(st.integers(min_value=-(10**15) + 1, max_value=10**15 - 1), st.integers(0, 6))
def test_fixed_decimals_of_an_integer_are_that_integer(n: int, decimals: int) -> None:
    assert category_key(f"{n:.{decimals}f}") == category_key(n) == str(n)


_SHORT = r"-?(0|[1-9][0-9]{0,7})(\.[0-9]{1,7})?"  # at most 15 significant digits


@given(st.from_regex(_SHORT, fullmatch=True), st.from_regex(_SHORT, fullmatch=True))
def test_numerals_of_different_numbers_stay_different(a: str, b: str) -> None:
    assert (category_key(a) == category_key(b)) == (Decimal(a) == Decimal(b))


@example("40000000000000100")  # 15 significant digits: the double 4.00000000000001e+16
@given(st.from_regex(r"[1-9][0-9]{16,30}", fullmatch=True))
def test_long_numerals_that_no_double_holds_are_kept(text: str) -> None:
    significant = len(text.rstrip("0"))
    if significant > 15 and Decimal(text) != Decimal(float(text)):
        assert category_key(text) == text
    else:  # at most 15 significant digits, or exactly a double: the number it names
        assert category_key(text) == category_key(float(text))
