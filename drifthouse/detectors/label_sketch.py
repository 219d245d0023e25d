"""Mergeable label sketches: model performance from joined (prediction, label) pairs.

Three sketches, one per kind of model output, each following the detector protocol
(``empty``, ``update``, ``merge``, ``evaluate``) with plain-array states:

- :class:`BinarySketch` (probability scores, labels 0/1): confusion counts at the model's
  threshold (a score ``>= threshold`` predicts class 1) and one score histogram per class on a
  fixed grid of ``bins`` equal bins on ``[0, 1]`` (scores outside are clipped into the end
  bins). ``roc_auc`` is the Mann-Whitney statistic on the binned scores: pairs in different
  bins are ordered exactly, pairs in one bin count one half, so the binned AUC differs from the
  exact one by at most ``sum_i pos_i * neg_i / (2 * P * N)`` (:func:`auc_binning_error`);
  about ``1 / (2 * bins)`` for scores spread over [0, 1].
- :class:`ClassSketch` (class-name predictions): a confusion matrix over a fixed class list plus
  one "other" class; ``accuracy`` compares names exactly, ``precision``/``recall``/``f1`` are
  macro averages over the listed classes seen as a label or a prediction.
- :class:`RegressionSketch`: count, sums of absolute, squared and absolute percentage error
  (labels ``y == 0`` skipped by MAPE and counted), Welford's mean and M2 of the labels;
  merged by sums and Chan et al.'s formula. ``r2 = 1 - SSE / M2_y``.

:class:`LabelSketch` holds all three for one model and routes each pair by task. Counts are
integers, exact in any merge order; float sums advance one pair at a time (see
:mod:`drifthouse.detectors._label_kernels`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Literal

import msgspec
import numpy as np

from drifthouse.categories import category_key
from drifthouse.detectors import _label_kernels as _k
from drifthouse.detectors.base import Result, State, check_same_layout, layout_digest
from drifthouse.detectors.labels import class_metrics
from drifthouse.errors import SketchError

__all__ = [
    "BinarySketch",
    "BinaryState",
    "ClassSketch",
    "ClassState",
    "LabelSketch",
    "LabelState",
    "LabelValue",
    "RegressionSketch",
    "RegressionState",
    "auc_binning_error",
    "binary_label",
    "class_name",
    "roc_auc_binned",
]

LabelValue = int | float | str
_NUMBERS = frozenset({int, float})
# Pairs routed to the sketches: binary (positions, labels 0/1), classes (true and predicted
# names), regression (positions, labels), and how many no sketch takes.
_Routed = tuple[
    np.ndarray,
    np.ndarray | list[int],
    list[str],
    list[str],
    np.ndarray,
    np.ndarray | list[float],
    int,
]
Task = Literal["auto", "classification", "regression"]

_POSITIVE = frozenset({"1", "1.0", "true", "yes", "positive", "pos"})
_NEGATIVE = frozenset({"0", "0.0", "false", "no", "negative", "neg"})
# BinaryState.confusion slots.
TP, FP, TN, FN = 0, 1, 2, 3


def binary_label(value: object) -> int:
    """1 for a positive label (``1``, ``true``, ``yes``...), 0 for a negative one, -1 otherwise."""
    if isinstance(value, bool | np.bool_):
        return int(bool(value))
    if isinstance(value, int | float | np.integer | np.floating):
        return 1 if value == 1 else 0 if value == 0 else -1
    if isinstance(value, str):
        key = value.strip().lower()
        return 1 if key in _POSITIVE else 0 if key in _NEGATIVE else -1
    return -1


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


def class_name(value: object) -> str:
    """A label as a class name: its category key (:func:`drifthouse.categories.category_key`),
    so ``3``, ``3.0`` and ``"3"`` are ``'3'`` and bools ``'true'``/``'false'``, as in profiles."""
    key = category_key(value)
    return str(value) if key is None else key


# -- binary ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False)
class BinaryState(State):
    """``confusion`` int64 (4,) tp, fp, tn, fn; ``hist`` int64 (2, bins) negatives, positives."""

    confusion: np.ndarray
    hist: np.ndarray


class BinarySketch:
    """Binary classification from probability scores.

    Examples
    --------
    >>> import numpy as np
    >>> sk = BinarySketch(threshold=0.5, bins=10)
    >>> s = sk.update(sk.empty(), np.array([1, 0, 1, 0]), np.array([0.9, 0.2, 0.4, 0.6]))
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

    def update(self, state: BinaryState, y_true: np.ndarray, score: np.ndarray) -> BinaryState:
        """Add pairs (``y_true`` 0/1, finite ``score``) in place and return ``state``."""
        check_same_layout("BinarySketch", self.layout, state)
        y = np.asarray(y_true).astype(np.int64)
        s = np.asarray(score, dtype=np.float64)
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

    def evaluate(self, state: BinaryState) -> list[Result]:
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


