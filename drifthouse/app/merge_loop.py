"""The worker's merge loops: batches of the partials topic through the mergers, then commits.

Each partition of the partials topic is a merge shard (:mod:`drifthouse.kafka.shards`), and the
worker that holds it runs its merger (:class:`~drifthouse.app.merger.MergeSide`), its alert
stage and, for shard 0, optionally the read-only SQL endpoint. :class:`MergeLoop` (one per
shard) opens them on the shard's first batch (waiting for the previous merger to let go of the
embedded store), resumes from the shard's commit and the snapshot it names, reads the partials
in sequence, and commits only after the rows are flushed. :class:`MergeShards` keeps the loops
of the shards this worker holds, and closes those a rebalance takes away. Kafka is reached
through :class:`PartialsLog` (faust's consumer in the worker; a fake in tests).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from drifthouse.alerts import Alerting
from drifthouse.app import memory
from drifthouse.app.assembly import AlertStage, RunParts
from drifthouse.app.backpressure import (
    WritesWait,
    flush_when_possible,
    open_when_free,
    wait_while_pressed,
)
from drifthouse.app.merger import MergeSide
from drifthouse.errors import StoreError
from drifthouse.logs import get_logger
from drifthouse.sinks.base import Sink
from drifthouse.sinks.state import MergerStateStore

__all__ = ["MergeLoop", "MergeShards", "Merger", "PartialsLog"]

log = get_logger("worker")

Messages = list[tuple[int, bytes]]


class PartialsLog(Protocol):
    """One partition (merge shard) of the partials topic, as its merger reads and commits it."""

    async def committed(self) -> tuple[int, str] | None:
        """The merger's last commit: ``(offset, metadata)``."""

    async def beginning(self) -> int:
        """The first offset the broker still holds."""

    async def end(self) -> int:
        """The offset after the last message."""

    async def seek(self, offset: int) -> None:
        """Read again from ``offset``."""

    async def commit(self, offset: int, metadata: str) -> bool:
        """Commit; ``False`` when the group refused it (a rebalance)."""


@dataclass
class Merger:
    """What the merge loop holds while this worker is the merger."""

    side: MergeSide
    #: The store's sink, and the same seen through :class:`WritesWait` by the merge stage.
    sink: Sink
    writes: WritesWait
    alerts: AlertStage | None
    #: Where snapshots of the merge stage go (``None``: a store that keeps none).
    states: MergerStateStore | None
    #: The read-only SQL endpoint, when configured.
    sql: Any = None
    #: The slot of the last snapshot saved (committed along with the merger's commit).
    slot: int | None = None
    saved_at: float = 0.0
    #: The first missing offset the consumer was sent back to, once.
    seeking: int | None = None
    last_batch: float = 0.0
    #: The label windows waiting for the inputs to go quiet were written since the last batch.
    quiet_done: bool = True
    #: The snapshot the commit named was missing: the first offset re-read to rebuild it.
    rebuilt_from: int | None = None
    #: That rebuild could not be exact (retention deleted partials it needed).
    state_lost: bool = False

    @property
    def alerting(self) -> Alerting | None:
        return self.alerts.alerting if self.alerts is not None else None

    def close(self) -> None:
        """Stop the SQL endpoint and the alerting; flush and close the store's sink."""
        if self.sql is not None:
            self.sql.close()
        if self.alerts is not None:
            self.alerts.alerting.close()
        try:
            self.sink.close()
        except StoreError as exc:
            # The store is away: the spool keeps the rows (or, without room, the commits
            # never passed them), and the next merger stores them.
            log.warning("merger.close_incomplete", error=str(exc))


