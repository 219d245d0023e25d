"""Quantile sketch accuracy against ``np.quantile(method='lower')``."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from drifthouse.detectors.quantiles import QuantileSketch
from drifthouse.errors import SketchError

QS = QuantileSketch()
QUANTILES = [0.0, 0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0]


@pytest.mark.parametrize(
    "values",
    [
        pytest.param(np.random.default_rng(0).lognormal(3, 1, 100_000), id="lognormal"),
        pytest.param(np.random.default_rng(1).exponential(40, 10_000), id="exponential"),
        pytest.param(np.random.default_rng(2).pareto(1.5, 50_000) * 10 + 1, id="pareto-heavy-tail"),
        pytest.param(np.random.default_rng(3).uniform(1, 2, 1_000), id="narrow"),
        pytest.param(np.asarray([42.0]), id="single"),
        pytest.param(np.asarray([5.0, 5.0, 5.0, 9e6]), id="ties-and-huge"),
    ],
)
def test_quantiles_are_within_the_relative_accuracy(values: np.ndarray) -> None:
    state = QS.update(QS.empty(), values)
    for q in QUANTILES:
        got = QS.quantile(state, q)
        exact = np.quantile(values, q, method="lower")
        assert got is not None
        assert abs(got - exact) <= QS.relative_accuracy * abs(exact) * (1 + 1e-9), q


@settings(max_examples=60, deadline=None)
@given(
    hnp.arrays(np.float64, st.integers(1, 300), elements=st.floats(1e-2, 1e6, allow_nan=False)),
    st.floats(0.0, 1.0),
)
def test_any_quantile_is_within_one_percent(values: np.ndarray, q: float) -> None:
    state = QS.update(QS.empty(), values)
    got = QS.quantile(state, q)
    exact = np.quantile(values, q, method="lower")
    assert got is not None
    assert abs(got - exact) <= 0.01 * exact


def test_zero_and_negative_values_share_the_lowest_bucket() -> None:
    state = QS.update(QS.empty(), np.asarray([0.0, 0.0, 0.0, 10.0]))
    assert QS.quantile(state, 0.0) == 0.0  # clamped to the observed minimum
    assert QS.quantile(state, 0.5) == 0.0
    assert QS.quantile(state, 1.0) == pytest.approx(10.0, rel=QS.relative_accuracy)


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(SketchError, match="relative_accuracy"):
        QuantileSketch(0.0)
    with pytest.raises(SketchError, match="q must be"):
        QS.quantile(QS.empty(), 1.5)
    with pytest.raises(SketchError, match="1-D"):
        QS.update(QS.empty(), np.zeros((2, 2)))


def test_state_is_small() -> None:
    # 1e-3 .. 1e7 ms at 0.5% relative accuracy.
    assert QS.n_buckets == 2303
    assert QS.empty().counts.nbytes < 20_000