class ClassSketch:
    """Classification from class-name predictions, over a fixed class list.

    Examples
    --------
    >>> sk = ClassSketch(["cat", "dog", "eel"])
    >>> s = sk.update(sk.empty(), ["cat", "dog", "eel", "cat"], ["cat", "cat", "eel", "cat"])
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

    def update(self, state: ClassState, y_true: Sequence[str], y_pred: Sequence[str]) -> ClassState:
        """Add pairs of class names in place and return ``state``."""
        check_same_layout("ClassSketch", self.layout, state)
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

    def evaluate(self, state: ClassState) -> list[Result]:
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


class RegressionSketch:
    """Regression error from (label, prediction) pairs.

    Examples
    --------
    >>> import numpy as np
    >>> sk = RegressionSketch()
    >>> s = sk.update(sk.empty(), np.array([1.0, 2.0, 0.0, 4.0]), np.array([1.5, 2.0, 1.0, 3.0]))
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

    def update(
        self, state: RegressionState, y_true: np.ndarray, y_pred: np.ndarray
    ) -> RegressionState:
        """Add pairs in order, in place (non-finite pairs are skipped); return ``state``."""
        check_same_layout("RegressionSketch", self.layout, state)
        y = np.ascontiguousarray(y_true, dtype=np.float64)
        p = np.ascontiguousarray(y_pred, dtype=np.float64)
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

    def evaluate(self, state: RegressionState) -> list[Result]:
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


# -- one model ---------------------------------------------------------------------------------


class _WireLabelState(msgspec.Struct, array_like=True):
    binary: bytes
    classes: bytes
    regression: bytes
    counters: list[int]


_ENCODE = msgspec.msgpack.Encoder().encode
_DECODE = msgspec.msgpack.Decoder(_WireLabelState).decode

# LabelState.counters slots: joined pairs, pairs no sketch could take.
LABELLED, UNUSABLE = 0, 1


