"""Metric events (topic ``metrics``): per window, the mean and the maximum of each named number.

A :class:`~drifthouse.events.MetricEvent` carries numbers such as ``{"cpu_util": 0.83}``. Per
model, model version and pane the :class:`MetricEventSketch` keeps, for every metric name seen,
the count, the sum and the maximum; windows merge panes (and partitions) by adding counts and
sums and taking maxima. A closed window yields two model-level results per name: ``<name>``
(the mean) and ``<name>_max``, so a rule such as ``{metric: cpu_util, when: "value > 0.8"}``
works like any other.

Sums advance one value at a time in event order, continuing from the running sum, so the way
the stream is cut into batches never changes a digit; merging adds two sums, so a window's mean
depends on the merge order, which the pipeline fixes (partition order).

Names the pipeline computes itself (``events``, ``accuracy``, ...: :data:`RESERVED`) would
overwrite those rows in the store, so they are not taken; neither are names beyond
``max_names`` distinct ones per model and pane (a guard against unbounded cardinality). Both
are counted and reported as ``metric_events_ignored``; ``metric_events`` counts the events.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import msgspec
import numpy as np

from drifthouse.detectors.base import NO_CONTEXT, Context, Result, Sketch
from drifthouse.errors import SketchError
from drifthouse.events import MetricEvent
from drifthouse.stream.windows import NO_TIME, WindowSpec

__all__ = [
    "RESERVED",
    "MetricEventSketch",
    "MetricEventState",
    "MetricEventWindow",
    "MetricEventWindows",
]


#: Model-level metric names drifthouse writes itself; metric events may not reuse them.
RESERVED = frozenset(
    {
        "events", "invalid_events", "late_events", "throughput_rps", "latency_p50",
        "latency_p95", "latency_p99", "error_rate_4xx", "error_rate_5xx", "accuracy",
        "precision", "recall", "f1", "roc_auc", "mae", "rmse", "r2", "mape", "labels",
        "labels_coverage", "labels_unmatched", "labels_expired", "labels_duplicate",
        "labels_unusable", "cbpe_unusable",
        "demographic_parity_diff", "equal_opportunity_diff", "importance_shift",
        "change_detected", "metric_events", "metric_events_ignored", "psi", "ks", "ks_pvalue",
        "js", "chi2", "chi2_pvalue",
        "ks_qvalue", "chi2_qvalue",
    }
)  # fmt: skip


class _Wire(msgspec.Struct, array_like=True):
    names: list[str]
    count: list[int]
    total: bytes
    vmax: bytes
    events: int
    ignored: int


_ENCODE = msgspec.msgpack.Encoder().encode
_DECODE = msgspec.msgpack.Decoder(_Wire).decode


@dataclass(frozen=True, eq=False)
class MetricEventState:
    """Per metric name (sorted): ``count`` int64, ``total`` float64 (sequential sum),
    ``vmax`` float64; ``counters`` int64 [events, ignored values]."""

    names: tuple[str, ...]
    count: np.ndarray
    total: np.ndarray
    vmax: np.ndarray
    counters: np.ndarray

    def to_bytes(self) -> bytes:
        return _ENCODE(
            _Wire(
                list(self.names),
                [int(c) for c in self.count],
                self.total.astype("<f8").tobytes(),
                self.vmax.astype("<f8").tobytes(),
                int(self.counters[0]),
                int(self.counters[1]),
            )
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> MetricEventState:
        try:
            w = _DECODE(data)
        except msgspec.DecodeError as exc:
            raise SketchError(f"not a serialised metric-event state: {exc}") from exc
        m = len(w.names)
        total = np.frombuffer(w.total, dtype="<f8").astype(np.float64)
        vmax = np.frombuffer(w.vmax, dtype="<f8").astype(np.float64)
        if len(w.count) != m or total.size != m or vmax.size != m:
            raise SketchError("serialised metric-event state has arrays of different lengths")
        return cls(
            tuple(w.names),
            np.asarray(w.count, dtype=np.int64),
            total,
            vmax,
            np.asarray([w.events, w.ignored], dtype=np.int64),
        )

    def equals(self, other: MetricEventState) -> bool:
        """Bitwise equality (floats by their bits)."""
        return (
            self.names == other.names
            and self.count.tobytes() == other.count.tobytes()
            and self.total.tobytes() == other.total.tobytes()
            and self.vmax.tobytes() == other.vmax.tobytes()
            and self.counters.tobytes() == other.counters.tobytes()
        )


def _state(names: Sequence[str], counters: np.ndarray | None = None) -> MetricEventState:
    m = len(names)
    return MetricEventState(
        tuple(names),
        np.zeros(m, dtype=np.int64),
        np.zeros(m),
        np.full(m, -np.inf),
        np.zeros(2, dtype=np.int64) if counters is None else counters.copy(),
    )


def _widen(state: MetricEventState, names: Iterable[str]) -> MetricEventState:
    """``state`` laid out on the sorted union of its names and ``names`` (a new state)."""
    union = sorted(set(state.names) | set(names))
    out = _state(union, state.counters)
    if not state.names:
        return out
    pos = np.searchsorted(np.asarray(union), np.asarray(state.names))
    out.count[pos] = state.count
    out.total[pos] = state.total
    out.vmax[pos] = state.vmax
    return out


class MetricEventSketch(Sketch[MetricEventState, Sequence[Mapping[str, float]]]):
    """Mean and maximum per metric name, for one model's pane.

    Examples
    --------
    >>> sk = MetricEventSketch()
    >>> s = sk.update(sk.empty(), [{"cpu_util": 0.5}, {"cpu_util": 0.9, "gpu_mem": 3.0}])
    >>> [(r.metric, r.value) for r in sk.evaluate(s)]  # doctest: +NORMALIZE_WHITESPACE
    [('cpu_util', 0.7), ('cpu_util_max', 0.9), ('gpu_mem', 3.0), ('gpu_mem_max', 3.0),
     ('metric_events', 2.0)]
    """

    def __init__(self, *, max_names: int = 256) -> None:
        if max_names < 1:
            raise SketchError(f"max_names must be at least 1 (got {max_names})")
        self.max_names = max_names

    def empty(self) -> MetricEventState:
        return _state(())

    def update(
        self, state: MetricEventState, batch: Sequence[Mapping[str, float]]
    ) -> MetricEventState:
        """Add events' ``metrics`` maps in order; returns ``state`` (a new one when new names come).

        Non-finite values are refused by the decoder before they get here; any that do are
        counted as ignored.
        """
        metrics = batch
        if not metrics:
            return state
        known = set(state.names)
        fresh = sorted({k for m in metrics for k in m if k not in known and k not in RESERVED})
        room = max(self.max_names - len(known), 0)
        if fresh:
            # The names admitted do not depend on batch cuts only if the cap is never reached;
            # past it, the first names in sorted order win and the rest are counted as ignored.
            state = _widen(state, fresh[:room])
        index = {name: i for i, name in enumerate(state.names)}
        count, total, vmax = state.count, state.total, state.vmax
        ignored = 0
        for m in metrics:
            for name, value in m.items():
                i = index.get(name)
                v = float(value)
                if i is None or not math.isfinite(v):
                    ignored += 1
                    continue
                count[i] += 1
                total[i] += v
                if v > vmax[i]:
                    vmax[i] = v
        state.counters[0] += len(metrics)
        state.counters[1] += ignored
        return state

    def merge(self, a: MetricEventState, b: MetricEventState) -> MetricEventState:
        """A new state holding both; names are the union, in sorted order."""
        if a.names != b.names:
            a, b = _widen(a, b.names), _widen(b, a.names)
        # An empty side leaves the other's sums bit for bit (-0.0 + 0.0 would not).
        total = np.where(b.count == 0, a.total, np.where(a.count == 0, b.total, a.total + b.total))
        return MetricEventState(
            a.names,
            a.count + b.count,
            total,
            np.maximum(a.vmax, b.vmax),
            a.counters + b.counters,
        )

    def evaluate(self, state: MetricEventState, context: Context = NO_CONTEXT) -> list[Result]:
        """``<name>`` (mean) and ``<name>_max`` per name seen, ``metric_events`` and, when some
        values were not taken, ``metric_events_ignored``."""
        out: list[Result] = []
        for i, name in enumerate(state.names):
            n = int(state.count[i])
            if n:
                out.append(Result("", name, float(state.total[i]) / n, None, 0, n))
                out.append(Result("", f"{name}_max", float(state.vmax[i]), None, 0, n))
        events = int(state.counters[0])
        out.append(Result("", "metric_events", float(events), None, 0, events))
        if state.counters[1]:
            out.append(
                Result("", "metric_events_ignored", float(state.counters[1]), None, 0, events)
            )
        return out


# -- windows -----------------------------------------------------------------------------------

WindowId = tuple[str, str, int, int]  # (model, model version, spec index, window start)
PaneId = tuple[str, str, int, int, int]  # (model, model version, spec index, pane start, partition)


@dataclass(frozen=True)
class MetricEventWindow:
    """A window whose metric events changed: its merged state."""

    spec_index: int
    start: int
    end: int
    model: str
    model_version: str
    state: MetricEventState
    rewrite: bool


class _WindowsWire(msgspec.Struct, array_like=True):
    panes: list[tuple[str, str, int, int, int, bytes]]
    dirty: list[tuple[str, str, int, int]]
    written: list[tuple[str, str, int, int]]
    clock: int


class MetricEventWindows:
    """Metric events in panes of the configured windows, per model and model version.

    Metric events are few (one per serving instance every few seconds), so they are windowed
    apart from predictions, in the merge stage: :meth:`add` folds decoded events into their
    panes, one per partition of the metrics topic (in that partition's order), and
    :meth:`flush` hands out each window whose events changed once the prediction watermark has
    passed its end, merging panes in time and partition order: the sums do not depend on how
    the partitions interleave. An event arriving after its window was written
    makes the window be written again under the same key (the store keeps the newest row).
    Panes older than ``horizon_ms`` behind the largest event time seen are dropped, and events
    older than that are counted as ``dropped``.

    Examples
    --------
    >>> from drifthouse.events import MetricEvent
    >>> from drifthouse.stream.windows import WindowSpec
    >>> mw = MetricEventWindows([WindowSpec.tumbling(60_000)])
    >>> mw.add([MetricEvent(model="m", ts_ms=1_000, metrics={"cpu_util": 0.5}),
    ...         MetricEvent(model="m", ts_ms=2_000, metrics={"cpu_util": 0.9})])
    >>> [(w.start, r.metric, r.value) for w in mw.flush(60_000) for r in mw.sketch.evaluate(w.state)]
    [(0, 'cpu_util', 0.7), (0, 'cpu_util_max', 0.9), (0, 'metric_events', 2.0)]
    >>> mw.flush(60_000)
    []
    """

    def __init__(
        self,
        specs: Sequence[WindowSpec],
        *,
        horizon_ms: int = 7 * 86_400_000,
        max_names: int = 256,
    ) -> None:
        self.specs = tuple(specs)
        self.horizon_ms = horizon_ms
        self.sketch = MetricEventSketch(max_names=max_names)
        self._panes: dict[PaneId, MetricEventState] = {}
        self._dirty: set[WindowId] = set()
        self._written: set[WindowId] = set()
        self._clock = NO_TIME
        self._partitions: list[int] = []
        self.dropped = 0

    def add(self, events: Sequence[MetricEvent], partition: int = 0) -> None:
        """Fold decoded metric events of one partition of their topic in, in its order."""
        for e in events:
            self._clock = max(self._clock, e.ts_ms)
            if e.ts_ms < self._clock - self.horizon_ms:
                self.dropped += 1
                continue
            for k, spec in enumerate(self.specs):
                pane = (e.ts_ms // spec.pane_ms) * spec.pane_ms
                key = (e.model, e.model_version, k, pane, partition)
                state = self._panes.get(key)
                self._partitions = sorted({*self._partitions, partition})
                self._panes[key] = self.sketch.update(
                    self.sketch.empty() if state is None else state, [e.metrics]
                )
                for i in range(spec.panes_per_window):
                    self._dirty.add((e.model, e.model_version, k, pane - i * spec.hop_ms))

    def flush(self, ready_until: int | None = None) -> list[MetricEventWindow]:
        """Windows changed since last written whose end is at or before ``ready_until`` (all
        when ``None``), in (start, spec, model, version) order."""
        ready = sorted(
            (
                w
                for w in self._dirty
                if ready_until is None or w[3] + self.specs[w[2]].size_ms <= ready_until
            ),
            key=lambda w: (w[3], w[2], w[0], w[1]),
        )
        out = []
        for w in ready:
            model, version, k, start = w
            spec = self.specs[k]
            state = self.sketch.empty()
            for pane in range(start, start + spec.size_ms, spec.hop_ms):  # a fixed merge order
                for partition in self._partitions:
                    part = self._panes.get((model, version, k, pane, partition))
                    if part is not None:
                        state = self.sketch.merge(state, part)
            out.append(
                MetricEventWindow(
                    k, start, start + spec.size_ms, model, version, state, w in self._written
                )
            )
            self._dirty.discard(w)
            self._written.add(w)
        self._forget()
        return out

    def _forget(self) -> None:
        if self._clock == NO_TIME:
            return
        limit = self._clock - self.horizon_ms
        for key in [key for key in self._panes if key[3] + self.specs[key[2]].size_ms < limit]:
            del self._panes[key]
        self._written = {w for w in self._written if w[3] + self.specs[w[2]].size_ms >= limit}

    def to_bytes(self) -> bytes:
        """Snapshot (store it with the positions it covers)."""
        return _ENCODE_WINDOWS(
            _WindowsWire(
                panes=[(*key, state.to_bytes()) for key, state in sorted(self._panes.items())],
                dirty=sorted(self._dirty),
                written=sorted(self._written),
                clock=self._clock,
            )
        )

    def restore(self, data: bytes) -> None:
        """Resume from :meth:`to_bytes`."""
        try:
            wire = _DECODE_WINDOWS(data)
        except msgspec.DecodeError as exc:
            raise SketchError(f"not a serialised metric-event window set: {exc}") from exc
        self._panes = {
            (m, v, k, s, p): MetricEventState.from_bytes(blob) for m, v, k, s, p, blob in wire.panes
        }
        self._partitions = sorted({key[4] for key in self._panes})
        self._dirty = {tuple(w) for w in wire.dirty}  # type: ignore[misc]
        self._written = {tuple(w) for w in wire.written}  # type: ignore[misc]
        self._clock = wire.clock


_ENCODE_WINDOWS = msgspec.msgpack.Encoder().encode
_DECODE_WINDOWS = msgspec.msgpack.Decoder(_WindowsWire).decode
