"""Label metrics: pure functions over arrays of labels and predictions.

Binary classification (docs/metrics.md): a score ``>= threshold`` predicts class 1.
``accuracy``, ``precision``, ``recall``, ``f1`` follow the confusion-matrix definitions
(precision and recall are 0.0 when their denominator is 0, as scikit-learn's
``zero_division=0``); ``roc_auc`` is the Mann-Whitney U statistic over ``n_pos * n_neg`` with
ties counted one half (Hanley & McNeil 1982), omitted when only one class is present.
Regression: ``mae``, ``rmse``, ``r2 = 1 - SS_res / SS_tot`` (omitted when the labels are
constant), ``mape = mean(|y - y_hat| / |y|)`` over labels ``y != 0`` (omitted when all are 0).
Every returned value is finite; a metric that is undefined is left out.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from drifthouse.categories import category_key, numeral_value
from drifthouse.errors import ProfileError

__all__ = ["binary_metrics", "class_metrics", "reference_metrics", "regression_metrics", "roc_auc"]

_POSITIVE = {"1", "1.0", "true", "yes", "positive", "pos"}
_NEGATIVE = {"0", "0.0", "false", "no", "negative", "neg"}


def roc_auc(*, y_true: np.ndarray, score: np.ndarray) -> float | None:
    """Area under the ROC curve of boolean ``y_true`` against ``score``; ``None`` with one class."""
    y = np.asarray(y_true, dtype=bool)
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    from scipy.stats import rankdata  # 0.4 s to import: only where an AUC is computed

    ranks = rankdata(np.asarray(score, dtype=np.float64))
    u = float(ranks[y].sum()) - n_pos * (n_pos + 1) / 2.0
    return u / (n_pos * n_neg)


def binary_metrics(
    *, y_true: np.ndarray, score: np.ndarray, threshold: float = 0.5
) -> dict[str, float]:
    """Accuracy, precision, recall, F1 and ROC AUC of scores against boolean labels."""
    y = np.asarray(y_true, dtype=bool)
    s = np.asarray(score, dtype=np.float64)
    if y.size == 0:
        return {}
    pred = s >= threshold
    tp = int(np.sum(pred & y))
    fp = int(np.sum(pred & ~y))
    fn = int(np.sum(~pred & y))
    out = class_metrics(tp=tp, fp=fp, fn=fn, total=int(y.size), correct=int(np.sum(pred == y)))
    auc = roc_auc(y_true=y, score=s)
    if auc is not None:
        out["roc_auc"] = auc
    return out


def class_metrics(*, tp: int, fp: int, fn: int, total: int, correct: int) -> dict[str, float]:
    """Accuracy, precision, recall and F1 from confusion counts (0.0 for empty denominators)."""
    if total <= 0:
        return {}
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"accuracy": correct / total, "precision": precision, "recall": recall, "f1": f1}


def regression_metrics(*, y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """MAE, RMSE, R² and MAPE (MAPE as a fraction, not a percentage)."""
    y = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float64)
    ok = np.isfinite(y) & np.isfinite(p)
    y, p = y[ok], p[ok]
    if y.size == 0:
        return {}
    err = y - p
    out = {"mae": float(np.mean(np.abs(err))), "rmse": float(np.sqrt(np.mean(err * err)))}
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    if ss_tot > 0:
        out["r2"] = 1.0 - float(np.sum(err * err)) / ss_tot
    nz = y != 0
    if nz.any():
        out["mape"] = float(np.mean(np.abs(err[nz]) / np.abs(y[nz])))
    return out


def _key(v: object) -> str | None:
    """A class's category key, lower-cased to tell positive from negative labels."""
    key = category_key(v)
    return None if key is None else key.strip().lower()


def _is_number(v: object) -> bool:
    return isinstance(v, int | float | np.integer | np.floating) and not isinstance(
        v, bool | np.bool_
    )


def _as_number(v: object) -> object:
    """A numeral sent as text as the number it denotes (``"2973.0"``: 2973.0), as the label
    windows read it; anything else as it is."""
    if isinstance(v, str):
        x = numeral_value(v)
        return v if x is None else x
    return v


_NUMBER_TYPES = frozenset({int, float, np.float64, np.float32, np.int64, np.int32, type(None)})


