"""A mergeable quantile sketch with bounded relative error (DDSketch-style log buckets)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

from drifthouse.detectors import _kernels
from drifthouse.detectors.base import (
    NO_CONTEXT,
    Context,
    Result,
    Sketch,
    State,
    check_same_layout,
    layout_digest,
)
from drifthouse.detectors.numeric import SketchPart
from drifthouse.errors import SketchError

__all__ = ["QuantileSketch", "QuantileState"]


@dataclasses.dataclass(frozen=True, eq=False)
class QuantileState(State):
    """``counts`` int64 (n_buckets + 2,): ``[<= min_value, dense buckets..., > max_value]``;
    ``extremes`` float64 (2,): smallest and largest value seen (``+inf``, ``-inf`` while empty);
    ``non_finite`` int64 (1,): values skipped because they were NaN or infinite."""

    counts: np.ndarray
    extremes: np.ndarray
    non_finite: np.ndarray


class QuantileSketch(Sketch[QuantileState, np.ndarray]):
    """Quantiles with relative error at most ``relative_accuracy`` (Masson et al., VLDB 2019).

    Dense bucket ``k`` holds ``min_value * gamma**k < v <= min_value * gamma**(k+1)`` with
    ``gamma = (1 + a) / (1 - a)``; its representative ``2 * upper / (gamma + 1)`` is within
    ``a`` of every value in it. The counts are integers, so ``merge`` is exact, associative and
    commutative. Values at or below ``min_value`` (including zero and negatives) share one
    bucket, reported as the observed minimum clamped to ``[0, min_value]``, so their error is
    absolute (at most ``min_value`` for non-negative data); values above ``max_value`` are
    reported as the observed maximum. The minimum and maximum themselves are exact.

    :meth:`quantile` estimates ``np.quantile(x, q, method='lower')``: the order statistic of
    rank ``floor(q * (n - 1))``.

    Examples
    --------
    >>> import numpy as np
    >>> sk = QuantileSketch()
    >>> s = sk.update(sk.empty(), np.arange(1.0, 1001.0))
    >>> abs(sk.quantile(s, 0.5) - 500.0) / 500.0 <= 0.005
    True
    """

    def __init__(
        self,
        relative_accuracy: float = 0.005,
        *,
        min_value: float = 1e-3,
        max_value: float = 1e7,
        name: str = "latency",
        quantiles: Sequence[float] = (0.5, 0.95, 0.99),
    ) -> None:
        if not 0 < relative_accuracy < 1:
            raise SketchError(f"relative_accuracy must be in (0, 1) (got {relative_accuracy})")
        if not 0 < min_value < max_value < math.inf:
            raise SketchError(
                f"need 0 < min_value < max_value < inf (got {min_value}, {max_value})"
            )
        self.relative_accuracy = relative_accuracy
        self.gamma = (1 + relative_accuracy) / (1 - relative_accuracy)
        self.log_gamma = math.log(self.gamma)
        self.min_value = float(min_value)
        self.n_buckets = math.ceil(math.log(max_value / min_value) / self.log_gamma)
        self.max_value = self.min_value * self.gamma**self.n_buckets
        self.name = name
        self.quantiles = tuple(quantiles)
        self.layout = layout_digest(
            "quantiles", self.relative_accuracy, self.min_value, self.n_buckets
        )

    def empty(self) -> QuantileState:
        return QuantileState(
            layout=self.layout,
            counts=np.zeros(self.n_buckets + 2, dtype=np.int64),
            extremes=np.asarray([np.inf, -np.inf]),
            non_finite=np.zeros(1, dtype=np.int64),
        )

    def update(self, state: QuantileState, batch: np.ndarray) -> QuantileState:
        """Add a 1-D array of values in place and return ``state`` (NaN/inf are skipped)."""
        check_same_layout("QuantileSketch", self.layout, state)
        v = np.ascontiguousarray(batch, dtype=np.float64)
        if v.ndim != 1:
            raise SketchError(f"values must be 1-D (got shape {v.shape})")
        if v.size:
            state.non_finite[0] += _kernels._quantile_update(
                v,
                self.min_value,
                1.0 / self.log_gamma,
                self.n_buckets,
                state.counts,
                state.extremes,
            )
        return state

    def merge(self, a: QuantileState, b: QuantileState) -> QuantileState:
        check_same_layout("QuantileSketch", self.layout, a, b)
        return QuantileState(
            layout=self.layout,
            counts=a.counts + b.counts,
            extremes=np.asarray(
                [min(a.extremes[0], b.extremes[0]), max(a.extremes[1], b.extremes[1])]
            ),
            non_finite=a.non_finite + b.non_finite,
        )

    def count(self, state: QuantileState) -> int:
        return int(state.counts.sum())

    def quantile(self, state: QuantileState, q: float) -> float | None:
        """The ``q``-quantile (``method='lower'``), or ``None`` for an empty state."""
        if not 0.0 <= q <= 1.0:
            raise SketchError(f"q must be in [0, 1] (got {q})")
        n = self.count(state)
        if n == 0:
            return None
        rank = math.floor(q * (n - 1))
        slot = int(np.searchsorted(np.cumsum(state.counts), rank, side="right"))
        lo, hi = float(state.extremes[0]), float(state.extremes[1])
        # The extremes are tracked exactly.
        if rank == 0:
            return lo
        if rank == n - 1:
            return hi
        if slot == 0:
            est = min(max(lo, 0.0), self.min_value)
        elif slot == self.n_buckets + 1:
            est = hi
        else:
            upper = self.min_value * self.gamma**slot
            est = 2.0 * upper / (self.gamma + 1.0)
        return min(max(est, lo), hi)

    def evaluate(self, state: QuantileState, context: Context = NO_CONTEXT) -> list[Result]:
        """``<name>_p50``, ``_p95``, ``_p99`` (for the configured quantiles) of a non-empty window
        (``n_ref``: the count of ``context.reference``, 0 without one)."""
        current, reference = state, context.reference
        check_same_layout("QuantileSketch", self.layout, current)
        n_ref = self.count(reference) if isinstance(reference, QuantileState) else 0
        n_cur = self.count(current)
        out = []
        for q in self.quantiles:
            v = self.quantile(current, q)
            if v is not None:
                out.append(Result("", f"{self.name}_p{round(q * 100):d}", v, None, n_ref, n_cur))
        return out

    def edges(self) -> list[float]:
        """Lower bound of every slot: ``-inf``, then ``min_value * gamma**k``, then ``max_value``."""
        dense = self.min_value * self.gamma ** np.arange(self.n_buckets + 1)
        return [-math.inf, *(float(x) for x in dense)]

    def sketch_parts(self, state: QuantileState, feature: str = "") -> list[SketchPart]:
        """One ``quantiles`` part: slot lower bounds and counts (dense, so rows sum element-wise)."""
        check_same_layout("QuantileSketch", self.layout, state)
        return [
            SketchPart(
                feature,
                "quantiles",
                self.edges(),
                [],
                [int(c) for c in state.counts],
                self.count(state),
            )
        ]
