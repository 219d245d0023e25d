"""The worker's source loop: read the assigned predictions partitions, publish, commit.

The source group (:mod:`drifthouse.kafka.membership`, cooperative) assigns the predictions
partitions a few at a time (:meth:`SourceLoop.added`, :meth:`SourceLoop.revoked`,
:meth:`SourceLoop.lost`); :class:`SourceLoop` reads them in bulk with its own
:class:`~drifthouse.kafka.source.AssignedReader`, runs each micro-batch through
the :class:`~drifthouse.app.source_side.SourceSide` and publishes the partials. A partition's
offset is committed only after the partials it covers are acknowledged by Kafka, at its
checkpoint (the first offset of the oldest pane still open, with the watermark state in the
commit metadata), at most every :data:`COMMIT_EVERY_S`. Kafka is reached through
:class:`SourceKafka` (faust's producer and the source group in the worker; a fake in tests).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from drifthouse.app.source_side import SourceSide
from drifthouse.kafka.partials import encode_watermark
from drifthouse.kafka.source import AssignedReader
from drifthouse.logs import get_logger
from drifthouse.stream.dead_letters import DeadLetters
from drifthouse.stream.sources import Message
from drifthouse.stream.stage import Checkpoint, PartitionStage

__all__ = ["COMMIT_EVERY_S", "LAST_COMMIT_S", "SourceKafka", "SourceLoop"]

log = get_logger("worker")

COMMIT_EVERY_S = 1.0
"""The source commits its checkpoints at most this often (and when the stream pauses)."""

LAST_COMMIT_S = 10.0
"""How long a revocation or a shutdown waits for its commit (then the last one stands)."""


class SourceKafka(Protocol):
    """What the source loop needs of Kafka beside its reader."""

    async def send(self, key: bytes, value: bytes, partition: int) -> None:
        """Publish one message to a partition (merge shard) of the partials topic."""

    async def flush(self) -> None:
        """Wait until every message published is acknowledged."""

    async def committed(self, partitions: list[int]) -> dict[int, tuple[int, str]]:
        """The group's commits of these predictions partitions: ``(offset, metadata)``."""

    async def commit(self, checkpoints: dict[int, Checkpoint]) -> bool:
        """Commit each partition at its checkpoint; ``False`` when the group refused it."""


@dataclass
class CommitClock:
    """When the source last committed, and whether it has read more since."""

    at: float = 0.0
    pending: bool = False

    def due(self) -> bool:
        return self.pending and time.monotonic() - self.at >= COMMIT_EVERY_S


@dataclass
class Assignment:
    """The predictions partitions the group gave this worker; ``epoch`` changes with them, so
    that a batch fetched under an older assignment is dropped. ``revoked``: taken back, and not
    assigned again yet."""

    epoch: int = 0
    wanted: set[int] = field(default_factory=set)
    revoked: bool = False

    def change(self, partitions: set[int], *, revoked: bool = False) -> None:
        self.epoch += 1
        self.wanted = set(partitions)
        self.revoked = revoked


