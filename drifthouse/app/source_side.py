"""The worker's source side: its source partitions' stages, and what they publish (no faust).

Each micro-batch of the predictions topic goes through :class:`~drifthouse.app.sources.SourceStages`;
every partition's output becomes messages of the partials topic (see
:mod:`drifthouse.kafka.partials`), in the order the merger takes them: closed partial windows,
sampled prediction-log rows, the label join's records, then the partition's watermark. Each goes
to the merge shard of its model (:func:`~drifthouse.kafka.shards.shard_of`), the watermark to
every shard, after what it covers.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import msgspec

from drifthouse.app.assembly import RunParts
from drifthouse.app.sources import SourceStages
from drifthouse.kafka.partials import (
    Outgoing,
    encode_partial,
    encode_predictions,
    encode_records,
    encode_watermark,
)
from drifthouse.kafka.shards import shard_of
from drifthouse.rows import PredictionRow
from drifthouse.sinks.predictions import PredictionLog
from drifthouse.stream.dead_letters import DeadLetters
from drifthouse.stream.labels import PredictionRecord
from drifthouse.stream.sources import Message
from drifthouse.stream.stage import Checkpoint, PartitionStage, StageStats

__all__ = ["SourceSeconds", "SourceSide"]


@dataclass
class SourceSeconds:
    """Where the source loop's time went (wall seconds), for the health page and the logs."""

    fetching: float = 0.0
    processing: float = 0.0
    publishing: float = 0.0
    committing: float = 0.0

    def rounded(self, digits: int) -> dict[str, float]:
        return {k: round(v, digits) for k, v in vars(self).items()}