class MergeLoop:
    """Partials in, rows and alerts out, commits after (see the module docstring).

    Parameters
    ----------
    parts:
        The run's parts (the merge stage is built from them).
    expected:
        The source partitions whose watermarks close a window.
    partials:
        The partials topic (read commits, seek, commit).
    open_sink:
        Opens the store's sink (called when this worker becomes the merger).
    alerting:
        Makes the alerting, if any.
    serve_sql:
        Starts the read-only SQL endpoint, if configured.
    on_error:
        Called with an unexpected error of a batch (the worker ends the process).
    shard:
        The merge shard (partition of the partials topic): its snapshots are its own.
    """

    def __init__(
        self,
        parts: RunParts,
        expected: Sequence[int],
        partials: PartialsLog,
        *,
        open_sink: Callable[[], Sink],
        alerting: Callable[[], Alerting] | None = None,
        serve_sql: Callable[[], Any] | None = None,
        on_error: Callable[[str, BaseException], None],
        shard: int = 0,
    ) -> None:
        self.parts = parts
        self.shard = shard
        self.expected = list(expected)
        self.partials = partials
        self.open_sink = open_sink
        self.make_alerting = alerting
        self.serve_sql = serve_sql
        self.on_error = on_error
        #: Held while a batch is merged, and while the merger is closed.
        self.lock = asyncio.Lock()
        self.merger: Merger | None = None

    async def take(self, current: Callable[[], Messages]) -> None:
        """Merge ``current()`` (called under the lock: the messages still this worker's),
        then commit what the rows written cover."""
        async with self.lock:
            messages = current()
            if not messages:
                return
            if self.merger is not None:
                await wait_while_pressed(self.merger.sink)
            try:
                offset, metadata = await self.batch(messages)
            except Exception as exc:
                self.on_error("merger", exc)
                return
        # Committed outside the lock: the rebalance callback takes that lock to close the
        # store, and a commit waits for the consumer, which waits for that callback.
        done = await self.partials.commit(offset, metadata)
        merger = self.merger
        if done and merger is not None and merger.states is not None and merger.slot is not None:
            merger.states.committed(merger.slot)

    async def batch(self, messages: Messages) -> tuple[int, str]:
        """Merge one batch (the lock held); return the checkpoint to commit."""
        merger = self.merger
        if merger is None:
            merger = self.merger = await self._open(messages[0][0])
        side = merger.side
        messages = await self._in_sequence(merger, messages)
        if not messages:
            return side.checkpoint()
        side.process(messages)
        merger.last_batch, merger.quiet_done = time.monotonic(), False
        await flush_when_possible(side.sink)
        if merger.alerting is not None:
            merger.alerting.save_state()
        # Snapshots of the merger's own state (see MergeSide.snapshot): kafka.snapshot_every.
        due = time.monotonic() - merger.saved_at >= self.parts.config.kafka.snapshot_every / 1000
        # A replay (see _resume) keeps the commit it started from until it is past it: a
        # merger stopped meanwhile replays again, rather than hold from a snapshot taken in it.
        if merger.states is not None and due and not (side.replaying and side.held):
            await self._snapshot(merger, merger.states)
        return side.checkpoint()

    async def _snapshot(self, merger: Merger, states: MergerStateStore) -> None:
        # The label join, metric-event windows and change detectors, with the position they
        # cover; the commit names it, and never passes it until the next one.
        loop = asyncio.get_running_loop()
        position, blob = merger.side.snapshot()
        try:
            merger.slot = await loop.run_in_executor(None, states.save, position, blob)
            del blob
            await loop.run_in_executor(None, memory.trim)  # the snapshot's pages go back
        except StoreError as exc:
            # The store is away (the spool holds the rows): commits stay at the last snapshot
            # saved, so a restart re-reads from there; try again next time.
            log.warning("merger.snapshot_deferred", error=str(exc))
        else:
            merger.side.snapshot_saved()
        merger.saved_at = time.monotonic()

    async def _open(self, first: int) -> Merger:
        """This worker becomes the merger: open the store, resume from the commit."""
        loop = asyncio.get_running_loop()
        # The embedded store admits one process: wait for the previous merger to let go.
        sink = await loop.run_in_executor(None, open_when_free, self.open_sink)
        writes = WritesWait(sink)
        alerts = (
            AlertStage(self.make_alerting(), writes) if self.make_alerting is not None else None
        )
        states = _state_store(sink, self.parts, self.shard)
        side = MergeSide(
            self.parts,
            writes,
            self.expected,
            on_window=[alerts] if alerts is not None else [],
            snapshots=states is not None,
        )
        merger = Merger(side, sink, writes, alerts, states)
        found = await self.partials.committed()
        # Where this merger must read from: its commit. The consumer's position may be
        # elsewhere: when the partials partition comes back to this worker in a rebalance,
        # messages fetched for the previous merger can still be handed out first.
        side.next_offset = found[0] if found else first
        if found and found[1]:
            await self._resume(merger, *found)
            if not side.replaying:
                side.hold_until = await self.partials.end()
        if self.serve_sql is not None:
            # `drifthouse sql` asks the process that holds the embedded store.
            merger.sql = await loop.run_in_executor(None, self.serve_sql)
        log.info("merger.start", shard=self.shard, resume=side.next_offset if found else None)
        return merger

    async def _resume(self, merger: Merger, offset: int, metadata: str) -> None:
        """Restore the commit and the snapshot it names. A snapshot missing from the store is
        rebuilt by re-reading the partials from the first offset the broker holds (nothing is
        written until the re-read passes the old position: see ``MergeSide.hold_until``)."""
        side, states = merger.side, merger.states
        position = side.snapshot_named(metadata)
        if position is None or states is None:
            side.restore(metadata, offset)
            return
        loop = asyncio.get_running_loop()
        snapshot = await loop.run_in_executor(None, states.load, position)
        if snapshot is not None:
            side.restore(metadata, offset)
            side.restore_snapshot(snapshot)
            return
        first = await self.partials.beginning()
        # From offset 0 the earlier merger's reading is replayed whole (its rows dropped until
        # the old position); from a later offset the commit is restored, so the windows final
        # at the commit stay untouched, and the rest rebuilt from what is left.
        exact = first == 0
        if exact:
            # The rows of what the earlier merger read before its snapshot are stored (its
            # commit came after them); after it, they may not be: those are written again.
            side.replay(metadata, offset)
            side.hold_until = position
        else:
            side.restore(metadata, offset)
        side.next_offset = merger.rebuilt_from = first
        merger.state_lost = not exact
        if exact:
            log.warning(
                "merger.snapshot_missing", shard=self.shard, position=position, rebuilt_from=first
            )
            return
        # Retention deleted the first partials: what they held cannot be rebuilt.
        log.error(
            "merger.snapshot_missing", shard=self.shard, position=position, rebuilt_from=first,
            lost="predictions and labels before the first offset held: their label windows, "
            "the change detectors' series and automatic references built before it",
        )  # fmt: skip

    async def _in_sequence(self, merger: Merger, messages: Messages) -> Messages:
        """:meth:`MergeSide.in_sequence`; at a gap, the consumer is sent back to the first
        missing offset (once), and the rest comes again in order."""
        side = merger.side
        out, gap = side.in_sequence(messages)
        if gap is None or merger.seeking == gap:
            return out  # in order; or sent back already, and what follows is the old position's
        merger.seeking = gap
        first = await self.partials.beginning()
        if gap < first and not out:
            # The broker's retention deleted partials this merger had not read (it was away
            # longer than the topic keeps them): go on from what is left.
            log.error("merger.partials_deleted", missing_from=gap, until=first)
            side.next_offset = first
            return (await self._in_sequence(merger, messages)) if messages[-1][0] >= first else []
        log.warning("merger.seek", offset=gap, got=messages[-1][0])
        await self.partials.seek(gap)
        return out

    async def quiet(self, idle_after_s: float) -> None:
        """Nothing came to the merger for ``idle_after_s``: late labels waiting for the
        spacing between rewrites of their window are written now."""
        merger = self.merger
        if (
            merger is None
            or merger.quiet_done
            or time.monotonic() - merger.last_batch < idle_after_s
        ):
            return
        async with self.lock:
            if self.merger is not merger:
                return
            merger.quiet_done = True
            merger.side.quiet()
            alerting = merger.alerting
            if alerting is not None:
                # Alerts those late label windows raised fall due by the watermark the
                # prediction windows have already reached.
                alerting.advance(merger.side.stage.ready_until())
            await flush_when_possible(merger.side.sink)
            if alerting is not None:
                alerting.save_state()

    async def drain(self) -> None:
        """The store came back after the last batch: the spool drains now (at the sink's
        probe spacing), not whenever the next partials happen to arrive."""
        merger = self.merger
        if merger is None or not merger.writes.pending_batches or self.lock.locked():
            return
        async with self.lock:
            if self.merger is merger:
                await asyncio.get_running_loop().run_in_executor(None, merger.writes.drain)

    async def close(self) -> None:
        """Close the merger, if this worker runs it (never under a batch being written)."""
        async with self.lock:
            merger, self.merger = self.merger, None
            if merger is not None:
                await asyncio.get_running_loop().run_in_executor(None, merger.close)


