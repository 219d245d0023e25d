"""Numba kernels: private functions over arrays and scalars only.

The public classes in :mod:`drifthouse.detectors` validate and convert their inputs, then call
these. Kernels mutate the state arrays they are given in place and return nothing (or a count).

Every float accumulator is advanced one event at a time, in event order, continuing from the
running values already in the state. That is what makes ``update(update(s, a), b)`` equal
``update(s, a + b)`` bit for bit however a stream is cut into micro-batches.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
from numba import njit

from drifthouse.detectors import base

__all__: list[str] = []

# The status codes of drifthouse.detectors.base, spelled here: Numba bakes the values of the
# globals a kernel reads into the machine code it caches on disk, and checks only this file
# for changes, so a code changed in base.py alone would leave stale kernels in the cache.
PRESENT, MISSING, TYPE_ERROR = 0, 1, 2
if (PRESENT, MISSING, TYPE_ERROR) != (base.PRESENT, base.MISSING, base.TYPE_ERROR):
    raise ImportError("drifthouse.detectors._kernels: spell base's status codes here too")


def search_depth(n_edges: int) -> int:
    """Steps of the branch-free search over ``n_edges`` edges padded to ``2**depth - 1``."""
    depth = 1
    while (1 << depth) - 1 < n_edges:
        depth += 1
    return depth


@functools.cache
def numeric_update_kernel(depth: int) -> Callable[..., int]:
    """The numeric block kernel for edges padded (with ``+inf``) to ``2**depth - 1`` columns.

    The search depth is a compile-time constant of each kernel, so LLVM unrolls the search
    into straight-line code with conditional moves: a data-dependent ``while`` loop mispredicts
    about every other step and ran 4-6x slower here. Numba caches each depth separately
    (the closure's constants are part of its cache key).
    """
    top = 1 << (depth - 1)

    @njit(cache=True, nogil=True)
    def _numeric_update(
        values: np.ndarray,  # float64 (n, F)
        status: np.ndarray,  # uint8 (n, F)
        edges: np.ndarray,  # float64 (F, 2**depth - 1), padded with +inf
        lo: np.ndarray,  # float64 (F,) in-range lower bound (inclusive)
        hi: np.ndarray,  # float64 (F,) in-range upper bound (inclusive)
        counts: np.ndarray,  # int64 (F, B): bin i holds edges[i-1] <= v < edges[i]
        count: np.ndarray,  # int64 (F,) present and finite
        missing: np.ndarray,  # int64 (F,)
        non_finite: np.ndarray,  # int64 (F,)
        type_error: np.ndarray,  # int64 (F,)
        out_of_range: np.ndarray,  # int64 (F,)
        vmin: np.ndarray,  # float64 (F,)
        vmax: np.ndarray,  # float64 (F,)
        mean: np.ndarray,  # float64 (F,)
        m2: np.ndarray,  # float64 (F,)
    ) -> int:  # pragma: no cover - compiled
        """Bin, count and accumulate one micro-batch; return the number of unknown statuses.

        One feature at a time, its accumulators held in registers; within a feature the rows
        are taken in event order, which is all that bitwise reproducibility needs.
        """
        n, n_f = values.shape
        bad = 0
        for j in range(n_f):
            row = edges[j]
            c = count[j]
            mu = mean[j]
            s2 = m2[j]
            mn = vmin[j]
            mx = vmax[j]
            lo_j = lo[j]
            hi_j = hi[j]
            oor = 0
            miss = 0
            terr = 0
            nonf = 0
            for i in range(n):
                s = status[i, j]
                if s == PRESENT:
                    v = values[i, j]
                    if not np.isfinite(v):
                        nonf += 1
                        continue
                    # Branch-free binary search: number of edges <= v.
                    pos = 0
                    step = top
                    for _ in range(depth):
                        pos += step * (row[pos + step - 1] <= v)
                        step >>= 1
                    counts[j, pos] += 1
                    c += 1
                    oor += (v < lo_j) | (v > hi_j)
                    mn = min(mn, v)
                    mx = max(mx, v)
                    # Welford, one event at a time, continuing the running values.
                    delta = v - mu
                    mu += delta / c
                    s2 += delta * (v - mu)
                elif s == MISSING:
                    miss += 1
                elif s == TYPE_ERROR:
                    terr += 1
                else:
                    bad += 1
            count[j] = c
            mean[j] = mu
            m2[j] = s2
            vmin[j] = mn
            vmax[j] = mx
            out_of_range[j] += oor
            missing[j] += miss
            type_error[j] += terr
            non_finite[j] += nonf
        return bad

    return _numeric_update


@njit(cache=True, nogil=True)
def _categorical_update(
    codes: np.ndarray,  # int32 (n, F)
    n_categories: np.ndarray,  # int64 (F,) K_f
    counts: np.ndarray,  # int64 (F, K_max + 1)
    count: np.ndarray,  # int64 (F,)
    missing: np.ndarray,  # int64 (F,)
    new_category: np.ndarray,  # int64 (F,)
) -> int:  # pragma: no cover - compiled
    """Count category codes: ``-1`` missing, ``K_f`` other, ``K_f + 1`` new (counted as other).

    Returns the first row holding a code outside ``-1 .. K_f + 1`` (and counts nothing), or -1.
    Validation and counting share one call: dispatch costs more than a pass over a batch.
    """
    n, f_cat = codes.shape
    for i in range(n):
        for j in range(f_cat):
            c = codes[i, j]
            if c < -1 or c > n_categories[j] + 1:
                return i
    for i in range(n):
        for j in range(f_cat):
            c = codes[i, j]
            if c < 0:
                missing[j] += 1
                continue
            k = n_categories[j]
            if c > k:
                new_category[j] += 1
                c = k
            counts[j, c] += 1
            count[j] += 1
    return -1


@njit(cache=True, nogil=True)
def _quantile_update(
    values: np.ndarray,  # float64 (n,)
    min_value: float,
    inv_log_gamma: float,
    n_buckets: int,
    counts: np.ndarray,  # int64 (n_buckets + 2,): [under, dense..., over]
    extremes: np.ndarray,  # float64 (2,): min, max
) -> int:  # pragma: no cover - compiled
    """Count values into log buckets; return the number of non-finite values skipped.

    Dense bucket ``k`` (slot ``k + 1``) holds ``min_value * gamma**k < v <= min_value * gamma**(k+1)``.
    """
    skipped = 0
    for i in range(values.shape[0]):
        v = values[i]
        if not np.isfinite(v):
            skipped += 1
            continue
        if v < extremes[0]:
            extremes[0] = v
        if v > extremes[1]:
            extremes[1] = v
        if v <= min_value:
            counts[0] += 1
            continue
        k = int(np.ceil(np.log(v / min_value) * inv_log_gamma)) - 1
        if k < 0:
            k = 0
        if k >= n_buckets:
            counts[n_buckets + 1] += 1
        else:
            counts[k + 1] += 1
    return skipped


@njit(cache=True, nogil=True)
def _status_update(statuses: np.ndarray, counts: np.ndarray) -> None:  # pragma: no cover
    """Count HTTP statuses into ``[2xx/3xx, 4xx, 5xx, other]``."""
    for i in range(statuses.shape[0]):
        s = statuses[i]
        if 200 <= s < 400:
            counts[0] += 1
        elif 400 <= s < 500:
            counts[1] += 1
        elif 500 <= s < 600:
            counts[2] += 1
        else:
            counts[3] += 1
