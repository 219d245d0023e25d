"""Multiple testing: Benjamini-Hochberg q-values over one model-window's p-values.

A window of a model with 40 features and 20 segment values runs a few hundred tests; at
``p < 0.01`` a few of them are "significant" in every window of a stream that never changed.
The q-value of a test (Benjamini & Hochberg, 1995, "Controlling the false discovery rate",
JRSS B 57(1); the adjusted p-values of Yekutieli & Benjamini, 1999) is the smallest false
discovery rate at which the test would be called a discovery: alerting on ``q < 0.01`` keeps
the expected share of false alarms among the alarms of a window under 1%, however many tests
it holds.

For ``m`` p-values sorted ascending, ``p_(1) <= ... <= p_(m)``::

    q_(i) = min(1, min_{j >= i} p_(j) * m / j)

computed exactly as :func:`scipy.stats.false_discovery_control` (``method='bh'``) does, in the
same order of float operations, so the two agree to the last digit. Equal p-values get equal
q-values whatever order they come in, and the result does not depend on the order of the input:
a window's q-values are a function of its merged p-values alone, the same in a live run, a
replay and a scaled-out run (docs/statistics.md#false-alarms).

Example
-------
>>> bh_qvalues([0.01, 0.04, 0.03, 0.5])
[0.04, 0.05333333333333334, 0.05333333333333334, 0.5]
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["bh_qvalues"]


def bh_qvalues(p_values: Sequence[float]) -> list[float]:
    """Benjamini-Hochberg q-values of ``p_values``, in their order.

    Parameters
    ----------
    p_values:
        The family: every p-value tested together, each in ``[0, 1]``. An empty family gives an
        empty list.

    Raises
    ------
    ValueError
        A p-value that is NaN or outside ``[0, 1]``, naming its position and value: a test that
        could not be computed is left out of the family by the caller, not guessed.
    """
    ps = np.asarray(p_values, dtype=np.float64)
    if ps.ndim != 1:
        raise ValueError(f"p_values must be one-dimensional (got shape {ps.shape})")
    for i, p in enumerate(ps.tolist()):
        if not (0.0 <= p <= 1.0) or math.isnan(p):
            raise ValueError(f"p_values[{i}] must be a p-value in [0, 1] (got {p!r})")
    m = ps.shape[0]
    if m == 0:
        return []
    order = np.argsort(ps, kind="stable")
    ranked = ps[order]
    # scipy's order of operations: p * (m / i), then a running minimum from the largest p down.
    ranked *= m / np.arange(1, m + 1)
    ranked = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty(m, dtype=np.float64)
    out[order] = np.clip(ranked, 0.0, 1.0)
    return [float(q) for q in out]
