"""Confidence-based performance estimation (CBPE): a classifier's accuracy, precision, recall,
F1 and ROC AUC estimated per window from its probabilities alone (docs/model-performance.md,
"Performance without labels").

The state is integer: per class ``c``, per predicted side (``0``: the event was not predicted
``c``; ``1``: it was) and per bin of the model's *raw* score for ``c`` (``bins`` equal bins over
[0, 1]), the event count and the sum of the calibrated probabilities in fixed point (units of
``2**-32``). Integer sums are associative and commutative, so panes, partitions and replays
merge to the same bits, and the estimates are a pure function of the state.

From the state, with ``p`` the calibrated probability of ``c``:

- expected ``TP = sum p`` and ``FP = sum (1 - p)`` over the events predicted ``c``, expected
  ``FN = sum p`` and ``TN = sum (1 - p)`` over the others: these are exact (up to the
  ``2**-33`` rounding of each ``p``), so accuracy, precision, recall and F1 equal NannyML's
  ``estimate_*`` on the same calibrated probabilities;
- ROC AUC is the area under the expected ROC curve with events ranked by raw score (NannyML's
  ``estimate_roc_auc``); pairs of events in different bins are ordered exactly, pairs in one bin
  count half, so the estimate is off by at most ``sum_i P_i N_i / (2 P N)``
  (``estimated_roc_auc_binning_error``), ``P_i`` and ``N_i`` the bin's expected positives and
  negatives.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math

import numpy as np
import numpy.typing as npt

from drifthouse.detectors.base import NO_CONTEXT, Context, Result, Sketch, State
from drifthouse.detectors.calibration import Calibration, SamplingComponent, apply_map
from drifthouse.detectors.columns import Columns
from drifthouse.detectors.reference import Profile
from drifthouse.errors import SketchError

__all__ = [
    "BINS",
    "METRICS",
    "SCALE",
    "SUM_TOLERANCE",
    "CbpeBatch",
    "CbpeSketch",
    "CbpeState",
    "Estimates",
    "batch_of",
    "sketch_for",
]

BINS = 1000
SCALE = 2**32  # fixed point of a calibrated probability
#: The estimated metrics, in the order they are written.
METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc")
#: Width of the band in sampling errors (NannyML's ``SAMPLING_ERROR_RANGE``).
BAND = 3.0
#: NannyML scales the multiclass AUC sampling error by 1.2 ("std of class variances
#: underestimated sampling error by 20%").
MULTICLASS_AUC_FACTOR = 1.2
#: How far, per class, a multiclass event's probabilities may sum from 1 and still be used:
#: probabilities rounded to two decimals miss by at most 0.005 each; ``3 * p`` or
#: percentages miss by far more.
SUM_TOLERANCE = 0.005


def _one_vote() -> npt.NDArray[np.int64]:
    return np.zeros(1, dtype=np.int64)


@dataclasses.dataclass(frozen=True, eq=False)
class CbpeState(State):
    """``counts`` and ``mass`` of shape ``(classes, 2, bins)`` (int64); ``mass`` in units of
    ``2**-32``; ``unusable`` (1,) the events left out for want of a usable score (0 in a
    state stored before it was kept)."""

    counts: npt.NDArray[np.int64]
    mass: npt.NDArray[np.int64]
    unusable: npt.NDArray[np.int64] = dataclasses.field(default_factory=_one_vote)


@dataclasses.dataclass(frozen=True, slots=True)
class CbpeBatch:
    """A micro-batch: ``scores`` the raw scores, ``(n,)`` for a binary model (the positive
    class's probability) or ``(n, classes)`` in the calibration's class order; ``predicted``
    the index of the class each event was predicted (multiclass only; ``-1``: none of the
    classes)."""

    scores: npt.NDArray[np.float64]
    predicted: npt.NDArray[np.intp] | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Estimates:
    """Per-class expected confusion counts and the AUC terms of a window."""

    n: int
    tp: npt.NDArray[np.float64]
    fp: npt.NDArray[np.float64]
    fn: npt.NDArray[np.float64]
    tn: npt.NDArray[np.float64]
    auc: npt.NDArray[np.float64]  # per class, NaN with no expected positives or negatives
    auc_bound: npt.NDArray[np.float64]


class CbpeSketch(Sketch[CbpeState, CbpeBatch]):
    """Estimated performance of one model from its reference :class:`Calibration`.

    Examples
    --------
    >>> import numpy as np
    >>> from drifthouse.detectors.calibration import Calibration
    >>> sk = CbpeSketch(Calibration(maps=[None]))
    >>> st = sk.update(sk.empty(), CbpeBatch(np.array([0.9, 0.8, 0.2, 0.1])))
    >>> round(sk.estimates(st).tp[0], 6), round(sk.estimates(st).tn[0], 6)
    (1.7, 1.7)
    """

    def __init__(self, calibration: Calibration, bins: int = BINS) -> None:
        calibration.validate()
        self.calibration = calibration
        self.bins = bins
        self.n_classes = max(1, len(calibration.classes))
        digest = hashlib.blake2b(
            f"{calibration.classes}|{calibration.threshold}|{bins}".encode(), digest_size=8
        )
        self.layout = digest.hexdigest()

    def empty(self) -> CbpeState:
        shape = (self.n_classes, 2, self.bins)
        return CbpeState(
            layout=self.layout,
            counts=np.zeros(shape, dtype=np.int64),
            mass=np.zeros(shape, dtype=np.int64),
        )

    def calibrated(self, batch: CbpeBatch) -> npt.NDArray[np.float64]:
        """The calibrated probabilities, ``(n, classes)`` (NaN rows: no usable score)."""
        cal = self.calibration
        scores = np.asarray(batch.scores, dtype=np.float64)
        if not cal.multiclass:
            if scores.ndim != 1:
                raise SketchError(
                    f"a binary model's scores are one column (got shape {scores.shape})"
                )
            return apply_map(cal.maps[0], scores)[:, None]
        if scores.ndim != 2 or scores.shape[1] != self.n_classes:
            raise SketchError(
                f"a multiclass model's scores are (events, {self.n_classes}) for classes "
                f"{cal.classes} (got shape {scores.shape})"
            )
        p = np.column_stack([apply_map(m, scores[:, j]) for j, m in enumerate(cal.maps)])
        total = p.sum(axis=1, keepdims=True)
        # NannyML: rows whose calibrated probabilities sum to 0 become uniform.
        with np.errstate(invalid="ignore", divide="ignore"):
            out = np.where(total > 0, p / np.where(total > 0, total, 1.0), 1.0 / self.n_classes)
        return np.where(np.isnan(total), np.nan, out)

    def usable(self, scores: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
        """Which events have a score CBPE can use: a binary score in [0, 1]; class
        probabilities each in [0, 1] whose sum is within ``SUM_TOLERANCE`` per class of 1.
        Anything else (NaN, a percentage, a negative or scaled probability) is no probability
        and is left out, never clipped into one."""
        raw = scores[:, None] if scores.ndim == 1 else scores
        with np.errstate(invalid="ignore"):
            ok: npt.NDArray[np.bool_] = np.all((raw >= 0.0) & (raw <= 1.0), axis=1)  # NaN: False
            if self.calibration.multiclass:
                slack = SUM_TOLERANCE * self.n_classes + 1e-9
                ok &= np.abs(raw.sum(axis=1) - 1.0) <= slack
        return ok

    def update(self, state: CbpeState, batch: CbpeBatch) -> CbpeState:
        """Add a batch, in place (integer sums: the order of events never matters); events
        without a usable score (:meth:`usable`) are counted in ``state.unusable``."""
        scores = np.asarray(batch.scores, dtype=np.float64)
        if scores.shape[0] == 0:
            return state
        p = self.calibrated(batch)
        raw = scores[:, None] if scores.ndim == 1 else scores
        ok = self.usable(scores) & ~np.isnan(p).any(axis=1)
        state.unusable[0] += int(ok.size - np.count_nonzero(ok))
        if self.calibration.multiclass:
            if batch.predicted is None or batch.predicted.shape[0] != scores.shape[0]:
                raise SketchError("a multiclass batch needs the predicted class of every event")
            side = batch.predicted[:, None] == np.arange(self.n_classes)[None, :]
        else:
            side = raw >= self.calibration.threshold
        raw, p, side = raw[ok], p[ok], side[ok]
        # raw and p are in [0, 1] here; the clips only keep a raw score of 1.0 in the last bin
        # and a calibrated probability's rounding inside [0, 1].
        b = np.clip(np.floor(raw * self.bins), 0, self.bins - 1).astype(np.intp)
        q = np.rint(np.clip(p, 0.0, 1.0) * SCALE).astype(np.int64)
        cls = np.broadcast_to(np.arange(self.n_classes)[None, :], b.shape)
        s = side.astype(np.intp)
        np.add.at(state.counts, (cls, s, b), 1)
        np.add.at(state.mass, (cls, s, b), q)
        return state

    def merge(self, a: CbpeState, b: CbpeState) -> CbpeState:
        if a.layout != b.layout:
            raise SketchError("cannot merge CBPE states of different calibrations")
        return CbpeState(
            layout=a.layout,
            counts=a.counts + b.counts,
            mass=a.mass + b.mass,
            unusable=a.unusable + b.unusable,
        )

    def estimates(self, state: CbpeState) -> Estimates:
        """The expected confusion counts and AUC of each class (exact integer sums, then
        floats)."""
        counts = state.counts.astype(np.float64)
        mass = state.mass.astype(np.float64) / SCALE
        n = int(state.counts[0].sum())
        pos_pred = counts[:, 1].sum(axis=1)
        neg_pred = counts[:, 0].sum(axis=1)
        tp = mass[:, 1].sum(axis=1)
        fn = mass[:, 0].sum(axis=1)
        pos = mass.sum(axis=1)  # (classes, bins): expected positives per bin
        neg = counts.sum(axis=1) - pos
        auc = np.full(self.n_classes, np.nan)
        bound = np.full(self.n_classes, np.nan)
        for c in range(self.n_classes):
            total_p, total_n = float(pos[c].sum()), float(neg[c].sum())
            if total_p <= 0 or total_n <= 0:
                continue
            above = np.cumsum(pos[c][::-1])[::-1] - pos[c]  # expected positives in higher bins
            auc[c] = float(np.sum(neg[c] * (above + pos[c] / 2.0))) / (total_p * total_n)
            bound[c] = float(np.sum(pos[c] * neg[c])) / (2.0 * total_p * total_n)
        return Estimates(n, tp, pos_pred - tp, fn, neg_pred - fn, auc, bound)

    def evaluate(self, state: CbpeState, context: Context = NO_CONTEXT) -> list[Result]:
        """``estimated_<metric>`` with ``_lower`` and ``_upper`` (the estimate plus or minus
        three sampling errors, within [0, 1]) and ``estimated_roc_auc_binning_error``, none
        for a window without scored events; and ``cbpe_unusable``, the events left out for
        want of a usable score, when there are any."""
        est = self.estimates(state)
        ref = self.calibration.events
        left_out = int(state.unusable[0])
        out: list[Result] = []
        if left_out:
            out.append(Result("", "cbpe_unusable", float(left_out), None, ref, est.n + left_out))
        if est.n == 0:
            return out
        values = self.values(est)
        for metric in METRICS:
            value = values[metric]
            if math.isnan(value):
                continue
            out.append(Result("", f"estimated_{metric}", value, None, ref, est.n))
            err = self.sampling_error(metric, est.n)
            if not math.isnan(err):
                lo, hi = max(0.0, value - BAND * err), min(1.0, value + BAND * err)
                out.append(Result("", f"estimated_{metric}_lower", lo, None, ref, est.n))
                out.append(Result("", f"estimated_{metric}_upper", hi, None, ref, est.n))
        if not math.isnan(values["roc_auc"]):
            bound = float(np.nanmean(est.auc_bound))
            out.append(Result("", "estimated_roc_auc_binning_error", bound, None, ref, est.n))
        return out

    def values(self, est: Estimates) -> dict[str, float]:
        """The estimated metrics (macro averages over classes for a multiclass model)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            prec = _ratio(est.tp, est.tp + est.fp)
            rec = _ratio(est.tp, est.tp + est.fn)
            f1 = _ratio(est.tp, est.tp + 0.5 * (est.fp + est.fn))
        if self.calibration.multiclass:
            acc = float(est.tp.sum()) / est.n
        else:
            acc = float(est.tp[0] + est.tn[0]) / est.n
        auc = float(np.mean(est.auc)) if not np.isnan(est.auc).any() else math.nan
        return {
            "accuracy": acc,
            "precision": float(np.mean(prec)),
            "recall": float(np.mean(rec)),
            "f1": float(np.mean(f1)),
            "roc_auc": auc,
        }

    def sampling_error(self, metric: str, n: int) -> float:
        """NannyML's sampling error of ``metric`` on a window of ``n`` events (NaN when the
        reference has no component for it)."""
        parts = self.calibration.sampling.get(metric)
        return sampling_error(parts, n, multiclass=self.calibration.multiclass, metric=metric)


def sketch_for(profile: Profile | None) -> CbpeSketch | None:
    """The estimation of a model whose profile has a calibration: a binary one needs a
    numeric (score) prediction, a multiclass one its classes."""
    if profile is None or profile.calibration is None:
        return None
    cal = profile.calibration
    if not cal.multiclass and (profile.prediction is None or profile.prediction.kind != "numeric"):
        return None
    return CbpeSketch(cal)


def batch_of(sketch: CbpeSketch, cols: Columns) -> CbpeBatch:
    """A micro-batch's scores for ``sketch``: the score column (binary) or the probabilities
    and predicted classes laid out for the calibration's classes (multiclass)."""
    if not sketch.calibration.multiclass:
        return CbpeBatch(cols.score)
    if cols.proba is None or cols.proba_pred is None:
        raise SketchError("a multiclass model's columns need its probabilities (layout classes)")
    return CbpeBatch(cols.proba, cols.proba_pred)


def sampling_error(
    parts: list[SamplingComponent] | None, n: int, *, multiclass: bool, metric: str
) -> float:
    """``std / sqrt(n * fraction)`` for one component; for one component per class,
    ``sqrt(sum_c std_c**2 / (n * fraction_c)) / classes`` (times 1.2 for ROC AUC), as NannyML's
    ``_standard_deviation_of_variances``."""
    if not parts or n <= 0:
        return math.nan
    if len(parts) == 1:
        c = parts[0]
        return c.std / math.sqrt(n * c.fraction) if c.fraction > 0 else math.nan
    if any(c.fraction <= 0 for c in parts):
        return math.nan
    total = sum(c.std**2 / (n * c.fraction) for c in parts)
    err = math.sqrt(total) / len(parts)
    return err * MULTICLASS_AUC_FACTOR if multiclass and metric == "roc_auc" else err


def _ratio(num: npt.NDArray[np.float64], den: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    # NannyML's estimates are 0 when the denominator is 0.
    return np.where(den != 0, num / np.where(den != 0, den, 1.0), 0.0)