class SourceSide:
    """Partition stages of the source partitions this worker holds (no faust in here)."""

    def __init__(
        self,
        parts: RunParts,
        dead_letters: DeadLetters,
        *,
        now_ms: Callable[[], int] | None = None,
        prediction_log: PredictionLog | None = None,
    ) -> None:
        self.sources = SourceStages(
            parts,
            dead_letters,
            now_ms=now_ms,
            prediction_log=prediction_log,
            collect_labels=True,
            # After a seek, messages before a stage's position may come again: skip them.
            skip_seen=True,
            open_on_use=False,
        )
        self.specs = parts.specs
        #: Merge shards: partitions of the partials topic.
        self.shards = parts.config.kafka.partials_partitions
        #: When each partition last had events (monotonic seconds), for idleness.
        self.last_event_at: dict[int, float] = {}
        self.seconds = SourceSeconds()
        #: Per partition held so far, the messages read again below where it had been read
        #: before (by this worker, or by the one whose checkpoint it resumed from).
        self.reread: dict[int, int] = {}
        # Per partition being re-read, the offset where first reads start again.
        self._behind: dict[int, int] = {}
        #: Per partition, how many times the group took it from this worker.
        self.revocations: dict[int, int] = {}
        # Per partition this worker held, how far it had read.
        self._read_to: dict[int, int] = {}

    @property
    def stages(self) -> dict[int, PartitionStage]:
        return self.sources.stages

    @property
    def stats(self) -> StageStats:
        return self.sources.stats

    def open(self, partition: int, checkpoint: Checkpoint | None) -> PartitionStage:
        """A fresh stage for a newly assigned partition, resumed from its checkpoint."""
        stage = self.sources.open(partition, checkpoint)
        self.last_event_at[partition] = time.monotonic()
        self.reread.setdefault(partition, 0)
        read_to = checkpoint.read_to if checkpoint is not None else None
        behind = max(read_to or 0, self._read_to.get(partition, 0))
        if behind > stage.next_offset:
            self._behind[partition] = behind
        return stage

    def keep(self, partition: int, stage: PartitionStage) -> None:
        """Hold ``stage`` again for ``partition`` (parked by :meth:`park`): it resumes where it
        stopped, and nothing is read again."""
        self.sources.stages[partition] = stage
        self.last_event_at[partition] = time.monotonic()
        self.reread.setdefault(partition, 0)

    def park(self, partitions: Iterable[int] | None = None) -> dict[int, PartitionStage]:
        """Take the stages of ``partitions`` out (``None``: every stage; the partitions were
        revoked), to :meth:`keep` or drop once the group assigns partitions again."""
        wanted = self.stages if partitions is None else set(partitions)
        stages = {p: s for p, s in self.stages.items() if p in wanted}
        self.drop(list(stages))
        return stages

    def drop(self, partitions: Sequence[int]) -> None:
        for p in partitions:
            stage = self.stages.get(p)
            if stage is not None:
                self._read_to[p] = max(self._read_to.get(p, 0), stage.next_offset)
            self.last_event_at.pop(p, None)
            self._behind.pop(p, None)
        self.sources.drop(partitions)

    def process(self, messages: Sequence[Message]) -> list[Outgoing]:
        """Run a batch (partitions already opened); return the messages to publish, in order."""
        if self._behind:
            self._count_reread(messages)
        out: list[Outgoing] = []
        shards = self.shards
        for part in self.sources.process(messages):
            for closed in part.partials:
                name = self.specs[closed.spec_index].name
                model = closed.key[0]
                out.append(
                    Outgoing(shard_of(model, shards), model.encode(), encode_partial(closed, name))
                )
            for shard, rows in self._rows_by_shard(part.prediction_rows):
                out.append(Outgoing(shard, b"", encode_predictions(rows)))
            for shard, (offsets, records) in self._records_by_shard(
                part.record_offsets, part.records
            ):
                out.append(Outgoing(shard, b"", encode_records(part.partition, offsets, records)))
            mark = encode_watermark(part.partition, part.watermark)
            out += [Outgoing(shard, b"", mark) for shard in range(shards)]
            self.last_event_at[part.partition] = time.monotonic()
        if self._behind:
            # Past where it had been read: what comes next is read for the first time.
            stages = self.stages
            self._behind = {
                p: until
                for p, until in self._behind.items()
                if p in stages and stages[p].next_offset < until
            }
        return out

    def _rows_by_shard(self, rows: list[PredictionRow]) -> list[tuple[int, list[PredictionRow]]]:
        if not rows:
            return []
        if self.shards == 1:
            return [(0, rows)]
        split: dict[int, list[PredictionRow]] = {}
        for row in rows:
            split.setdefault(shard_of(row.model, self.shards), []).append(row)
        return sorted(split.items())

    def _records_by_shard(
        self, offsets: list[int], records: list[PredictionRecord]
    ) -> list[tuple[int, tuple[list[int], list[PredictionRecord]]]]:
        """The label join's records (in offset order) split by their model's shard, each
        shard's in the same order."""
        if not records:
            return []
        if self.shards == 1:
            return [(0, (offsets, records))]
        split: dict[int, tuple[list[int], list[PredictionRecord]]] = {}
        for offset, record in zip(offsets, records, strict=True):
            to = split.setdefault(shard_of(record.model, self.shards), ([], []))
            to[0].append(offset)
            to[1].append(record)
        return sorted(split.items())

    def _count_reread(self, messages: Sequence[Message]) -> None:
        """Count the messages read again (only while a partition is behind where it had been
        read before, so that a caught-up worker pays nothing per message)."""
        behind, stages = self._behind, self.stages
        for m in messages:
            until = behind.get(m.partition)
            stage = stages.get(m.partition)
            if until is not None and stage is not None and stage.next_offset <= m.offset < until:
                self.reread[m.partition] += 1

    def checkpoints(self) -> dict[int, Checkpoint]:
        """Each partition's checkpoint, with where this worker has read it to."""
        return {
            p: msgspec.structs.replace(cp, read_to=self.stages[p].next_offset)
            for p, cp in self.sources.checkpoints().items()
        }
