"""The three label sketches, one per kind of model output (see :mod:`drifthouse.detectors.label_sketch`).

- :class:`BinarySketch` (probability scores, labels 0/1): confusion counts at the model's
  threshold and one score histogram per class on ``bins`` equal bins on ``[0, 1]``;
  ``roc_auc`` is the Mann-Whitney statistic on the binned scores (:func:`roc_auc_binned`).
- :class:`ClassSketch` (class-name predictions): a confusion matrix over a fixed class list
  plus one "other" class.
- :class:`RegressionSketch`: count, sums of absolute, squared and absolute percentage error,
  Welford's mean and M2 of the labels, merged by sums and Chan et al.'s formula.

Each takes a batch of :class:`Pairs` (``y_true``, ``y_pred``; for :class:`BinarySketch` the
prediction is the score).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Generic, TypeVar

import numpy as np

from drifthouse.detectors import _label_kernels as _k
from drifthouse.detectors.base import (
    NO_CONTEXT,
    Context,
    Result,
    Sketch,
    State,
    check_same_layout,
    layout_digest,
)
from drifthouse.detectors.labels import class_metrics
from drifthouse.errors import SketchError

__all__ = [
    "BinarySketch",
    "BinaryState",
    "ClassSketch",
    "ClassState",
    "Pairs",
    "RegressionSketch",
    "RegressionState",
    "auc_binning_error",
    "roc_auc_binned",
]

# BinaryState.confusion slots.
TP, FP, TN, FN = 0, 1, 2, 3

Y = TypeVar("Y")


@dataclasses.dataclass(frozen=True, slots=True)
class Pairs(Generic[Y]):
    """A batch of (label, prediction) pairs, in order: ``y_true[i]`` with ``y_pred[i]``."""

    y_true: Y
    y_pred: Y


def roc_auc_binned(*, pos_counts: np.ndarray, neg_counts: np.ndarray) -> float | None:
    """ROC AUC from per-bin counts of positives and negatives (bins in score order).

    Mann-Whitney U over ``P * N`` with pairs in one bin counted one half (Hanley & McNeil
    1982); ``None`` when either class is absent.
    """
    pos = np.asarray(pos_counts, dtype=np.int64)
    neg = np.asarray(neg_counts, dtype=np.int64)
    n_pos, n_neg = int(pos.sum()), int(neg.sum())
    if n_pos == 0 or n_neg == 0:
        return None
    below = np.concatenate(([0], np.cumsum(neg)[:-1]))
    # Integer arithmetic up to the division: 2U is an integer.
    twice_u = int(np.sum(pos * (2 * below + neg), dtype=np.int64))
    return twice_u / (2.0 * n_pos * n_neg)


def auc_binning_error(*, pos_counts: np.ndarray, neg_counts: np.ndarray) -> float:
    """Largest possible ``|binned AUC - exact AUC|``: the tied-in-a-bin pairs' half weight."""
    pos = np.asarray(pos_counts, dtype=np.int64)
    neg = np.asarray(neg_counts, dtype=np.int64)
    n_pos, n_neg = int(pos.sum()), int(neg.sum())
    if n_pos == 0 or n_neg == 0:
        return 0.0
    return int(np.sum(pos * neg, dtype=np.int64)) / (2.0 * n_pos * n_neg)


# -- binary ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False)
class BinaryState(State):
    """``confusion`` int64 (4,) tp, fp, tn, fn; ``hist`` int64 (2, bins) negatives, positives."""

    confusion: np.ndarray
    hist: np.ndarray


