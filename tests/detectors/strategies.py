"""Hypothesis strategies and small builders shared by the detector tests."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from drifthouse.config import MetricsConfig
from drifthouse.detectors.reference import Profile
from drifthouse.profiles.columns import build_profile

CREATED = "2026-01-01T00:00:00Z"


def make_profile(features: dict[str, Any], **kw: Any) -> Profile:
    settings = kw.pop("settings", MetricsConfig())
    return build_profile(
        model="m",
        model_version="1",
        created_at=CREATED,
        source_digest="0" * 64,
        settings=settings,
        features=features,
        **kw,
    )


def reference_profile(seed: int = 0, n: int = 5_000) -> Profile:
    """Three numeric features (continuous, skewed, discrete) and two categorical ones."""
    rng = np.random.default_rng(seed)
    return make_profile(
        {
            "x": rng.normal(size=n),
            "y": rng.lognormal(size=n),
            "z": rng.integers(0, 5, size=n).astype(np.float64),
            "c": list(rng.choice(["a", "b", "c", "d"], size=n, p=[0.4, 0.3, 0.2, 0.1])),
            "flag": list(rng.random(n) < 0.3),
        },
        settings=MetricsConfig(top_categories=3),
    )


#: Values with NaN, infinities, ties and outliers, so binning edge cases show up.
float_values = st.one_of(
    st.floats(-10, 10, allow_nan=False, width=64),
    st.sampled_from([0.0, 1.0, -1.0, np.nan, np.inf, -np.inf, 1e300, -1e300]),
)


@st.composite
def numeric_batch(
    draw: st.DrawFn, n_features: int, max_rows: int = 60
) -> tuple[np.ndarray, np.ndarray]:
    n = draw(st.integers(0, max_rows))
    values = draw(hnp.arrays(np.float64, (n, n_features), elements=float_values))
    status = draw(
        hnp.arrays(np.uint8, (n, n_features), elements=st.sampled_from([0, 0, 0, 0, 1, 2]))
    )
    return values, status


@st.composite
def cuts(draw: st.DrawFn, n: int) -> list[int]:
    """Sorted cut points splitting ``range(n)`` into micro-batches (possibly empty ones)."""
    points = draw(st.lists(st.integers(0, n), max_size=6))
    return sorted(points)


def split(arrays: tuple[np.ndarray, ...], points: list[int]) -> list[tuple[np.ndarray, ...]]:
    bounds = [0, *points, arrays[0].shape[0]]
    return [tuple(a[lo:hi] for a in arrays) for lo, hi in itertools.pairwise(bounds)]


count_arrays = st.integers(1, 30).flatmap(
    lambda k: st.tuples(
        hnp.arrays(np.int64, k, elements=st.integers(0, 1_000)),
        hnp.arrays(np.int64, k, elements=st.integers(0, 1_000)),
    )
)
