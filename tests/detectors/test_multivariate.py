"""Multivariate drift by PCA reconstruction error (docs/statistics.md, "Multivariate drift"):
the fit, the kernel against a naive NumPy twin, exact states, the reference band, the profile
part, and the shipped rule on a correlation flip that no univariate metric sees."""

from __future__ import annotations

import msgspec
import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from drifthouse.alerts.rules import RuleEngine
from drifthouse.config import MetricsConfig
from drifthouse.config.default_rules import load_default_rules
from drifthouse.detectors.columns import Columns
from drifthouse.detectors.model_sketch import ModelBatch, ModelSketch
from drifthouse.detectors.model_state import ModelState
from drifthouse.detectors.pca import (
    ErrorBand,
    ReconstructionSketch,
    band_of,
    fit_pca,
    reconstruction_errors,
)
from drifthouse.detectors.reference import Profile
from drifthouse.errors import ProfileError, SketchError
from drifthouse.profiles.sketches import Sketches
from drifthouse.rows import AlertRow
from drifthouse.stream.results import evaluate_window
from drifthouse.stream.windows import WindowSpec
from tests import naive
from tests.detectors.strategies import make_profile

HOUR = 3_600_000


def _correlated(rng: np.random.Generator, n: int, rho: float) -> npt.NDArray[np.float64]:
    a = rng.normal(size=n)
    b = rho * a + np.sqrt(1 - rho**2) * rng.normal(size=n)
    return np.stack([a, b], axis=1)


# ---- the fit and the kernel --------------------------------------------------------------------


def test_fit_keeps_the_fewest_components_explaining_the_share() -> None:
    rng = np.random.default_rng(0)
    x = _correlated(rng, 5_000, 0.9)
    x = np.column_stack([x, rng.normal(size=5_000) * 3 + 7])
    pca = fit_pca(x, variance_share=0.65)
    assert pca is not None
    assert len(pca.components) == 2  # one for the correlated pair, one for the free column
    assert pca.explained >= 0.65
    assert np.allclose(pca.center, x.mean(axis=0))
    assert np.allclose(pca.scale, x.std(axis=0))


def test_fit_refuses_what_leaves_nothing_to_reconstruct() -> None:
    rng = np.random.default_rng(1)
    # Two independent columns: 0.65 of the variance needs both, the error is always 0.
    assert fit_pca(rng.normal(size=(1_000, 2)), variance_share=0.65) is None
    assert fit_pca(rng.normal(size=(1_000, 1)), variance_share=0.65) is None


@settings(max_examples=40, deadline=None)
@given(
    hnp.arrays(np.float64, (50, 4), elements=st.floats(-1e3, 1e3, allow_nan=False)),
    st.integers(0, 2**32 - 1),
)
def test_kernel_matches_the_naive_twin(x: npt.NDArray[np.float64], seed: int) -> None:
    rng = np.random.default_rng(seed)
    fit = rng.normal(size=(500, 4)) @ rng.normal(size=(4, 4))
    pca = fit_pca(fit, variance_share=0.5)
    assert pca is not None
    expected = naive.reconstruction_errors(
        x,
        np.asarray(pca.center),
        np.asarray(pca.scale),
        np.asarray(pca.mean),
        np.asarray(pca.components),
    )
    got = reconstruction_errors(pca, x)
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-9)


def test_reconstruction_errors_refuse_a_matrix_of_the_wrong_width() -> None:
    rng = np.random.default_rng(2)
    pca = fit_pca(_correlated(rng, 500, 0.8), variance_share=0.65)
    assert pca is not None
    with pytest.raises(SketchError, match=r"2 columns.*got shape \(3, 3\)"):
        reconstruction_errors(pca, np.zeros((3, 3)))


# ---- exact state -------------------------------------------------------------------------------


def _sketch(seed: int = 3) -> tuple[ReconstructionSketch, np.random.Generator]:
    rng = np.random.default_rng(seed)
    x = _correlated(rng, 4_000, 0.9)
    pca = fit_pca(x, variance_share=0.65)
    assert pca is not None
    return ReconstructionSketch(pca, band_of(reconstruction_errors(pca, x))), rng


def test_batch_cuts_and_merge_order_change_no_bit() -> None:
    sk, rng = _sketch()
    x = _correlated(rng, 1_000, 0.5) * 1e3  # large errors: the fixed point must hold them
    whole = sk.update(sk.empty(), x)
    cut = sk.update(sk.update(sk.empty(), x[:317]), x[317:])
    assert cut.equals(whole)
    a, b, c = (sk.update(sk.empty(), part) for part in (x[:100], x[100:600], x[600:]))
    assert sk.merge(sk.merge(a, b), c).equals(sk.merge(a, sk.merge(c, b)))
    assert sk.merge(a, sk.merge(b, c)).equals(whole)
    mean = float(np.mean(reconstruction_errors(sk.pca, x)))
    got = {r.metric: r.value for r in sk.evaluate(whole)}
    assert got["reconstruction_error"] == pytest.approx(mean, rel=1e-12)


