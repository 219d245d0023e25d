"""Feature-importance shift: how much each feature says about the prediction, and how that moves.

Per feature the sketch keeps a joint histogram of (feature bin, prediction bin):

- feature bins: a numeric feature's PSI bins from the reference profile (outermost open) plus
  one bin for missing or non-finite values; a categorical feature's reference categories, one
  "other" bin (rare and new categories) and one "missing" bin;
- prediction bins: the reference prediction's PSI bins (its deciles by default).

Counts are integers, so merging is exact in any order. A feature's **importance** is the mutual
information between its bins and the prediction's bins (in nats),
``I(X; Y) = sum p(x, y) ln(p(x, y) / (p(x) p(y)))`` (Cover & Thomas, *Elements of Information
Theory*, eq. 2.28), a model-agnostic importance that needs no labels. The plug-in estimate is
biased upwards by about ``(|X| - 1)(|Y| - 1) / (2 n)`` (Miller 1955), which on a window of a
few hundred events is as large as the real importance of most features, so the importance used
is the Miller-Madow estimate: the plug-in value minus that term (with ``|X|``, ``|Y|`` the bins
in use), floored at 0 (:func:`corrected_mutual_information`).
``importance_shift`` is the total-variation distance ``0.5 * sum |r_i - c_i|`` between the
normalised importance vectors of the reference and the window: 0 when every feature keeps its
share, 1 when the prediction has moved entirely onto features that told nothing before.

The reference vector comes from the reference data (:func:`reference_importance`), computed with
this same sketch, so both sides are binned alike.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from drifthouse.detectors.base import (
    NO_CONTEXT,
    Context,
    Result,
    Sketch,
    State,
    check_same_layout,
    layout_digest,
)
from drifthouse.detectors.reference import FeatureProfile, Profile, category_key, prediction_score
from drifthouse.errors import SketchError

__all__ = [
    "ImportanceBatch",
    "ImportanceSketch",
    "ImportanceState",
    "corrected_mutual_information",
    "importance_shift",
    "mutual_information",
    "reference_importance",
]


def mutual_information(*, joint: np.ndarray) -> float:
    """Mutual information (nats) of a 2-D table of counts; 0.0 for an empty table."""
    c = np.asarray(joint, dtype=np.float64)
    n = float(c.sum())
    if n <= 0:
        return 0.0
    p = c / n
    px = p.sum(axis=1, keepdims=True)
    py = p.sum(axis=0, keepdims=True)
    nz = p > 0
    mi = float(np.sum(p[nz] * np.log(p[nz] / (px @ py)[nz])))
    return max(mi, 0.0)  # rounding can leave -1e-17 on independent tables


def corrected_mutual_information(*, joint: np.ndarray) -> float:
    """Miller-Madow estimate: :func:`mutual_information` minus its first-order bias
    ``(kx - 1)(ky - 1) / (2 n)`` (``kx``, ``ky`` the non-empty rows and columns), at least 0.

    >>> rng = np.random.default_rng(1)
    >>> x, y = rng.integers(0, 10, 500), rng.integers(0, 10, 500)
    >>> joint = np.zeros((10, 10)); np.add.at(joint, (x, y), 1)
    >>> mutual_information(joint=joint) > 0.05, corrected_mutual_information(joint=joint) < 0.02
    (True, True)
    """
    c = np.asarray(joint, dtype=np.float64)
    n = float(c.sum())
    if n <= 0:
        return 0.0
    kx = int(np.count_nonzero(c.sum(axis=1)))
    ky = int(np.count_nonzero(c.sum(axis=0)))
    return max(mutual_information(joint=c) - (kx - 1) * (ky - 1) / (2.0 * n), 0.0)


def importance_shift(*, reference: np.ndarray, current: np.ndarray) -> float | None:
    """Total-variation distance between two importance vectors after normalising each to sum 1.

    ``None`` when either vector is all zeros (no feature tells anything about the prediction).
    """
    r = np.asarray(reference, dtype=np.float64)
    c = np.asarray(current, dtype=np.float64)
    if r.shape != c.shape:
        raise SketchError(f"importance vectors differ in shape ({r.shape} vs {c.shape})")
    rs, cs = float(r.sum()), float(c.sum())
    if rs <= 0 or cs <= 0:
        return None
    return float(min(1.0, 0.5 * np.sum(np.abs(r / rs - c / cs))))


@dataclasses.dataclass(frozen=True, slots=True)
class ImportanceBatch:
    """A micro-batch (the arrays of :class:`~drifthouse.detectors.columns.Columns`):
    ``numeric`` float64 (n, F_num) with ``status`` uint8 (0 present); ``codes`` int32
    (n, F_cat): ``-1`` missing, ``0..K-1`` a reference category, ``K`` or ``K + 1`` other;
    ``score`` float64 (n,)."""

    numeric: np.ndarray
    status: np.ndarray
    codes: np.ndarray
    score: np.ndarray


@dataclasses.dataclass(frozen=True, eq=False)
class ImportanceState(State):
    """``joint`` int64 (F, B, P): per feature, feature bin x prediction bin counts;
    ``skipped`` int64 (1,): rows without a finite prediction."""

    joint: np.ndarray
    skipped: np.ndarray


class ImportanceSketch(Sketch[ImportanceState, ImportanceBatch]):
    """Joint (feature, prediction) histograms of a model's features.

    Parameters
    ----------
    numeric, categorical
        The features' reference profiles, in the column order of ``update``'s arrays
        (``NumericBlock`` and ``CategoricalBlock`` order).
    prediction_edges
        Inner edges of the prediction bins (the reference prediction's PSI edges).
    reference
        The reference importance per feature name (from :func:`reference_importance`), or ``None``.

    Examples
    --------
    >>> import numpy as np
    >>> from drifthouse.config import MetricsConfig
    >>> from drifthouse.profiles.columns import build_profile
    >>> rng = np.random.default_rng(0)
    >>> x, z = rng.normal(size=5_000), rng.normal(size=5_000)
    >>> cols = {"x": x, "z": z}
    >>> p = build_profile(model="m", model_version="1", created_at="2026-01-01T00:00:00Z",
    ...     source_digest="", settings=MetricsConfig(), features=cols, prediction=x)
    >>> ref = reference_importance(p, cols, x)
    >>> ref["x"] > 10 * ref["z"]
    True
    >>> sk = ImportanceSketch.from_profile(p, reference=ref)
    >>> batch = ImportanceBatch(np.c_[x, z], np.zeros((5_000, 2), np.uint8),
    ...                         np.zeros((5_000, 0), np.int32), z)  # now z drives the prediction
    >>> s = sk.update(sk.empty(), batch)
    >>> round({r.feature + r.metric: r.value for r in sk.evaluate(s)}["importance_shift"], 2)
    1.0
    """

    def __init__(
        self,
        numeric: Sequence[FeatureProfile],
        categorical: Sequence[FeatureProfile],
        prediction_edges: Sequence[float],
        *,
        reference: Mapping[str, float] | None = None,
    ) -> None:
        self.numeric = tuple(numeric)
        self.categorical = tuple(categorical)
        self.names = tuple(f.name for f in (*self.numeric, *self.categorical))
        self._edges = [np.asarray(f.psi_edges, dtype=np.float64) for f in self.numeric]
        # bins per feature: numeric PSI bins + missing; categories + other + missing.
        self.n_bins = np.asarray(
            [e.size + 2 for e in self._edges] + [len(f.categories) + 2 for f in self.categorical],
            dtype=np.int64,
        )
        self.prediction_edges = np.asarray(prediction_edges, dtype=np.float64)
        if self.prediction_edges.ndim != 1 or np.any(np.diff(self.prediction_edges) <= 0):
            raise SketchError("prediction_edges must be increasing")
        self.n_pred = self.prediction_edges.size + 1
        self.b_max = int(self.n_bins.max()) if self.n_bins.size else 1
        self.layout = layout_digest(
            "importance", self.names, *self._edges, self.n_bins, self.prediction_edges
        )
        self.reference: np.ndarray | None = None
        if reference is not None:
            missing = [n for n in self.names if n not in reference]
            if missing:
                raise SketchError(f"reference importance lacks features {missing}")
            self.reference = np.asarray([reference[n] for n in self.names], dtype=np.float64)

    @classmethod
    def from_profile(
        cls, profile: Profile, *, reference: Mapping[str, float] | None = None
    ) -> ImportanceSketch:
        """The sketch of a profile with a numeric prediction (raise :class:`SketchError` otherwise)."""
        pred = profile.prediction
        if pred is None or pred.kind != "numeric":
            raise SketchError(
                f"feature importance needs a numeric prediction in the profile of {profile.model!r} "
                "(a score or probability); rebuild the profile with a prediction column"
            )
        return cls(profile.numeric, profile.categorical, pred.psi_edges, reference=reference)

    @property
    def n_features(self) -> int:
        return len(self.names)

    def empty(self) -> ImportanceState:
        return ImportanceState(
            layout=self.layout,
            joint=np.zeros((self.n_features, self.b_max, self.n_pred), dtype=np.int64),
            skipped=np.zeros(1, dtype=np.int64),
        )

    def update(self, state: ImportanceState, batch: ImportanceBatch) -> ImportanceState:
        """Add a micro-batch in place; rows with a non-finite score are skipped and counted."""
        check_same_layout("ImportanceSketch", self.layout, state)
        num = np.asarray(batch.numeric, dtype=np.float64)
        cod = np.asarray(batch.codes, dtype=np.int64)
        s = np.asarray(batch.score, dtype=np.float64)
        status = batch.status
        n = s.shape[0]
        f_num, f_cat = len(self.numeric), len(self.categorical)
        if num.shape != (n, f_num) or np.shape(status) != (n, f_num) or cod.shape != (n, f_cat):
            raise SketchError(
                f"expected numeric and status ({n}, {f_num}), codes ({n}, {f_cat}); "
                f"got {num.shape}, {np.shape(status)}, {cod.shape}"
            )
        ok = np.isfinite(s)
        state.skipped[0] += int(n - ok.sum())
        if not ok.any():
            return state
        pbin = np.searchsorted(self.prediction_edges, s[ok], side="right")
        size = self.b_max * self.n_pred
        for j in range(f_num):
            v = num[ok, j]
            present = (np.asarray(status)[ok, j] == 0) & np.isfinite(v)
            missing_bin = self._edges[j].size + 1
            fbin = np.where(present, np.searchsorted(self._edges[j], v, side="right"), missing_bin)
            state.joint[j] += np.bincount(fbin * self.n_pred + pbin, minlength=size).reshape(
                self.b_max, self.n_pred
            )
        for jc in range(f_cat):
            k = len(self.categorical[jc].categories)
            c = cod[ok, jc]
            fbin = np.where(c < 0, k + 1, np.minimum(c, k))
            state.joint[f_num + jc] += np.bincount(
                fbin * self.n_pred + pbin, minlength=size
            ).reshape(self.b_max, self.n_pred)
        return state

    def update_columns(
        self,
        state: ImportanceState,
        features: Mapping[str, np.ndarray | Sequence[Any]],
        prediction: np.ndarray | Sequence[Any],
    ) -> ImportanceState:
        """Add raw columns (as a profile is built from): numbers, category values, ``None``."""
        n = len(prediction)
        num = np.full((n, len(self.numeric)), np.nan)
        status = np.zeros((n, len(self.numeric)), dtype=np.uint8)
        for j, f in enumerate(self.numeric):
            col = features[f.name]
            if isinstance(col, np.ndarray) and col.dtype.kind in "iuf":
                arr = col.astype(np.float64)
            else:
                arr = np.asarray([_as_float(v) for v in col], dtype=np.float64)
            num[:, j] = arr
            status[:, j] = np.isnan(arr)
        codes = np.zeros((n, len(self.categorical)), dtype=np.int32)
        for jc, f in enumerate(self.categorical):
            cmap = {c: i for i, c in enumerate(f.categories)}
            other = len(f.categories)
            keys = [category_key(v) for v in features[f.name]]
            codes[:, jc] = [-1 if key is None else cmap.get(key, other) for key in keys]
        score = np.asarray([_as_float(prediction_score(p)) for p in prediction], dtype=np.float64)
        return self.update(state, ImportanceBatch(num, status, codes, score))

    def merge(self, a: ImportanceState, b: ImportanceState) -> ImportanceState:
        check_same_layout("ImportanceSketch", self.layout, a, b)
        return ImportanceState(
            layout=self.layout, joint=a.joint + b.joint, skipped=a.skipped + b.skipped
        )

    def importance(self, state: ImportanceState) -> np.ndarray:
        """Mutual information (nats, Miller-Madow corrected) of each feature with the prediction."""
        return np.asarray(
            [corrected_mutual_information(joint=state.joint[j]) for j in range(self.n_features)],
            dtype=np.float64,
        )

    def evaluate(self, state: ImportanceState, context: Context = NO_CONTEXT) -> list[Result]:
        """Per feature ``importance`` (its share of the window's total); model-level
        ``importance_shift`` when the sketch has a reference importance vector, or against the
        importance of ``context.reference`` (a state of this sketch) when given."""
        ref, current = self.reference, state
        other = context.reference
        if other is not None:
            if not isinstance(other, ImportanceState):
                raise SketchError(
                    f"ImportanceSketch compares with an ImportanceState (got {type(other).__name__})"
                )
            check_same_layout("ImportanceSketch", self.layout, other, state)
            ref = self.importance(other) if other.joint.any() else None
        n = int(current.joint[0].sum()) if self.n_features else 0
        if n == 0:
            return []
        mi = self.importance(current)
        total = float(mi.sum())
        out = [
            Result(name, "importance", float(mi[j] / total) if total > 0 else 0.0, None, 0, n)
            for j, name in enumerate(self.names)
        ]
        if ref is not None:
            shift = importance_shift(reference=ref, current=mi)
            if shift is not None:
                out.append(Result("", "importance_shift", shift, None, 0, n))
        return [r for r in out if math.isfinite(r.value)]


def _as_float(v: object) -> float:
    if isinstance(v, int | float) and not isinstance(v, bool):
        return float(v)
    return math.nan


def reference_importance(
    profile: Profile,
    features: Mapping[str, np.ndarray | Sequence[Any]],
    prediction: np.ndarray | Sequence[Any],
) -> dict[str, float]:
    """The importance (mutual information, nats) of each profiled feature in the reference data.

    Call it where the profile is built, with the same columns; store the result beside the
    profile and hand it to :meth:`ImportanceSketch.from_profile`.
    """
    sk = ImportanceSketch.from_profile(profile)
    state = sk.update_columns(sk.empty(), features, prediction)
    return dict(zip(sk.names, (float(x) for x in sk.importance(state)), strict=True))
