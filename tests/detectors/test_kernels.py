"""Every kernel against its naive NumPy reference (tests/naive.py)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from drifthouse.config import MetricsConfig
from drifthouse.detectors.categorical import CategoricalBlock
from drifthouse.detectors.numeric import NumericBatch, NumericBlock
from drifthouse.detectors.quantiles import QuantileSketch
from drifthouse.detectors.status import StatusCounter
from drifthouse.errors import SketchError
from tests import naive
from tests.detectors.strategies import make_profile, numeric_batch, reference_profile

PROFILE = reference_profile()
NUM = NumericBlock.from_profile(PROFILE)
CAT = CategoricalBlock.from_profile(PROFILE)
EDGES = [np.asarray(f.edges) for f in NUM.features]


def check_numeric(values: np.ndarray, status: np.ndarray) -> None:
    state = NUM.update(NUM.empty(), NumericBatch(values, status))
    ref = naive.numeric_block(values, status, EDGES, NUM.lo, NUM.hi)
    for j in range(NUM.n_features):
        nb = int(NUM.n_bins[j])
        np.testing.assert_array_equal(state.counts[j, :nb], ref["counts"][j])
        assert not state.counts[j, nb:].any()
    for key in ("count", "missing", "non_finite", "type_error", "out_of_range"):
        np.testing.assert_array_equal(getattr(state, key), ref[key], err_msg=key)
    np.testing.assert_array_equal(state.vmin, ref["vmin"])
    np.testing.assert_array_equal(state.vmax, ref["vmax"])
    np.testing.assert_allclose(state.mean, ref["mean"], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(
        state.m2 / np.maximum(state.count, 1), ref["var"], rtol=1e-10, atol=1e-12
    )


@pytest.mark.parametrize(
    ("n", "missing_share", "seed"),
    [
        pytest.param(0, 0.0, 0, id="empty-batch"),
        pytest.param(1, 0.0, 1, id="one-row"),
        pytest.param(1_000, 0.0, 2, id="all-present"),
        pytest.param(1_000, 0.3, 3, id="with-missing"),
        pytest.param(50_000, 0.05, 4, id="large"),
    ],
)
def test_numeric_kernel_matches_naive(n: int, missing_share: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    values = np.c_[
        rng.normal(0.3, 1.2, n), rng.lognormal(0.1, 1, n), rng.integers(-1, 7, n).astype(float)
    ]
    status = np.where(rng.random(values.shape) < missing_share, 1, 0).astype(np.uint8)
    check_numeric(values, status)


def test_numeric_kernel_values_on_edges_go_right() -> None:
    # A value equal to an edge is counted in the bin above it: edges[i-1] <= v < edges[i].
    e = np.asarray(NUM.features[2].edges)
    values = np.zeros((e.size, 3))
    values[:, 2] = e
    state = NUM.update(NUM.empty(), NumericBatch(values, np.zeros(values.shape, np.uint8)))
    np.testing.assert_array_equal(state.counts[2, 1 : e.size + 1], np.ones(e.size))


@settings(max_examples=60, deadline=None)
@given(numeric_batch(3))
def test_numeric_kernel_matches_naive_on_odd_values(batch: tuple[np.ndarray, np.ndarray]) -> None:
    values, status = batch
    with np.errstate(invalid="ignore"):  # keep means comparable: huge values become infinite
        values = np.where(np.abs(values) > 1e6, np.sign(values) * np.inf, values)
    check_numeric(values, status)


@settings(max_examples=60, deadline=None)
@given(hnp.arrays(np.int32, st.tuples(st.integers(0, 80), st.just(2)), elements=st.integers(-1, 5)))
def test_categorical_kernel_matches_naive(codes: np.ndarray) -> None:
    codes = np.minimum(codes, (CAT.n_categories + 1).astype(np.int32))
    state = CAT.update(CAT.empty(), codes)
    ref = naive.categorical_block(codes, CAT.n_categories)
    for j in range(2):
        k = int(CAT.n_categories[j]) + 1
        np.testing.assert_array_equal(state.counts[j, :k], ref["counts"][j])
    np.testing.assert_array_equal(state.count, ref["count"])
    np.testing.assert_array_equal(state.missing, ref["missing"])
    np.testing.assert_array_equal(state.new_category, ref["new_category"])


@pytest.mark.parametrize(
    "codes",
    [pytest.param([[-2, 0]], id="below-missing"), pytest.param([[0, 9]], id="above-new")],
)
def test_categorical_kernel_rejects_bad_codes(codes: list[list[int]]) -> None:
    state = CAT.empty()
    with pytest.raises(SketchError, match="codes must lie"):
        CAT.update(state, np.asarray(codes, dtype=np.int32))
    assert not state.counts.any()  # nothing half-counted


@pytest.mark.parametrize(
    "values",
    [
        pytest.param(np.asarray([]), id="empty"),
        pytest.param(
            np.asarray([0.0, -5.0, 1e-3, 1e-4, np.nan, np.inf]), id="zero-negative-tiny-nonfinite"
        ),
        pytest.param(np.asarray([1e7, 2e7, 1e12]), id="overflow"),
        pytest.param(np.random.default_rng(5).lognormal(3, 2, 20_000), id="lognormal"),
    ],
)
def test_quantile_kernel_matches_naive(values: np.ndarray) -> None:
    sk = QuantileSketch()
    state = sk.update(sk.empty(), values)
    ref = naive.quantile_buckets(values, sk.min_value, sk.gamma, sk.n_buckets)
    # numba's and math's log may differ in the last bit right on a bucket boundary.
    assert int(np.abs(state.counts - ref).sum()) <= 2 * max(1, values.size // 10_000)
    assert state.counts.sum() == np.isfinite(values).sum()
    assert state.non_finite[0] == (~np.isfinite(values)).sum()


@settings(max_examples=40, deadline=None)
@given(hnp.arrays(np.int64, st.integers(0, 100), elements=st.integers(-1, 1_000)))
def test_status_kernel_matches_naive(statuses: np.ndarray) -> None:
    sc = StatusCounter()
    state = sc.update(sc.empty(), statuses)
    np.testing.assert_array_equal(state.counts, naive.status_counts(statuses))


@pytest.mark.parametrize(
    ("ks_bins", "psi_bins", "kind"),
    [
        pytest.param(10, 2, "normal", id="10-bins"),
        pytest.param(127, 10, "normal", id="127-bins"),
        pytest.param(128, 16, "normal", id="128-bins"),
        pytest.param(1_000, 10, "lognormal", id="1000-bins"),
        pytest.param(100, 10, "constant", id="constant-feature"),
        pytest.param(100, 10, "empty", id="no-reference-values"),
    ],
)
def test_numeric_kernel_matches_naive_on_any_grid(ks_bins: int, psi_bins: int, kind: str) -> None:
    rng = np.random.default_rng(ks_bins)
    ref = {
        "normal": rng.normal(size=20_000),
        "lognormal": rng.lognormal(size=20_000),
        "constant": np.full(100, 3.0),
        "empty": np.full(100, np.nan),
    }[kind]
    profile = make_profile({"v": ref}, settings=MetricsConfig(ks_bins=ks_bins, psi_bins=psi_bins))
    block = NumericBlock.from_profile(profile)
    values = np.concatenate([rng.normal(size=5_000), [3.0, -np.inf, np.nan, 1e308]])[:, None]
    status = np.zeros(values.shape, np.uint8)
    state = block.update(block.empty(), NumericBatch(values, status))
    ref_out = naive.numeric_block(
        values, status, [np.asarray(profile.features[0].edges)], block.lo, block.hi
    )
    np.testing.assert_array_equal(state.counts[0], ref_out["counts"][0])
    assert state.out_of_range[0] == ref_out["out_of_range"][0]
