"""Fairness gaps between the values of one segment attribute (docs/metrics.md).

Pure functions over per-value confusion counts ``[tp, fp, tn, fn]`` (the ``confusion`` array of
a :class:`~drifthouse.detectors.label_sketch.BinaryState`, merged over a window):

- ``demographic_parity_diff``: max - min over values of the positive prediction rate
  ``(tp + fp) / n`` (Dwork et al. 2012, "Fairness through awareness"; Fairlearn's
  ``demographic_parity_difference``);
- ``equal_opportunity_diff``: max - min over values of the true positive rate
  ``tp / (tp + fn)`` (Hardt, Price & Srebro 2016, "Equality of opportunity in supervised
  learning"); values without positive labels have no TPR and are left out.

Values with fewer than ``min_count`` labelled pairs are left out (a gap between a group of three
and a group of thirty thousand says more about the three than about the model). Both gaps are
``None`` unless at least two values remain; otherwise they lie in [0, 1].

Examples
--------
>>> import numpy as np
>>> by_country = {"DE": np.array([30, 10, 50, 10]), "FR": np.array([10, 10, 70, 10])}
>>> demographic_parity_diff(confusion=by_country)
0.2
>>> round(equal_opportunity_diff(confusion=by_country), 4)
0.25
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from drifthouse.detectors.base import Result
from drifthouse.errors import SketchError

__all__ = [
    "demographic_parity_diff",
    "equal_opportunity_diff",
    "fairness_results",
    "positive_rates",
    "true_positive_rates",
]


def _counts(confusion: Mapping[str, np.ndarray]) -> dict[str, tuple[int, int, int, int]]:
    out: dict[str, tuple[int, int, int, int]] = {}
    for value, c in confusion.items():
        arr = np.asarray(c, dtype=np.int64)
        if arr.shape != (4,) or np.any(arr < 0):
            raise SketchError(
                f"confusion of segment value {value!r} must be 4 counts [tp, fp, tn, fn] (got {arr.tolist()})"
            )
        tp, fp, tn, fn = (int(x) for x in arr)
        out[value] = (tp, fp, tn, fn)
    return out


def positive_rates(*, confusion: Mapping[str, np.ndarray], min_count: int = 1) -> dict[str, float]:
    """Positive prediction rate per segment value with at least ``min_count`` pairs."""
    out = {}
    for value, (tp, fp, tn, fn) in _counts(confusion).items():
        n = tp + fp + tn + fn
        if n >= max(min_count, 1):
            out[value] = (tp + fp) / n
    return out


def true_positive_rates(
    *, confusion: Mapping[str, np.ndarray], min_count: int = 1
) -> dict[str, float]:
    """True positive rate per segment value with at least ``min_count`` positive labels."""
    out = {}
    for value, (tp, _fp, _tn, fn) in _counts(confusion).items():
        if tp + fn >= max(min_count, 1):
            out[value] = tp / (tp + fn)
    return out


def _gap(rates: Mapping[str, float]) -> float | None:
    if len(rates) < 2:
        return None
    return max(rates.values()) - min(rates.values())


def demographic_parity_diff(
    *, confusion: Mapping[str, np.ndarray], min_count: int = 1
) -> float | None:
    """Max - min positive prediction rate across segment values (``None`` with fewer than two)."""
    return _gap(positive_rates(confusion=confusion, min_count=min_count))


def equal_opportunity_diff(
    *, confusion: Mapping[str, np.ndarray], min_count: int = 1
) -> float | None:
    """Max - min true positive rate across segment values (``None`` with fewer than two)."""
    return _gap(true_positive_rates(confusion=confusion, min_count=min_count))


def fairness_results(*, confusion: Mapping[str, np.ndarray], min_count: int = 1) -> list[Result]:
    """Both gaps of one attribute as model-level results (the caller sets the segment column
    to the attribute's name); ``n_cur`` is the number of pairs in the values compared."""
    counts = _counts(confusion)
    out = []
    dp = demographic_parity_diff(confusion=confusion, min_count=min_count)
    if dp is not None:
        n = sum(sum(c) for v, c in counts.items() if sum(c) >= max(min_count, 1))
        out.append(Result("", "demographic_parity_diff", dp, None, 0, n))
    eo = equal_opportunity_diff(confusion=confusion, min_count=min_count)
    if eo is not None:
        n = sum(c[0] + c[3] for c in counts.values() if c[0] + c[3] >= max(min_count, 1))
        out.append(Result("", "equal_opportunity_diff", eo, None, 0, n))
    return out
