"""KL divergence and the per-bin terms of PSI and JS (docs/statistics.md, "KL divergence" and
"Drift attribution"): checked against SciPy and against the totals they split."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from scipy import special
from scipy import stats as sst
from scipy.spatial.distance import jensenshannon

from drifthouse.detectors import stats
from tests import naive
from tests.detectors.strategies import count_arrays

EPS = 1e-4


def _floored(counts: np.ndarray, eps: float = EPS) -> np.ndarray:
    return np.maximum(counts / counts.sum(), eps)


@settings(max_examples=120, deadline=None)
@given(count_arrays)
def test_kl_is_scipy_relative_entropy_of_the_floored_proportions(
    pair: tuple[np.ndarray, np.ndarray],
) -> None:
    ref, cur = pair
    kl = stats.kl(ref_counts=ref, cur_counts=cur, eps=EPS)
    assert math.isfinite(kl)
    if ref.sum() == 0 or cur.sum() == 0:
        assert kl == 0.0
        return
    q, p = _floored(cur), _floored(ref)
    # Not renormalised after the floor, like PSI: the sum of scipy's elementwise terms.
    assert kl == pytest.approx(float(special.rel_entr(q, p).sum()), rel=1e-12, abs=1e-12)
    assert kl == pytest.approx(naive.kl(ref, cur, EPS), rel=1e-12, abs=1e-12)
    # PSI is the symmetrised KL on the same floored proportions.
    back = stats.kl(ref_counts=cur, cur_counts=ref, eps=EPS)
    assert kl + back == pytest.approx(stats.psi(ref_counts=ref, cur_counts=cur, eps=EPS), abs=1e-12)
    # Never below the mass the floor added to the reference beyond the current's.
    assert kl >= q.sum() - p.sum() - 1e-12


def test_kl_equals_scipy_entropy_when_no_bin_is_floored() -> None:
    rng = np.random.default_rng(21)
    for _ in range(200):
        k = int(rng.integers(2, 40))
        ref = rng.integers(100, 1_000, size=k)
        cur = rng.integers(100, 1_000, size=k)
        q, p = _floored(cur), _floored(ref)
        assert np.all(cur / cur.sum() >= EPS)
        assert np.all(ref / ref.sum() >= EPS)
        assert stats.kl(ref_counts=ref, cur_counts=cur, eps=EPS) == pytest.approx(
            float(sst.entropy(q, p)), rel=1e-12, abs=1e-14
        )


@pytest.mark.parametrize(
    ("ref", "cur", "expected"),
    [
        pytest.param([0, 0], [5, 5], 0.0, id="empty-reference"),
        pytest.param([5, 5], [0, 0], 0.0, id="empty-window"),
        pytest.param([5, 5], [5, 5], 0.0, id="identical"),
        pytest.param([50, 50], [90, 10], 0.9 * math.log(1.8) + 0.1 * math.log(0.2), id="two-bins"),
        pytest.param([10, 0], [0, 10], math.log(1 / EPS) + EPS * math.log(EPS), id="disjoint"),
    ],
)
def test_kl_edge_cases(ref: list[int], cur: list[int], expected: float) -> None:
    assert stats.kl(ref_counts=ref, cur_counts=cur, eps=EPS) == pytest.approx(expected, rel=1e-12)


def test_kl_is_asymmetric() -> None:
    ref, cur = [90, 10], [50, 50]
    assert stats.kl(ref_counts=ref, cur_counts=cur) != pytest.approx(
        stats.kl(ref_counts=cur, cur_counts=ref)
    )


@settings(max_examples=120, deadline=None)
@given(count_arrays)
def test_psi_terms_sum_to_psi_and_are_never_negative(pair: tuple[np.ndarray, np.ndarray]) -> None:
    ref, cur = pair
    terms = stats.psi_terms(ref_counts=ref, cur_counts=cur, eps=EPS)
    assert terms.shape == ref.shape
    assert np.all(terms >= 0.0)
    assert float(terms.sum()) == pytest.approx(
        stats.psi(ref_counts=ref, cur_counts=cur, eps=EPS), abs=1e-12
    )


@settings(max_examples=120, deadline=None)
@given(count_arrays)
def test_js_terms_sum_to_the_js_divergence(pair: tuple[np.ndarray, np.ndarray]) -> None:
    ref, cur = pair
    terms = stats.js_terms(ref_counts=ref, cur_counts=cur)
    assert terms.shape == ref.shape
    assert np.all(terms >= 0.0)
    if ref.sum() == 0 or cur.sum() == 0:
        assert float(terms.sum()) == 0.0
        return
    # The distance is the square root of the divergence the terms split.
    assert float(terms.sum()) == pytest.approx(
        stats.js_distance(ref_counts=ref, cur_counts=cur) ** 2, abs=1e-12
    )
    assert float(terms.sum()) == pytest.approx(
        float(jensenshannon(ref, cur, base=2)) ** 2, abs=1e-12
    )


@settings(max_examples=80, deadline=None)
@given(count_arrays)
def test_mass_shift_is_the_signed_change_of_share(pair: tuple[np.ndarray, np.ndarray]) -> None:
    ref, cur = pair
    shift = stats.mass_shift(ref_counts=ref, cur_counts=cur)
    if ref.sum() == 0 or cur.sum() == 0:
        assert np.all(shift == 0.0)
        return
    assert np.allclose(shift, cur / cur.sum() - ref / ref.sum(), rtol=0, atol=1e-15)
    assert abs(float(shift.sum())) <= 1e-12
    # The sign of a PSI term's mass change is the sign of the shift.
    terms = stats.psi_terms(ref_counts=ref, cur_counts=cur, eps=EPS)
    moved = (terms > 0) & (np.abs(shift) > 0)
    q, p = _floored(cur), _floored(ref)
    assert np.all(np.sign(shift[moved]) == np.sign((q - p)[moved]))
