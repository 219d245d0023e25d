"""A whole run in one process: source -> decode -> window -> sketch -> evaluate -> sink / alerts.

:class:`Pipeline` runs the whole flow in one process: the source partitions' stages
(:class:`~drifthouse.app.sources.SourceStages`: decode -> window -> sketch) feeding one
:class:`~drifthouse.stream.merge.MergeStage` (evaluate -> sink / alerts), both built by
:class:`~drifthouse.app.assembly.RunParts`. Files, Kafka replays and the demo use it
directly; the live worker runs the same two stages with Kafka between them so that many
processes share the partitions.

Nothing here reads the wall clock except ``computed_at`` and the guard against far-future
timestamps, so the same events in the same per-partition order give the same rows to the
last digit, however they are cut into micro-batches and interleaved across partitions.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from drifthouse.app.assembly import RunParts
from drifthouse.app.sources import SourceStages
from drifthouse.config import Config
from drifthouse.detectors.model_sketch import ModelSketch
from drifthouse.detectors.reference import Profile
from drifthouse.events import EventDecoder, LabelEvent
from drifthouse.kafka.partials import side_decoders
from drifthouse.sinks.base import Sink
from drifthouse.sinks.predictions import PredictionLog
from drifthouse.stream.dead_letters import DeadLetters
from drifthouse.stream.labels import PredictionRecord
from drifthouse.stream.merge import WindowResult
from drifthouse.stream.side_inputs import HeldSide
from drifthouse.stream.sources import Message
from drifthouse.stream.stage import Checkpoint, PartitionStage, StageStats
from drifthouse.stream.windows import NO_TIME as _NO_TIME

__all__ = ["Pipeline", "PipelineStats", "WindowResult"]

PipelineStats = StageStats


class Pipeline:
    """Decode, window, sketch, evaluate and write micro-batches, all in this process.

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
    prediction_log:
        Writes the sampled prediction log (table ``predictions``) when given.
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
        prediction_log: PredictionLog | None = None,
    ) -> None:
        self.config = config
        self.dead_letters = dead_letters
        parts = RunParts.of(config, profiles)
        self.specs = parts.specs
        self.sketches = parts.sketches
        self.merge = parts.merge_stage(
            sink, run_id=run_id, on_window=on_window, computed_at=computed_at
        )
        self.sources = SourceStages(
            parts,
            dead_letters,
            now_ms=now_ms,
            prediction_log=prediction_log,
            collect_labels=self.merge.labels is not None,
        )
        self._stages = self.sources.stages
        # Labels and metric events taken (they are not events of a partition stage).
        self.stats_side = StageStats()
        decoders = side_decoders(config.kafka)
        self._labels, self._metric_events = decoders["labels"], decoders["metrics"]
        # A bounded run's side inputs, released as the predictions' event time passes them.
        self._held_labels: HeldSide[LabelEvent] | None = None
        self._held_metrics: HeldSide[Message] | None = None
        self._side_clock = _NO_TIME
        #: Label messages taken, and those refused (dead-lettered).
        self.labels_read = 0
        self.labels_refused = 0
        #: With held labels: how far (ms) a prediction came behind the latest one before it.
        #: Past the label horizon, labels released by the later predictions' time expire before
        #: theirs come (an unsorted file; docs/cli.md).
        self.max_disorder_ms = 0

    @property
    def sink(self) -> Sink:
        return self.merge.sink

    @property
    def stats(self) -> StageStats:
        """Totals over every partition and the merge stage."""
        total = StageStats()
        for stage in self._stages.values():
            total.add(stage.stats)
        total.add(self.stats_side)
        total.windows, total.rows = self.merge.stats.windows, self.merge.stats.rows
        return total

    def stage(self, partition: int) -> PartitionStage:
        """The partition's stage (created on first use)."""
        return self.sources.stage(partition)

    def expect_partitions(self, partitions: Iterable[int]) -> None:
        """Windows wait for these partitions (a worker's assignment, a replayed topic's partitions).

        Without it, the partitions seen so far count.
        """
        parts = list(partitions)
        self.merge.expect(parts)
        for p in parts:
            self.stage(p)

    def mark_idle(self, partition: int, idle: bool = True) -> None:
        """See :meth:`MergeStage.mark_idle`."""
        self.merge.mark_idle(partition, idle)

    def process(self, messages: Sequence[Message]) -> list[WindowResult]:
        """Take one micro-batch (any mix of partitions, each in its own order); return closed windows."""
        for out in self.sources.process(messages):
            self.merge.add(out.partials)
            self._add_records(out.partition, out.record_offsets, out.records)
            self.merge.watermark(out.partition, out.watermark)
            if out.prediction_rows:
                self.merge.sink.write(out.prediction_rows)
        seen = self.max_event_time()
        if seen is not None:  # no prediction yet (refused lines, all before --from): hold on
            self._release(seen)
        return self.merge.emit()

    def hold(
        self, *, labels: Sequence[Message] = (), metric_events: Sequence[Message] = ()
    ) -> None:
        """A bounded run's side inputs, read whole: each goes in once the predictions' event
        time has passed its own, as a live worker would have taken it (a label right before
        the first prediction past it; see :mod:`drifthouse.stream.side_inputs`); what is left
        goes in at :meth:`finish`. Labels are decoded (and refused ones dead-lettered) here."""
        if labels:
            events = self._decode_at(self._labels, labels)
            self.labels_read += len(labels)
            self.labels_refused += len(labels) - len(events)
            self._held_labels = HeldSide.of((labels[i].partition, e.ts_ms, e) for i, e in events)
        if metric_events:
            self._held_metrics = HeldSide.of_messages(metric_events)

    def _add_records(
        self, partition: int, offsets: list[int], records: list[PredictionRecord]
    ) -> None:
        """The label join's predictions, with held labels interleaved by event time."""
        held, stage = self._held_labels, self.merge.labels
        if held is None or stage is None or not records:
            self.merge.add_label_records(partition, offsets, records)
            return
        keep = self.merge.fresh(f"records:{partition}", offsets)
        if len(keep) < len(records):
            records = [records[i] for i in keep]
        steps: list[tuple[Sequence[PredictionRecord], Sequence[LabelEvent]]] = []
        clock, due, start = self._side_clock, held.next_time(), 0
        for i, r in enumerate(records):
            if r.ts_ms > clock:
                clock = r.ts_ms
                if due is not None and due < clock:
                    steps.append((records[start:i], held.release(clock)))
                    start, due = i, held.next_time()
            elif clock - r.ts_ms > self.max_disorder_ms:
                self.max_disorder_ms = clock - r.ts_ms
        steps.append((records[start:], ()))
        self._side_clock = clock
        stage.add_interleaved(steps)

    def _release(self, before: int | None) -> None:
        """Held side inputs stamped before ``before`` (all when ``None``)."""
        if before is not None:
            self._side_clock = max(self._side_clock, before)
        if self._held_labels is not None:
            self.merge.add_labels(self._held_labels.release(before))
        if self._held_metrics is not None:
            self.add_metric_events(self._held_metrics.release(before))

    def add_labels(self, messages: Sequence[Message]) -> None:
        """Messages of the labels topic, in arrival order; refused ones are dead-lettered.

        Their windows are written by the next :meth:`process` or :meth:`finish`.
        """
        events = self._decode(self._labels, messages)
        self.labels_read += len(messages)
        self.labels_refused += len(messages) - len(events)
        self.merge.add_labels(events)

    def add_metric_events(self, messages: Sequence[Message]) -> None:
        """Messages of the metrics topic (each partition in its order); refused ones are
        dead-lettered."""
        by_partition: dict[int, list[Message]] = defaultdict(list)
        for m in messages:
            by_partition[m.partition].append(m)
        for partition in sorted(by_partition):
            events = self._decode(self._metric_events, by_partition[partition])
            self.merge.add_metric_events(events, partition)

    def _decode(self, decoder: EventDecoder[Any], messages: Sequence[Message]) -> list[Any]:
        return [e for _, e in self._decode_at(decoder, messages)]

    def _decode_at(
        self, decoder: EventDecoder[Any], messages: Sequence[Message]
    ) -> list[tuple[int, Any]]:
        """``(position, event)`` of the messages that decode; the others are dead-lettered."""
        ok, bad = decoder.decode_batch([m.value for m in messages], now_ms=None)
        for pos, err in bad:
            self.dead_letters.send(messages[pos], err)
            self.stats_side.invalid += 1
        self.stats_side.messages += len(messages)
        return ok

    def finish(self) -> list[WindowResult]:
        """End of a bounded input: take what side inputs are held, close and write every open
        window."""
        self._release(None)
        for stage in self._stages.values():
            self.merge.add(stage.finish())
        return self.merge.emit(final=True)

    def checkpoint(self, partition: int) -> Checkpoint:
        """Where a restart resumes this partition so that every unwritten window is rebuilt."""
        return self.stage(partition).checkpoint(self.merge.unwritten(partition))

    def sketch_for(self, model: str) -> ModelSketch:
        """The model's sketch layout (and its baselines, for rules)."""
        return self.sketches(model)

    def max_event_time(self) -> int | None:
        """The largest event time any partition has seen (``None`` before the first event)."""
        seen = [s.windows.max_ts for s in self._stages.values() if s.windows.max_ts != _NO_TIME]
        return max(seen) if seen else None

    def open_windows(self) -> int:
        return sum(s.windows.open_windows() for s in self._stages.values())

    def watermarks(self) -> dict[int, int]:
        return {p: s.watermark for p, s in self._stages.items()}