class SourceLoop:
    """Read, process, publish and commit the predictions partitions this worker holds.

    ``publish_lock`` is held while messages go out to the partials topic and while commits
    are made, so that partials and the watermark that releases them go out in order, and no
    heartbeat slips in between.
    """

    def __init__(
        self,
        source: SourceSide,
        reader: AssignedReader,
        kafka: SourceKafka,
        dead_letters: DeadLetters,
        *,
        publish_lock: asyncio.Lock,
        idle_after_s: float,
        on_error: Callable[[str, BaseException], None],
    ) -> None:
        self.source = source
        self.reader = reader
        self.kafka = kafka
        self.dead_letters = dead_letters
        self.publish_lock = publish_lock
        self.idle_after_s = idle_after_s
        self.on_error = on_error
        self.assignment = Assignment()
        self.commits = CommitClock()
        #: Held while a fetched batch is processed and published, and while the assignment
        #: changes.
        self.lock = asyncio.Lock()
        # Per partition, the last (watermark, idle) published by the heartbeat.
        self._sent: dict[int, tuple[int, bool]] = {}
        #: The stages of the partitions revoked, until the next assignment keeps or drops them.
        self.parked: dict[int, PartitionStage] = {}
        #: Per partition held or parked, the commit its stage descends from: the last one this
        #: worker made of it, or the one it was resumed from (``None``: there was none).
        self.bases: dict[int, tuple[int, str] | None] = {}
        #: Set by :meth:`stop`: the last commit is made.
        self.stopped = False

    async def run(self) -> None:
        """Until cancelled; an unexpected error goes to ``on_error``."""
        applied = 0
        try:
            await self.reader.start()
            while True:
                if applied != self.assignment.epoch:
                    applied = await self.apply_assignment()
                    continue
                if not self.reader.assigned:
                    await asyncio.sleep(0.1)
                    continue
                t0 = time.perf_counter()
                msgs = await self.reader.fetch(timeout_ms=250)
                self.source.seconds.fetching += time.perf_counter() - t0
                async with self.lock:
                    if applied != self.assignment.epoch:
                        continue  # fetched before a rebalance: the partitions may be others'
                    await self.batch(msgs)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.on_error("source", exc)
        finally:
            await self.reader.stop()

    def assigned(self, partitions: set[int]) -> None:
        """The group gave this worker these predictions partitions (applied between fetches)."""
        self.assignment.change(partitions)

    async def added(self, partitions: set[int]) -> None:
        """The group gave this worker these partitions too; those it holds stay as they are
        (applied between fetches)."""
        self.assignment.change(self.assignment.wanted | partitions)

    async def revoked(self, partitions: set[int] | None = None) -> None:
        """The group took ``partitions`` back (``None``: all of them). After the batch in
        hand, every partition's checkpoint is committed and the stages of those taken are
        parked: the next assignment keeps the stages of the partitions that come back
        unchanged (see :meth:`apply_assignment`). The other partitions are read on."""
        async with self.lock:
            taken = set(self.source.stages) if partitions is None else set(partitions)
            for p in taken & set(self.source.stages):
                self.source.revocations[p] = self.source.revocations.get(p, 0) + 1
            if partitions is None:
                self.assignment.change(set(), revoked=True)
            else:
                self.assignment.change(self.assignment.wanted - taken)
            async with self.publish_lock:
                await self._last_commit("revoke")
            self.parked.update(self.source.park(taken))

    async def lost(self, partitions: set[int]) -> None:
        """The group gave ``partitions`` to others without this worker's last word (it
        missed its session): their stages are dropped, nothing of them committed."""
        async with self.lock:
            self.assignment.change(self.assignment.wanted - partitions)
            self.source.drop([p for p in partitions if p in self.source.stages])
            for p in partitions:
                self.parked.pop(p, None)
                self.bases.pop(p, None)

    async def stop(self) -> None:
        """The worker stops: after the batch in hand, every partition's checkpoint is committed,
        so that the next owner re-reads no more than the panes still open; nothing is read or
        committed afterwards."""
        async with self.lock, self.publish_lock:
            await self._last_commit("stop")
            self.assignment.change(set(), revoked=True)
            self.stopped = True

    async def _last_commit(self, why: str) -> None:
        """Commit now (the publish lock held), waiting at most :data:`LAST_COMMIT_S`; a commit
        that fails leaves the last one standing, which is always a consistent checkpoint."""
        try:
            await asyncio.wait_for(self.commit(), LAST_COMMIT_S)
        except Exception as exc:
            log.warning("worker.last_commit_failed", on=why, error=repr(exc))

    async def apply_assignment(self) -> int:
        """Hold the partitions wanted; return the epoch applied (-1: it changed meanwhile,
        apply again).

        A stage held all along stays as it is, read on from its own next offset. A parked
        stage is kept when the group's commit of its partition is still the one the stage
        descends from: nobody committed the partition since, and the stage is exactly what
        reading from that commit would rebuild, read further. It too resumes at its own next
        offset and reads nothing again. Any other partition gets a fresh stage resumed from
        its commit."""
        async with self.lock:
            now = self.assignment.epoch
            if self.assignment.revoked:
                self.reader.assign({})  # until the group assigns again; the stages stay parked
                return now
            parts = sorted(self.assignment.wanted)
            held = self.source.stages
            new = [p for p in parts if p not in held]
            commits = await self.kafka.committed(new) if new else {}
            if now != self.assignment.epoch:
                return -1
            self.parked.update(self.source.park(set(held) - set(parts)))
            positions: dict[int, int | None] = {p: held[p].next_offset for p in parts if p in held}
            kept = sorted(positions)
            parked, self.parked = self.parked, {}
            for p in new:
                found = commits.get(p)
                stage = parked.pop(p, None)
                if stage is not None and p in self.bases and self.bases[p] == found:
                    self.source.keep(p, stage)
                    positions[p] = stage.next_offset
                    kept.append(p)
                    continue
                cp = Checkpoint.decode(found[1]) if found and found[1] else None
                self.source.open(p, cp)
                self.bases[p] = found
                positions[p] = found[0] if found else None
            self.source.drop(list(parked))  # remembered as read, for the re-read count
            for p in set(self.bases) - set(parts):
                del self.bases[p]
            self.reader.assign(positions)
            log.info("worker.reading", partitions=parts, kept=kept, resume=positions)
            return now

    async def batch(self, msgs: list[Message]) -> None:
        """Process and publish one fetched batch; commit when due."""
        async with self.publish_lock:
            seconds = self.source.seconds
            if msgs:
                t0 = time.perf_counter()
                out = self.source.process(msgs)
                t1 = time.perf_counter()
                for o in out:
                    await self.kafka.send(o.key, o.value, o.partition)
                seconds.processing += t1 - t0
                seconds.publishing += time.perf_counter() - t1
                self.commits.pending = True
            if self.commits.due():
                t0 = time.perf_counter()
                await self.commit()
                seconds.committing += time.perf_counter() - t0

    async def commit(self) -> None:
        """Commit every partition at its checkpoint, once the partials it covers are in Kafka
        (the publish lock held)."""
        self.commits = CommitClock(time.monotonic(), False)
        if not self.source.stages or self.stopped:
            return
        await self.kafka.flush()  # the partials these offsets cover are in Kafka
        await asyncio.get_running_loop().run_in_executor(None, self.dead_letters.flush)
        checkpoints = self.source.checkpoints()
        if await self.kafka.commit(checkpoints):
            self.bases.update({p: (cp.offset, cp.encode()) for p, cp in checkpoints.items()})

    async def tick(self) -> None:
        """Every second: quiet partitions still report their watermark, marked idle once
        caught up and quiet for a while, so their silence does not hold every window back;
        and the last batches' checkpoints are committed once the stream pauses."""
        now = time.monotonic()
        async with self.publish_lock:
            for p, stage in list(self.source.stages.items()):
                # Idle means caught up and quiet: a partition that is behind (a rebalance, a
                # slow worker) must keep holding windows back, however long it is silent.
                quiet = now - self.source.last_event_at.get(p, now) >= self.idle_after_s
                high = self.reader.highwater(p)
                idle = quiet and high is not None and stage.next_offset >= high
                mark = (stage.watermark, idle)
                if self._sent.get(p) != mark:  # only changes, so a quiet topic stays quiet
                    self._sent[p] = mark
                    value = encode_watermark(p, stage.watermark, idle=idle)
                    for shard in range(self.source.shards):  # every merge shard waits for it
                        await self.kafka.send(b"", value, shard)
            if self.commits.due():
                await self.commit()
