"""Numba kernel of direct loss estimation (:mod:`drifthouse.detectors.dle`).

Private: arrays and scalars only; the sketch validates and converts.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["dle_update"]


@njit(cache=True, nogil=True)
def dle_update(
    slots: np.ndarray,  # (n, F) int64: each event's slot in each feature's table
    ok: np.ndarray,  # (n,) bool: the event has a prediction
    offsets: np.ndarray,  # (F,) int64: where each feature's table starts
    table_abs: np.ndarray,  # (slots,) float64
    table_sq: np.ndarray,  # (slots,) float64
    intercept_abs: float,
    intercept_sq: float,
    inv_unit_abs: float,
    inv_unit_sq: float,
    cap: float,
    sums: np.ndarray,  # (3,) int64: events, sum of |loss| units, sum of loss**2 units
) -> None:
    """Add each event's predicted losses, in fixed point, to ``sums`` (in place). Each loss is
    the intercept plus the features' contributions added in feature order, floored at 0, then
    ``rint(loss / unit)`` capped at ``cap`` units."""
    n, f = slots.shape
    for i in range(n):
        if not ok[i]:
            continue
        a = intercept_abs
        s = intercept_sq
        for j in range(f):
            k = offsets[j] + slots[i, j]
            a = a + table_abs[k]
            s = s + table_sq[k]
        a = min(max(a, 0.0) * inv_unit_abs, cap)
        s = min(max(s, 0.0) * inv_unit_sq, cap)
        sums[0] += 1
        sums[1] += np.int64(np.rint(a))
        sums[2] += np.int64(np.rint(s))
