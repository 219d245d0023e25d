"""Numba kernel of the embedding sketch (:mod:`drifthouse.detectors.embedding`).

Private and pure: arrays and scalars in, the state's integer arrays updated in place. Each
valid vector adds its unit vector and its random Fourier features, each term rounded once to a
multiple of ``2**-32`` (fixed point, int64): integer sums do not depend on the order of events,
so batches, panes, partitions and replays add up to the same bits.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from drifthouse.detectors import base

__all__: list[str] = []

# Status codes and count slots, spelled here: Numba bakes the globals a kernel reads into the
# machine code it caches, and checks only this file for changes (see _kernels.py).
PRESENT, MISSING, TYPE_ERROR, WRONG_LENGTH = 0, 1, 2, 3
COUNT, NON_FINITE, ZERO_VECTOR = 0, 4, 5
SCALE = 4294967296.0  # 2**32
if (PRESENT, MISSING, TYPE_ERROR) != (base.PRESENT, base.MISSING, base.TYPE_ERROR):
    raise ImportError("drifthouse.detectors._embedding_kernels: spell base's status codes here")


#: Events per pass over the frequencies: each row of ``W`` is loaded once for this many.
BLOCK = 16


@njit(cache=True, nogil=True)
def _embedding_update(
    values: np.ndarray,  # float64 (n, d); rows whose status is not PRESENT are not read
    status: np.ndarray,  # uint8 (n,): PRESENT, MISSING, TYPE_ERROR, WRONG_LENGTH
    wt: np.ndarray,  # float64 (d, D): the random Fourier map's frequencies, transposed
    b: np.ndarray,  # float64 (D,): its phases
    counts: np.ndarray,  # int64 (6,): count, missing, type_error, wrong_length, non_finite, zero
    unit_sum: np.ndarray,  # int64 (d,): sum of rint(x / |x| * 2**32)
    rff_sum: np.ndarray,  # int64 (D,): sum of rint(cos(x . w_r + b_r) * 2**32)
    scratch: np.ndarray,  # float64 (BLOCK, D)
    rows: np.ndarray,  # int64 (BLOCK,)
) -> None:  # pragma: no cover - compiled
    n, d = values.shape
    n_rff = b.shape[0]
    for start in range(0, n, BLOCK):
        m = 0  # the block's valid rows
        for i in range(start, min(start + BLOCK, n)):
            s = status[i]
            if s != PRESENT:
                counts[s] += 1  # the status codes are the slots of their counts
                continue
            nrm2 = 0.0
            finite = True
            for k in range(d):
                v = values[i, k]
                if not np.isfinite(v):
                    finite = False
                    break
                nrm2 += v * v
            if not finite or not np.isfinite(nrm2):  # a NaN, an infinity, a length past 1e154
                counts[NON_FINITE] += 1
                continue
            if nrm2 == 0.0:
                counts[ZERO_VECTOR] += 1
                continue
            counts[COUNT] += 1
            inv = 1.0 / np.sqrt(nrm2)
            for k in range(d):
                unit_sum[k] += np.int64(np.rint(values[i, k] * inv * SCALE))
            rows[m] = i
            m += 1
        for e in range(m):
            for r in range(n_rff):
                scratch[e, r] = b[r]
        # Frequencies in the inner loop: per event D independent sums, each in coordinate
        # order (so a block changes no bit), which vectorise without reassociating any of them;
        # a row of W serves the whole block.
        for k in range(d):
            for e in range(m):
                v = values[rows[e], k]
                for r in range(n_rff):
                    scratch[e, r] += wt[k, r] * v
        for e in range(m):
            for r in range(n_rff):
                rff_sum[r] += np.int64(np.rint(np.cos(scratch[e, r]) * SCALE))
