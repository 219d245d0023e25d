"""A profile's calibration for performance estimation, from its labelled reference
(docs/model-performance.md, "Performance without labels").

A binary model (scores in [0, 1], labels 0/1, ``true``/``false``, ``yes``/``no``, ...) gets
:func:`~drifthouse.detectors.cbpe_fit.fit_binary`; a multiclass model whose predictions are
``{class: probability}`` with three or more classes gets
:func:`~drifthouse.detectors.cbpe_fit.fit_multiclass` over the classes of its probabilities.
Anything else (regression, class names without probabilities, too few labelled rows) gets none.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from drifthouse.categories import category_key
from drifthouse.detectors.calibration import Calibration
from drifthouse.detectors.cbpe_fit import fit_binary, fit_multiclass
from drifthouse.errors import ProfileError

__all__ = ["MIN_EVENTS", "probability_classes", "reference_calibration"]

#: Fewer labelled reference events than this give no calibration: a sampling error estimated
#: from fewer would mean little.
MIN_EVENTS = 100
_POSITIVE = {"1", "1.0", "true", "yes", "positive", "pos"}
_NEGATIVE = {"0", "0.0", "false", "no", "negative", "neg"}


def probability_classes(predictions: Sequence[Any]) -> list[str] | None:
    """The sorted class keys of ``{class: probability}`` predictions with three or more classes
    (every such prediction naming the same classes), else ``None``."""
    classes: set[str] | None = None
    for p in predictions:
        if not isinstance(p, Mapping):
            continue
        keys = {category_key(k) for k in p}
        if None in keys or len(keys) < 3:
            return None
        if classes is None:
            classes = keys  # type: ignore[assignment]
        elif keys != classes:
            return None
    return sorted(classes) if classes else None


def probability_matrix(predictions: Sequence[Any], classes: Sequence[str]) -> np.ndarray:
    """``(n, classes)`` probabilities (NaN rows where a prediction is not a mapping of numbers)."""
    out = np.full((len(predictions), len(classes)), np.nan)
    where = {c: j for j, c in enumerate(classes)}
    for i, p in enumerate(predictions):
        if not isinstance(p, Mapping):
            continue
        for k, v in p.items():
            j = where.get(category_key(k) or "")
            if j is not None and isinstance(v, int | float) and not isinstance(v, bool):
                out[i, j] = float(v)
    return out


def _binary_label(v: object) -> float:
    key = category_key(v)
    k = None if key is None else key.strip().lower()
    return 1.0 if k in _POSITIVE else 0.0 if k in _NEGATIVE else np.nan


def reference_calibration(
    *,
    prediction: np.ndarray | Sequence[Any],
    label: np.ndarray | Sequence[Any],
    raw_predictions: Sequence[Any] | None = None,
    threshold: float = 0.5,
) -> Calibration | None:
    """The calibration of a classifier's labelled reference, or ``None`` (see the module).

    ``prediction`` holds the profiled predictions (scores, or served class names),
    ``raw_predictions`` the events' predictions as sent (``{class: probability}``)."""
    classes = probability_classes(raw_predictions) if raw_predictions is not None else None
    try:
        if classes is not None and raw_predictions is not None:
            keys = [category_key(v) for v in label]
            served = [category_key(v) for v in prediction]
            ok = [i for i, (t, s) in enumerate(zip(keys, served, strict=True)) if t and s]
            if len(ok) < MIN_EVENTS:
                return None
            matrix = probability_matrix([raw_predictions[i] for i in ok], classes)
            return fit_multiclass(
                matrix, [str(keys[i]) for i in ok], [str(served[i]) for i in ok], classes
            )
        scores = _scores(prediction)
        if scores is None:
            return None
        y = np.array([_binary_label(v) for v in label], dtype=np.float64)
        present = np.array([category_key(v) is not None for v in label], dtype=bool)
        if np.isnan(y[present]).any():
            return None  # labels other than 0/1: not a binary classifier
        ok_rows = ~(np.isnan(y) | np.isnan(scores))
        if int(ok_rows.sum()) < MIN_EVENTS:
            return None
        if np.any((scores[ok_rows] < 0) | (scores[ok_rows] > 1)):
            return None  # not probabilities (a regression output)
        return fit_binary(scores[ok_rows], y[ok_rows], threshold=threshold)
    except ProfileError:
        return None


def _scores(prediction: np.ndarray | Sequence[Any]) -> np.ndarray | None:
    if isinstance(prediction, np.ndarray) and prediction.dtype.kind in "iuf":
        return prediction.astype(np.float64)
    values = [np.nan if v is None else v for v in prediction]
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return None
    return np.asarray(values, dtype=np.float64)
