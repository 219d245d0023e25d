"""evaluate -> sink / alerts: partials of every partition become one window's rows.

The :class:`MergeStage` collects :class:`~drifthouse.stream.stage.Partial` windows from the
partitions it expects, and once every (non-idle) partition's watermark has passed a window's
end it merges the partials **in partition order**, evaluates the result and writes ``metrics``
and ``sketches`` rows. The partition a message is in and its order there are fixed by Kafka,
so the merged numbers do not depend on which worker read what, or when.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from drifthouse.logs import get_logger
from drifthouse.rows import MetricRow, SketchRow
from drifthouse.sinks.base import Sink
from drifthouse.stream.model_sketch import EVENTS, ModelState, Sketches
from drifthouse.stream.stage import Key, Partial, StageStats
from drifthouse.stream.windows import WindowSpec

__all__ = ["MergeStage", "WindowKey", "WindowResult"]

log = get_logger("merge")

_NO_TIME = int(np.iinfo(np.int64).min)
WindowKey = tuple[int, int, Key]  # (spec index, start, (model, version))


@dataclass(frozen=True)
class WindowResult:
    """One closed window of one model: its rows, handed to the sink and to the alert stage."""

    spec: WindowSpec
    start: int
    end: int
    model: str
    model_version: str
    metrics: list[MetricRow]
    sketches: list[SketchRow]


@dataclass
class MergeStage:
    """Merge partials of all partitions, evaluate, write (see the module docstring)."""

    specs: Sequence[WindowSpec]
    sketches: Sketches
    sink: Sink
    run_id: str = "live"
    on_window: list[Callable[[WindowResult], None]] = field(default_factory=list)
    computed_at: Callable[[], int] = field(default=lambda: int(time.time() * 1000))
    stats: StageStats = field(default_factory=StageStats)

    def __post_init__(self) -> None:
        self._expected: set[int] = set()
        self._idle: set[int] = set()
        self._watermarks: dict[int, int] = {}
        self._pending: dict[WindowKey, dict[int, Partial]] = defaultdict(dict)
        # Windows already written, kept a while: a partition that was idle and wakes up with
        # events for them leads to a rewrite holding every partition, never a partial row.
        self._emitted: dict[WindowKey, dict[int, Partial]] = {}
        # Windows whose start + 2 sizes is at or before this are final: written and forgotten.
        self._final_horizon = _NO_TIME
        self.dropped_partials = 0

    # -- partitions ----------------------------------------------------------------------------

    def expect(self, partitions: Iterable[int]) -> None:
        """Windows wait for these partitions' watermarks (an assignment, or a topic's partitions)."""
        self._expected = set(partitions)

    def mark_idle(self, partition: int, idle: bool = True) -> None:
        """An idle partition (caught up, quiet) no longer holds windows back (see module docs)."""
        if idle:
            self._idle.add(partition)
        else:
            self._idle.discard(partition)

    def watermark(self, partition: int, watermark: int) -> None:
        """Record a partition's watermark (it only moves forward)."""
        self._watermarks[partition] = max(self._watermarks.get(partition, _NO_TIME), watermark)

    def add(self, partials: Iterable[Partial]) -> None:
        """Take closed partials; a partial sent again (after a restart) replaces the first.

        A partial of a window that is already final (written, and past the rewrite horizon) is
        dropped and counted: writing it alone would replace a complete row with a partial one.
        """
        for p in partials:
            if self.is_final(p.spec_index, p.start):
                self.dropped_partials += 1
                log.warning(
                    "merge.partial_too_late", partition=p.partition, model=p.key[0],
                    window=self.specs[p.spec_index].name, start=p.start,
                )  # fmt: skip
                continue
            self._pending[(p.spec_index, p.start, p.key)][p.partition] = p

    def is_final(self, spec_index: int, start: int) -> bool:
        return start + 2 * self.specs[spec_index].size_ms <= self._final_horizon

    @property
    def final_horizon(self) -> int:
        return self._final_horizon

    def restore_final_horizon(self, horizon: int) -> None:
        """After a restart: windows final before it stay final."""
        self._final_horizon = max(self._final_horizon, horizon)

    def emitted_keys(self) -> set[WindowKey]:
        """Windows written but still open to a rewrite by a partition that was idle."""
        return set(self._emitted)

    def pending_keys(self) -> set[WindowKey]:
        """Windows with partials waiting to be written."""
        return set(self._pending)

    def watermarks(self) -> dict[int, int]:
        return dict(self._watermarks)

    def idle(self) -> set[int]:
        return set(self._idle)

    def unwritten(self, partition: int) -> list[Partial]:
        """This partition's partials not written yet (for its checkpoint)."""
        return [parts[partition] for parts in self._pending.values() if partition in parts]

    # -- emit ----------------------------------------------------------------------------------

    def ready_until(self) -> int:
        """Windows ending at or before this time have every (non-idle) partition's data."""
        waiting = (self._expected or set(self._watermarks)) - self._idle
        marks = [self._watermarks.get(p, _NO_TIME) for p in waiting]
        if not marks:  # every partition idle: go by the ones that have data
            marks = list(self._watermarks.values()) or [_NO_TIME]
        return min(marks)

    def emit(self, *, final: bool = False) -> list[WindowResult]:
        """Write every window that is complete (all of them when ``final``); return them."""
        if not self._pending:
            return []
        ready = None if final else self.ready_until()
        out: list[WindowResult] = []
        for wkey in sorted(self._pending, key=lambda t: (t[1], t[0], t[2])):
            k, start, key = wkey
            if ready is not None and start + self.specs[k].size_ms > ready:
                continue
            parts = self._pending.pop(wkey)
            earlier = self._emitted.get(wkey)
            if earlier is not None:  # a rewrite: merge with the partitions already written
                parts = {**earlier, **parts}
            self._emitted[wkey] = parts
            sketch = self.sketches(key[0])
            state: ModelState | None = None
            for p in sorted(parts):  # a fixed merge order: results do not depend on timing
                state = parts[p].state if state is None else sketch.merge(state, parts[p].state)
            assert state is not None
            out.append(self._evaluate(k, start, key, state))
        self._forget_emitted(ready)
        rows: list[MetricRow | SketchRow] = []
        for result in out:
            rows.extend(result.metrics)
            rows.extend(result.sketches)
        if rows:
            self.sink.write(rows)
            self.stats.rows += len(rows)
        self.stats.windows += len(out)
        # Callbacks (the rules, whose notifications follow event time) see windows in the order
        # they end, whatever the batch holds: a 1h window starting before a 30m one ends after
        # it, and a batch's cut must not decide which alert is notified first, nor when.
        for result in sorted(out, key=lambda r: r.end):
            for callback in self.on_window:
                callback(result)
        return out

    def _forget_emitted(self, ready: int | None) -> None:
        if ready is None:
            self._emitted.clear()
            return
        # Keep written windows until idle partitions have passed them too, or for at most one
        # more window length; after that they are final (see add()).
        horizon = min([ready, *(self._watermarks.get(p, _NO_TIME) for p in self._idle)])
        self._final_horizon = max(self._final_horizon, horizon)
        for wkey in [w for w in self._emitted if self.is_final(w[0], w[1])]:
            del self._emitted[wkey]

    def _evaluate(self, k: int, start: int, key: Key, state: ModelState) -> WindowResult:
        spec = self.specs[k]
        model, version = key
        sketch = self.sketches(model)
        n = int(state.counters[EVENTS])
        common = {
            "window_start": start,
            "window_end": start + spec.size_ms,
            "window": spec.name,
            "model": model,
            "model_version": version,
            "segment": "",
            "run_id": self.run_id,
            "computed_at": self.computed_at(),
        }
        metrics = [
            MetricRow(feature=r.feature, metric=r.metric, value=r.value, n=n, **common)  # type: ignore[arg-type]
            for r in sketch.evaluate(state, spec.size_ms)
        ]
        sketches = [
            SketchRow(
                feature=p.feature,
                metric="",
                kind=p.kind,
                edges=p.edges,
                labels=p.labels,
                counts=p.counts,
                n=p.n,
                **common,  # type: ignore[arg-type]
            )
            for p in sketch.sketch_parts(state)
        ]
        return WindowResult(spec, start, start + spec.size_ms, model, version, metrics, sketches)
