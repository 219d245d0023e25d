"""Score calibration for performance estimation (docs/model-performance.md, "Performance
without labels").

A reference profile built with labels and probabilities keeps a :class:`Calibration`: per class,
the isotonic map from the model's score to a calibrated probability (or none, when the scores
are calibrated already), the classes, and the sampling-error components of each estimated
metric. :mod:`drifthouse.detectors.cbpe` applies it to every window.

The choices follow NannyML's CBPE (``nannyml/calibration.py``,
``nannyml/performance_estimation/confidence_based/cbpe.py``): isotonic regression with
out-of-bounds scores clipped, fitted only when cross-validation says it lowers the expected
calibration error; multiclass scores calibrated one class against the rest, then normalised to
sum to one.
"""

from __future__ import annotations

from itertools import pairwise

import msgspec
import numpy as np
import numpy.typing as npt

from drifthouse.errors import ProfileError

__all__ = [
    "Calibration",
    "IsotonicMap",
    "SamplingComponent",
    "apply_map",
    "expected_calibration_error",
    "fit_isotonic",
    "needs_calibration",
]

FloatArray = npt.NDArray[np.float64]


class IsotonicMap(msgspec.Struct, frozen=True, kw_only=True):
    """A non-decreasing piecewise-linear map: ``x`` strictly increasing, ``y`` non-decreasing;
    scores below ``x[0]`` or above ``x[-1]`` are clipped (scikit-learn's
    ``IsotonicRegression(out_of_bounds="clip")``)."""

    x: list[float]
    y: list[float]

    def validate(self, where: str) -> None:
        x, y = np.asarray(self.x, dtype=np.float64), np.asarray(self.y, dtype=np.float64)
        if len(self.x) == 0 or len(self.x) != len(self.y):
            raise ProfileError(
                f"{where}: x and y must be non-empty and of equal length "
                f"(got {len(self.x)} and {len(self.y)})"
            )
        if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
            raise ProfileError(f"{where}: x and y must be finite")
        if np.any(np.diff(x) <= 0) or np.any(np.diff(y) < 0):
            raise ProfileError(
                f"{where}: x must be strictly increasing and y non-decreasing (an isotonic map)"
            )


class SamplingComponent(msgspec.Struct, frozen=True, array_like=True):
    """The reference's spread of one metric's per-event terms (``std``) and the share of events
    that carry a term (``fraction``): a window of ``n`` events has a sampling error of
    ``std / sqrt(n * fraction)`` (NannyML's ``_universal_sampling_error``)."""

    std: float
    fraction: float


class Calibration(msgspec.Struct, frozen=True, kw_only=True):
    """What performance estimation keeps of the reference (a profile's ``calibration``).

    ``classes`` is empty for a binary model (its score is the positive class's probability);
    for a multiclass model it lists the classes, each with its map in ``maps`` (``None``: the
    scores of that class are used as they are). ``sampling`` holds, per metric
    (``accuracy``, ``precision``, ``recall``, ``f1``, ``roc_auc``), one component for a binary
    model and for multiclass ``accuracy``, else one per class.
    """

    classes: list[str] = msgspec.field(default_factory=list)
    maps: list[IsotonicMap | None] = msgspec.field(default_factory=list)
    threshold: float = 0.5
    events: int = 0
    sampling: dict[str, list[SamplingComponent]] = msgspec.field(default_factory=dict)

    @property
    def multiclass(self) -> bool:
        return bool(self.classes)

    def validate(self, where: str = "calibration") -> None:
        want = max(1, len(self.classes))
        if len(self.maps) != want:
            raise ProfileError(f"{where}: needs {want} maps, one per class (got {len(self.maps)})")
        if len(self.classes) == 1 or len(set(self.classes)) != len(self.classes):
            raise ProfileError(
                f"{where}: classes must be empty (binary) or at least two distinct names "
                f"(got {self.classes})"
            )
        for i, m in enumerate(self.maps):
            if m is not None:
                m.validate(f"{where}.maps[{i}]")


def apply_map(m: IsotonicMap | None, scores: FloatArray) -> FloatArray:
    """Calibrated probabilities of ``scores`` (NaN stays NaN); ``None`` is the identity."""
    if m is None:
        return np.asarray(scores, dtype=np.float64)
    out = np.interp(scores, np.asarray(m.x), np.asarray(m.y))
    return np.where(np.isnan(scores), np.nan, out)


