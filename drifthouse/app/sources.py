"""The source partitions' stages of a run: a micro-batch in, each partition's output out.

:class:`SourceStages` holds one :class:`~drifthouse.stream.stage.PartitionStage` per source
partition (built by :class:`~drifthouse.app.assembly.RunParts`) and turns a micro-batch into
one :class:`PartitionOutput` per partition: its closed partial windows, the sampled prediction
log, what the label join needs and the watermark. The in-process
:class:`~drifthouse.app.pipeline.Pipeline` hands these straight to its merge stage; the live
worker (:class:`~drifthouse.app.source_side.SourceSide`) publishes them to the partials topic
for the merger.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import groupby
from operator import attrgetter

from drifthouse.app.assembly import RunParts
from drifthouse.rows import PredictionRow
from drifthouse.sinks.predictions import PredictionLog
from drifthouse.stream.dead_letters import DeadLetters
from drifthouse.stream.labels import PredictionRecord
from drifthouse.stream.sources import Message
from drifthouse.stream.stage import Checkpoint, Partial, PartitionStage, StageStats

__all__ = ["PartitionOutput", "SourceStages"]

_PARTITION = attrgetter("partition")
_COUNTED = ("messages", "events", "invalid", "late")


@dataclass
class PartitionOutput:
    """What one source partition's stage made of its part of a micro-batch, in the order the
    merge stage takes it: partials, then the label join's records, then the watermark."""

    partition: int
    partials: list[Partial]
    prediction_rows: list[PredictionRow]
    record_offsets: list[int]
    records: list[PredictionRecord]
    watermark: int


@dataclass
class SourceStages:
    """One stage per source partition, opened on first use or from a checkpoint.

    ``skip_seen`` leaves out messages before a stage's position (after a seek, a live consumer
    may hand some out again); :attr:`stats` keeps counting across stages dropped.
    """

    parts: RunParts
    dead_letters: DeadLetters
    now_ms: Callable[[], int] | None = None
    prediction_log: PredictionLog | None = None
    collect_labels: bool = True
    skip_seen: bool = False
    #: A partition not opened yet gets a fresh stage on first use (else it is an error).
    open_on_use: bool = True
    stages: dict[int, PartitionStage] = field(default_factory=dict)
    #: Totals of every stage so far, those dropped included.
    stats: StageStats = field(default_factory=StageStats)

    def open(self, partition: int, checkpoint: Checkpoint | None = None) -> PartitionStage:
        """A fresh stage for ``partition``, resumed from its checkpoint."""
        stage = self.parts.partition_stage(
            partition,
            self.dead_letters,
            now_ms=self.now_ms,
            prediction_log=self.prediction_log,
            collect_labels=self.collect_labels,
            checkpoint=checkpoint,
        )
        self.stages[partition] = stage
        return stage

    def stage(self, partition: int) -> PartitionStage:
        """The partition's stage (opened on first use)."""
        stage = self.stages.get(partition)
        return stage if stage is not None else self.open(partition)

    def drop(self, partitions: Sequence[int]) -> None:
        for p in partitions:
            self.stages.pop(p, None)

    def process(self, messages: Sequence[Message]) -> Iterator[PartitionOutput]:
        """Run a micro-batch (any mix of partitions, each in its own order), partition by
        partition in ascending order; each output is made when it is asked for."""
        by_partition: dict[int, list[Message]] = {}
        # A fetch holds each partition's messages in one run: group run by run.
        for partition, run in groupby(messages, key=_PARTITION):
            by_partition.setdefault(partition, []).extend(run)
        for partition in sorted(by_partition):
            stage = self.stage(partition) if self.open_on_use else self.stages[partition]
            msgs = by_partition[partition]
            if self.skip_seen and msgs[0].offset < stage.next_offset:
                msgs = [m for m in msgs if m.offset >= stage.next_offset]
                if not msgs:
                    continue
            before = [getattr(stage.stats, name) for name in _COUNTED]
            partials = stage.process(msgs)
            rows = stage.take_prediction_rows()
            offsets, records = stage.take_label_records()
            for name, was in zip(_COUNTED, before, strict=True):
                setattr(
                    self.stats, name, getattr(self.stats, name) + getattr(stage.stats, name) - was
                )
            yield PartitionOutput(partition, partials, rows, offsets, records, stage.watermark)

    def checkpoints(self) -> dict[int, Checkpoint]:
        return {p: s.checkpoint() for p, s in self.stages.items()}
