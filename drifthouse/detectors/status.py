"""Counts of serving outcomes by HTTP status class."""

from __future__ import annotations

import dataclasses

import numpy as np

from drifthouse.detectors import _kernels
from drifthouse.detectors.base import (
    NO_CONTEXT,
    Context,
    Result,
    Sketch,
    State,
    check_same_layout,
)
from drifthouse.errors import SketchError

__all__ = ["StatusCounter", "StatusState"]


@dataclasses.dataclass(frozen=True, eq=False)
class StatusState(State):
    """``counts`` int64 (4,): 2xx/3xx, 4xx, 5xx, other."""

    counts: np.ndarray


class StatusCounter(Sketch[StatusState, np.ndarray]):
    """Error rates from HTTP statuses; rates are shares of all counted requests.

    Examples
    --------
    >>> import numpy as np
    >>> sc = StatusCounter()
    >>> s = sc.update(sc.empty(), np.asarray([200, 200, 404, 503]))
    >>> sc.error_rate_4xx(s), sc.error_rate_5xx(s)
    (0.25, 0.25)
    """

    layout = "status-v1"

    def empty(self) -> StatusState:
        return StatusState(layout=self.layout, counts=np.zeros(4, dtype=np.int64))

    def update(self, state: StatusState, batch: np.ndarray) -> StatusState:
        """Add a 1-D integer array of statuses in place and return ``state``."""
        check_same_layout("StatusCounter", self.layout, state)
        s = np.ascontiguousarray(batch, dtype=np.int64)
        if s.ndim != 1:
            raise SketchError(f"statuses must be 1-D (got shape {s.shape})")
        if s.size:
            _kernels._status_update(s, state.counts)
        return state

    def merge(self, a: StatusState, b: StatusState) -> StatusState:
        check_same_layout("StatusCounter", self.layout, a, b)
        return StatusState(layout=self.layout, counts=a.counts + b.counts)

    def total(self, state: StatusState) -> int:
        return int(state.counts.sum())

    def error_rate_4xx(self, state: StatusState) -> float:
        """Share of 4xx statuses (0.0 when nothing was counted)."""
        n = self.total(state)
        return int(state.counts[1]) / n if n else 0.0

    def error_rate_5xx(self, state: StatusState) -> float:
        """Share of 5xx statuses (0.0 when nothing was counted)."""
        n = self.total(state)
        return int(state.counts[2]) / n if n else 0.0

    def evaluate(self, state: StatusState, context: Context = NO_CONTEXT) -> list[Result]:
        """``error_rate_4xx`` and ``error_rate_5xx`` of a non-empty window (``n_ref``: the
        count of ``context.reference``, 0 without one)."""
        current, reference = state, context.reference
        n_ref = self.total(reference) if isinstance(reference, StatusState) else 0
        n = self.total(current)
        if n == 0:
            return []
        return [
            Result("", "error_rate_4xx", self.error_rate_4xx(current), None, n_ref, n),
            Result("", "error_rate_5xx", self.error_rate_5xx(current), None, n_ref, n),
        ]