def _numeric_pairs(
    y_true: np.ndarray | Sequence[Any], y_pred: np.ndarray | Sequence[Any]
) -> tuple[np.ndarray, np.ndarray] | None:
    """Both columns as float arrays without missing rows, if both hold only numbers."""

    def as_float(col: np.ndarray | Sequence[Any]) -> np.ndarray | None:
        if isinstance(col, np.ndarray) and col.dtype.kind in "iuf":
            return col.astype(np.float64)
        if set(map(type, col)) <= _NUMBER_TYPES:
            return np.asarray([np.nan if v is None else v for v in col], dtype=np.float64)
        return None

    y, p = as_float(y_true), as_float(y_pred)
    if y is None or p is None:
        return None
    ok = ~np.isnan(y) & ~np.isnan(p)
    return y[ok], p[ok]


def reference_metrics(
    *,
    y_true: np.ndarray | Sequence[Any],
    y_pred: np.ndarray | Sequence[Any],
    threshold: float = 0.5,
    task: Literal["auto", "classification", "regression"] = "auto",
) -> tuple[Literal["classification", "regression"], dict[str, float]]:
    """Label metrics of a reference data set, and the task they were computed for.

    ``auto`` picks classification when every label is 0/1, true/false or a string, and
    regression for other numeric labels (with numeric predictions a numeral string such as
    ``"2973.0"`` is a number). Classification with numeric predictions treats them
    as scores of the positive class; with class-label predictions it reports ``accuracy``
    (and precision/recall/F1 when the labels are binary 0/1 or true/false).
    Rows where the label or the prediction is missing are skipped.
    """
    if len(y_true) != len(y_pred):
        raise ProfileError(
            f"label and prediction columns differ in length ({len(y_true)} vs {len(y_pred)})"
        )
    fast = _numeric_pairs(y_true, y_pred)
    if fast is not None and task != "classification":
        y, p = fast
        if y.size == 0:
            return ("classification" if task == "auto" else task), {}
        binary = bool(np.all((y == 0) | (y == 1)))
        if task == "regression" or not binary:
            return "regression", regression_metrics(y_true=y, y_pred=p)
        return "classification", binary_metrics(y_true=y == 1, score=p, threshold=threshold)
    pairs = [
        (t, p)
        for t, p in zip(y_true, y_pred, strict=True)
        if _key(t) is not None and _key(p) is not None
    ]
    preds = [p for _, p in pairs]
    # Against numeric predictions a numeral label is its number, as the windows score it
    # (docs/model-performance.md, "Label values"); against class names it stays a name.
    numeric_preds = all(_is_number(p) for p in preds)
    labels = [_as_number(t) if numeric_preds else t for t, _ in pairs]
    if not pairs:
        return ("classification" if task == "auto" else task), {}
    keys = {_key(t) for t in labels}
    binary_labels = bool(keys) and keys <= _POSITIVE | _NEGATIVE
    if task == "auto":
        numeric_labels = all(_is_number(t) for t in labels)
        task = "classification" if (binary_labels or not numeric_labels) else "regression"
    if task == "regression":
        try:
            return "regression", regression_metrics(
                y_true=np.asarray(labels, dtype=np.float64),
                y_pred=np.asarray(preds, dtype=np.float64),
            )
        except (TypeError, ValueError) as exc:
            raise ProfileError(f"regression labels and predictions must be numbers: {exc}") from exc
    if all(_is_number(p) for p in preds) and binary_labels:
        y = np.asarray([_key(t) in _POSITIVE for t in labels], dtype=bool)
        return "classification", binary_metrics(
            y_true=y, score=np.asarray(preds, dtype=np.float64), threshold=threshold
        )
    pk = [_key(p) for p in preds]
    tk = [_key(t) for t in labels]
    # Equal as the windows compare classes (category keys: 1 and "1.0" are one class).
    correct = sum(category_key(a) == category_key(b) for a, b in zip(preds, labels, strict=True))
    if binary_labels:
        pos_p = [k in _POSITIVE for k in pk]
        pos_t = [k in _POSITIVE for k in tk]
        tp = sum(a and b for a, b in zip(pos_p, pos_t, strict=True))
        fp = sum(a and not b for a, b in zip(pos_p, pos_t, strict=True))
        fn = sum(b and not a for a, b in zip(pos_p, pos_t, strict=True))
        return "classification", class_metrics(tp=tp, fp=fp, fn=fn, total=len(pk), correct=correct)
    return "classification", {"accuracy": correct / len(pk)}