def test_an_empty_window_writes_nothing() -> None:
    sk, _ = _sketch()
    assert sk.evaluate(sk.empty()) == []


def test_state_bytes_round_trip() -> None:
    sk, rng = _sketch()
    st_ = sk.update(sk.empty(), _correlated(rng, 50, 0.9))
    assert type(st_).from_bytes(st_.to_bytes()).equals(st_)


# ---- the reference band ------------------------------------------------------------------------


def test_band_is_mean_and_spread_of_reference_chunk_means() -> None:
    rng = np.random.default_rng(4)
    errors = rng.gamma(2.0, 0.5, size=50_000)
    band = band_of(errors)
    assert 5_000 in band.sizes
    assert max(band.sizes) == 5_000
    means = errors.reshape(10, 5_000).mean(axis=1)
    center, spread = band.at(5_000)
    assert center == pytest.approx(float(np.mean(means)), rel=1e-12)
    assert spread == pytest.approx(float(np.std(means)), rel=1e-12)
    # Between sizes: log-linear; past the largest: the spread falls as 1/sqrt(n).
    _, s2000 = band.at(2_000)
    _, s3000 = band.at(3_000)
    assert band.at(5_000)[1] < s3000 < s2000
    assert band.at(20_000)[1] == pytest.approx(spread * 0.5, rel=1e-12)


def test_band_survives_the_profile_json() -> None:
    band = band_of(np.random.default_rng(5).gamma(2.0, size=1_000))
    import msgspec

    assert msgspec.json.decode(msgspec.json.encode(band), type=ErrorBand) == band


# ---- the profile and the model sketch ----------------------------------------------------------


def _profile(seed: int = 6, n: int = 20_000, rho: float = 0.9) -> Profile:
    rng = np.random.default_rng(seed)
    xy = _correlated(rng, n, rho)
    cats = list(rng.choice(["a", "b", "c"], size=n, p=[0.5, 0.3, 0.2]))
    return make_profile({"x": xy[:, 0], "y": xy[:, 1], "c": cats})


def test_profile_fits_over_numeric_and_encoded_categorical_features() -> None:
    p = _profile()
    mv = p.multivariate
    assert mv is not None
    assert mv.numeric == ["x", "y"]
    assert mv.categorical == ["c"]
    # Normalized counts, most frequent first (code order), unseen categories count 0.
    freq = mv.frequencies[0]
    assert freq[1:4] == pytest.approx([0.5, 0.3, 0.2], abs=0.02)
    assert freq[-1] == 0.0
    assert Profile.from_json(p.to_json()) == p


def test_profile_imputes_missing_values_as_nannyml() -> None:
    rng = np.random.default_rng(7)
    xy = _correlated(rng, 2_000, 0.9)
    x = xy[:, 0].copy()
    x[::10] = np.nan
    cats: list[str | None] = list(rng.choice(["a", "b"], size=2_000, p=[0.7, 0.3]))
    cats[::7] = [None] * len(cats[::7])
    p = make_profile({"x": x, "y": xy[:, 1], "c": cats})
    mv = p.multivariate
    assert mv is not None
    assert mv.fill[0] == pytest.approx(float(np.nanmean(x)), rel=1e-12)  # the mean
    # A missing category is the most frequent one: its frequency includes the missing rows.
    missing = sum(c is None for c in cats)
    top = sum(c == "a" for c in cats)
    assert mv.frequencies[0][0] == pytest.approx((top + missing) / 2_000, rel=1e-12)
    assert mv.frequencies[0][1] == mv.frequencies[0][0]


def _columns(sketch: ModelSketch, xy: npt.NDArray[np.float64], c: list[str]) -> Columns:
    n = xy.shape[0]
    codes = np.array([[sketch.layout.categories[0][v]] for v in c], dtype=np.int32)
    return Columns(
        ts=np.zeros(n, dtype=np.int64), numeric=np.ascontiguousarray(xy),
        status=np.zeros(xy.shape, dtype=np.uint8), codes=codes,
        latency=np.full(n, np.nan), http_status=np.full(n, 200, dtype=np.int32),
        score=np.full(n, np.nan),
    )  # fmt: skip


