"""Change detection over window series: false alarms, detection, order, snapshots."""

from __future__ import annotations

import math

import numpy as np
import pytest

from drifthouse.detectors.base import Result
from drifthouse.detectors.change import ChangeConfig, ChangeDetectors, series_name
from drifthouse.errors import SketchError

KEY = ("m", "1", "1h", "s")
HOUR = 3_600_000


def _run(cd: ChangeDetectors, x: np.ndarray, first: int = 0) -> list[bool | None]:
    return [cd.feed(KEY, (first + i) * HOUR, float(v)) for i, v in enumerate(x)]


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda r: r.normal(0.5, 0.1, 10_000), id="normal"),
        pytest.param(lambda r: (r.random(10_000) < 0.3) * 1.0, id="bernoulli"),
        pytest.param(lambda r: r.binomial(1000, 0.05, 10_000) / 1000, id="rate"),
    ],
)
def test_false_alarm_rate_of_the_defaults(make: object) -> None:
    x = make(np.random.default_rng(0))  # type: ignore[operator]
    out = [r for r in _run(ChangeDetectors(ChangeConfig(series=("s",))), x) if r is not None]
    rate = sum(out) / len(out)
    assert rate < 0.002  # measured ~0.06% (docs/model-performance.md)


@pytest.mark.parametrize("huge", [1e300, -1e300, 1.7e308])
def test_a_huge_but_finite_value_is_fed_without_overflow(huge: float) -> None:
    """A window whose mean score is 1e300 (a finite number the events accept) neither in the
    warm-up (its variance overflowed: OverflowError, the whole replay lost) nor after it."""
    cd = ChangeDetectors(ChangeConfig(series=("s",), warmup=5))
    assert _run(cd, np.array([1.0, 2.0, huge, 1.0, 1.0])) == [None] * 5
    assert all(r is not None for r in _run(cd, np.array([1.0, huge, 1.0, 1.0]), first=5))
    rng = np.random.default_rng(3)
    calm = ChangeDetectors(ChangeConfig(series=("s",), warmup=5))
    out = _run(calm, np.r_[rng.normal(1.0, 0.1, 45), [huge] * 5])
    assert not any(out[:45])
    assert any(out[45:])  # a value that far out is a change


def test_detects_a_shift_in_the_5xx_rate() -> None:
    rng = np.random.default_rng(1)
    x = np.r_[rng.binomial(1000, 0.05, 200) / 1000, rng.binomial(1000, 0.07, 100) / 1000]
    fired = [i for i, r in enumerate(_run(ChangeDetectors(), x)) if r]
    assert fired
    assert 200 <= fired[0] <= 230


def test_warmup_is_silent_and_results_name_the_series() -> None:
    cd = ChangeDetectors(ChangeConfig(series=("error_rate_5xx", "__prediction__:psi"), warmup=5))
    rows = []
    for i in range(8):
        rows.append(
            cd.update(
                "m",
                "1",
                "1h",
                i * HOUR,
                [
                    Result("", "error_rate_5xx", 0.01, None, 0, 10),
                    Result("__prediction__", "psi", 0.02, None, 10, 10),
                    Result("", "latency_p95", 9.0, None, 0, 10),  # not watched
                ],
            )
        )
    assert rows[:5] == [[]] * 5
    assert [(r.feature, r.metric, r.value) for r in rows[5]] == [
        ("error_rate_5xx", "change_detected", 0.0),
        ("__prediction__:psi", "change_detected", 0.0),
    ]
    assert series_name("", "accuracy") == "accuracy"


def test_windows_are_fed_once_in_order() -> None:
    cd = ChangeDetectors(ChangeConfig(series=("s",), warmup=2))
    assert cd.feed(KEY, 10, 1.0) is None
    assert cd.feed(KEY, 10, 5.0) is None  # the same window again (a rewrite): skipped
    assert cd.feed(KEY, 5, 5.0) is None  # an earlier one: skipped
    assert cd.feed(KEY, 20, 1.1) is None  # warm-up complete
    assert cd.feed(KEY, 30, float("nan")) is None
    assert cd.feed(KEY, 40, 1.05) is False


def test_change_restarts_the_baseline() -> None:
    rng = np.random.default_rng(2)
    x = np.r_[rng.normal(0, 1, 100), rng.normal(10, 1, 400)]
    cd = ChangeDetectors(ChangeConfig(series=("s",)))
    fired = [i for i, r in enumerate(_run(cd, x)) if r]
    assert fired[0] >= 100
    assert len(fired) <= 2  # the new level becomes the baseline
    assert cd.changes(KEY) == len(fired)


