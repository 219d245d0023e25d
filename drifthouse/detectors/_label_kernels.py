"""Numba kernels of the label sketches: private functions over arrays and scalars only.

Float accumulators advance one pair at a time, in the order the pairs are given, continuing
from the running values in the state, so ``update(update(s, a), b)`` equals ``update(s, a + b)``
bit for bit however the pairs are cut into batches.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__: list[str] = []

# Slots of RegressionState.counts / .sums / .moments.
N, N_APE, ZERO_Y = 0, 1, 2
SAE, SSE, SAPE = 0, 1, 2
MEAN_Y, M2_Y = 0, 1


@njit(cache=True, nogil=True)
def _regression_update(
    y: np.ndarray,  # float64 (n,) labels
    p: np.ndarray,  # float64 (n,) predictions
    counts: np.ndarray,  # int64 (3,): pairs, pairs in MAPE, pairs skipped by MAPE (y == 0)
    sums: np.ndarray,  # float64 (3,): sum |e|, sum e^2, sum |e| / |y|
    moments: np.ndarray,  # float64 (2,): Welford mean and M2 of y
) -> int:  # pragma: no cover - compiled
    """Accumulate finite pairs in order; return the number of non-finite pairs skipped."""
    skipped = 0
    c = counts[N]
    sae = sums[SAE]
    sse = sums[SSE]
    sape = sums[SAPE]
    mu = moments[MEAN_Y]
    m2 = moments[M2_Y]
    for i in range(y.shape[0]):
        yi = y[i]
        pi = p[i]
        if not (np.isfinite(yi) and np.isfinite(pi)):
            skipped += 1
            continue
        e = yi - pi
        ae = abs(e)
        sae += ae
        sse += e * e
        if yi == 0.0:
            counts[ZERO_Y] += 1
        else:
            sape += ae / abs(yi)
            counts[N_APE] += 1
        c += 1
        delta = yi - mu
        mu += delta / c
        m2 += delta * (yi - mu)
    counts[N] = c
    sums[SAE] = sae
    sums[SSE] = sse
    sums[SAPE] = sape
    moments[MEAN_Y] = mu
    moments[M2_Y] = m2
    return skipped