def test_model_state_keeps_the_part_across_bytes_and_merges() -> None:
    sketches = Sketches({"m": _profile()}, MetricsConfig())
    sk = sketches("m")
    rng = np.random.default_rng(8)
    cols = _columns(sk, _correlated(rng, 300, 0.9), list(rng.choice(["a", "b"], 300)))
    state = sk.update(sk.empty(), ModelBatch(cols))
    assert state.multivariate is not None
    assert ModelState.from_bytes(state.to_bytes()).equals(state)
    halves = sk.merge(
        sk.update(sk.empty(), ModelBatch(cols.take(np.arange(120)))),
        sk.update(sk.empty(), ModelBatch(cols.take(np.arange(120, 300)))),
    )
    assert halves.multivariate is not None
    assert halves.multivariate.equals(state.multivariate)
    names = {r.metric for r in sk.evaluate(state, _context())}
    assert {"reconstruction_error", "reconstruction_error_lower"} <= names
    assert {"reconstruction_error_upper", "reconstruction_error_z"} <= names


def _context():  # type: ignore[no-untyped-def]
    from drifthouse.detectors.base import Context

    return Context(window_ms=HOUR)


# ---- the correlation flip ----------------------------------------------------------------------


def _alerts(rho: float, windows: int = 3, n: int = 20_000) -> tuple[list[AlertRow], list[float]]:
    """Alerts of the shipped rules on hourly windows of ``n`` events whose two numeric
    features have correlation ``rho`` (the reference: 0.9) and unchanged marginals."""
    sketches = Sketches({"m": _profile(n=n)}, MetricsConfig())
    sketch = sketches("m")
    engine = RuleEngine(load_default_rules())
    spec = WindowSpec.tumbling(HOUR)
    rng = np.random.default_rng(9)
    alerts: list[AlertRow] = []
    values = []
    for w in range(windows):
        cats = list(rng.choice(["a", "b", "c"], size=n, p=[0.5, 0.3, 0.2]))
        state = sketch.update(
            sketch.empty(), ModelBatch(_columns(sketch, _correlated(rng, n, rho), cats))
        )
        result = evaluate_window(
            spec, w * HOUR, ("m", "1"), state, sketches, changes=None, run_id="t", computed_at=0
        )
        values += [r.value for r in result.metrics if r.metric == "reconstruction_error"]
        alerts += engine.process(result.metrics)
    return alerts, values


def test_a_correlation_flip_fires_the_multivariate_rule_and_nothing_else() -> None:
    quiet, before = _alerts(rho=0.9)
    assert quiet == []
    fired, after = _alerts(rho=-0.9)
    assert {a.rule for a in fired} == {"multivariate-drift"}
    assert all(a.feature == "" for a in fired)
    assert min(after) > 3 * max(before)


def test_a_profile_whose_multivariate_part_disagrees_with_its_features_is_refused() -> None:
    p = _profile()
    mv = p.multivariate
    assert mv is not None
    short = msgspec.structs.replace(mv, frequencies=[mv.frequencies[0][:-1]])
    bad = msgspec.structs.replace(p, multivariate=short).to_json()
    with pytest.raises(ProfileError, match=r"'c' must be a categorical feature .*got 5, K = 3"):
        Profile.from_json(bad)
    renamed = msgspec.structs.replace(mv, numeric=["x", "nope"])
    with pytest.raises(ProfileError, match="'nope' is not a numeric feature"):
        Profile.from_json(msgspec.structs.replace(p, multivariate=renamed).to_json())


# ---- windows larger than the reference ---------------------------------------------------------


def test_fresh_windows_larger_than_the_reference_stay_inside_the_band() -> None:
    """A window of 100,000 events drawn afresh from the reference's own distribution, against
    references of 2,000 rows: its mean error differs from the reference's mean by that mean's
    own sampling error (about ``σ(1) / sqrt(2000)``), which a band of the window's spread
    alone (``σ(1) / sqrt(100000)``) would call seven spreads away. Over 20 references the z
    stays about a standard normal: none past 3."""
    zs = []
    for seed in range(20):
        rng = np.random.default_rng(100 + seed)
        ref = _correlated(rng, 2_000, 0.8)
        pca = fit_pca(ref, variance_share=0.65)
        assert pca is not None
        sk = ReconstructionSketch(pca, band_of(reconstruction_errors(pca, ref)))
        state = sk.update(sk.empty(), _correlated(rng, 100_000, 0.8))
        got = {r.metric: r.value for r in sk.evaluate(state)}
        zs.append(got["reconstruction_error_z"])
        assert got["reconstruction_error_lower"] < got["reconstruction_error"]
        assert got["reconstruction_error"] < got["reconstruction_error_upper"]
    assert max(abs(z) for z in zs) < 3, zs
    assert 0.4 < float(np.std(zs)) < 1.6, zs