class BinarySketch(Sketch[BinaryState, Pairs[np.ndarray]]):
    """Binary classification from probability scores.

    Examples
    --------
    >>> import numpy as np
    >>> sk = BinarySketch(threshold=0.5, bins=10)
    >>> s = sk.update(sk.empty(), Pairs(np.array([1, 0, 1, 0]), np.array([0.9, 0.2, 0.4, 0.6])))
    >>> {r.metric: r.value for r in sk.evaluate(s)}
    {'accuracy': 0.5, 'precision': 0.5, 'recall': 0.5, 'f1': 0.5, 'roc_auc': 0.75}
    """

    def __init__(self, *, threshold: float = 0.5, bins: int = 1_000) -> None:
        if not 0.0 <= threshold <= 1.0:
            raise SketchError(f"threshold must be in [0, 1] (got {threshold})")
        if bins < 2:
            raise SketchError(f"bins must be at least 2 (got {bins})")
        self.threshold = float(threshold)
        self.bins = int(bins)
        self.layout = layout_digest("binary-labels", self.threshold, self.bins)

    def empty(self) -> BinaryState:
        return BinaryState(
            layout=self.layout,
            confusion=np.zeros(4, dtype=np.int64),
            hist=np.zeros((2, self.bins), dtype=np.int64),
        )

    def update(self, state: BinaryState, batch: Pairs[np.ndarray]) -> BinaryState:
        """Add pairs (``y_true`` 0/1, ``y_pred`` a finite score) in place and return ``state``."""
        check_same_layout("BinarySketch", self.layout, state)
        y = np.asarray(batch.y_true).astype(np.int64)
        s = np.asarray(batch.y_pred, dtype=np.float64)
        if y.shape != s.shape or y.ndim != 1:
            raise SketchError(
                f"y_true and score must be 1-D of one length ({y.shape} vs {s.shape})"
            )
        if not y.size:
            return state
        if np.any((y != 0) & (y != 1)) or not np.all(np.isfinite(s)):
            raise SketchError("y_true must be 0/1 and score finite (filter pairs before update)")
        pred = s >= self.threshold
        pos = y == 1
        state.confusion[TP] += int(np.sum(pred & pos))
        state.confusion[FP] += int(np.sum(pred & ~pos))
        state.confusion[TN] += int(np.sum(~pred & ~pos))
        state.confusion[FN] += int(np.sum(~pred & pos))
        idx = np.clip(np.floor(s * self.bins), 0, self.bins - 1).astype(np.int64)
        state.hist[...] += np.bincount(y * self.bins + idx, minlength=2 * self.bins).reshape(2, -1)
        return state

    def merge(self, a: BinaryState, b: BinaryState) -> BinaryState:
        check_same_layout("BinarySketch", self.layout, a, b)
        return BinaryState(
            layout=self.layout, confusion=a.confusion + b.confusion, hist=a.hist + b.hist
        )

    def count(self, state: BinaryState) -> int:
        return int(state.confusion.sum())

    def evaluate(self, state: BinaryState, context: Context = NO_CONTEXT) -> list[Result]:
        """``accuracy``, ``precision``, ``recall``, ``f1`` and (both classes seen) ``roc_auc``."""
        tp, fp, tn, fn = (int(x) for x in state.confusion)
        n = tp + fp + tn + fn
        values = class_metrics(tp=tp, fp=fp, fn=fn, total=n, correct=tp + tn)
        auc = roc_auc_binned(pos_counts=state.hist[1], neg_counts=state.hist[0])
        if auc is not None:
            values["roc_auc"] = auc
        return [Result("", k, float(v), None, 0, n) for k, v in values.items()]


# -- classes -----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False)
class ClassState(State):
    """``confusion`` int64 (K + 1, K + 1), true class x predicted class, the last one "other";
    ``correct`` int64 (1,) pairs whose names are equal (also two equal unlisted names)."""

    confusion: np.ndarray
    correct: np.ndarray


class ClassSketch(Sketch[ClassState, Pairs[Sequence[str]]]):
    """Classification from class-name predictions, over a fixed class list.

    Examples
    --------
    >>> sk = ClassSketch(["cat", "dog", "eel"])
    >>> s = sk.update(sk.empty(), Pairs(["cat", "dog", "eel", "cat"], ["cat", "cat", "eel", "cat"]))
    >>> {r.metric: round(r.value, 3) for r in sk.evaluate(s)}
    {'accuracy': 0.75, 'precision': 0.556, 'recall': 0.667, 'f1': 0.6}
    """

    def __init__(self, classes: Sequence[str]) -> None:
        self.classes = tuple(str(c) for c in classes)
        if len(set(self.classes)) != len(self.classes):
            raise SketchError(f"classes must be distinct (got {list(self.classes)})")
        self._codes = {c: i for i, c in enumerate(self.classes)}
        self.layout = layout_digest("class-labels", self.classes)

    def empty(self) -> ClassState:
        k = len(self.classes) + 1
        return ClassState(
            layout=self.layout,
            confusion=np.zeros((k, k), dtype=np.int64),
            correct=np.zeros(1, dtype=np.int64),
        )

    def update(self, state: ClassState, batch: Pairs[Sequence[str]]) -> ClassState:
        """Add pairs of class names in place and return ``state``."""
        check_same_layout("ClassSketch", self.layout, state)
        y_true, y_pred = batch.y_true, batch.y_pred
        if len(y_true) != len(y_pred):
            raise SketchError(
                f"y_true and y_pred differ in length ({len(y_true)} vs {len(y_pred)})"
            )
        if not len(y_true):
            return state
        other = len(self.classes)
        t = np.fromiter((self._codes.get(v, other) for v in y_true), np.int64, len(y_true))
        p = np.fromiter((self._codes.get(v, other) for v in y_pred), np.int64, len(y_pred))
        k = other + 1
        state.confusion[...] += np.bincount(t * k + p, minlength=k * k).reshape(k, k)
        state.correct[0] += sum(a == b for a, b in zip(y_true, y_pred, strict=True))
        return state

    def merge(self, a: ClassState, b: ClassState) -> ClassState:
        check_same_layout("ClassSketch", self.layout, a, b)
        return ClassState(
            layout=self.layout, confusion=a.confusion + b.confusion, correct=a.correct + b.correct
        )

    def count(self, state: ClassState) -> int:
        return int(state.confusion.sum())

    def evaluate(self, state: ClassState, context: Context = NO_CONTEXT) -> list[Result]:
        """``accuracy``; macro ``precision``, ``recall``, ``f1`` over listed classes seen."""
        n = self.count(state)
        if n == 0:
            return []
        out = [Result("", "accuracy", int(state.correct[0]) / n, None, 0, n)]
        cm = state.confusion[:-1, :-1]
        tp = np.diag(cm)
        predicted = state.confusion[:, :-1].sum(axis=0)
        actual = state.confusion[:-1, :].sum(axis=1)
        seen = (predicted + actual) > 0
        if seen.any():
            prec = np.where(predicted > 0, tp / np.maximum(predicted, 1), 0.0)[seen]
            rec = np.where(actual > 0, tp / np.maximum(actual, 1), 0.0)[seen]
            with np.errstate(invalid="ignore", divide="ignore"):
                f1 = np.where(prec + rec > 0, 2 * prec * rec / (prec + rec), 0.0)
            out += [
                Result("", "precision", float(prec.mean()), None, 0, n),
                Result("", "recall", float(rec.mean()), None, 0, n),
                Result("", "f1", float(f1.mean()), None, 0, n),
            ]
        return out