def test_snapshot_restores_exactly() -> None:
    rng = np.random.default_rng(3)
    x = np.r_[rng.normal(0, 1, 300), rng.normal(1.5, 1, 300)]
    straight = _run(ChangeDetectors(), x)
    cd = ChangeDetectors()
    first = _run(cd, x[:250])
    restored = ChangeDetectors.from_bytes(cd.to_bytes())
    rest = _run(restored, x[250:], first=250)
    assert first + rest == straight
    assert any(straight)


def test_bad_snapshots_and_config() -> None:
    with pytest.raises(SketchError):
        ChangeDetectors.from_bytes(b"\x80\x04N.")
    with pytest.raises(SketchError, match="warmup"):
        ChangeConfig(warmup=1)


def _results(v: float) -> list[Result]:
    return [Result("", "s", v, None, 0, 1)]


def test_deferred_windows_take_their_last_values_and_are_fed_in_order_once_final() -> None:
    """A window that may be rewritten waits with its latest values; later windows of its series
    wait behind it; once final they give the rows feeding the final values in order gives."""
    x = np.r_[np.full(4, 5000.0), np.full(6, 10.0)]
    straight = ChangeDetectors(ChangeConfig(series=("s",), warmup=2, ph_min_instances=1,
                                            ph_threshold=5.0))  # fmt: skip
    want = {}
    for i, v in enumerate(x):
        for r in straight.update(*KEY[:3], i * HOUR, _results(float(v))):
            want[i * HOUR] = (r.feature, r.value, r.n_cur)
    assert (KEY[3], 1.0, 5) in want.values()
    cd = ChangeDetectors(straight.config)
    for i in range(6):  # written while a partition was idle: the low values, all deferred
        assert cd.update(*KEY[:3], i * HOUR, _results(10.0), defer=True) == []
    for i in range(4):  # the partition wakes: rewrites with the complete values
        assert cd.update(*KEY[:3], i * HOUR, _results(5000.0), defer=True) == []
    assert cd.update(*KEY[:3], 6 * HOUR, _results(10.0)) == []  # behind the deferred ones
    assert cd.deferred() == 7
    got = {}
    released = cd.release(lambda window, start: window == "1h" and start < 3 * HOUR)
    assert sorted(start for *_, start in released) == [2 * HOUR]  # warm-up gives no row
    released |= cd.release(lambda window, start: True)
    for (*_, start), rows in released.items():
        (r,) = rows
        got[start] = (r.feature, r.value, r.n_cur)
    for i in range(7, 10):  # nothing deferred any more: fed at once
        for r in cd.update(*KEY[:3], i * HOUR, _results(10.0)):
            got[i * HOUR] = (r.feature, r.value, r.n_cur)
    assert got == want
    # A re-delivery of a window fed already is skipped, deferred or not.
    assert cd.update(*KEY[:3], 9 * HOUR, _results(1e9), defer=True) == []
    assert cd.deferred() == 0


def test_deferred_windows_survive_a_snapshot() -> None:
    cd = ChangeDetectors(ChangeConfig(series=("s",), warmup=2))
    cd.update(*KEY[:3], 0, _results(1.0), defer=True)
    restored = ChangeDetectors.from_bytes(cd.to_bytes())
    assert restored.deferred() == 1
    # A snapshot written before windows could be deferred reads back with none deferred.
    s = cd._series[KEY]
    del s.queued
    assert ChangeDetectors.from_bytes(cd.to_bytes()).deferred() == 0


def test_the_warm_up_statistics_are_exact_to_rounding_over_every_finite_float() -> None:
    """Against exact rational arithmetic, from subnormals to the largest float."""
    from fractions import Fraction

    from hypothesis import given
    from hypothesis import strategies as st

    from drifthouse.detectors.change import _mean_std

    finite = st.floats(allow_nan=False, allow_infinity=False)

    @given(st.lists(finite, min_size=1, max_size=40))
    def check(values: list[float]) -> None:
        exact = [Fraction(v) for v in values]
        mean = sum(exact) / len(exact)
        var = sum((v - mean) ** 2 for v in exact) / len(exact)
        got_mean, got_std = _mean_std(values)
        assert math.isfinite(got_mean)
        assert math.isfinite(got_std)
        spread = float(max(abs(v) for v in exact))
        assert abs(Fraction(got_mean) - mean) <= Fraction(1e-12) * Fraction(spread) + Fraction(
            1e-300
        )
        # std**2 against the exact variance (its float may overflow where the std does not)
        tolerance = Fraction(1e-9) * var + Fraction(1e-12 * spread) ** 2
        assert abs(Fraction(got_std) ** 2 - var) <= tolerance

    check()