class MergeShards:
    """The merge loops of the shards this worker holds, made by ``make(shard)`` on a shard's
    first batch and closed when a rebalance takes the shard away."""

    def __init__(self, make: Callable[[int], MergeLoop]) -> None:
        self.make = make
        self.loops: dict[int, MergeLoop] = {}
        # Shards a rebalance is taking away: until their close is over, their partials (still
        # assigned while the revocation runs) open no merger (it would stay open behind the
        # close, a second merger of a shard another worker now holds). Whoever holds the
        # shard next reads them again from its commit.
        self._closing: set[int] = set()

    @property
    def mergers(self) -> dict[int, Merger]:
        """The open mergers, by shard."""
        return {s: loop.merger for s, loop in sorted(self.loops.items()) if loop.merger}

    async def take(self, shard: int, current: Callable[[], Messages]) -> None:
        """:meth:`MergeLoop.take` of ``shard``'s loop (nothing while it is being closed)."""
        if shard in self._closing:
            return
        loop = self.loops.get(shard)
        if loop is None:
            loop = self.loops[shard] = self.make(shard)
        await loop.take(current)

    async def quiet(self, idle_after_s: float) -> None:
        for loop in list(self.loops.values()):
            await loop.quiet(idle_after_s)

    async def drain(self) -> None:
        for loop in list(self.loops.values()):
            await loop.drain()

    async def close(self, shards: Iterable[int] | None = None) -> None:
        """Close the mergers of ``shards`` (all when ``None``), each after its batch in hand."""
        closing = set(self.loops) if shards is None else set(shards)
        self._closing |= closing
        try:
            for shard in sorted(closing & set(self.loops)):
                await self.loops.pop(shard).close()
        finally:
            self._closing -= closing


def _state_store(sink: Sink, parts: RunParts, shard: int) -> MergerStateStore | None:
    client = getattr(sink, "client", None)
    if client is None:
        return None
    config = parts.config
    return MergerStateStore(client, config.store.database, config.kafka.group, shard=shard)
