from __future__ import annotations

import math

import pytest

from drifthouse.errors import ConfigError
from drifthouse.expr import ExprError, extract_threshold, parse


@pytest.mark.parametrize(
    ("text", "value", "baseline", "n", "expected"),
    [
        pytest.param("value > 0.25", 0.3, None, None, True, id="gt"),
        pytest.param("value > 0.25", 0.25, None, None, False, id="gt-boundary"),
        pytest.param("value >= 0.25", 0.25, None, None, True, id="ge-boundary"),
        pytest.param("value > 2 * baseline", 5.0, 2.0, None, True, id="baseline"),
        pytest.param("value > 2 * baseline", 3.0, 2.0, None, False, id="baseline-below"),
        pytest.param("value > 2 * baseline", 5.0, None, None, False, id="no-baseline-is-false"),
        pytest.param(
            "not value > 2 * baseline", 5.0, None, None, False, id="no-baseline-even-negated"
        ),
        pytest.param("value < 0.9 * baseline", 0.8, 0.95, None, True, id="accuracy-drop"),
        pytest.param(
            "abs(value - baseline) / baseline > 0.1", 1.2, 1.0, None, True, id="abs-relative"
        ),
        pytest.param("value / baseline > 2", 5.0, 0.0, None, False, id="division-by-zero-is-false"),
        pytest.param("value > 0.05 and n >= 100", 0.1, None, 50, False, id="and-n"),
        pytest.param("value > 0.05 or n >= 100", 0.0, None, 150, True, id="or"),
        pytest.param("not (value > 1 or value < -1)", 0.5, None, None, True, id="not-parens"),
        pytest.param("-value > 1", -2.0, None, None, True, id="unary-minus"),
        pytest.param("value > 5%", 0.06, None, None, True, id="percent"),
        pytest.param("value == 1e-3", 0.001, None, None, True, id="exponent"),
        pytest.param("value != 0", math.nan, None, None, False, id="nan-is-false"),
        pytest.param("1 + 2 * 3 == 7", 0.0, None, None, True, id="precedence"),
        pytest.param("(1 + 2) * 3 == 9", 0.0, None, None, True, id="parens"),
    ],
)
def test_evaluate(
    text: str, value: float, baseline: float | None, n: int | None, expected: bool
) -> None:
    assert parse(text).evaluate(value=value, baseline=baseline, n=n) is expected


@pytest.mark.parametrize(
    ("text", "column", "fragment"),
    [
        pytest.param("", 1, "expected a condition", id="empty"),
        pytest.param("value >", 8, "expected a number, a name", id="dangling-op"),
        pytest.param("value > > 1", 9, "got '>'", id="double-op"),
        pytest.param("valu > 1", 1, "unknown name 'valu'", id="unknown-name"),
        pytest.param("value + 1", 1, "expected a comparison", id="not-a-condition"),
        pytest.param("(value > 1", 11, "expected ')'", id="unclosed"),
        pytest.param("value > 1 and 2", 11, "needs comparisons on both sides", id="and-number"),
        pytest.param("value $ 1", 7, "unexpected character '$'", id="bad-char"),
        pytest.param("1 < value < 2", 11, "chained comparisons", id="chained"),
        pytest.param("abs value", 5, "'(' after 'abs'", id="abs-paren"),
        pytest.param("value > 1 1", 11, "expected an operator", id="trailing"),
        pytest.param("__import__('os') > 1", 12, "unexpected character", id="no-python"),
        pytest.param("__import__ > 1", 1, "unknown name", id="no-python-names"),
    ],
)
def test_parse_errors_name_the_column(text: str, column: int, fragment: str) -> None:
    with pytest.raises(ExprError) as info:
        parse(text)
    assert info.value.column == column
    assert fragment in str(info.value)
    assert isinstance(info.value, ConfigError)


@pytest.mark.parametrize(
    ("text", "baseline", "expected"),
    [
        pytest.param("value > 2 * baseline", 3.0, 6.0, id="times-baseline"),
        pytest.param("value > 0.25", None, 0.25, id="constant"),
        pytest.param("0.25 < value", None, 0.25, id="reversed"),
        pytest.param("value < 0.9 * baseline", 0.9, 0.81, id="below"),
        pytest.param("n >= 100 and value > 0.05", None, 0.05, id="skips-non-value"),
        pytest.param("value > 2 * baseline", None, math.nan, id="no-baseline-nan"),
    ],
)
def test_extract_threshold(text: str, baseline: float | None, expected: float) -> None:
    got = extract_threshold(parse(text), baseline)
    if math.isnan(expected):
        assert math.isnan(got)
    else:
        assert got == pytest.approx(expected)


def test_parse_once_evaluate_many() -> None:
    cond = parse("value > 2 * baseline")
    assert [cond.evaluate(value=v, baseline=1.0) for v in (1.0, 2.0, 3.0)] == [False, False, True]
    assert cond.uses_baseline
    assert not parse("value > 1").uses_baseline


# ---- bounded: long or deep conditions are config errors, never a RecursionError ----------------

CHAIN = "value > 1" + " and n > 1" * 40  # 41 comparisons, left-deep: 41 levels


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        pytest.param("(" * 5_000 + "value > 1" + ")" * 5_000, "at most 1000 characters", id="long-parens"),
        pytest.param("(" * 400 + "value > 1" + ")" * 400, "nested more than 32 levels", id="deep-parens"),
        pytest.param("value > " + "-" * 900 + "1", "nested more than 32 levels", id="deep-minus"),
        pytest.param("not " * 200 + "value > 1", "nested more than 32 levels", id="deep-not"),
        pytest.param("abs(" * 100 + "value" + ")" * 100 + " > 1", "nested more than 32 levels", id="deep-abs"),
        pytest.param(CHAIN, "nested more than 32 levels", id="long-and-chain"),
        pytest.param("value + " * 120 + "1 > 0", "nested more than 32 levels", id="long-sum"),
        pytest.param("value > 1 " + "or value > 2 " * 100_000, "at most 1000 characters", id="one-megabyte"),
    ],
)  # fmt: skip
def test_long_or_deep_conditions_are_refused(text: str, fragment: str) -> None:
    with pytest.raises(ExprError) as info:
        parse(text)
    message = str(info.value)
    assert fragment in message
    assert len(message) < 400  # the condition is quoted in part, not whole
    assert isinstance(info.value, ConfigError)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("(" * 31 + "value > 1" + ")" * 31, id="31-parens"),
        pytest.param("value > " + "-" * 30 + "1", id="30-minus"),
        pytest.param("value > 1" + " and n > 1" * 30, id="31-comparisons"),
        pytest.param("abs(value - baseline) / baseline > 0.5 and n >= 100", id="ordinary"),
    ],
)
def test_conditions_within_the_bounds_parse_and_evaluate(text: str) -> None:
    cond = parse(text)
    assert isinstance(cond.evaluate(value=2.0, baseline=1.0, n=5), bool)
    assert isinstance(cond.negated().evaluate(value=2.0, baseline=1.0, n=5), bool)
    assert math.isfinite(extract_threshold(cond, baseline=1.0, n=5)) or "value" not in text
