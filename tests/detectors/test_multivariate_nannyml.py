"""drifthouse's reconstruction error against NannyML's ``DataReconstructionDriftCalculator`` on
NannyML's car loan dataset, chunks of 5,000 events (tests/detectors/data, written by
scripts/nannyml_reconstruction_fixture.py; docs/statistics.md, "Multivariate drift")."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from drifthouse.config import MetricsConfig
from drifthouse.detectors.multivariate import MultivariateBatch, sketch_for
from drifthouse.detectors.pca import ErrorBand, reconstruction_errors
from drifthouse.detectors.reference import Profile
from tests.detectors.strategies import make_profile

DATA = Path(__file__).parent / "data"
FIXTURE: dict[str, Any] = json.loads((DATA / "nannyml_reconstruction.json").read_text())
ARRAYS = dict(np.load(DATA / "nannyml_reconstruction.npz"))


def columns(lo: int, hi: int) -> dict[str, Any]:
    """The features of rows ``lo:hi`` as drifthouse takes them (numbers, category names)."""
    out: dict[str, Any] = {}
    for name in FIXTURE["features"]:
        raw = ARRAYS[name][lo:hi]
        if name in FIXTURE["categories"]:
            names = FIXTURE["categories"][name]
            out[name] = [names[int(i)] for i in raw]
        else:
            out[name] = raw.astype(np.float64) / 10 ** FIXTURE["decimals"][name]
    return out


@pytest.fixture(scope="module")
def profile() -> Profile:
    return make_profile(columns(0, FIXTURE["reference_events"]), settings=MetricsConfig())


def test_the_fit_keeps_nannymls_components(profile: Profile) -> None:
    mv = profile.multivariate
    assert mv is not None
    assert len(mv.pca.components) == FIXTURE["n_components"]
    assert mv.pca.explained == pytest.approx(FIXTURE["explained_variance_ratio"], rel=1e-9)


def _sketch(profile: Profile):  # type: ignore[no-untyped-def]
    mv = profile.multivariate
    assert mv is not None
    sk = sketch_for(profile, mv.numeric, mv.categorical)
    assert sk is not None
    return sk


def _batch(profile: Profile, lo: int, hi: int) -> MultivariateBatch:
    mv = profile.multivariate
    assert mv is not None
    cols = columns(lo, hi)
    numeric = np.column_stack([cols[f] for f in mv.numeric])
    from drifthouse.detectors.categorical import CategoricalBlock

    block = CategoricalBlock([profile.feature(f) for f in mv.categorical])
    codes = np.column_stack([block.codes_for(j, cols[f]) for j, f in enumerate(mv.categorical)])
    return MultivariateBatch(numeric, np.zeros(numeric.shape, np.uint8), codes.astype(np.int32))


def test_each_rows_error_is_nannymls(profile: Profile) -> None:
    sk = _sketch(profile)
    expected = FIXTURE["reference_row_errors"]
    got = reconstruction_errors(sk.spec.pca, sk.encode(_batch(profile, 0, len(expected))))
    np.testing.assert_allclose(got, expected, rtol=1e-9)


@pytest.mark.parametrize("chunk", range(len(FIXTURE["chunks"])))
def test_each_chunks_error_band_and_alert_are_nannymls(profile: Profile, chunk: int) -> None:
    want = FIXTURE["chunks"][chunk]
    sk = _sketch(profile)
    state = sk.update(sk.empty(), _batch(profile, want["start"], want["end"]))
    got = {r.metric: r.value for r in sk.evaluate(state)}
    assert got["reconstruction_error"] == pytest.approx(want["value"], rel=1e-9)
    # NannyML's thresholds are the chunk band's own, center ± 3 σ(n) ...
    band = sk.spec.band
    n = want["end"] - want["start"]
    center, spread = band.at(n)
    assert center + 3 * spread == pytest.approx(want["upper_threshold"], rel=1e-9)
    assert max(0.0, center - 3 * spread) == pytest.approx(want["lower_threshold"], rel=1e-9)
    # ... drifthouse widens them by the reference mean's own error (docs/statistics.md)
    lower, upper = widened_thresholds(band, n)
    assert got["reconstruction_error_upper"] == pytest.approx(upper, rel=1e-12)
    assert got["reconstruction_error_lower"] == pytest.approx(lower, rel=1e-12)
    assert upper - want["upper_threshold"] < 0.1 * (want["upper_threshold"] - center)
    assert (abs(got["reconstruction_error_z"]) >= 3) == want["alert"]


def widened_thresholds(band: ErrorBand, n: int) -> tuple[float, float]:
    """``(lower, upper)`` as drifthouse writes them for a window of ``n`` events: the chunk
    band's center ± 3 × its spread and the reference mean's, in quadrature."""
    center, spread = band.at(n)
    wide = math.hypot(spread, band.reference_spread())
    return max(0.0, center - 3 * wide), center + 3 * wide
