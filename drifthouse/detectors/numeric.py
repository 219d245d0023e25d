"""All numeric features of a model sketched together: one histogram and quality counters each."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

import numpy as np

from drifthouse.detectors import _kernels, stats
from drifthouse.detectors.attribution import bin_labels, bin_results
from drifthouse.detectors.base import (
    MISSING,
    NO_CONTEXT,
    PRESENT,
    TYPE_ERROR,
    Context,
    Result,
    Sketch,
    State,
    check_same_layout,
    layout_digest,
    reference_for,
)
from drifthouse.detectors.reference import FeatureProfile, Profile
from drifthouse.errors import SketchError

__all__ = [
    "MISSING",
    "PRESENT",
    "TYPE_ERROR",
    "NumericBatch",
    "NumericBlock",
    "NumericState",
    "SketchPart",
]


@dataclasses.dataclass(frozen=True, slots=True)
class SketchPart:
    """The content of one ``sketches`` row (the caller adds window, model and run keys)."""

    feature: str
    kind: str  # 'hist', 'categories' or 'quantiles'
    edges: list[float]
    labels: list[str]
    counts: list[int]
    n: int


@dataclasses.dataclass(frozen=True, slots=True)
class NumericBatch:
    """A micro-batch for :class:`NumericBlock`: ``values`` float64 (n, F); ``status`` uint8
    (n, F): 0 present, 1 missing, 2 type error (``None``: all present)."""

    values: np.ndarray
    status: np.ndarray | None = None


@dataclasses.dataclass(frozen=True, eq=False)
class NumericState(State):
    """Window state of a :class:`NumericBlock` (``F`` features, ``B`` = most bins of any).

    ``counts`` int64 (F, B) fine-grid histograms; int64 (F,) ``count`` (present and finite),
    ``missing``, ``non_finite``, ``type_error``, ``out_of_range``; float64 (F,) ``vmin``,
    ``vmax`` (``+inf``/``-inf`` while empty), ``mean`` and ``m2`` (Welford's sum of squared
    deviations).
    """

    counts: np.ndarray
    count: np.ndarray
    missing: np.ndarray
    non_finite: np.ndarray
    type_error: np.ndarray
    out_of_range: np.ndarray
    vmin: np.ndarray
    vmax: np.ndarray
    mean: np.ndarray
    m2: np.ndarray


class NumericBlock(Sketch[NumericState, NumericBatch]):
    """Sketch of every numeric feature of a model, fed whole micro-batches.

    Each feature has its reference profile's fine KS grid (inner edges padded with ``+inf``
    into one ``(F, B - 1)`` array); PSI bins are unions of fine bins (``coarse_index``).

    Parameters
    ----------
    features
        The numeric :class:`FeatureProfile`s, in the column order of ``update``'s arrays.
    bounds
        Optional ``{feature: (lo, hi)}``; values outside count as ``out_of_range``
        (default: the reference minimum and maximum).
    eps
        PSI's floor for proportions.

    Examples
    --------
    >>> import numpy as np
    >>> from drifthouse.config import MetricsConfig
    >>> from drifthouse.profiles.columns import build_profile
    >>> rng = np.random.default_rng(0)
    >>> p = build_profile(model="m", model_version="1", created_at="2026-01-01T00:00:00Z",
    ...     source_digest="", settings=MetricsConfig(), features={"x": rng.normal(size=10_000)})
    >>> block = NumericBlock.from_profile(p)
    >>> x = rng.normal(0.5, 1, size=(1_000, 1))
    >>> state = block.update(block.empty(), NumericBatch(x, np.zeros(x.shape, np.uint8)))
    >>> {r.metric: round(r.value, 2) for r in block.evaluate(state)}["count"]
    1000.0
    """

    def __init__(
        self,
        features: Sequence[FeatureProfile],
        *,
        bounds: Mapping[str, tuple[float, float]] | None = None,
        eps: float = 1e-4,
    ) -> None:
        for f in features:
            if f.kind != "numeric":
                raise SketchError(f"NumericBlock takes numeric features ({f.name!r} is {f.kind})")
        self.features: tuple[FeatureProfile, ...] = tuple(features)
        self.names: tuple[str, ...] = tuple(f.name for f in features)
        self.eps = eps
        n_f = len(features)
        e_max = max((len(f.edges) for f in features), default=0)
        self.n_bins = np.asarray([len(f.edges) + 1 for f in features], dtype=np.int64)
        self.edges = np.full((n_f, e_max), np.inf)
        self._depth = _kernels.search_depth(e_max)
        self._kernel = _kernels.numeric_update_kernel(self._depth)
        self.coarse_index = np.zeros((n_f, e_max + 1), dtype=np.int64)
        self.n_coarse = np.asarray([len(f.psi_edges) + 1 for f in features], dtype=np.int64)
        self.lo = np.full(n_f, -np.inf)
        self.hi = np.full(n_f, np.inf)
        bounds = dict(bounds or {})
        for j, f in enumerate(features):
            e = np.asarray(f.edges, dtype=np.float64)
            self.edges[j, : e.size] = e
            lower = np.concatenate(([-np.inf], e))
            self.coarse_index[j, : e.size + 1] = np.searchsorted(
                np.asarray(f.psi_edges, dtype=np.float64), lower, side="right"
            )
            lo, hi = bounds.pop(f.name, (f.min, f.max))
            self.lo[j] = -np.inf if lo is None else lo
            self.hi[j] = np.inf if hi is None else hi
        # The kernel's branch-free search reads a copy padded to 2**depth - 1 columns.
        self._search_edges = np.full((n_f, (1 << self._depth) - 1), np.inf)
        self._search_edges[:, :e_max] = self.edges
        if bounds:
            raise SketchError(
                f"bounds name features that are not numeric features of the profile: {sorted(bounds)}"
            )
        self.layout = layout_digest("numeric", self.names, self.edges, self.lo, self.hi)
        self.reference = self._reference_state()
        #: Per feature, the labels of its PSI bins (attribution rows name them).
        self.bin_labels = tuple(bin_labels(f.psi_edges) for f in features)

    @classmethod
    def from_profile(
        cls, profile: Profile, *, bounds: Mapping[str, tuple[float, float]] | None = None
    ) -> NumericBlock:
        """The block of the profile's numeric features (in profile order)."""
        return cls(profile.numeric, bounds=bounds, eps=profile.settings.eps)

    @property
    def n_features(self) -> int:
        return len(self.features)

    def empty(self) -> NumericState:
        n_f, b = self.edges.shape[0], self.edges.shape[1] + 1

        def z() -> np.ndarray:
            return np.zeros(n_f, dtype=np.int64)

        return NumericState(
            layout=self.layout,
            counts=np.zeros((n_f, b), dtype=np.int64),
            count=z(),
            missing=z(),
            non_finite=z(),
            type_error=z(),
            out_of_range=z(),
            vmin=np.full(n_f, np.inf),
            vmax=np.full(n_f, -np.inf),
            mean=np.zeros(n_f),
            m2=np.zeros(n_f),
        )

    def _reference_state(self) -> NumericState:
        s = self.empty()
        for j, f in enumerate(self.features):
            s.counts[j, : len(f.counts)] = f.counts
            s.count[j] = f.count
            s.missing[j] = f.missing
            s.non_finite[j] = f.non_finite
            if f.count:
                assert f.min is not None
                assert f.max is not None
                assert f.mean is not None
                assert f.std is not None
                s.vmin[j], s.vmax[j], s.mean[j] = f.min, f.max, f.mean
                s.m2[j] = f.std * f.std * f.count
        return s

    def update(self, state: NumericState, batch: NumericBatch) -> NumericState:
        """Add a micro-batch in place and return ``state``.

        Non-finite present values count as ``non_finite`` and are not binned. Rows are taken
        in order: the result does not depend on how a stream is cut into batches.
        """
        check_same_layout("NumericBlock", self.layout, state)
        n_f = self.n_features
        values = np.ascontiguousarray(batch.values, dtype=np.float64)
        status = batch.status
        if values.ndim != 2 or values.shape[1] != n_f:
            raise SketchError(f"values must have shape (n, {n_f}) (got {values.shape})")
        if status is None:
            status = np.zeros(values.shape, dtype=np.uint8)
        else:
            status = np.ascontiguousarray(status, dtype=np.uint8)
            if status.shape != values.shape:
                raise SketchError(
                    f"status must have the shape of values {values.shape} (got {status.shape})"
                )
            if status.size and int(status.max()) > TYPE_ERROR:
                raise SketchError(
                    f"status codes must be 0 (present), 1 (missing) or 2 (type error) (got {int(status.max())})"
                )
        if values.shape[0] == 0 or n_f == 0:
            return state
        self._kernel(
            values, status, self._search_edges, self.lo, self.hi, state.counts, state.count, state.missing,
            state.non_finite, state.type_error, state.out_of_range, state.vmin, state.vmax, state.mean, state.m2,
        )  # fmt: skip
        return state

    def merge(self, a: NumericState, b: NumericState) -> NumericState:
        """A new state holding both; mean and M2 by Chan et al.'s pairwise formula."""
        check_same_layout("NumericBlock", self.layout, a, b)
        na = a.count.astype(np.float64)
        nb = b.count.astype(np.float64)
        n = na + nb
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            delta = b.mean - a.mean
            mean = a.mean + delta * np.where(n > 0, nb / n, 0.0)
            m2 = a.m2 + b.m2 + delta * delta * np.where(n > 0, na * nb / n, 0.0)
        # An empty side must leave the other bit for bit (empty() is the identity).
        mean = np.where(nb == 0, a.mean, np.where(na == 0, b.mean, mean))
        m2 = np.where(nb == 0, a.m2, np.where(na == 0, b.m2, m2))
        return NumericState(
            layout=self.layout,
            counts=a.counts + b.counts,
            count=a.count + b.count,
            missing=a.missing + b.missing,
            non_finite=a.non_finite + b.non_finite,
            type_error=a.type_error + b.type_error,
            out_of_range=a.out_of_range + b.out_of_range,
            vmin=np.minimum(a.vmin, b.vmin),
            vmax=np.maximum(a.vmax, b.vmax),
            mean=mean,
            m2=m2,
        )

    def coarse_counts(self, state: NumericState, j: int) -> np.ndarray:
        """Feature ``j``'s counts on its PSI bins (sums of fine bins)."""
        nb = int(self.n_bins[j])
        return np.bincount(
            self.coarse_index[j, :nb], weights=state.counts[j, :nb], minlength=int(self.n_coarse[j])
        ).astype(np.int64)

    def std(self, state: NumericState) -> np.ndarray:
        """Population standard deviation per feature (0 where a feature has no values)."""
        out: np.ndarray = np.sqrt(np.maximum(state.m2, 0.0) / np.maximum(state.count, 1))
        return out

    def evaluate(self, state: NumericState, context: Context = NO_CONTEXT) -> list[Result]:
        """Drift and quality metrics of every feature (docs/metrics.md), against
        ``context.reference`` (default: the profile's :attr:`reference`).

        Drift (``psi``, ``kl``, ``ks``, ``ks_pvalue``, ``js``, ``wasserstein``) is computed
        only when both sides have values; ``min``, ``max``, ``mean``, ``std`` only when the
        window has values. ``missing_rate`` is ``missing`` over all events seen (0 when none).
        ``js`` and ``kl`` use the PSI bins; ``ks`` and ``wasserstein`` the fine grid.
        """
        reference = self._reference_of(state, context)
        current = state
        out: list[Result] = []
        std = self.std(current)
        for j, f in enumerate(self.features):
            name = f.name
            n_ref, n_cur = int(reference.count[j]), int(current.count[j])
            nb = int(self.n_bins[j])

            def r(
                metric: str,
                value: float,
                p: float | None = None,
                *,
                name: str = name,
                n_ref: int = n_ref,
                n_cur: int = n_cur,
            ) -> Result:
                return Result(name, metric, float(value), p, n_ref, n_cur)

            if n_ref > 0 and n_cur > 0:
                ref_c, cur_c = reference.counts[j, :nb], current.counts[j, :nb]
                ref_p, cur_p = self.coarse_counts(reference, j), self.coarse_counts(current, j)
                d, p = stats.ks_binned(ref_counts=ref_c, cur_counts=cur_c)
                lo = f.min if f.min is not None else float(reference.vmin[j])
                hi = f.max if f.max is not None else float(reference.vmax[j])
                out += [
                    r("psi", stats.psi(ref_counts=ref_p, cur_counts=cur_p, eps=self.eps)),
                    r("kl", stats.kl(ref_counts=ref_p, cur_counts=cur_p, eps=self.eps)),
                    r("ks", d, p),
                    r("ks_pvalue", p),
                    r("js", stats.js_distance(ref_counts=ref_p, cur_counts=cur_p)),
                    r(
                        "wasserstein",
                        stats.wasserstein_binned(
                            edges=self.edges[j, : nb - 1],
                            ref_counts=ref_c,
                            cur_counts=cur_c,
                            lo=lo,
                            hi=hi,
                        ),
                    ),
                ]
            seen = n_cur + int(current.missing[j] + current.non_finite[j] + current.type_error[j])
            out += [
                r("count", n_cur),
                r("missing", int(current.missing[j])),
                r("missing_rate", int(current.missing[j]) / seen if seen else 0.0),
                r("non_finite", int(current.non_finite[j])),
                r("type_error", int(current.type_error[j])),
                r("out_of_range", int(current.out_of_range[j])),
            ]
            if n_cur > 0:
                out += [
                    r("min", current.vmin[j]),
                    r("max", current.vmax[j]),
                    r("mean", current.mean[j]),
                    r("std", std[j]),
                ]
        return [x for x in out if math.isfinite(x.value)]

    def _reference_of(self, state: NumericState, context: Context) -> NumericState:
        return reference_for(
            "NumericBlock", self.layout, NumericState, self.reference, context, state
        )

    def contributions(
        self, state: NumericState, *, top_k: int, min_psi: float, context: Context = NO_CONTEXT
    ) -> list[Result]:
        """Drift attribution on the PSI bins (:func:`~drifthouse.detectors.attribution.bin_results`):
        per feature whose PSI is at least ``min_psi``, its ``top_k`` bins with the largest terms."""
        reference = self._reference_of(state, context)
        out: list[Result] = []
        for j, f in enumerate(self.features):
            out += bin_results(
                f.name,
                self.bin_labels[j],
                self.coarse_counts(reference, j),
                self.coarse_counts(state, j),
                eps=self.eps,
                top_k=top_k,
                min_psi=min_psi,
            )
        return out

    def sketch_parts(self, state: NumericState) -> list[SketchPart]:
        """One ``hist`` part per feature: its fine edges and counts."""
        check_same_layout("NumericBlock", self.layout, state)
        parts = []
        for j, name in enumerate(self.names):
            nb = int(self.n_bins[j])
            parts.append(
                SketchPart(
                    feature=name,
                    kind="hist",
                    edges=[float(x) for x in self.edges[j, : nb - 1]],
                    labels=[],
                    counts=[int(c) for c in state.counts[j, :nb]],
                    n=int(state.count[j]),
                )
            )
        return parts

    def nbytes(self, state: NumericState) -> int:
        """Bytes held by a state's arrays."""
        return sum(a.nbytes for a in state.arrays().values())
