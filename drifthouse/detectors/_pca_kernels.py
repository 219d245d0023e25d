"""Numba kernels of the PCA reconstruction error: private functions over arrays and scalars.

:mod:`drifthouse.detectors.pca` validates and converts, then calls these. Each row's error is
computed on its own, in a fixed order of operations, so it does not depend on the batch the
row came in; the window's sum is kept in integers (:func:`_accumulate`), so neither does the
order rows, batches, panes or partitions are added in.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__: list[str] = []

#: Fixed point of an error's fraction: units of ``2**-32``.
FRACTION = 4294967296.0
#: Errors above this (and NaN: a row whose standardized values overflow) count as this, so a
#: window of ``2**33`` events cannot overflow the int64 sum of whole parts.
CAP = 1073741824.0  # 2**30


@njit(cache=True, nogil=True)
def _reconstruction_errors(
    x: np.ndarray,  # float64 (n, d), finite (missing values imputed)
    center: np.ndarray,  # float64 (d,) the standardiser's means
    scale: np.ndarray,  # float64 (d,) the standardiser's scales (never 0)
    mean: np.ndarray,  # float64 (d,) the PCA's mean of the standardized reference
    components: np.ndarray,  # float64 (k, d) orthonormal rows
    out: np.ndarray,  # float64 (n,) the errors
) -> None:  # pragma: no cover - compiled
    """Euclidean distance between each standardized row and its reconstruction from the
    ``k`` components: ``|| (z - m) - C^T C (z - m) ||`` with ``z = (x - center) / scale``."""
    n, d = x.shape
    k = components.shape[0]
    z = np.empty(d)
    p = np.empty(k)
    for i in range(n):
        for j in range(d):
            z[j] = (x[i, j] - center[j]) / scale[j] - mean[j]
        for c in range(k):
            s = 0.0
            for j in range(d):
                s += components[c, j] * z[j]
            p[c] = s
        e = 0.0
        for j in range(d):
            r = 0.0
            for c in range(k):
                r += p[c] * components[c, j]
            diff = z[j] - r
            e += diff * diff
        out[i] = math.sqrt(e)


@njit(cache=True, nogil=True)
def _accumulate(errors: np.ndarray, sums: np.ndarray) -> None:  # pragma: no cover - compiled
    """Add errors to ``sums`` (int64 ``[events, whole, fraction]``): each error's whole part
    and its fraction in units of ``2**-32``, both integers, so any order gives the same sums."""
    events = sums[0]
    whole = sums[1]
    frac = sums[2]
    for i in range(errors.shape[0]):
        e = errors[i]
        if not e <= CAP:  # NaN too
            e = CAP
        w = math.floor(e)
        whole += np.int64(w)
        frac += np.int64(round((e - w) * FRACTION))
        events += 1
    sums[0] = events
    sums[1] = whole
    sums[2] = frac
