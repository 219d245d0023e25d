"""The one place the stages are wired: source -> decode -> window -> sketch -> evaluate -> sink / alerts.

:class:`Pipeline` takes micro-batches of raw messages from any source (a file, a Kafka replay,
the live worker, the demo's simulator) and writes ``metrics`` and ``sketches`` rows to a sink.
Each source partition has its own windows and watermark; a closed window's per-partition
states are merged in partition order before evaluation. Nothing here reads the wall clock
except ``computed_at`` and the guard against far-future timestamps, so the same events in
the same per-partition order give the same rows to the last digit.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial

import msgspec
import numpy as np

from drifthouse.config import Config
from drifthouse.detectors.reference import Profile
from drifthouse.errors import LateEventError
from drifthouse.events import EventDecoder, PredictionEvent
from drifthouse.logs import get_logger
from drifthouse.rows import MetricRow, SketchRow
from drifthouse.sinks.base import Sink
from drifthouse.stream.columns import extract
from drifthouse.stream.dead_letters import DeadLetters
from drifthouse.stream.model_sketch import INVALID, LATE, ModelSketch, ModelState
from drifthouse.stream.sources import Message
from drifthouse.stream.windows import ClosedWindow, EventTimeWindows, WindowSpec

__all__ = ["Pipeline", "PipelineStats", "WindowResult"]

log = get_logger("pipeline")

Key = tuple[str, str]  # (model, model_version)


class _ModelOnly(msgspec.Struct):
    """Just enough of a refused event to know whose it was."""

    model: str = ""
    model_version: str = "unknown"


_PEEK = msgspec.json.Decoder(_ModelOnly)


def _peek_model(raw: bytes, key: bytes | None) -> Key:
    try:
        found = _PEEK.decode(raw)
        if found.model:
            return found.model, found.model_version if isinstance(
                found.model_version, str
            ) else "unknown"
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        pass
    if key:
        return key.decode("utf-8", errors="replace"), "unknown"
    return "", "unknown"


@dataclass
class PipelineStats:
    """Running totals, for progress bars, logs and the health endpoint."""

    messages: int = 0
    events: int = 0
    invalid: int = 0
    late: int = 0
    windows: int = 0
    rows: int = 0


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
class _Partition:
    windows: EventTimeWindows[Key, ModelState]
    # Refused events seen before the partition's first valid event: counted once a pane exists.
    orphans: list[Key] = field(default_factory=list)


class Pipeline:
    """Decode, window, sketch and evaluate micro-batches; write the results.

    Parameters
    ----------
    config:
        The configuration tree (windows, metrics settings, models).
    profiles:
        Reference profiles by model name.
    sink:
        Where ``metrics`` and ``sketches`` rows go.
    dead_letters:
        Where refused and late messages go.
    run_id:
        ``live`` for the worker, the replay's id otherwise.
    on_window:
        Called with every closed window's result after its rows were handed to the sink (the
        alert stage subscribes here).
    now_ms:
        The clock for the far-future guard (``None`` turns the guard off, as replays of
        history want); never used for windows.
    """

    def __init__(
        self,
        *,
        config: Config,
        profiles: Mapping[str, Profile],
        sink: Sink,
        dead_letters: DeadLetters,
        run_id: str = "live",
        on_window: Sequence[Callable[[WindowResult], None]] = (),
        now_ms: Callable[[], int] | None = None,
        computed_at: Callable[[], int] | None = None,
    ) -> None:
        self.config = config
        self.profiles = dict(profiles)
        self.sink = sink
        self.dead_letters = dead_letters
        self.run_id = run_id
        self.on_window = list(on_window)
        self.now_ms = now_ms
        self.computed_at = computed_at or (lambda: int(time.time() * 1000))
        self.specs = [WindowSpec.from_config(w) for w in config.windows]
        self.decoder = EventDecoder(
            PredictionEvent,
            max_bytes=config.kafka.max_message_bytes,
            max_future_ms=config.metrics.max_future,
        )
        self.stats = PipelineStats()
        self._sketches: dict[str, ModelSketch] = {}
        self._partitions: dict[int, _Partition] = {}
        self._expected: set[int] = set()
        self._idle: set[int] = set()
        # Closed windows waiting for every partition: (spec index, start, key) -> {partition: state}.
        self._pending: dict[tuple[int, int, Key], dict[int, ModelState]] = defaultdict(dict)
        # Windows already written, kept a while so that a partition marked idle that wakes up
        # with events for them leads to a rewrite holding every partition, not a partial row.
        self._emitted: dict[tuple[int, int, Key], dict[int, ModelState]] = {}

    # -- partitions ----------------------------------------------------------------------------

    def expect_partitions(self, partitions: Iterable[int]) -> None:
        """Windows wait for these partitions' watermarks (the assignment of a worker, or every
        partition of a replayed topic). Without it, the partitions seen so far count."""
        self._expected = set(partitions)
        for p in self._expected:
            self._partition(p)

    def mark_idle(self, partition: int, idle: bool = True) -> None:
        """An idle partition (caught up, no events for a while) no longer holds windows back.

        Its events, if any come later, still land in their windows: a window already written
        is then rewritten with every partition's state merged (same key, newer ``computed_at``).
        """
        if idle:
            self._idle.add(partition)
        else:
            self._idle.discard(partition)

    # -- the flow ------------------------------------------------------------------------------

    def process(self, messages: Sequence[Message]) -> list[WindowResult]:
        """Take one micro-batch (any mix of partitions, each in its own order); return closed windows."""
        by_partition: dict[int, list[Message]] = defaultdict(list)
        for m in messages:
            by_partition[m.partition].append(m)
        for partition in sorted(by_partition):
            self._process_partition(partition, by_partition[partition])
        self.stats.messages += len(messages)
        return self._emit(final=False)

    def finish(self) -> list[WindowResult]:
        """End of a bounded input: close and write every open window."""
        for part in self._partitions.values():
            self._collect(part, final=True)
        return self._emit(final=True)

    # -- decode -> window -> sketch ------------------------------------------------------------

    def _process_partition(self, partition: int, msgs: list[Message]) -> None:
        part = self._partition(partition)
        windows = part.windows
        now = self.now_ms() if self.now_ms is not None else None
        ok, bad = self.decoder.decode_batch([m.value for m in msgs], now_ms=now)
        events = [e for _, e in ok]
        positions = np.array([i for i, _ in ok], dtype=np.int64)
        ts = np.array([e.ts_ms for e in events], dtype=np.int64)
        max_before = windows.max_ts
        routed = windows.route(ts)

        # Late and refused events are counted in the pane holding the largest event time seen
        # before them: that pane is open, and the choice does not depend on batch cuts.
        if ts.size:
            seen = np.maximum.accumulate(np.maximum(ts, max_before))
        else:
            seen = np.empty(0, dtype=np.int64)
        late = np.zeros(ts.size, dtype=np.bool_)
        for r in routed:
            late |= r.late
        for li in np.flatnonzero(late).tolist():
            e, msg = events[li], msgs[int(positions[li])]
            where = int(seen[li - 1]) if li > 0 else max_before
            self._count(part, (e.model, e.model_version), where, LATE)
            self.dead_letters.send(
                msg, LateEventError("late", "$.ts", self._late_message(e.ts_ms, where))
            )
            self.stats.late += 1
        for pos, err in bad:
            key = _peek_model(msgs[pos].value, msgs[pos].key)
            prior = int(np.searchsorted(positions, pos))  # valid events before this message
            where = int(seen[prior - 1]) if prior > 0 else max_before
            if where == np.iinfo(np.int64).min:
                part.orphans.append(key)
            else:
                self._count(part, key, where, INVALID)
            self.dead_letters.send(msgs[pos], err)
            self.stats.invalid += 1
        if part.orphans and windows.max_ts != np.iinfo(np.int64).min:
            first = int(ts[0]) if ts.size else windows.max_ts
            for key in part.orphans:
                self._count(part, key, first, INVALID)
            part.orphans.clear()

        # Group the on-time events by model and version, keep arrival order inside each group.
        groups: dict[Key, list[int]] = defaultdict(list)
        on_time = (~late).tolist()
        for i, e in enumerate(events):
            if on_time[i]:
                groups[(e.model, e.model_version)].append(i)
        for key, members in groups.items():
            idx = np.asarray(members, dtype=np.intp)
            sketch = self._sketch(key[0])
            cols = extract([events[i] for i in members], sketch.layout)
            for k, r in enumerate(routed):
                pane = r.pane[idx]
                for pane_start, local in _runs(pane):
                    part_cols = cols if local is None else cols.take(local)
                    windows.update(k, pane_start, key, partial(sketch.update, cols=part_cols))
        self.stats.events += len(events)
        self._collect(part, final=False)

    def _count(self, part: _Partition, key: Key, at_ms: int, slot: int) -> None:
        sketch = self._sketch(key[0])
        for k, spec in enumerate(self.specs):
            pane = (at_ms // spec.pane_ms) * spec.pane_ms
            part.windows.update(k, pane, key, partial(sketch.count, slot=slot, n=1))

    def _late_message(self, ts_ms: int, seen_ms: int) -> str:
        lateness = self.config.metrics.allowed_lateness
        return (
            f"expected an event time within the allowed lateness ({lateness} ms) of the largest "
            f"event time seen ({seen_ms}); got {ts_ms}, {seen_ms - ts_ms} ms behind, after its window closed"
        )

    # -- evaluate -> sink / alerts -------------------------------------------------------------

    def _collect(self, part: _Partition, *, final: bool) -> None:
        partition = next(p for p, v in self._partitions.items() if v is part)
        for closed in part.windows.close(final=final):
            k = self.specs.index(closed.spec)
            self._pending[(k, closed.start, closed.key)][partition] = closed.state

    def _emit(self, *, final: bool) -> list[WindowResult]:
        if not self._pending:
            return []
        ready_until = None if final else self._ready_until()
        out: list[WindowResult] = []
        for pending_key in sorted(self._pending, key=lambda t: (t[1], t[0], t[2])):
            k, start, key = pending_key
            spec = self.specs[k]
            if ready_until is not None and start + spec.size_ms > ready_until:
                continue
            parts = self._pending.pop(pending_key)
            earlier = self._emitted.get(pending_key)
            if earlier is not None:  # a rewrite: merge with the partitions already written
                parts = {**earlier, **parts}
            self._emitted[pending_key] = parts
            sketch = self._sketch(key[0])
            state: ModelState | None = None
            for p in sorted(parts):  # a fixed merge order: results do not depend on timing
                state = parts[p] if state is None else sketch.merge(state, parts[p])
            assert state is not None
            out.append(self._evaluate(ClosedWindow(spec, start, start + spec.size_ms, key, state)))
        self._forget_emitted(ready_until)
        rows: list[MetricRow | SketchRow] = []
        for result in out:
            rows.extend(result.metrics)
            rows.extend(result.sketches)
        if rows:
            self.sink.write(rows)
            self.stats.rows += len(rows)
        self.stats.windows += len(out)
        for result in out:
            for callback in self.on_window:
                callback(result)
        return out

    def _ready_until(self) -> int:
        """Windows ending at or before this time have every (non-idle) partition's data."""
        waiting = (self._expected or set(self._partitions)) - self._idle
        marks = [self._partition(p).windows.watermark for p in waiting]
        if not marks:  # every partition idle: go by the ones that have data
            marks = [p.windows.watermark for p in self._partitions.values()]
        return min(marks)

    def _forget_emitted(self, ready_until: int | None) -> None:
        if ready_until is None:
            self._emitted.clear()
            return
        # Keep written windows until even the idle partitions have passed them, or for at most
        # one more window length: a partition idle for longer than that starts a fresh row set.
        horizon = min([ready_until, *(self._partition(p).windows.watermark for p in self._idle)])
        for key in [k for k in self._emitted if k[1] + 2 * self.specs[k[0]].size_ms <= horizon]:
            del self._emitted[key]

    def _evaluate(self, closed: ClosedWindow[Key, ModelState]) -> WindowResult:
        model, version = closed.key
        sketch = self._sketch(model)
        state = closed.state
        n = int(state.counters[0])
        now = self.computed_at()
        common = {
            "window_start": closed.start,
            "window_end": closed.end,
            "window": closed.spec.name,
            "model": model,
            "model_version": version,
            "segment": "",
            "run_id": self.run_id,
            "computed_at": now,
        }
        metrics = [
            MetricRow(feature=r.feature, metric=r.metric, value=r.value, n=n, **common)  # type: ignore[arg-type]
            for r in sketch.evaluate(state, closed.spec.size_ms)
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
        return WindowResult(
            closed.spec, closed.start, closed.end, model, version, metrics, sketches
        )

    # -- parts ---------------------------------------------------------------------------------

    def _partition(self, partition: int) -> _Partition:
        part = self._partitions.get(partition)
        if part is None:
            part = _Partition(
                EventTimeWindows(
                    self.specs,
                    allowed_lateness_ms=self.config.metrics.allowed_lateness,
                    empty=self._empty,
                    merge=self._merge,
                )
            )
            self._partitions[partition] = part
        return part

    def _sketch(self, model: str) -> ModelSketch:
        sketch = self._sketches.get(model)
        if sketch is None:
            profile = self.profiles.get(model)
            if profile is None and model:
                log.warning("model.no_reference", model=model, hint="drifthouse profile builds one")
            sketch = ModelSketch(model, profile, self.config.metrics, self.config.models.get(model))
            self._sketches[model] = sketch
        return sketch

    def sketch_for(self, model: str) -> ModelSketch:
        """The model's sketch layout (and its baselines, for rules)."""
        return self._sketch(model)

    def _empty(self, key: Key) -> ModelState:
        return self._sketch(key[0]).empty()

    def _merge(self, key: Key, a: ModelState, b: ModelState) -> ModelState:
        return self._sketch(key[0]).merge(a, b)

    def open_windows(self) -> int:
        return sum(p.windows.open_windows() for p in self._partitions.values())

    def watermarks(self) -> dict[int, int]:
        return {p: part.windows.watermark for p, part in self._partitions.items()}


def _runs(pane: np.ndarray) -> Iterable[tuple[int, np.ndarray | None]]:
    """``(pane, indices)`` groups of a model's events; ``None`` when all share one pane."""
    if pane.size == 0:
        return
    first = int(pane[0])
    if np.all(pane == first):
        yield first, None
        return
    order = np.argsort(pane, kind="stable")
    sorted_panes = pane[order]
    cuts = np.flatnonzero(np.diff(sorted_panes)) + 1
    for chunk in np.split(order, cuts):
        yield int(pane[chunk[0]]), chunk
