"""Mergeable label sketches: model performance from joined (prediction, label) pairs.

Three sketches, one per kind of model output (in :mod:`drifthouse.detectors.label_kinds`), each
following the sketch protocol (:class:`~drifthouse.detectors.base.Sketch`) with plain-array
states:

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

from drifthouse.categories import category_key, numeral_value
from drifthouse.detectors.base import NO_CONTEXT, Context, Result, Sketch
from drifthouse.detectors.label_kinds import (
    BinarySketch,
    BinaryState,
    ClassSketch,
    ClassState,
    Pairs,
    RegressionSketch,
    RegressionState,
    auc_binning_error,
    roc_auc_binned,
)
from drifthouse.errors import SketchError

__all__ = [
    "BinarySketch",
    "BinaryState",
    "ClassSketch",
    "ClassState",
    "LabelBatch",
    "LabelSketch",
    "LabelState",
    "LabelValue",
    "Pairs",
    "RegressionSketch",
    "RegressionState",
    "auc_binning_error",
    "binary_label",
    "class_name",
    "label_number",
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


def binary_label(value: object) -> int:
    """1 for a positive label (``1``, ``true``, ``yes``...), 0 for a negative one, -1 otherwise.

    Text is read by its category key, so ``"1"``, ``"1.0"`` and ``"1e0"`` are ``1``."""
    if isinstance(value, bool | np.bool_):
        return int(bool(value))
    if isinstance(value, int | float | np.integer | np.floating):
        return 1 if value == 1 else 0 if value == 0 else -1
    if isinstance(value, str):
        key = (category_key(value) or "").strip().lower()
        return 1 if key in _POSITIVE else 0 if key in _NEGATIVE else -1
    return -1


def label_number(value: object) -> float | None:
    """A label as the finite number regression scores it with: a number (not a bool), or a
    string that is a decimal numeral (``"2973.0"``, as :func:`category_key` reads ``"1"`` and
    ``1`` alike); ``None`` for anything else (``"?"``, ``""``, ``"01"``, NaN, an infinity)."""
    if isinstance(value, bool | np.bool_):
        return None
    if isinstance(value, int | float | np.integer | np.floating):
        x = float(value)
        return x if math.isfinite(x) else None
    if isinstance(value, str):
        return numeral_value(value)
    return None


def class_name(value: object) -> str:
    """A label as a class name: its category key (:func:`drifthouse.categories.category_key`),
    so ``3``, ``3.0`` and ``"3"`` are ``'3'`` and bools ``'true'``/``'false'``, as in profiles."""
    key = category_key(value)
    return str(value) if key is None else key


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


@dataclasses.dataclass(frozen=True, slots=True)
class LabelBatch:
    """Joined pairs, in order: ``labels``; ``scores`` float64, the numeric prediction or
    positive-class probability (NaN if none); ``pred_classes``, the predicted class name, or
    ``None`` for numeric predictions."""

    labels: Sequence[LabelValue]
    scores: np.ndarray
    pred_classes: Sequence[str | None]


class LabelSketch(Sketch[LabelState, LabelBatch]):
    """The label sketches of one model, and how its pairs are routed to them.

    ``task`` ``regression`` sends every pair of a finite prediction and a numeric label (a
    number, or a numeral string: :func:`label_number`) to :class:`RegressionSketch`;
    ``classification`` sends pairs with a score in [0, 1] and a 0/1 label to
    :class:`BinarySketch` and pairs with a predicted class name to :class:`ClassSketch`;
    ``auto`` does the same but sends other numeric labels (with a finite score) to
    regression. Under ``classification`` any other integer score is a class id, compared with
    the label by name (:class:`ClassSketch`). Pairs none can take are counted as
    ``unusable``, and so are the class pairs of a window whose binary metrics win
    (:meth:`evaluate`): ``labels`` is always the pairs the metrics use plus
    ``labels_unusable``.

    ``binary_classes`` (negative, positive) are the two classes of a ``{class: probability}``
    prediction whose score is the positive class's probability: a label naming one of them
    (as a class name: ``"good"``, or ``2`` for class ``"2"``) is 0 or 1; another label is a
    0/1 spelling or unusable (docs/model-performance.md, "Label metrics").

    Examples
    --------
    >>> import numpy as np
    >>> sk = LabelSketch(task="classification", threshold=0.5)
    >>> batch = LabelBatch([1, 0, "true"], np.array([0.8, 0.3, 0.4]), [None, None, None])
    >>> s = sk.update(sk.empty(), batch)
    >>> {r.metric: round(r.value, 3) for r in sk.evaluate(s, Context(predictions=6))}["labels_coverage"]
    0.5
    """

    def __init__(
        self,
        *,
        task: Task = "auto",
        threshold: float = 0.5,
        classes: Sequence[str] = (),
        bins: int = 1_000,
        binary_classes: Sequence[str] = (),
    ) -> None:
        self.task = task
        if binary_classes and len(binary_classes) != 2:
            raise SketchError(f"binary_classes must be two classes (got {list(binary_classes)})")
        self.binary_codes = {str(c): y for y, c in enumerate(binary_classes)}
        # Classes spelled as 0/1 labels ("no"/"yes", "0"/"1") map labels as binary_label does:
        # the arrays' fast path stays.
        self._plain = all(binary_label(k) == y for k, y in self.binary_codes.items())
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

    def update(self, state: LabelState, batch: LabelBatch) -> LabelState:
        """Add joined pairs (in order) in place and return ``state``."""
        labels, pred_classes = batch.labels, batch.pred_classes
        n = len(labels)
        s = np.asarray(batch.scores, dtype=np.float64)
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
            self.binary.update(state.binary, Pairs(np.asarray(b_y, dtype=np.int64), s[b_idx]))
        if c_true:
            self.classes.update(state.classes, Pairs(c_true, c_pred))
        if len(r_idx):
            self.regression.update(
                state.regression, Pairs(np.asarray(r_y, dtype=np.float64), s[r_idx])
            )
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
            if self.task != "regression" and cls is not None:
                c_true.append(class_name(label))
                c_pred.append(cls)
                continue
            if not finite[i]:
                unusable += 1
                continue
            number = label_number(label)
            if self.task == "regression":
                if number is not None:
                    r_idx.append(i)
                    r_y.append(number)
                else:
                    unusable += 1
                continue
            y = self.binary_codes.get(class_name(label), -2) if self.binary_codes else -2
            if y == -2:
                y = binary_label(label)
                if y < 0 and self.binary_codes:
                    unusable += 1  # a label of neither class of a two-class model
                    continue
            # A score outside [0, 1] is no probability (87.0: a percentage): no decision at
            # the threshold can be read from it (docs/model-performance.md).
            if y >= 0 and 0.0 <= s[i] <= 1.0:
                b_idx.append(i)
                b_y.append(y)
            elif self.task == "auto" and number is not None:
                r_idx.append(i)
                r_y.append(number)
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
        if (
            not self._plain
            or not set(map(type, labels)) <= _NUMBERS
            or any(c is not None for c in pred_classes)
        ):
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
            binary = finite & (y >= 0) & (s >= 0.0) & (s <= 1.0)
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

    def evaluate(self, state: LabelState, context: Context = NO_CONTEXT) -> list[Result]:
        """Label metrics of a window whose predictions number ``context.predictions``.

        Binary metrics win over class metrics when a window holds both (one model, one kind
        of output, normally). ``labels`` counts joined pairs; ``labels_unusable`` (written when
        not 0) those no metric uses: a label or a score the task cannot score (``"?"``, a
        class outside 0/1, a binary score outside [0, 1]), or the class pairs of a window
        with binary metrics; ``labels_coverage`` is ``labels / predictions`` (omitted without
        predictions).
        """
        out: list[Result] = []
        unusable = int(state.counters[UNUSABLE])
        if self.binary.count(state.binary):
            out += self.binary.evaluate(state.binary)
            unusable += self.classes.count(state.classes)  # no metric of this window uses them
        elif self.classes.count(state.classes):
            out += self.classes.evaluate(state.classes)
        out += self.regression.evaluate(state.regression)
        labelled = int(state.counters[LABELLED])
        out.append(Result("", "labels", float(labelled), None, 0, labelled))
        if unusable:
            out.append(Result("", "labels_unusable", float(unusable), None, 0, labelled))
        predictions = context.predictions
        if predictions > 0:
            out.append(Result("", "labels_coverage", labelled / predictions, None, 0, predictions))
        return out
