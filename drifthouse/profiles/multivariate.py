"""A profile's multivariate part, fitted on the reference rows (docs/statistics.md,
"Multivariate drift").

:func:`fit_multivariate` encodes the profile's features as
:mod:`drifthouse.detectors.multivariate` says (mean-imputed numbers, normalized counts of
categories with the most frequent imputed), fits the standardiser and the PCA
(:func:`~drifthouse.detectors.pca.fit_pca`) and the band of the reference's own errors
(:func:`~drifthouse.detectors.pca.band_of`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from drifthouse.detectors.categorical import MISSING_CODE, CategoricalBlock
from drifthouse.detectors.multivariate import Multivariate
from drifthouse.detectors.pca import VARIANCE_SHARE, band_of, fit_pca, reconstruction_errors
from drifthouse.detectors.reference import FeatureProfile, Profile

__all__ = ["MIN_EVENTS", "fit_multivariate"]

#: Fewer reference rows than this give no multivariate part (the band needs ten chunks of
#: ten events at least).
MIN_EVENTS = 100


def _floats(column: np.ndarray | Sequence[Any]) -> npt.NDArray[np.float64]:
    """A numeric column as float64, NaN where a value is missing or not a number."""
    if isinstance(column, np.ndarray) and column.dtype != object:
        return column.astype(np.float64)
    return np.asarray(
        [
            float(v)
            if isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool)
            else np.nan
            for v in column
        ],
        dtype=np.float64,
    )


def _shares(codes: npt.NDArray[np.int32], k: int) -> npt.NDArray[np.float64]:
    """``[missing, category 0 .. K - 1, other, new]``: each code's share of the rows, the
    missing rows imputed with category 0 (the most frequent), a new category 0."""
    n = codes.size
    counts = np.bincount(codes.astype(np.intp) + 1, minlength=k + 3).astype(np.float64)
    shares = counts / n
    shares[1] = (counts[1] + counts[0]) / n
    shares[0] = shares[1]
    shares[k + 2] = 0.0
    return shares


def fit_multivariate(
    profile: Profile,
    features: Mapping[str, np.ndarray | Sequence[Any]],
    *,
    variance_share: float = VARIANCE_SHARE,
) -> Multivariate | None:
    """The multivariate part of ``profile`` from its reference columns ``features``; ``None``
    with fewer than :data:`MIN_EVENTS` rows, fewer than two features with values, or when
    nothing is left to reconstruct (:func:`~drifthouse.detectors.pca.fit_pca`)."""
    numeric = [f for f in profile.numeric if f.count > 0 and f.name in features]
    categorical: list[FeatureProfile] = [
        f for f in profile.categorical if f.count > 0 and f.categories and f.name in features
    ]
    names = [f.name for f in (*numeric, *categorical)]
    n = len(features[names[0]]) if names else 0
    if len(names) < 2 or n < MIN_EVENTS:
        return None
    columns: list[npt.NDArray[np.float64]] = []
    fill: list[float] = []
    for f in numeric:
        v = _floats(features[f.name])
        finite = np.isfinite(v)
        mean = float(np.mean(v[finite]))
        fill.append(mean)
        columns.append(np.where(finite, v, mean))
    block = CategoricalBlock(categorical)
    frequencies: list[list[float]] = []
    for j, f in enumerate(categorical):
        codes = block.codes_for(j, features[f.name])
        shares = _shares(codes, len(f.categories))
        frequencies.append([float(s) for s in shares])
        columns.append(shares[np.where(codes == MISSING_CODE, 0, codes + 1)])
    matrix = np.column_stack(columns)
    pca = fit_pca(matrix, variance_share=variance_share)
    if pca is None:
        return None
    return Multivariate(
        numeric=[f.name for f in numeric],
        categorical=[f.name for f in categorical],
        fill=fill,
        frequencies=frequencies,
        pca=pca,
        band=band_of(reconstruction_errors(pca, matrix)),
    )