def fit_isotonic(scores: FloatArray, labels: FloatArray) -> IsotonicMap:
    """Least-squares non-decreasing fit of ``labels`` (0/1) on ``scores``: pool adjacent
    violators over the distinct scores (weighted by their counts), kept as the points where the
    fitted level starts or ends, as scikit-learn's ``IsotonicRegression`` keeps them."""
    order = np.lexsort((labels, scores))
    x, y = scores[order], labels[order].astype(np.float64)
    ux, start, weight = np.unique(x, return_index=True, return_counts=True)
    sums = np.add.reduceat(y, start)
    levels, weights, sizes = _pool(sums / weight, weight.astype(np.float64))
    fitted = np.repeat(levels, sizes)
    keep = np.ones(len(ux), dtype=bool)
    if len(ux) > 2:
        keep[1:-1] = (fitted[1:-1] != fitted[:-2]) | (fitted[1:-1] != fitted[2:])
    del weights
    return IsotonicMap(x=ux[keep].tolist(), y=fitted[keep].tolist())


def _pool(
    values: FloatArray, weights: FloatArray
) -> tuple[FloatArray, FloatArray, npt.NDArray[np.int64]]:
    """Pool adjacent violators: the blocks' levels, weights and sizes."""
    lv: list[float] = []
    wt: list[float] = []
    sz: list[int] = []
    for v, w in zip(values.tolist(), weights.tolist(), strict=True):
        lv.append(v)
        wt.append(w)
        sz.append(1)
        while len(lv) > 1 and lv[-2] > lv[-1]:
            w2 = wt[-2] + wt[-1]
            lv[-2] = (lv[-2] * wt[-2] + lv[-1] * wt[-1]) / w2
            wt[-2] = w2
            sz[-2] += sz[-1]
            del lv[-1], wt[-1], sz[-1]
    return np.asarray(lv), np.asarray(wt), np.asarray(sz, dtype=np.int64)


def expected_calibration_error(labels: FloatArray, scores: FloatArray, bins: int = 10) -> float:
    """NannyML's ECE: sort by score, cut into ``bins`` runs of equal count (the last takes the
    rest), and sum each run's share times ``|mean score - mean label|``."""
    n = len(scores)
    if n <= 2 * bins:
        bins = n // 2
    if bins < 2:
        raise ProfileError(f"calibration needs at least 4 labelled scores (got {n})")
    order = np.argsort(scores, kind="stable")
    s, y = scores[order], labels[order]
    width = n // bins
    edges = list(range(0, n + 1, width))
    edges[-1] = n
    total = 0.0
    for lo, hi in pairwise(edges):
        total += (hi - lo) / n * abs(float(np.mean(s[lo:hi])) - float(np.mean(y[lo:hi])))
    return total


def needs_calibration(
    labels: FloatArray,
    scores: FloatArray,
    *,
    splits: int = 10,
    test_size: float = 0.1,
    seed: int = 42,
) -> bool:
    """Whether isotonic calibration lowers the expected calibration error on held-out data.

    As NannyML's ``needs_calibration``: ``False`` for a single class or a reference AUC above
    0.999; else ``splits`` stratified draws of ``test_size`` of the events, the map fitted on the
    rest, and the ECE of all held-out scores before and after compared. The draws use NumPy's
    generator (``seed``), not scikit-learn's ``StratifiedShuffleSplit``, so a borderline case
    may decide the other way (docs/model-performance.md).
    """
    y = labels.astype(np.float64)
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    if pos.size == 0 or neg.size == 0:
        return False
    if _auc(y, scores) > 0.999:
        return False
    rng = np.random.default_rng(seed)
    before: list[FloatArray] = []
    after: list[FloatArray] = []
    truth: list[FloatArray] = []
    for _ in range(splits):
        test = np.concatenate(
            [rng.permutation(idx)[: max(1, round(test_size * idx.size))] for idx in (pos, neg)]
        )
        train = np.ones(len(y), dtype=bool)
        train[test] = False
        m = fit_isotonic(scores[train], y[train])
        before.append(scores[test])
        after.append(apply_map(m, scores[test]))
        truth.append(y[test])
    t = np.concatenate(truth)
    return expected_calibration_error(t, np.concatenate(before)) > expected_calibration_error(
        t, np.concatenate(after)
    )


def _auc(y: FloatArray, s: FloatArray) -> float:
    """Mann-Whitney AUC with average ranks for ties."""
    order = np.argsort(s, kind="stable")
    ranks = np.empty(len(s), dtype=np.float64)
    sorted_s = s[order]
    _, first, counts = np.unique(sorted_s, return_index=True, return_counts=True)
    avg = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(avg, counts)
    n_pos = float(y.sum())
    n_neg = len(y) - n_pos
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
