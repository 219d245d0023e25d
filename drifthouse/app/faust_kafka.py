"""The live worker's Kafka through faust: publish partials, commit with metadata, read commits.

:class:`FaustKafka` serves the source loop, the merge loops and the side forwarder of
:mod:`drifthouse.app.worker`; :class:`FaustPartialsLog` is one partition (merge shard) of the
partials topic as its merge loop reads and commits it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from drifthouse.config import KafkaConfig
from drifthouse.kafka import faust_patches
from drifthouse.kafka.membership import SourceMembership
from drifthouse.kafka.spill import SPILL_OVER, CheckpointSpill
from drifthouse.logs import get_logger
from drifthouse.stream.stage import Checkpoint

__all__ = ["FaustKafka", "FaustPartialsLog", "GroupSourceKafka"]

log = get_logger("worker")


class FaustKafka:
    """The worker's Kafka through faust: publish to the partials topic, read and write
    commits (with their metadata) through faust's consumer. It publishes for the source loop
    (:class:`GroupSourceKafka`), and serves the merge loop
    (:class:`~drifthouse.app.merge_loop.PartialsLog`) and the side forwarder."""

    def __init__(self, app: Any, kcfg: KafkaConfig, partials: Any) -> None:
        self.app = app
        self.kcfg = kcfg
        self.partials = partials
        #: Held while publishing and committing (see :class:`SourceLoop`).
        self.lock = asyncio.Lock()
        #: Checkpoints too large for a commit's metadata go to a compacted topic.
        self.spill = CheckpointSpill(kcfg)

    async def send(self, key: bytes, value: bytes, partition: int) -> None:
        await self.partials.send(key=key, value=value, partition=partition)

    async def flush(self) -> None:
        await self.app.producer.flush()

    async def commit_offsets(self, offsets: dict[tuple[str, int], tuple[int, str]]) -> bool:
        """Commit ``{(topic, partition): (offset, metadata)}``; ``False`` if refused."""
        from aiokafka.structs import OffsetAndMetadata, TopicPartition

        loop = asyncio.get_running_loop()
        try:
            # Past 4 KB (a merger with ~200 source partitions) the broker refuses a commit:
            # such checkpoints go to the compacted topic, the commit names the record.
            metadata = {
                tp: m
                if len(m.encode()) <= SPILL_OVER
                else await loop.run_in_executor(None, self.spill.prepare, *tp, m)
                for tp, (_, m) in offsets.items()
            }
            wanted = {
                TopicPartition(t, p): OffsetAndMetadata(o, metadata[t, p])
                for (t, p), (o, _) in offsets.items()
            }
            await faust_patches.commit_with_metadata(self.app, wanted)
            for (t, p), m in metadata.items():
                self.spill.committed(t, p, m)
        except Exception as exc:
            # Refused during or after a rebalance: the partitions' new owners resume from the
            # last commit that went through, which is always a consistent checkpoint.
            log.warning(
                "worker.commit_refused",
                error=str(exc),
                partitions=sorted(p for _, p in offsets),
            )
            return False
        return True

    async def read_commits_of(
        self, topic: str, partitions: list[int]
    ) -> dict[int, tuple[int, str]]:
        """The group's commits of these partitions of ``topic``: ``(offset, metadata)``."""
        from drifthouse.kafka.checkpoints import read_commits

        loop = asyncio.get_running_loop()
        found = await loop.run_in_executor(
            None, read_commits, self.kcfg, self.kcfg.group, topic, partitions
        )
        out: dict[int, tuple[int, str]] = {}
        for p, (offset, metadata) in found.items():
            self.spill.committed(topic, p, metadata)  # the next spill keeps this one's slot
            out[p] = (offset, await loop.run_in_executor(None, self.spill.resolve, metadata))
        return out

    async def commit_side(self, offsets: dict[tuple[str, int], int]) -> bool:
        return await self.commit_offsets({tp: (o, "") for tp, o in offsets.items()})


class FaustPartialsLog:
    """One partition (merge shard) of the partials topic as its merge loop reads and commits it."""

    def __init__(self, kafka: FaustKafka, partition: int = 0) -> None:
        self.kafka = kafka
        self.topic = kafka.kcfg.partials_topic
        self.partition = partition

    async def committed(self) -> tuple[int, str] | None:
        return (await self.kafka.read_commits_of(self.topic, [self.partition])).get(self.partition)

    async def beginning(self) -> int:
        from drifthouse.kafka.admin import beginning_offsets

        loop = asyncio.get_running_loop()
        begins = await loop.run_in_executor(None, beginning_offsets, self.kafka.kcfg, self.topic)
        return int(begins.get(self.partition, 0))

    async def end(self) -> int:
        from drifthouse.kafka.admin import end_offsets

        loop = asyncio.get_running_loop()
        ends = await loop.run_in_executor(None, end_offsets, self.kafka.kcfg, self.topic)
        return int(ends.get(self.partition, 0))

    async def seek(self, offset: int) -> None:
        from aiokafka.structs import TopicPartition

        await self.kafka.app.consumer.seek(TopicPartition(self.topic, self.partition), offset)

    async def commit(self, offset: int, metadata: str) -> bool:
        async with self.kafka.lock:
            return await self.kafka.commit_offsets(
                {(self.topic, self.partition): (offset, metadata)}
            )


class GroupSourceKafka:
    """The source loop's Kafka (:class:`~drifthouse.app.source_loop.SourceKafka`): partials
    published through faust's producer, commits of the predictions partitions in the source
    group (:class:`~drifthouse.kafka.membership.SourceMembership`)."""

    def __init__(self, kafka: FaustKafka, membership: SourceMembership) -> None:
        self.kafka = kafka
        self.membership = membership

    async def send(self, key: bytes, value: bytes, partition: int) -> None:
        await self.kafka.send(key, value, partition)

    async def flush(self) -> None:
        await self.kafka.flush()

    async def committed(self, partitions: list[int]) -> dict[int, tuple[int, str]]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, self.membership.committed, partitions)

    async def commit(self, checkpoints: dict[int, Checkpoint]) -> bool:
        offsets = {p: (cp.offset, cp.encode()) for p, cp in checkpoints.items()}
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, self.membership.commit, offsets)