@dataclasses.dataclass(frozen=True, eq=False)
class LabelState:
    """One model's label metrics in one pane (or window)."""

    binary: BinaryState
    classes: ClassState
    regression: RegressionState
    counters: np.ndarray  # int64 [labelled, unusable]

    def to_bytes(self) -> bytes:
        return _ENCODE(
            _WireLabelState(
                self.binary.to_bytes(),
                self.classes.to_bytes(),
                self.regression.to_bytes(),
                [int(c) for c in self.counters],
            )
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> LabelState:
        try:
            wire = _DECODE(data)
        except msgspec.DecodeError as exc:
            raise SketchError(f"not a serialised label state: {exc}") from exc
        return cls(
            BinaryState.from_bytes(wire.binary),
            ClassState.from_bytes(wire.classes),
            RegressionState.from_bytes(wire.regression),
            np.asarray(wire.counters, dtype=np.int64),
        )

    def equals(self, other: LabelState) -> bool:
        return (
            self.binary.equals(other.binary)
            and self.classes.equals(other.classes)
            and self.regression.equals(other.regression)
            and bool(np.array_equal(self.counters, other.counters))
        )


class LabelSketch:
    """The label sketches of one model, and how its pairs are routed to them.

    ``task`` ``regression`` sends every numeric pair to :class:`RegressionSketch`;
    ``classification`` sends pairs with a finite score and a 0/1 label to
    :class:`BinarySketch` and pairs with a predicted class name to :class:`ClassSketch`;
    ``auto`` does the same but sends numeric labels other than 0/1 (with a finite score) to
    regression. Under ``classification`` an integer score with a label that is not 0/1 is a
    class id, compared with the label by name (:class:`ClassSketch`). Pairs none can take are counted as ``unusable``.

    Examples
    --------
    >>> import numpy as np
    >>> sk = LabelSketch(task="classification", threshold=0.5)
    >>> s = sk.update(sk.empty(), [1, 0, "true"], np.array([0.8, 0.3, 0.4]), [None, None, None])
    >>> {r.metric: round(r.value, 3) for r in sk.evaluate(s, predictions=6)}["labels_coverage"]
    0.5
    """

    def __init__(
        self,
        *,
        task: Task = "auto",
        threshold: float = 0.5,
        classes: Sequence[str] = (),
        bins: int = 1_000,
    ) -> None:
        self.task = task
        self.binary = BinarySketch(threshold=threshold, bins=bins)
        self.classes = ClassSketch(classes)
        self.regression = RegressionSketch()

    def empty(self) -> LabelState:
        return LabelState(
            self.binary.empty(),
            self.classes.empty(),
            self.regression.empty(),
            np.zeros(2, dtype=np.int64),
        )

    def update(
        self,
        state: LabelState,
        labels: Sequence[LabelValue],
        scores: np.ndarray,
        pred_classes: Sequence[str | None],
    ) -> LabelState:
        """Add joined pairs (in order) in place and return ``state``.

        ``scores`` float64: the numeric prediction or positive-class probability (NaN if none);
        ``pred_classes``: the predicted class name, or ``None`` for numeric predictions.
        """
        n = len(labels)
        s = np.asarray(scores, dtype=np.float64)
        if s.shape != (n,) or len(pred_classes) != n:
            raise SketchError(
                f"labels, scores and pred_classes must have one length (got {n}, {s.shape}, {len(pred_classes)})"
            )
        if n == 0:
            return state
        routed = self._route_numbers(labels, s, pred_classes)
        if routed is None:
            routed = self._route_each(labels, s, pred_classes)
        b_idx, b_y, c_true, c_pred, r_idx, r_y, unusable = routed
        if len(b_idx):
            self.binary.update(state.binary, np.asarray(b_y, dtype=np.int64), s[b_idx])
        if c_true:
            self.classes.update(state.classes, c_true, c_pred)
        if len(r_idx):
            self.regression.update(state.regression, np.asarray(r_y, dtype=np.float64), s[r_idx])
        state.counters[LABELLED] += n
        state.counters[UNUSABLE] += unusable
        return state

    def _route_each(
        self, labels: Sequence[LabelValue], s: np.ndarray, pred_classes: Sequence[str | None]
    ) -> _Routed:
        """Which sketch takes each pair, pair by pair: any labels and predictions."""
        b_idx: list[int] = []
        b_y: list[int] = []
        c_true: list[str] = []
        c_pred: list[str] = []
        r_idx: list[int] = []
        r_y: list[float] = []
        unusable = 0
        finite = np.isfinite(s).tolist()
        for i in range(len(labels)):
            label, cls = labels[i], pred_classes[i]
            numeric = isinstance(label, int | float) and not isinstance(label, bool)
            if self.task != "regression" and cls is not None:
                c_true.append(class_name(label))
                c_pred.append(cls)
                continue
            if not finite[i]:
                unusable += 1
                continue
            if self.task == "regression":
                if numeric and math.isfinite(float(label)):
                    r_idx.append(i)
                    r_y.append(float(label))
                else:
                    unusable += 1
                continue
            y = binary_label(label)
            if y >= 0 and (self.task == "classification" or 0.0 <= s[i] <= 1.0):
                b_idx.append(i)
                b_y.append(y)
            elif self.task == "auto" and numeric and math.isfinite(float(label)):
                r_idx.append(i)
                r_y.append(float(label))
            elif self.task == "classification" and float(s[i]).is_integer():
                # An integer class id as the prediction: compared with the label by name.
                c_true.append(class_name(label))
                c_pred.append(class_name(float(s[i])))
            else:
                unusable += 1
        return (
            np.asarray(b_idx, dtype=np.intp),
            b_y,
            c_true,
            c_pred,
            np.asarray(r_idx, dtype=np.intp),
            r_y,
            unusable,
        )

    def _route_numbers(
        self, labels: Sequence[LabelValue], s: np.ndarray, pred_classes: Sequence[str | None]
    ) -> _Routed | None:
        """:meth:`_route_each` in whole arrays for the usual batch: numeric labels (no bool)
        and numeric predictions; ``None`` for any other batch, or one holding an integer
        class id compared by name (``task='classification'`` with a score outside the
        binary labels)."""
        if not set(map(type, labels)) <= _NUMBERS or any(c is not None for c in pred_classes):
            return None
        try:
            lab = np.asarray(labels, dtype=np.float64)  # as float(label), pair by pair
        except OverflowError:
            return None
        finite = np.isfinite(s)
        y = np.where(lab == 1.0, 1, np.where(lab == 0.0, 0, -1))
        if self.task == "regression":
            binary = np.zeros_like(finite)
            regression = finite & np.isfinite(lab)
        elif self.task == "auto":
            binary = finite & (y >= 0) & (s >= 0.0) & (s <= 1.0)
            regression = finite & ~binary & np.isfinite(lab)
        else:
            binary = finite & (y >= 0)
            if np.any(finite & ~binary & (s == np.floor(s))):
                return None
            regression = np.zeros_like(finite)
        b_idx = np.flatnonzero(binary)
        r_idx = np.flatnonzero(regression)
        unusable = len(labels) - b_idx.size - r_idx.size
        b_y = y[b_idx]
        return b_idx, b_y, [], [], r_idx, lab[r_idx], unusable

    def merge(self, a: LabelState, b: LabelState) -> LabelState:
        return LabelState(
            self.binary.merge(a.binary, b.binary),
            self.classes.merge(a.classes, b.classes),
            self.regression.merge(a.regression, b.regression),
            a.counters + b.counters,
        )

    def merge_into(self, acc: LabelState, other: LabelState) -> LabelState:
        """``merge(acc, other)`` written into ``acc`` (bit for bit the same values, fewer
        allocations: windows summing many panes use it on a fresh accumulator)."""
        np.add(acc.binary.confusion, other.binary.confusion, out=acc.binary.confusion)
        np.add(acc.binary.hist, other.binary.hist, out=acc.binary.hist)
        np.add(acc.classes.confusion, other.classes.confusion, out=acc.classes.confusion)
        np.add(acc.classes.correct, other.classes.correct, out=acc.classes.correct)
        if other.regression.counts.any():
            r = self.regression.merge(acc.regression, other.regression)
            acc.regression.counts[:] = r.counts
            acc.regression.sums[:] = r.sums
            acc.regression.moments[:] = r.moments
        np.add(acc.counters, other.counters, out=acc.counters)
        return acc

    def evaluate(self, state: LabelState, *, predictions: int) -> list[Result]:
        """Label metrics of a window whose predictions number ``predictions``.

        Binary metrics win over class metrics when a window holds both (one model, one kind
        of output, normally). ``labels`` counts joined pairs; ``labels_coverage`` is
        ``labels / predictions`` (omitted without predictions).
        """
        out: list[Result] = []
        if self.binary.count(state.binary):
            out += self.binary.evaluate(state.binary)
        elif self.classes.count(state.classes):
            out += self.classes.evaluate(state.classes)
        out += self.regression.evaluate(state.regression)
        labelled = int(state.counters[LABELLED])
        out.append(Result("", "labels", float(labelled), None, 0, labelled))
        if predictions > 0:
            out.append(Result("", "labels_coverage", labelled / predictions, None, 0, predictions))
        return out
