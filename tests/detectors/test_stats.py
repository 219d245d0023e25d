"""Statistics: properties, and agreement with SciPy on the same data."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from scipy import special
from scipy import stats as sst
from scipy.spatial.distance import jensenshannon

from drifthouse.config import MetricsConfig
from drifthouse.detectors import stats
from drifthouse.detectors.numeric import NumericBatch, NumericBlock
from drifthouse.errors import SketchError
from drifthouse.profiles.columns import quantile_edges
from tests import naive
from tests.detectors.strategies import count_arrays, make_profile

# ---- properties ----------------------------------------------------------------------------


@settings(max_examples=80, deadline=None)
@given(count_arrays)
def test_properties_hold_for_any_counts(pair: tuple[np.ndarray, np.ndarray]) -> None:
    ref, cur = pair
    p = stats.psi(ref_counts=ref, cur_counts=cur)
    d, pv = stats.ks_binned(ref_counts=ref, cur_counts=cur)
    chi, cpv, _dof = stats.chi2_homogeneity(ref_counts=ref, cur_counts=cur)
    js = stats.js_distance(ref_counts=ref, cur_counts=cur)
    w = stats.wasserstein_binned(
        edges=np.arange(ref.size - 1.0), ref_counts=ref, cur_counts=cur, lo=-1.0, hi=ref.size + 0.0
    )
    for v in (p, d, pv, chi, cpv, js, w):
        assert math.isfinite(v)
    assert p >= 0.0
    assert 0.0 <= d <= 1.0
    assert 0.0 <= pv <= 1.0
    assert chi >= 0.0
    assert 0.0 <= cpv <= 1.0
    assert 0.0 <= js <= 1.0
    assert w >= 0.0
    # Symmetric statistics.
    assert stats.ks_binned(ref_counts=cur, cur_counts=ref)[0] == pytest.approx(d, abs=1e-15)
    assert stats.js_distance(ref_counts=cur, cur_counts=ref) == pytest.approx(js, abs=1e-12)
    assert stats.psi(ref_counts=cur, cur_counts=ref) == pytest.approx(p, rel=1e-12, abs=1e-15)


@settings(max_examples=60, deadline=None)
@given(count_arrays)
def test_identical_inputs_show_no_drift(pair: tuple[np.ndarray, np.ndarray]) -> None:
    x = pair[0]
    assert stats.psi(ref_counts=x, cur_counts=x) == 0.0
    assert stats.ks_binned(ref_counts=x, cur_counts=x)[0] == 0.0
    assert stats.js_distance(ref_counts=x, cur_counts=x) == 0.0
    assert stats.chi2_homogeneity(ref_counts=x, cur_counts=x)[0] == pytest.approx(0.0, abs=1e-9)
    assert (
        stats.wasserstein_binned(
            edges=np.arange(x.size - 1.0), ref_counts=x, cur_counts=x, lo=-1.0, hi=x.size + 0.0
        )
        == 0.0
    )
    # Scale does not matter: proportions are compared.
    assert stats.psi(ref_counts=x, cur_counts=3 * x) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize(
    ("ref", "cur"),
    [
        pytest.param([0, 0, 0], [0, 0, 0], id="both-empty"),
        pytest.param([5, 3, 1], [0, 0, 0], id="empty-window"),
        pytest.param([0, 0, 0], [5, 3, 1], id="empty-reference"),
        pytest.param([9, 0, 0], [0, 0, 9], id="disjoint"),
        pytest.param([1], [1], id="one-bin"),
    ],
)
def test_degenerate_inputs_have_defined_values(ref: list[int], cur: list[int]) -> None:
    empty = sum(ref) == 0 or sum(cur) == 0
    p = stats.psi(ref_counts=ref, cur_counts=cur)
    d, pv = stats.ks_binned(ref_counts=ref, cur_counts=cur)
    chi, cpv, dof = stats.chi2_homogeneity(ref_counts=ref, cur_counts=cur)
    js = stats.js_distance(ref_counts=ref, cur_counts=cur)
    for v in (p, d, pv, chi, cpv, js):
        assert math.isfinite(v)
    if empty:
        assert (p, d, pv, chi, cpv, dof, js) == (0.0, 0.0, 1.0, 0.0, 1.0, 0, 0.0)


def test_psi_matches_the_contract_formula() -> None:
    ref = np.asarray([100, 0, 50, 3, 0])
    cur = np.asarray([10, 20, 0, 30, 0])
    assert stats.psi(ref_counts=ref, cur_counts=cur, eps=1e-4) == pytest.approx(
        naive.psi(ref, cur, 1e-4), rel=1e-14
    )
    assert stats.psi(ref_counts=[50, 50], cur_counts=[90, 10]) == pytest.approx(
        0.4 * math.log(0.9 / 0.5) - 0.4 * math.log(0.1 / 0.5)
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"ref_counts": [1, 2], "cur_counts": [1]}, id="length-mismatch"),
        pytest.param({"ref_counts": [1, -2], "cur_counts": [1, 1]}, id="negative"),
        pytest.param({"ref_counts": [[1]], "cur_counts": [[1]]}, id="2-d"),
        pytest.param({"ref_counts": [1, np.nan], "cur_counts": [1, 1]}, id="nan"),
    ],
)
def test_bad_counts_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(SketchError):
        stats.psi(**kwargs)  # type: ignore[arg-type]


# ---- agreement with SciPy ------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(count_arrays)
def test_js_matches_scipy(pair: tuple[np.ndarray, np.ndarray]) -> None:
    ref, cur = pair
    if ref.sum() == 0 or cur.sum() == 0:
        return
    assert stats.js_distance(ref_counts=ref, cur_counts=cur) == pytest.approx(
        jensenshannon(ref, cur, base=2), abs=1e-7
    )


@settings(max_examples=60, deadline=None)
@given(count_arrays)
def test_chi2_matches_scipy_contingency(pair: tuple[np.ndarray, np.ndarray]) -> None:
    ref, cur = pair
    stat, p, dof = stats.chi2_homogeneity(ref_counts=ref, cur_counts=cur)
    table = np.vstack([ref, cur])
    table = table[:, table.sum(axis=0) > 0]
    if ref.sum() == 0 or cur.sum() == 0 or table.shape[1] < 2:
        assert (stat, p, dof) == (0.0, 1.0, 0)
        return
    expected = sst.chi2_contingency(table, correction=False)
    assert stat == pytest.approx(expected.statistic, rel=1e-9, abs=1e-9)
    assert p == pytest.approx(expected.pvalue, rel=1e-7, abs=1e-12)
    assert dof == expected.dof


@settings(max_examples=200, deadline=None)
@given(count_arrays)
def test_chi2_pvalue_is_scipy_chi2_sf_to_the_last_bit(pair: tuple[np.ndarray, np.ndarray]) -> None:
    # The p-value comes from scipy.special (cheap to import), not scipy.stats: same bits.
    ref, cur = pair
    stat, p, dof = stats.chi2_homogeneity(ref_counts=ref, cur_counts=cur)
    if dof:
        assert p == min(max(float(sst.chi2.sf(stat, dof)), 0.0), 1.0)


def test_chi2_is_homogeneity_not_goodness_of_fit() -> None:
    # Two samples of one distribution: a goodness-of-fit test against the (large) reference
    # taken as truth is not what we compute; the homogeneity statistic accounts for both.
    rng = np.random.default_rng(7)
    p = [0.5, 0.3, 0.2]
    ref = np.bincount(rng.choice(3, 200_000, p=p), minlength=3)
    cur = np.bincount(rng.choice(3, 200_000, p=p), minlength=3)
    stat, _pv, dof = stats.chi2_homogeneity(ref_counts=ref, cur_counts=cur)
    gof = sst.chisquare(cur, ref / ref.sum() * cur.sum()).statistic
    assert dof == 2
    assert stat == pytest.approx(gof / 2, rel=0.05)  # equal sizes: half the goodness-of-fit value


DISTRIBUTIONS = {
    "normal": lambda rng, n, s: rng.normal(s, 1.0, n),
    "lognormal": lambda rng, n, s: rng.lognormal(s, 1.0, n),
    "exponential": lambda rng, n, s: rng.exponential(1.0 + s, n),
    "uniform": lambda rng, n, s: rng.uniform(s, 1.0 + s, n),
    "bimodal": lambda rng, n, s: np.where(
        rng.random(n) < 0.3, rng.normal(-2 + s, 0.5, n), rng.normal(2, 1, n)
    ),
}


@pytest.mark.parametrize("dist", list(DISTRIBUTIONS))
@pytest.mark.parametrize("shift", [0.0, 0.1, 0.5])
@pytest.mark.parametrize("n_cur", [200, 2_000, 100_000])
def test_binned_ks_is_within_002_of_exact_ks(dist: str, shift: float, n_cur: int) -> None:
    rng = np.random.default_rng(hash((dist, shift, n_cur)) % 2**32)
    draw = DISTRIBUTIONS[dist]
    ref = draw(rng, 100_000, 0.0)
    cur = draw(rng, n_cur, shift)
    profile = make_profile({"v": ref})
    block = NumericBlock.from_profile(profile)
    state = block.update(block.empty(), NumericBatch(cur[:, None]))
    res = {r.metric: r for r in block.evaluate(state)}
    exact = sst.ks_2samp(ref, cur)
    assert abs(res["ks"].value - exact.statistic) <= 0.02
    assert res["ks"].value <= exact.statistic + 1e-12  # binning only hides gaps
    # Kolmogorov's limit at en = n*m/(n+m); close to SciPy's finite-n asymptotic p-value.
    d = res["ks"].value
    en = ref.size * cur.size / (ref.size + cur.size)
    assert res["ks_pvalue"].value == pytest.approx(special.kolmogorov(math.sqrt(en) * d), rel=1e-12)
    if n_cur == 2_000:  # ks_2samp(method="asymp")'s finite-n formula, at the same statistic
        finite_n = sst.kstwo.sf(d, round(en))
        assert res["ks_pvalue"].value == pytest.approx(finite_n, rel=0.05, abs=2e-3)


def test_binned_ks_equals_naive_ecdf_at_edges() -> None:
    rng = np.random.default_rng(3)
    ref, cur = rng.normal(size=20_000), rng.normal(0.2, 1.1, size=3_000)
    fine, _ = quantile_edges(ref, ks_bins=100, psi_bins=10)
    rc = np.bincount(np.searchsorted(fine, ref, side="right"), minlength=fine.size + 1)
    cc = np.bincount(np.searchsorted(fine, cur, side="right"), minlength=fine.size + 1)
    assert stats.ks_binned(ref_counts=rc, cur_counts=cc)[0] == pytest.approx(
        naive.ks_on_edges(ref, cur, fine), abs=1e-15
    )


@pytest.mark.parametrize("shift", [0.0, 0.3, 1.0])
def test_binned_wasserstein_approximates_scipy(shift: float) -> None:
    rng = np.random.default_rng(11)
    ref, cur = rng.normal(size=50_000), rng.normal(shift, 1.0, size=20_000)
    fine, _ = quantile_edges(ref, ks_bins=100, psi_bins=10)
    rc = np.bincount(np.searchsorted(fine, ref, side="right"), minlength=fine.size + 1)
    cc = np.bincount(np.searchsorted(fine, cur, side="right"), minlength=fine.size + 1)
    w = stats.wasserstein_binned(
        edges=fine, ref_counts=rc, cur_counts=cc, lo=float(ref.min()), hi=float(ref.max())
    )
    # The open outer bins are spread evenly up to the reference extremes, so mass pushed into
    # them is misplaced by up to half that bin: about 7% at a one-sigma shift.
    assert w == pytest.approx(sst.wasserstein_distance(ref, cur), abs=0.03, rel=0.1)


def test_psi_edges_are_a_subset_of_the_fine_grid_and_psi_counts_sum_fine_bins() -> None:
    rng = np.random.default_rng(2)
    profile = make_profile(
        {"v": rng.gamma(2.0, size=30_000), "d": rng.integers(0, 3, 30_000).astype(float)},
        settings=MetricsConfig(psi_bins=10, ks_bins=100),
    )
    block = NumericBlock.from_profile(profile)
    for j, f in enumerate(profile.features):
        assert set(f.psi_edges) <= set(f.edges)
        np.testing.assert_array_equal(block.coarse_counts(block.reference, j), f.psi_counts)
    # Deciles of a continuous feature: ten equal PSI bins of the reference.
    assert len(profile.features[0].psi_counts) == 10
    assert max(profile.features[0].psi_counts) - min(profile.features[0].psi_counts) <= 2
