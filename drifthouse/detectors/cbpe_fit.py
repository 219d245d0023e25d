"""Fitting performance estimation on a labelled reference: the :class:`Calibration` a profile
keeps (docs/model-performance.md, "Performance without labels").

Per class, isotonic calibration when it lowers the held-out calibration error
(:func:`~drifthouse.detectors.calibration.needs_calibration`), and the sampling-error components
of each metric, computed as NannyML's ``nannyml/sampling_error/binary_classification.py`` and
``multiclass_classification.py`` compute them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from drifthouse.detectors.calibration import (
    Calibration,
    IsotonicMap,
    SamplingComponent,
    fit_isotonic,
    needs_calibration,
)
from drifthouse.errors import ProfileError

__all__ = ["fit_binary", "fit_multiclass"]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


def _map(y: FloatArray, s: FloatArray) -> IsotonicMap | None:
    return fit_isotonic(s, y) if needs_calibration(y, s) else None


def fit_binary(scores: FloatArray, labels: FloatArray, *, threshold: float = 0.5) -> Calibration:
    """The calibration of a binary model from its reference scores and 0/1 labels (rows with a
    missing score or label left out)."""
    s, y = np.asarray(scores, dtype=np.float64), np.asarray(labels, dtype=np.float64)
    ok = ~(np.isnan(s) | np.isnan(y))
    s, y = s[ok], y[ok]
    _check(len(s), "binary")
    pred = s >= threshold
    truth = y == 1
    sampling = {
        "accuracy": [_component((pred == truth).astype(np.float64), 1.0)],
        "precision": [_precision(truth, pred)],
        "recall": [_recall(truth, pred)],
        "f1": [_f1(truth, pred, corrected=True)],
        "roc_auc": [_auc(y, s)],
    }
    return Calibration(maps=[_map(y, s)], threshold=threshold, events=len(s), sampling=sampling)


def fit_multiclass(
    scores: FloatArray, labels: Sequence[str], predicted: Sequence[str], classes: Sequence[str]
) -> Calibration:
    """The calibration of a multiclass model: ``scores`` ``(n, classes)`` in the order of
    ``classes`` (sorted names), the true and the predicted class of each reference event."""
    s = np.asarray(scores, dtype=np.float64)
    ok = ~np.isnan(s).any(axis=1)
    lab = np.asarray(labels, dtype=object)[ok]
    prd = np.asarray(predicted, dtype=object)[ok]
    s = s[ok]
    _check(len(s), "multiclass")
    maps: list[IsotonicMap | None] = []
    comps: dict[str, list[SamplingComponent]] = {
        m: [] for m in ("precision", "recall", "f1", "roc_auc")
    }
    for j, c in enumerate(classes):
        truth, pred = lab == c, prd == c
        y = truth.astype(np.float64)
        maps.append(_map(y, s[:, j]))
        comps["precision"].append(_precision(truth, pred))
        comps["recall"].append(_recall(truth, pred))
        comps["f1"].append(_f1(truth, pred, corrected=False))
        comps["roc_auc"].append(_auc(y, s[:, j]))
    correct = (lab == prd).astype(np.float64)
    sampling = {"accuracy": [_component(correct, 1.0)], **comps}
    return Calibration(classes=list(classes), maps=maps, events=len(s), sampling=sampling)


def _check(n: int, kind: str) -> None:
    if n < 4:
        raise ProfileError(
            f"performance estimation needs at least 4 labelled {kind} reference events "
            f"with scores (got {n})"
        )


def _component(terms: FloatArray, fraction: float) -> SamplingComponent:
    if terms.size == 0:
        return SamplingComponent(float("nan"), 0.0)
    return SamplingComponent(float(np.std(terms)), float(fraction))


def _precision(truth: BoolArray, pred: BoolArray) -> SamplingComponent:
    terms = np.concatenate(
        [np.ones(int((truth & pred).sum())), np.zeros(int((~truth & pred).sum()))]
    )
    return _component(terms, float(pred.sum()) / len(pred))


def _recall(truth: BoolArray, pred: BoolArray) -> SamplingComponent:
    terms = np.concatenate(
        [np.ones(int((truth & pred).sum())), np.zeros(int((truth & ~pred).sum()))]
    )
    return _component(terms, float(truth.sum()) / len(pred))


def _f1(truth: BoolArray, pred: BoolArray, *, corrected: bool) -> SamplingComponent:
    tp, fp, fn = int((truth & pred).sum()), int((~truth & pred).sum()), int((truth & ~pred).sum())
    terms = np.concatenate([np.ones(tp), np.zeros(fn + fp)])
    if terms.size == 0:
        return SamplingComponent(float("nan"), 0.0)
    if corrected:  # binary: NannyML's correcting factor len / (TP + (FN + FP) / 2)
        terms = terms * (terms.size / ((fn + fp) * 0.5 + tp))
    return _component(terms, terms.size / len(pred))


def _auc(y: FloatArray, s: FloatArray) -> SamplingComponent:
    """NannyML's AUC component: the spread of each positive's share of negatives ranked below
    it (the minority class taken as positive), and the positives' share."""
    if np.mean(y) > 0.5:
        y, s = 1.0 - y, 1.0 - s
    order = np.argsort(s)
    ys = y[order]
    ranks = ys * np.arange(len(ys))
    # As NannyML: the distinct positive ranks with rank 0 dropped (a positive ranked first is
    # read as no positive).
    idx = np.unique(ranks)[1:]
    n_pos = float(ys.sum())
    n_neg = len(ys) - n_pos
    if n_pos == 0 or n_neg == 0 or idx.size == 0:
        return SamplingComponent(float("nan"), 0.0)
    ser = (idx - np.arange(idx.size)) / n_neg
    std = float(np.std(ser))
    return SamplingComponent(std, n_pos / len(ys))