# -- regression --------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False)
class RegressionState(State):
    """``counts`` int64 (3,) pairs, pairs in MAPE, labels 0; ``sums`` float64 (3,) abs error,
    squared error, abs percentage error; ``moments`` float64 (2,) mean and M2 of the labels."""

    counts: np.ndarray
    sums: np.ndarray
    moments: np.ndarray


class RegressionSketch(Sketch[RegressionState, Pairs[np.ndarray]]):
    """Regression error from (label, prediction) pairs.

    Examples
    --------
    >>> import numpy as np
    >>> sk = RegressionSketch()
    >>> s = sk.update(sk.empty(), Pairs(np.array([1.0, 2.0, 0.0, 4.0]), np.array([1.5, 2.0, 1.0, 3.0])))
    >>> {r.metric: round(r.value, 4) for r in sk.evaluate(s)}
    {'mae': 0.625, 'rmse': 0.75, 'r2': 0.7429, 'mape': 0.25}
    """

    layout = "regression-labels-v1"

    def empty(self) -> RegressionState:
        return RegressionState(
            layout=self.layout,
            counts=np.zeros(3, dtype=np.int64),
            sums=np.zeros(3),
            moments=np.zeros(2),
        )

    def update(self, state: RegressionState, batch: Pairs[np.ndarray]) -> RegressionState:
        """Add pairs in order, in place (non-finite pairs are skipped); return ``state``."""
        check_same_layout("RegressionSketch", self.layout, state)
        y = np.ascontiguousarray(batch.y_true, dtype=np.float64)
        p = np.ascontiguousarray(batch.y_pred, dtype=np.float64)
        if y.shape != p.shape or y.ndim != 1:
            raise SketchError(
                f"y_true and y_pred must be 1-D of one length ({y.shape} vs {p.shape})"
            )
        if y.size:
            _k._regression_update(y, p, state.counts, state.sums, state.moments)
        return state

    def merge(self, a: RegressionState, b: RegressionState) -> RegressionState:
        """Sums add; the labels' mean and M2 by Chan et al. (empty sides leave the other bitwise)."""
        check_same_layout("RegressionSketch", self.layout, a, b)
        na, nb = int(a.counts[_k.N]), int(b.counts[_k.N])
        if nb == 0:
            moments = a.moments.copy()
        elif na == 0:
            moments = b.moments.copy()
        else:
            n = na + nb
            delta = b.moments[_k.MEAN_Y] - a.moments[_k.MEAN_Y]
            moments = np.array(
                [
                    a.moments[_k.MEAN_Y] + delta * (nb / n),
                    a.moments[_k.M2_Y] + b.moments[_k.M2_Y] + delta * delta * (na * nb / n),
                ]
            )
        return RegressionState(
            layout=self.layout, counts=a.counts + b.counts, sums=a.sums + b.sums, moments=moments
        )

    def count(self, state: RegressionState) -> int:
        return int(state.counts[_k.N])

    def evaluate(self, state: RegressionState, context: Context = NO_CONTEXT) -> list[Result]:
        """``mae``, ``rmse``, ``r2`` (labels not constant) and ``mape`` (some label != 0)."""
        n = self.count(state)
        if n == 0:
            return []
        sae, sse, sape = (float(x) for x in state.sums)
        values = {"mae": sae / n, "rmse": math.sqrt(sse / n)}
        ss_tot = float(state.moments[_k.M2_Y])
        if ss_tot > 0:
            values["r2"] = 1.0 - sse / ss_tot
        n_ape = int(state.counts[_k.N_APE])
        if n_ape:
            values["mape"] = sape / n_ape
        return [Result("", k, v, None, 0, n) for k, v in values.items() if math.isfinite(v)]
