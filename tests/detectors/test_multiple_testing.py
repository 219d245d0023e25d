"""Benjamini-Hochberg q-values: agreement with SciPy to the last digit, and the properties."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sst

from drifthouse.detectors.multiple_testing import bh_qvalues

# p-values with many ties, exact zeros and ones: what a window of binned tests produces.
_P = st.one_of(
    st.sampled_from([0.0, 1.0, 0.5, 0.01, 0.05, 1e-300]),
    st.floats(min_value=0.0, max_value=1.0, allow_nan=False),
)


@pytest.mark.parametrize(
    "ps",
    [
        pytest.param([], id="empty"),
        pytest.param([0.3], id="one"),
        pytest.param([0.0, 0.0, 0.0], id="zeros"),
        pytest.param([1.0, 1.0], id="ones"),
        pytest.param([0.01, 0.01, 0.02, 0.02, 0.9], id="ties"),
        pytest.param([0.5, 0.0, 1.0, 0.04, 0.04, 1e-12], id="mixed"),
    ],
)
def test_bh_equals_scipy_on_edge_cases(ps: list[float]) -> None:
    expected = sst.false_discovery_control(np.asarray(ps, dtype=float)).tolist() if ps else []
    assert bh_qvalues(ps) == expected


@settings(max_examples=300, deadline=None)
@given(st.lists(_P, min_size=1, max_size=200))
def test_bh_equals_scipy_to_the_last_digit(ps: list[float]) -> None:
    assert bh_qvalues(ps) == sst.false_discovery_control(np.asarray(ps)).tolist()


@settings(max_examples=100, deadline=None)
@given(st.lists(_P, min_size=1, max_size=60), st.randoms(use_true_random=False))
def test_bh_does_not_depend_on_input_order(ps: list[float], rnd: object) -> None:
    shuffled = list(enumerate(ps))
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    q = bh_qvalues(ps)
    q_shuffled = bh_qvalues([p for _, p in shuffled])
    assert [q[i] for i, _ in shuffled] == q_shuffled
    # equal p-values, equal q-values; q never below p; never above 1
    for p, qv in zip(ps, q, strict=True):
        assert p <= qv <= 1.0
        assert all(qv == q2 for p2, q2 in zip(ps, q, strict=True) if p2 == p)


@pytest.mark.parametrize(
    ("ps", "what"),
    [
        pytest.param(
            [0.1, float("nan")],
            r"p_values\[1\] must be a p-value in \[0, 1\] \(got nan\)",
            id="nan",
        ),
        pytest.param(
            [1.5], r"p_values\[0\] must be a p-value in \[0, 1\] \(got 1.5\)", id="above-one"
        ),
        pytest.param([-0.0001], r"p_values\[0\] .* \(got -0.0001\)", id="negative"),
    ],
)
def test_bh_refuses_what_is_not_a_p_value(ps: list[float], what: str) -> None:
    with pytest.raises(ValueError, match=what):
        bh_qvalues(ps)
