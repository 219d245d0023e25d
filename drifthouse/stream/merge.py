"""evaluate -> sink / alerts: partials of every partition become one window's rows.

The :class:`MergeStage` collects :class:`~drifthouse.stream.stage.Partial` windows from the
partitions it expects, and once every (non-idle) partition's watermark has passed a window's
end it merges the partials **in partition order**, evaluates the result and writes ``metrics``
and ``sketches`` rows (:mod:`drifthouse.stream.results`). A message's partition and its order
there are fixed by Kafka, so the merged numbers do not depend on which worker read what, or when.

It also holds what needs every partition at once: the label join and label windows (fed the
partitions' on-time predictions and the labels topic), the windows of metric events and the
change detectors, written once the same watermark has passed them; :meth:`MergeStage.snapshot`
and :meth:`MergeStage.restore_snapshot` carry them over a restart.

A model on an automatic reference has its windows held until the watermark passes the end of
its first span of traffic; the reference is then built from the span's events (see
:mod:`drifthouse.profiles.auto`), stored, and every held window evaluated on it. A model on a
trailing baseline is compared with its stored earlier windows (:mod:`drifthouse.stream.trailing`).
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from drifthouse.config import Config
from drifthouse.detectors.base import Result
from drifthouse.detectors.change import ChangeDetectors
from drifthouse.detectors.model_sketch import ModelState
from drifthouse.detectors.reference import Profile
from drifthouse.events import LabelEvent, MetricEvent
from drifthouse.logs import get_logger
from drifthouse.profiles.auto import AutoReference, source_of
from drifthouse.profiles.sketches import Sketches
from drifthouse.rows import MetricRow, ReferenceRow, Row, SketchRow
from drifthouse.sinks.base import Sink
from drifthouse.sinks.references import reference_rows
from drifthouse.sinks.window_states import WindowStates, states_of
from drifthouse.stream.compare import compare_windows
from drifthouse.stream.derived import DerivedWindows
from drifthouse.stream.frontier import take_fresh
from drifthouse.stream.labels import LabelStage, PredictionRecord
from drifthouse.stream.merge_references import due_references
from drifthouse.stream.merge_snapshot import MergeSnapshot, decode_snapshot, encode_snapshot
from drifthouse.stream.metric_events import MetricEventWindows
from drifthouse.stream.results import WindowResult, change_results, evaluate_window, metric_rows
from drifthouse.stream.shadow import ShadowPairs
from drifthouse.stream.stage import Key, Partial, StageStats
from drifthouse.stream.trailing import Baseline, TrailingBaselines
from drifthouse.stream.windows import NO_TIME, WindowSpec

__all__ = ["MergeStage", "WindowKey", "WindowResult"]

log = get_logger("merge")

WindowKey = tuple[int, int, Key]  # (spec index, start, (model, version))


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
    labels: LabelStage | None = None
    metric_events: MetricEventWindows | None = None
    changes: ChangeDetectors | None = None
    #: Where the base-window states of derived windows are read back (default: the sink's store).
    states: WindowStates | None = None
    #: Shadow models' predictions paired with their primaries' (``models.*.shadow_of``).
    shadows: ShadowPairs | None = None

    @classmethod
    def from_config(
        cls,
        config: Config,
        profiles: Mapping[str, Profile],
        sketches: Sketches,
        sink: Sink,
        *,
        run_id: str = "live",
        on_window: Sequence[Callable[[WindowResult], None]] = (),
        computed_at: Callable[[], int] | None = None,
    ) -> MergeStage:
        """The merge stage of a deployment: its windows, label join, metric-event windows and
        change detectors as the config says. ``on_window`` (the alert stage) is known here,
        at construction: its callbacks are copied."""
        specs = [WindowSpec.from_config(w) for w in config.windows]
        cd = config.metrics.change_detection.detector_config()
        changes = ChangeDetectors(cd) if cd is not None else None
        return cls(
            specs,
            sketches,
            sink,
            run_id=run_id,
            on_window=list(on_window),
            computed_at=computed_at or (lambda: int(time.time() * 1000)),
            labels=LabelStage.from_config(config, profiles),
            metric_events=MetricEventWindows(specs, horizon_ms=config.metrics.label_horizon),
            changes=changes,
            shadows=ShadowPairs.from_config(config),
        )

    def __post_init__(self) -> None:
        # Per input ("records:3", "labels:0", ...), the last offset taken: a merge resumed from
        # a snapshot skips what a re-read partition sends again.
        self._frontier: dict[str, int] = {}
        self._expected: set[int] = set()
        self._idle: set[int] = set()
        self._watermarks: dict[int, int] = {}
        self._pending: dict[WindowKey, dict[int, Partial]] = defaultdict(dict)
        # Windows already written, kept a while: a partition that was idle and wakes up with
        # events for them leads to a rewrite holding every partition, never a partial row.
        self._emitted: dict[WindowKey, dict[int, Partial]] = {}
        self.written_before: set[WindowKey] = set()  # by an earlier merger: rewrites too
        # Windows whose start + 2 sizes is at or before this are final: written and forgotten.
        self._final_horizon = NO_TIME
        self.dropped_partials = 0
        # Windows built from stored base windows (docs/configuration.md "windows").
        self.derived = DerivedWindows(self.specs, self.states or states_of(self.sink))
        self._state_rows: list[Row] = []
        # Models compared with their earlier windows (docs/statistics.md "Trailing baselines").
        self.trailing = TrailingBaselines(
            self.specs, self.sketches, self.derived.states, self._flush_states, self.run_id
        )
        # The first window kept in the stream: automatic references are built from it.
        self._first = next(i for i, s in enumerate(self.specs) if not s.derived)
        if self.labels is not None:  # the shadows see what the label join sees
            self.labels.shadows = self.shadows

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
        self._watermarks[partition] = max(self._watermarks.get(partition, NO_TIME), watermark)

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

    # -- labels and metric events ----------------------------------------------------------------

    def add_label_records(
        self, partition: int, offsets: Sequence[int], records: Sequence[PredictionRecord]
    ) -> None:
        """A partition's on-time predictions (with their offsets, in order) for the label join;
        offsets already taken are skipped."""
        if self.labels is None or not records:
            return
        keep = self.fresh(f"records:{partition}", offsets)
        if len(keep) < len(records):
            records = [records[i] for i in keep]
        if records:
            self.labels.add_records(records)

    def fresh(self, stream: str, offsets: Sequence[int]) -> list[int]:
        """Positions in ``offsets`` beyond what ``stream`` has taken; taken now (see
        :func:`~drifthouse.stream.frontier.take_fresh`)."""
        return take_fresh(self._frontier, stream, offsets)

    def add_labels(self, labels: Sequence[LabelEvent]) -> None:
        """Decoded label events, in arrival order."""
        if self.labels is not None and labels:
            self.labels.add_labels(labels)

    def add_metric_events(self, events: Sequence[MetricEvent], partition: int = 0) -> None:
        """Decoded metric events of one partition of their topic, in its order."""
        if self.metric_events is not None and events:
            self.metric_events.add(events, partition)

    # -- snapshot ------------------------------------------------------------------------------

    def snapshot(self) -> bytes:
        """The label join and windows, metric-event windows and change detectors, with the
        label frontier: what a restarted merge needs beside the partials it re-reads."""
        return encode_snapshot(
            MergeSnapshot(
                labels=self.labels.to_bytes() if self.labels is not None else None,
                metric_events=self.metric_events.to_bytes()
                if self.metric_events is not None
                else None,
                changes=self.changes.to_bytes() if self.changes is not None else None,
                derived=self.derived.to_bytes() if self.derived else None,
                frontier=sorted(self._frontier.items()),
                shadows=self.shadows.to_bytes() if self.shadows is not None else None,
                auto=[
                    (a.model, a.start, a.end, a.profile.to_json() if a.profile else None)
                    for a in sorted(self.sketches.auto_references.values(), key=lambda a: a.model)
                ],
            )
        )

    def restore_snapshot(self, data: bytes) -> None:
        """Resume from :meth:`snapshot` (before anything is added)."""
        snap = decode_snapshot(data)
        if self.labels is not None and snap.labels is not None:
            self.labels.restore(snap.labels)
        if self.metric_events is not None and snap.metric_events is not None:
            self.metric_events.restore(snap.metric_events)
        if self.changes is not None and snap.changes is not None:
            self.changes = ChangeDetectors.from_bytes(snap.changes)
        if snap.derived is not None and self.derived:
            self.derived.restore(snap.derived)
        self._frontier = dict(snap.frontier)
        if self.shadows is not None and snap.shadows is not None:
            self.shadows.restore(snap.shadows)
        for model, start, end, profile in snap.auto or []:
            self._set_auto(
                AutoReference(
                    model, start, end, Profile.from_json(profile) if profile is not None else None
                )
            )

    def auto_references(self) -> dict[str, AutoReference]:
        """The automatic references built so far, by model."""
        return dict(self.sketches.auto_references)

    def _set_auto(self, ref: AutoReference) -> None:
        # Kept with the sketches, which outlive this stage across rebalances in a worker: a
        # stage made after one must know the span of a reference those sketches already use.
        self.sketches.auto_references[ref.model] = ref
        self.sketches.set_reference(ref.model, ref.profile)

    def _build_references(self, ready: int | None) -> list[MetricRow | SketchRow | ReferenceRow]:
        """Build the automatic references whose span the watermark has passed (all of them
        when ``ready`` is ``None``); return their ``references`` and reference ``sketches`` rows."""
        rows: list[MetricRow | SketchRow | ReferenceRow] = []
        for ref in due_references(self._pending, self.specs, self._first, self.sketches, ready):
            self._set_auto(ref)
            if ref.profile is not None:
                reference, sketches = reference_rows(ref.profile, source=source_of(ref))
                rows += [reference, *sketches]
        return rows

    # -- emit ----------------------------------------------------------------------------------

    def ready_until(self) -> int:
        """Windows ending at or before this time have every (non-idle) partition's data."""
        waiting = (self._expected or set(self._watermarks)) - self._idle
        marks = [self._watermarks.get(p, NO_TIME) for p in waiting]
        if not marks:  # every partition idle: go by the ones that have data
            marks = [w for w in self._watermarks.values() if w != NO_TIME] or [NO_TIME]
        return min(marks)

    def emit(self, *, final: bool = False, quiet: bool = False) -> list[WindowResult]:
        """Write every window that is complete (all of them when ``final``); return them.

        ``quiet``: the inputs have been silent for a while, so label windows whose late labels
        are waiting for the spacing between rewrites are written now.
        """
        ready = None if final else self.ready_until()
        rows: list[Row] = list(self._build_references(ready)) if self._pending else []
        out = self._emit_predictions(ready) if self._pending else []
        for result in out:
            rows.extend(result.rows())
        rows += self._state_rows
        self._state_rows = []
        later: list[WindowResult] = []
        if self.derived:  # written and flushed first: the base states just closed are read back
            later, written = self.derived.emit(
                ready, rows, sink=self.sink, sketches=self.sketches, changes=self.changes,
                run_id=self.run_id, computed_at=self.computed_at,
                baselines=self.trailing.baseline, labels=self.labels,
            )  # fmt: skip
            self.stats.rows += written
        later += self._release_changes(ready)
        later += self._emit_labels(ready, force=quiet)
        later += self._emit_metric_events(ready)
        if self.shadows is not None:
            later += self.shadows.flush(ready, run_id=self.run_id, computed_at=self.computed_at())
        for result in later:
            rows.extend(result.rows())
        out += later
        if self.labels is not None:  # what the label join hands on to the late join, if on
            rows += self.labels.take_spill_rows(run_id=self.run_id, computed_at=self.computed_at())
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
        self.derived.raise_incomplete()
        return out

    def _emit_predictions(self, ready: int | None) -> list[WindowResult]:
        out: list[WindowResult] = []
        merged: dict[WindowKey, ModelState] = {}  # for the versions' comparisons
        order = lambda t: (t[1], t[0], t[2])  # noqa: E731
        redo: set[WindowKey] = set()  # written windows whose trailing baseline was rewritten
        waiting: set[str] = set()  # models whose trailing baselines cannot be read now
        for wkey in sorted(self._pending, key=order):
            k, start, key = wkey
            if ready is not None and start + self.specs[k].size_ms > ready:
                continue
            if self.sketches(key[0]).collects_raw or key[0] in waiting:
                continue  # held until the model's automatic reference is built
            read, baseline = self.trailing.read(key[0], start)
            if not read:  # the store is away: the model's windows wait for it, in order
                waiting.add(key[0])
                continue
            parts = self._pending.pop(wkey)
            earlier = self._emitted.get(wkey)
            if earlier is not None:  # a rewrite: merge with the partitions already written
                parts = {**earlier, **parts}
                if self.trailing.stores(k, key[0]):  # a part of later windows' baselines
                    redo.update(self.trailing.dependents(start, key[0], self._emitted))
                    self.derived.touch(key[0], start, self.trailing.settings(key[0]))
            self._emitted[wkey] = parts
            again = earlier is not None or wkey in self.written_before
            self.written_before.discard(wkey)
            redo.discard(wkey)
            out.append(self._write_window(wkey, parts, merged, baseline, rewrite=again))
        for wkey in sorted(redo, key=order):  # (store away: kept as written on the old one)
            read, baseline = self.trailing.read(wkey[2][0], wkey[1])
            if read:
                parts = self._emitted[wkey]
                out.append(self._write_window(wkey, parts, merged, baseline, rewrite=True))
        out += compare_windows(
            out, merged, self._emitted, specs=self.specs, sketches=self.sketches,
            run_id=self.run_id, computed_at=self.computed_at(),
        )  # fmt: skip
        self._forget_emitted(ready)
        return out

    def _write_window(
        self,
        wkey: WindowKey,
        parts: dict[int, Partial],
        merged: dict[WindowKey, ModelState],
        baseline: Baseline | None,
        rewrite: bool = False,
    ) -> WindowResult:
        """One window's result from its partials; its state stored when windows are built
        from it (derived windows, trailing baselines)."""
        k, start, key = wkey
        sketch = self.sketches(key[0])
        state: ModelState | None = None
        for p in sorted(parts):  # a fixed merge order: results do not depend on timing
            state = parts[p].state if state is None else sketch.merge(state, parts[p].state)
        assert state is not None
        state = merged[wkey] = sketch.resolve(state)
        computed_at = self.computed_at()
        self.trailing.note(k, start, key, state)
        result = evaluate_window(
            self.specs[k], start, key, state, self.sketches, changes=self.changes,
            defer_changes=bool(self._idle), run_id=self.run_id, computed_at=computed_at,
            baseline=baseline, rewrite=rewrite,
        )  # fmt: skip
        if self.labels is not None:  # estimated_* kept for the label window's errors
            self.labels.note_estimates(result.metrics)
        stored = self.derived.state_row(
            k, start, key, state, run_id=self.run_id, computed_at=computed_at,
            keep=self.trailing.stores(k, key[0]),
        )  # fmt: skip
        if stored is not None:
            self._state_rows.append(stored)
        return result

    def _flush_states(self) -> None:
        """Make the stored states readable: write those held, flush the sink."""
        if self._state_rows:
            self.sink.write(self._state_rows)
            self.stats.rows += len(self._state_rows)
            self._state_rows = []
        self.sink.flush()

    def _release_changes(self, ready: int | None) -> list[WindowResult]:
        """Change rows of windows written while a partition was idle, once every partition's
        watermark has passed them (no share can come any more), or at the latest one more
        window length after the others' (an idle partition may never come back; at ``final``,
        all of them)."""
        if self.changes is None or not self.changes.deferred():
            return []
        specs = {s.name: s for s in self.specs}
        marks = [self._watermarks.get(p, NO_TIME) for p in self._expected or self._watermarks]
        passed = min(marks, default=NO_TIME) if ready is not None else math.inf
        latest = ready if ready is not None else math.inf
        released = self.changes.release(
            lambda w, t: t + specs[w].size_ms <= passed or t + 2 * specs[w].size_ms <= latest
        )
        return change_results(specs, released, run_id=self.run_id, computed_at=self.computed_at())

    def _emit_labels(self, ready: int | None, *, force: bool = False) -> list[WindowResult]:
        if self.labels is None:
            return []
        out = []
        computed_at = self.computed_at()
        flushed = self.labels.flush_windows(
            ready, run_id=self.run_id, computed_at=computed_at, force=force
        )
        for w, rows in flushed:
            spec = self.specs[w.spec_index]
            if self.changes is not None and not w.rewrite:
                results = [
                    Result(r.feature, r.metric, r.value, None, 0, r.n)
                    for r in rows
                    if r.segment == ""
                ]
                changed = self.changes.update(w.model, w.model_version, spec.name, w.start, results)
                rows += metric_rows(
                    spec, w.start, w.model, w.model_version, changed,
                    run_id=self.run_id, computed_at=computed_at,
                )  # fmt: skip
            out.append(WindowResult(spec, w.start, w.end, w.model, w.model_version, rows, []))
        return out

    def _emit_metric_events(self, ready: int | None) -> list[WindowResult]:
        if self.metric_events is None:
            return []
        out = []
        computed_at = self.computed_at()
        for w in self.metric_events.flush(ready):
            spec = self.specs[w.spec_index]
            results = self.metric_events.sketch.evaluate(w.state)
            rows = metric_rows(
                spec, w.start, w.model, w.model_version, results,
                run_id=self.run_id, computed_at=computed_at,
            )  # fmt: skip
            out.append(WindowResult(spec, w.start, w.end, w.model, w.model_version, rows, []))
        return out

    def _forget_emitted(self, ready: int | None) -> None:
        if ready is None:
            self._emitted.clear()
            return
        # Keep written windows until idle partitions have passed them too, or for at most one
        # more window length; after that they are final (see add()).
        horizon = min([ready, *(self._watermarks.get(p, NO_TIME) for p in self._idle)])
        # Windows held for an automatic reference are not final: a merger re-reading their
        # partials after a restart must take them again.
        held = [s for (_, s, key) in self._pending if self.sketches(key[0]).collects_raw]
        if held:
            horizon = min(horizon, min(held))
        self._final_horizon = max(self._final_horizon, horizon)
        for wkey in [w for w in self._emitted if self.is_final(w[0], w[1])]:
            del self._emitted[wkey]
        self.derived.forget(self.is_final)
