"""The live worker: ``drifthouse run -c drifthouse.yaml``.

A faust-streaming app with two agents (each ``concurrency=1``: faust #606 can lose messages with
more):

- the **source** agent reads the predictions topic in micro-batches, runs each partition's
  :class:`~drifthouse.stream.stage.PartitionStage` (decode -> window -> sketch) and publishes
  every closed partial window, and the partition's watermark, to the partials topic;
- the **merge** agent reads the partials topic (one partition: whichever process holds it is
  the merger and the only writer to the store, as the embedded engine admits one process per
  data directory) and runs the :class:`~drifthouse.stream.merge.MergeStage` and the alerts.

**Exact recovery.** faust never acknowledges or commits on its own here (the streams are
``noack``). A source partition's offset is committed only after the partials it covers are
acknowledged by Kafka, and the offset committed is the partition's *checkpoint*: the first
offset of the oldest pane still open, with the watermark state in the commit metadata. A
restarted or newly assigned worker restores the stage from that metadata and re-reads from
there, rebuilding exactly the open panes. The merger commits the partials topic the same way,
only after the rows are flushed to the store, at the oldest partial of a window not yet written.
"""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from itertools import groupby, pairwise
from operator import attrgetter
from pathlib import Path
from typing import Any, NoReturn

import msgspec

from drifthouse.app import memory
from drifthouse.config import Config
from drifthouse.detectors.reference import Profile
from drifthouse.errors import SpoolFull, StoreError, StoreUnavailable
from drifthouse.kafka.partials import (
    PartialMessage,
    PredictionsMessage,
    RecordsMessage,
    SideEventsMessage,
    WatermarkMessage,
    decode,
    encode_partial,
    encode_predictions,
    encode_records,
    encode_side_events,
    encode_watermark,
    side_decoders,
)
from drifthouse.kafka.source import AssignedReader
from drifthouse.logs import get_logger
from drifthouse.profiles.sketches import Sketches
from drifthouse.rows import AlertRow
from drifthouse.sinks.base import Sink
from drifthouse.sinks.predictions import PredictionLog
from drifthouse.sinks.state import MergerStateStore
from drifthouse.stream.dead_letters import DeadLetters
from drifthouse.stream.merge import MergeStage, WindowKey, WindowResult
from drifthouse.stream.sources import Message
from drifthouse.stream.stage import Checkpoint, PartitionStage, StageStats
from drifthouse.stream.windows import WindowSpec

__all__ = ["MergeSide", "SourceSide", "build_app", "run_worker", "tune_gc"]

log = get_logger("worker")

#: Seconds between two snapshots of the merger's own state (see MergeSide.snapshot).
SNAPSHOT_EVERY_S = 30.0

Publish = Callable[[bytes, bytes], Awaitable[None]]

_PARTITION = attrgetter("partition")

COMMIT_EVERY_S = 1.0
"""The source commits its checkpoints at most this often (and when the stream pauses)."""

FETCH_WAIT_MS = 250
"""How long the broker may hold a fetch of faust's consumer (partials, labels, metrics) open
while it has nothing new; faust sets 1,500 ms. aiokafka has one fetch per broker in flight and
leaves out of it a partition whose records it still holds (more than 0.1 s when a merge batch
keeps the event loop busy): the next partials then waited behind an empty fetch of the labels
and metrics topics, up to 1.5 s. 250 ms is the merger's own batching interval; an idle worker
asks four times a second, which costs no measurable CPU (100 ms cost about 1% of a core)."""

FULL_COLLECT_EVERY_TICKS = 30
"""Heartbeats (seconds) between two full collections of reference cycles, each followed by
giving free memory back (see :mod:`drifthouse.app.memory`); the young generations are
collected at every heartbeat."""


@dataclass
class SourceSide:
    """Partition stages of the source partitions this worker holds (no faust in here)."""

    config: Config
    specs: Sequence[WindowSpec]
    sketches: Sketches
    dead_letters: DeadLetters
    now_ms: Callable[[], int] | None = None
    prediction_log: PredictionLog | None = None
    collect_labels: bool = True
    stages: dict[int, PartitionStage] = field(default_factory=dict)
    stats: StageStats = field(default_factory=StageStats)
    last_event_at: dict[int, float] = field(default_factory=dict)
    # Where the source loop's time went (wall seconds), for the health page and the logs.
    seconds: dict[str, float] = field(
        default_factory=lambda: dict.fromkeys(
            ("fetching", "processing", "publishing", "committing"), 0.0
        )
    )

    def open(self, partition: int, checkpoint: Checkpoint | None) -> PartitionStage:
        """A fresh stage for a newly assigned partition, resumed from its checkpoint."""
        stage = PartitionStage(
            partition,
            self.config,
            self.specs,
            self.sketches,
            self.dead_letters,
            self.now_ms,
            prediction_log=self.prediction_log,
            collect_labels=self.collect_labels,
        )
        if checkpoint is not None:
            stage.restore(checkpoint)
        self.stages[partition] = stage
        self.last_event_at[partition] = time.monotonic()
        return stage

    def drop(self, partitions: Sequence[int]) -> None:
        for p in partitions:
            self.stages.pop(p, None)
            self.last_event_at.pop(p, None)

    def process(self, messages: Sequence[Message]) -> list[tuple[bytes, bytes]]:
        """Run a batch (partitions already opened); return the messages to publish, in order."""
        out: list[tuple[bytes, bytes]] = []
        by_partition: dict[int, list[Message]] = {}
        # A fetch holds each partition's messages in one run: group run by run.
        for partition, run in groupby(messages, key=_PARTITION):
            by_partition.setdefault(partition, []).extend(run)
        for partition in sorted(by_partition):
            stage = self.stages[partition]
            msgs = by_partition[partition]
            if msgs[0].offset < stage.next_offset:
                # After a seek, messages before the stage's position may come again: skip them.
                msgs = [m for m in msgs if m.offset >= stage.next_offset]
                if not msgs:
                    continue
            before = StageStats(**vars(stage.stats))
            for closed in stage.process(msgs):
                name = self.specs[closed.spec_index].name
                out.append((closed.key[0].encode(), encode_partial(closed, name)))
            logged = stage.take_prediction_rows()
            if logged:
                out.append((b"", encode_predictions(logged)))
            offsets, records = stage.take_label_records()
            if records:
                out.append((b"", encode_records(partition, offsets, records)))
            out.append((b"", encode_watermark(partition, stage.watermark)))
            self.last_event_at[partition] = time.monotonic()
            for name in ("messages", "events", "invalid", "late"):
                setattr(
                    self.stats,
                    name,
                    getattr(self.stats, name) + getattr(stage.stats, name) - getattr(before, name),
                )
        return out

    def checkpoints(self) -> dict[int, Checkpoint]:
        return {p: s.checkpoint() for p, s in self.stages.items()}


@dataclass
class MergeSide:
    """The merger: partials of every source partition -> rows in the store, alerts."""

    config: Config
    specs: Sequence[WindowSpec]
    sketches: Sketches
    sink: Sink
    expected: Sequence[int]
    on_window: list[Callable[[WindowResult], None]] = field(default_factory=list)
    next_offset: int = 0
    hold_until: int = 0
    profiles: Mapping[str, Profile] = field(default_factory=dict)
    #: Snapshots of the merge stage are saved (the live worker): commits then move only with
    #: them (see :meth:`checkpoint`).
    snapshots: bool = False

    def __post_init__(self) -> None:
        self.stage = MergeStage.from_config(
            self.config, self.profiles, self.sketches, self.sink, on_window=self.on_window
        )
        self.stage.expect(self.expected)
        self._offsets: dict[WindowKey, int] = {}
        self._decoders = side_decoders(self.config.kafka)
        # The checkpoint of the last snapshot saved, and of the one being saved.
        self._saved: tuple[int, str] = (0, msgspec.json.encode(self._state(None)).decode())
        self._saving: tuple[int, str] | None = None

    def restore(self, metadata: str, offset: int = 0) -> int | None:
        """Resume from the merger's commit (see :meth:`checkpoint`); return the position of
        the snapshot its metadata names, to restore with :meth:`restore_snapshot`."""
        state = msgspec.json.decode(metadata, type=_MergeCheckpoint)
        self.stage.restore_final_horizon(state.final)
        for part, wm in state.watermarks.items():
            self.stage.watermark(int(part), wm)
        for idle in state.idle:
            self.stage.mark_idle(idle)
        self._saved = (offset, metadata)
        return state.snapshot

    def restore_snapshot(self, data: bytes) -> None:
        """The merge stage's own state, saved at the committed position."""
        self.stage.restore_snapshot(data)

    def snapshot(self) -> tuple[int, bytes]:
        """``(position, state)``: the merge stage's state, covering the partials before
        ``position``. Call :meth:`snapshot_saved` once it is stored."""
        self._saving = self._checkpoint(snapshot=self.next_offset)
        return self.next_offset, self.stage.snapshot()

    def snapshot_saved(self) -> None:
        """The last :meth:`snapshot` is stored: commits may move to it."""
        if self._saving is not None:
            self._saved, self._saving = self._saving, None

    def in_sequence(
        self, messages: Sequence[tuple[int, bytes]]
    ) -> tuple[list[tuple[int, bytes]], int | None]:
        """The messages that continue the merger's reading (from :attr:`next_offset`) without
        a gap, and the first missing offset if there is a gap (else ``None``). Messages read
        already are left out. The partials topic is not transactional: its offsets have no
        holes, so a gap means the consumer is ahead of where this merger must read."""
        out: list[tuple[int, bytes]] = []
        expected = self.next_offset
        for message in messages:
            if message[0] < expected:
                continue
            if message[0] > expected:
                return out, expected
            out.append(message)
            expected += 1
        return out, None

    def process(self, messages: Sequence[tuple[int, bytes]]) -> list[WindowResult]:
        """Take ``(offset, value)`` messages of the partials topic; write what became complete."""
        for offset, value in messages:
            msg = decode(value)
            if isinstance(msg, PartialMessage):
                partial = msg.to_partial()
                self.stage.add([partial])
                wkey = (partial.spec_index, partial.start, partial.key)
                self._offsets.setdefault(wkey, offset)
            elif isinstance(msg, WatermarkMessage):
                self.stage.watermark(msg.source_partition, msg.watermark)
                self.stage.mark_idle(msg.source_partition, msg.idle)
            elif isinstance(msg, PredictionsMessage):
                self.sink.write(msg.rows)
            elif isinstance(msg, RecordsMessage):
                self.stage.add_label_records(msg.source_partition, msg.offsets, msg.records)
            elif isinstance(msg, SideEventsMessage):
                self._side_events(msg)
            self.next_offset = offset + 1
        if self.next_offset < self.hold_until:
            # Re-reading what an earlier merger read: the restored watermarks are ahead of the
            # partials still to come, so nothing is written until the re-read is complete.
            return []
        results = self.stage.emit()
        # Offsets are kept while a window may still be written or rewritten.
        live = self.stage.pending_keys() | self.stage.emitted_keys()
        for wkey in [w for w in self._offsets if w not in live]:
            del self._offsets[wkey]
        return results

    def quiet(self) -> list[WindowResult]:
        """The inputs went quiet: write label windows still waiting to be rewritten."""
        if self.next_offset < self.hold_until:
            return []
        return self.stage.emit(quiet=True)

    def checkpoint(self) -> tuple[int, str]:
        """``(offset, metadata)`` to commit once the rows of everything before are stored.

        The offset is that of the oldest partial of a window that may still be written or
        rewritten, so a new merger re-reading from there rebuilds every such window whole.
        With :attr:`snapshots`, it is the checkpoint taken with the last snapshot saved: the
        label join, metric-event windows and change detectors a new merger restores are those
        of that moment, and it re-reads (and rewrites, identically) everything after it.
        """
        if self.snapshots:
            return self._saved
        return self._checkpoint(snapshot=None)

    def _checkpoint(self, *, snapshot: int | None) -> tuple[int, str]:
        offset = min(self._offsets.values(), default=self.next_offset)
        if snapshot is not None:
            offset = min(offset, snapshot)
        return offset, msgspec.json.encode(self._state(snapshot)).decode()

    def _state(self, snapshot: int | None) -> _MergeCheckpoint:
        return _MergeCheckpoint(
            final=self.stage.final_horizon,
            watermarks={str(p): wm for p, wm in self.stage.watermarks().items()},
            idle=sorted(self.stage.idle()),
            snapshot=snapshot,
        )

    def _side_events(self, msg: SideEventsMessage) -> None:
        keep = self.stage.fresh(f"{msg.kind}:{msg.partition}", msg.offsets)
        decoder = self._decoders.get(msg.kind)
        if not keep or decoder is None:
            return
        # Checked by the worker that forwarded them; decoded again here, where they are used.
        ok, _ = decoder.decode_batch([msg.values[i] for i in keep])
        events = [e for _, e in ok]
        if msg.kind == "labels":
            self.stage.add_labels(events)
        else:
            self.stage.add_metric_events(events, msg.partition)


class _MergeCheckpoint(msgspec.Struct):
    final: int
    watermarks: dict[str, int]
    idle: list[int]
    snapshot: int | None = None


# -- faust glue -------------------------------------------------------------------------------


def build_app(
    config: Config,
    *,
    profiles: dict[str, Profile],
    open_sink: Callable[[], Sink],
    dead_letters: DeadLetters,
    alerting: Callable[[], Any] | None = None,
    serve_sql: Callable[[], Any] | None = None,
    web_port: int | None = None,
    datadir: Path | None = None,
    side_dead_letters: Mapping[str, DeadLetters] | None = None,
) -> Any:
    """The faust app of a worker process (see the module docstring).

    ``side_dead_letters`` maps the labels and metrics topics to where their refused messages go
    (by default they are counted and logged only).
    """
    import faust
    from aiokafka.structs import OffsetAndMetadata, TopicPartition

    from drifthouse.kafka.admin import (
        beginning_offsets,
        end_offsets,
        ensure_topics,
        partitions_for,
    )
    from drifthouse.kafka.checkpoints import read_commits
    from drifthouse.kafka.client import faust_broker, faust_credentials

    kcfg = config.kafka
    ensure_topics(kcfg, {kcfg.partials_topic: 1, kcfg.labels_topic: 1, kcfg.metrics_topic: 1})
    source_partitions = partitions_for(kcfg, kcfg.topic)
    specs = [WindowSpec.from_config(w) for w in config.windows]
    sketches = Sketches(profiles, config.metrics, config.models)
    source = SourceSide(
        config,
        specs,
        sketches,
        dead_letters,
        now_ms=lambda: int(time.time() * 1000),
        prediction_log=PredictionLog.for_config(config, profiles=profiles),
    )
    state: dict[str, Any] = {"merge": None, "sink": None, "alerting": None, "sql": None}

    app: Any = faust.App(
        kcfg.group,
        broker=faust_broker(kcfg),
        broker_credentials=faust_credentials(kcfg),
        store="memory://",
        value_serializer="raw",
        key_serializer="raw",
        consumer_auto_offset_reset="earliest",
        topic_replication_factor=1,
        topic_allow_declare=False,
        # No leader topic: faust would create `<group>-__assignor-__leader` after the group
        # formed, and the consumer's next metadata refresh (5 minutes on) would see a new
        # subscribed topic and rebalance the group, making every worker re-read its open panes.
        topic_disable_leader=True,
        stream_wait_empty=False,
        broker_commit_every=2**31,
        # A worker that dies mid-rebalance leaves no LeaveGroup behind: the group waits this
        # long for it, so keep it short (Kafka's floor is 6 s).
        broker_session_timeout=10.0,
        broker_heartbeat_interval=2.0,
        broker_commit_interval=10**7,
        # A partial is 1-100 kB: with the default 16 kB batches every send waited for the
        # previous batch to reach the broker. One batch now holds a micro-batch's partials.
        producer_max_batch_size=1 << 20,
        web_enabled=web_port is not None,
        web_port=web_port or 6066,
        web_bind="127.0.0.1",
        datadir=str(datadir) if datadir else None,
        autodiscover=False,
    )

    # faust commits the offsets it has read when a worker stops or loses partitions, with no
    # metadata, which would overwrite the checkpoints below and skip the open panes' events on
    # the next start. drifthouse commits only checkpoints (commit() below), so faust's own
    # commit path is switched off for this consumer.
    async def _no_commit(offsets: Any) -> bool:
        return True

    app.consumer._commit = _no_commit
    predictions = app.topic(kcfg.topic, value_serializer="raw", key_serializer="raw")
    partials = app.topic(kcfg.partials_topic, value_serializer="raw", key_serializer="raw")
    side_topics = app.topic(
        kcfg.labels_topic, kcfg.metrics_topic, value_serializer="raw", key_serializer="raw"
    )
    side_kinds = {kcfg.labels_topic: "labels", kcfg.metrics_topic: "metrics"}
    decoders = side_decoders(kcfg)
    side_dead = dict(side_dead_letters or {})
    commit_lock = asyncio.Lock()
    merge_lock = asyncio.Lock()
    ticks = [0]
    sent: dict[int, tuple[int, bool]] = {}

    async def commit(offsets: dict[TopicPartition, OffsetAndMetadata]) -> bool:
        # faust keeps its aiokafka consumer in a thread of its own and commits without
        # metadata; the checkpoint travels in the metadata, so commit through that thread.
        thread = app.consumer._thread
        consumer = thread._ensure_consumer()
        try:
            await thread.call_thread(consumer.commit, offsets)
        except Exception as exc:
            # Refused during or after a rebalance: the partitions' new owners resume from the
            # last commit that went through, which is always a consistent checkpoint.
            log.warning(
                "worker.commit_refused",
                error=str(exc),
                partitions=sorted(tp.partition for tp in offsets),
            )
            return False
        return True

    async def commit_source() -> None:
        last_commit[:] = [time.monotonic(), False]
        if not source.stages:
            return
        await app.producer.flush()  # the partials these offsets cover are in Kafka
        await asyncio.get_running_loop().run_in_executor(None, dead_letters.flush)
        offsets = {
            TopicPartition(kcfg.topic, p): OffsetAndMetadata(cp.offset, cp.encode())
            for p, cp in source.checkpoints().items()
        }
        await commit(offsets)

    # The predictions topic is subscribed through faust, so the group assigns its partitions,
    # but faust never fetches it: faust delivers one message at a time through its streams
    # (about 6k messages/s), so the source reads its partitions in bulk with a reader of its
    # own (AssignedReader) and faust keeps membership, rebalances, commits and the web page.
    _keep_predictions_unfetched(app, kcfg.topic)
    _shorten_fetch_wait(app, FETCH_WAIT_MS)
    reader = AssignedReader(kcfg, kcfg.topic, max_records=kcfg.batch_size)
    source_lock = asyncio.Lock()  # held while a fetched batch is processed and published
    # Bumped on every assignment change: a batch fetched under an older one is dropped.
    epoch = [0]
    wanted: set[int] = set()
    last_commit = [0.0, False]  # when the source last committed; whether it has more to commit

    @app.agent(predictions, concurrency=1)  # type: ignore[untyped-decorator]
    async def consume(stream: Any) -> None:
        # Only here so that the group assigns the predictions partitions to this worker;
        # the partitions stay paused in faust, so nothing ever arrives.
        async for _ in stream.noack():
            pass

    @app.task  # type: ignore[untyped-decorator]
    async def read_source() -> None:
        applied = 0
        try:
            await reader.start()
            while True:
                if applied != epoch[0]:
                    applied = await apply_assignment()
                    continue
                if not reader.assigned:
                    await asyncio.sleep(0.1)
                    continue
                t0 = time.perf_counter()
                msgs = await reader.fetch(timeout_ms=250)
                source.seconds["fetching"] += time.perf_counter() - t0
                async with source_lock:
                    if applied != epoch[0]:
                        continue  # fetched before a rebalance: the partitions may be others'
                    await source_batch(msgs)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            _fatal("source", exc)
        finally:
            await reader.stop()

    async def apply_assignment() -> int:
        async with source_lock:
            now = epoch[0]
            parts = sorted(wanted)
            commits: dict[int, tuple[int, str]] = {}
            if parts:
                commits = await asyncio.get_running_loop().run_in_executor(
                    None, read_commits, kcfg, kcfg.group, kcfg.topic, parts
                )
            if now != epoch[0]:
                return -1  # changed meanwhile: apply again
            source.drop(list(source.stages))
            positions: dict[int, int | None] = {}
            for p in parts:
                found = commits.get(p)
                cp = Checkpoint.decode(found[1]) if found and found[1] else None
                source.open(p, cp)
                positions[p] = found[0] if found else None
            reader.assign(positions)
            log.info("worker.reading", partitions=parts, resume=positions)
            return now

    async def source_batch(msgs: list[Message]) -> None:
        async with commit_lock:
            # Partials and the watermark that releases them go out in order, and no
            # heartbeat slips in between.
            seconds = source.seconds
            if msgs:
                t0 = time.perf_counter()
                out = source.process(msgs)
                t1 = time.perf_counter()
                for key, value in out:
                    await partials.send(key=key, value=value)
                seconds["processing"] += t1 - t0
                seconds["publishing"] += time.perf_counter() - t1
                last_commit[1] = True
            if last_commit[1] and time.monotonic() - last_commit[0] >= COMMIT_EVERY_S:
                t0 = time.perf_counter()
                await commit_source()
                seconds["committing"] += time.perf_counter() - t0

    @app.agent(side_topics, concurrency=1)  # type: ignore[untyped-decorator]
    async def side_inputs(stream: Any) -> None:
        # Labels and metric events go to the merger through the partials topic, checked, with
        # their offsets; their offsets are committed once the partials topic has them.
        async for events in stream.noack().take_events(kcfg.batch_size, within=0.25):
            assigned = {(tp.topic, tp.partition) for tp in app.consumer.assignment()}
            # take_events also hands out what it buffered before a rebalance, after faust has
            # sent the consumer back to the last commit: those messages come again, in order,
            # so the old ones are dropped. Forwarded out of order, they would make the merger
            # take a label twice or skip one.
            generation = app.consumer_generation_id
            groups: dict[tuple[str, int], list[Message]] = {}
            for m in (e.message for e in events):
                if m.generation_id == generation and (m.topic, m.partition) in assigned:
                    groups.setdefault((m.topic, m.partition), []).append(
                        Message(m.value, m.partition, m.offset, m.topic, m.key)
                    )
            if not groups:
                continue
            try:
                await side_batch(groups)
            except Exception as exc:
                _fatal("side inputs", exc)

    async def side_batch(groups: dict[tuple[str, int], list[Message]]) -> None:
        loop = asyncio.get_running_loop()
        async with commit_lock:
            offsets: dict[TopicPartition, OffsetAndMetadata] = {}
            for (topic, p), msgs in sorted(groups.items()):
                msgs = _ascending(msgs)
                kind = side_kinds[topic]
                ok, bad = decoders[kind].decode_batch([m.value for m in msgs])
                for pos, err in bad:
                    dead = side_dead.get(topic)
                    if dead is not None:
                        dead.send(msgs[pos], err)
                    log.warning(
                        "worker.side_event_refused", topic=topic, partition=p,
                        offset=msgs[pos].offset, reason=err.reason,
                    )  # fmt: skip
                good = [msgs[i] for i, _ in ok]
                if good:
                    await partials.send(
                        key=b"",
                        value=encode_side_events(
                            kind, p, [m.offset for m in good], [m.value for m in good]
                        ),
                    )
                offsets[TopicPartition(topic, p)] = OffsetAndMetadata(msgs[-1].offset + 1, "")
            await app.producer.flush()
            for dead in side_dead.values():
                await loop.run_in_executor(None, dead.flush)
            await commit(offsets)

    @app.agent(partials, concurrency=1)  # type: ignore[untyped-decorator]
    async def merge(stream: Any) -> None:
        async for events in stream.noack().take_events(256, within=0.25):
            async with merge_lock:
                if not any(tp.topic == kcfg.partials_topic for tp in app.consumer.assignment()):
                    continue  # fetched before a rebalance took the partials away
                # take_events also hands out what it buffered before a rebalance: the partials
                # are read again from the merger's commit, in order, so older ones are dropped.
                generation = app.consumer_generation_id
                current = [
                    (e.message.offset, e.message.value)
                    for e in events
                    if e.message.generation_id == generation
                ]
                if not current:
                    continue
                if state["sink"] is not None:
                    await _wait_while_pressed(state["sink"])
                try:
                    checkpoint = await merge_batch(current)
                except Exception as exc:
                    _fatal("merger", exc)
            # Committed outside the lock: the rebalance callback takes that lock to close the
            # store, and a commit waits for the consumer, which waits for that callback.
            offset, metadata = checkpoint
            async with commit_lock:
                done = await commit(
                    {TopicPartition(kcfg.partials_topic, 0): OffsetAndMetadata(offset, metadata)}
                )
            if done and state.get("states") is not None and "slot" in state:
                state["states"].committed(state["slot"])

    async def _in_sequence(
        side: MergeSide, messages: list[tuple[int, bytes]]
    ) -> list[tuple[int, bytes]]:
        """:meth:`MergeSide.in_sequence`; at a gap, the consumer is sent back to the first
        missing offset (once), and the rest comes again in order."""
        out, gap = side.in_sequence(messages)
        if gap is None or state.get("seeking") == gap:
            return out  # in order; or sent back already, and what follows is the old position's
        state["seeking"] = gap
        loop = asyncio.get_running_loop()
        begins = await loop.run_in_executor(None, beginning_offsets, kcfg, kcfg.partials_topic)
        first = begins.get(0, 0)
        if gap < first and not out:
            # The broker's retention deleted partials this merger had not read (it was away
            # longer than the topic keeps them): go on from what is left.
            log.error("merger.partials_deleted", missing_from=gap, until=first)
            side.next_offset = first
            return (await _in_sequence(side, messages)) if messages[-1][0] >= first else []
        log.warning("merger.seek", offset=gap, got=messages[-1][0])
        await app.consumer.seek(TopicPartition(kcfg.partials_topic, 0), gap)
        return out

    async def merge_batch(messages: list[tuple[int, bytes]]) -> tuple[int, str]:
        loop = asyncio.get_running_loop()
        side = state["merge"]
        if side is None:
            # The embedded store admits one process: wait for the previous merger to let go.
            sink = await loop.run_in_executor(None, _open_when_free, open_sink)
            alerts = alerting() if alerting is not None else None
            writes = _WritesWait(sink)
            states = _state_store(sink, config)
            side = MergeSide(
                config, specs, sketches, writes, source_partitions, profiles=profiles,
                snapshots=states is not None,
            )  # fmt: skip
            if alerts is not None:
                side.on_window.append(partial(_alert, alerts, writes))
            commits = await loop.run_in_executor(
                None, read_commits, kcfg, kcfg.group, kcfg.partials_topic, [0]
            )
            found = commits.get(0)
            if found and found[1]:
                position = side.restore(found[1], found[0])
                if position is not None and states is not None:
                    snapshot = await loop.run_in_executor(None, states.load, position)
                    if snapshot is None:
                        log.error("merger.snapshot_missing", position=position)
                    else:
                        side.restore_snapshot(snapshot)
                ends = await loop.run_in_executor(None, end_offsets, kcfg, kcfg.partials_topic)
                side.hold_until = ends.get(0, 0)
            # Where this merger must read from: its commit. The consumer's position may be
            # elsewhere: when the partials partition comes back to this worker in a rebalance,
            # messages fetched for the previous merger can still be handed out first.
            side.next_offset = found[0] if found else messages[0][0]
            state.update(
                merge=side, sink=sink, writes=writes, alerting=alerts, states=states, saved=0.0,
                seeking=None,
            )  # fmt: skip
            if serve_sql is not None:
                # `drifthouse sql` asks the process that holds the embedded store.
                state["sql"] = await loop.run_in_executor(None, serve_sql)
            log.info("merger.start", resume=found[0] if found else None)
        messages = await _in_sequence(side, messages)
        if not messages:
            unchanged: tuple[int, str] = side.checkpoint()
            return unchanged
        side.process(messages)
        state["last_batch"], state["quiet_done"] = time.monotonic(), False
        await _flush_when_possible(side.sink)
        if state["alerting"] is not None:
            state["alerting"].save_state()
        states = state.get("states")
        if states is not None and time.monotonic() - state["saved"] >= SNAPSHOT_EVERY_S:
            # The label join, metric-event windows and change detectors, with the position
            # they cover; the commit below names it, and never passes it until the next one.
            position, blob = side.snapshot()
            try:
                state["slot"] = await loop.run_in_executor(None, states.save, position, blob)
                del blob
                await loop.run_in_executor(None, memory.trim)  # the snapshot's pages go back
            except StoreError as exc:
                # The store is away (the spool holds the rows): commits stay at the last
                # snapshot saved, so a restart re-reads from there; try again next time.
                log.warning("merger.snapshot_deferred", error=str(exc))
            else:
                side.snapshot_saved()
            state["saved"] = time.monotonic()
        checkpoint: tuple[int, str] = side.checkpoint()
        return checkpoint

    @app.timer(1.0)  # type: ignore[untyped-decorator]
    async def heartbeat() -> None:
        # Quiet partitions still report their watermark, marked idle once caught up and quiet
        # for a while, so their silence does not hold every window back.
        idle_after = config.kafka.idle_after / 1000.0
        now = time.monotonic()
        async with commit_lock:
            for p, stage in list(source.stages.items()):
                # Idle means caught up and quiet: a partition that is behind (a rebalance, a
                # slow worker) must keep holding windows back, however long it is silent.
                quiet = now - source.last_event_at.get(p, now) >= idle_after
                high = reader.highwater(p)
                idle = quiet and high is not None and stage.next_offset >= high
                mark = (stage.watermark, idle)
                if sent.get(p) != mark:  # only changes, so a quiet topic stays quiet
                    sent[p] = mark
                    await partials.send(
                        key=b"", value=encode_watermark(p, stage.watermark, idle=idle)
                    )
            if last_commit[1] and time.monotonic() - last_commit[0] >= COMMIT_EVERY_S:
                await commit_source()  # the last batches' checkpoints, once the stream pauses
        side = state["merge"]
        if (
            side is not None
            and not state.get("quiet_done", True)
            and time.monotonic() - state.get("last_batch", 0.0) >= idle_after
        ):
            # Nothing came to the merger for a while: late labels waiting for the spacing
            # between rewrites of their window are written now.
            async with merge_lock:
                if state["merge"] is side:
                    state["quiet_done"] = True
                    side.quiet()
                    if state["alerting"] is not None:
                        # Alerts those late label windows raised fall due by the watermark the
                        # prediction windows have already reached.
                        state["alerting"].advance(side.stage.ready_until())
                    await _flush_when_possible(side.sink)
                    if state["alerting"] is not None:
                        state["alerting"].save_state()
        writes: _WritesWait | None = state.get("writes")
        if writes is not None and writes.pending_batches and not merge_lock.locked():
            drain = writes.drain
            # The store came back after the last batch: the spool drains now (at the sink's
            # probe spacing), not whenever the next partials happen to arrive.
            async with merge_lock:
                if state.get("writes") is writes:
                    await asyncio.get_running_loop().run_in_executor(None, drain)
        ticks[0] += 1
        # In steady state the worker frees as much as it allocates, and Python's collector,
        # which runs on the difference, never would: cycles are collected here instead.
        if ticks[0] % FULL_COLLECT_EVERY_TICKS:
            memory.collect(full=False)
        else:
            memory.collect(full=True)
            await asyncio.get_running_loop().run_in_executor(None, memory.trim)
        if ticks[0] % 10:
            return
        log.info(
            "worker.progress",
            partitions=sorted(source.stages),
            events=source.stats.events,
            invalid=source.stats.invalid,
            late=source.stats.late,
            open_panes=sum(s.windows.open_windows() for s in source.stages.values()),
            merger=state["merge"] is not None,
            source_seconds={k: round(v, 1) for k, v in source.seconds.items()},
        )

    @app.on_partitions_revoked.connect  # type: ignore[untyped-decorator]
    async def revoked(app: Any, revoked: Any, **kwargs: Any) -> None:
        # No commit here: this runs inside the consumer's rebalance callback, before the
        # group reassigns anything, and the group no longer takes commits from this member.
        # The next owner (maybe this worker again) resumes exactly from the last checkpoint
        # committed. Waiting for the batch in hand first means this worker reads, publishes
        # and commits nothing of these partitions once the callback returns, so the next
        # owner never starts while this one is still at work.
        log.info("worker.revoked", partitions=sorted((tp.topic, tp.partition) for tp in revoked))
        async with source_lock:
            epoch[0] += 1
            wanted.clear()
            source.drop(list(source.stages))
        mine = {tp.partition for tp in revoked if tp.topic == kcfg.partials_topic}
        if mine:
            async with merge_lock:  # never close the store under a batch being written
                if state["merge"] is not None:
                    await asyncio.get_running_loop().run_in_executor(None, _close_merger, state)
        log.info("worker.revoke_done")

    @app.on_before_shutdown.connect  # type: ignore[untyped-decorator]
    async def shutdown(app: Any, **kwargs: Any) -> None:
        # Stopped (SIGTERM): the merger's last rows are flushed, and its spool replayed if the
        # store is there; what cannot be stored stays in the spool for the next start.
        async with merge_lock:
            if state["merge"] is not None:
                await asyncio.get_running_loop().run_in_executor(None, _close_merger, state)

    @app.on_partitions_assigned.connect  # type: ignore[untyped-decorator]
    async def assigned(app: Any, assigned: Any, **kwargs: Any) -> None:
        mine = {tp.partition for tp in assigned if tp.topic == kcfg.topic}
        _pause_in_client(app, [tp for tp in assigned if tp.topic == kcfg.topic])
        epoch[0] += 1
        wanted.clear()
        wanted.update(mine)

    started = time.monotonic()

    @app.page("/drifthouse/health/")  # type: ignore[untyped-decorator]
    async def health(view: Any, request: Any) -> Any:
        """Progress and health as JSON: partitions, lag, events/s, open windows, the merger."""
        return view.json(_health(reader, source, state, time.monotonic() - started))

    app.drifthouse_source = source  # for tests
    app.drifthouse_state = state
    return app


def _ascending(msgs: list[Message]) -> list[Message]:
    """One partition's messages in offset order, each offset once (the merger takes side
    events by offset, and the commit goes past the last one)."""
    if all(a.offset < b.offset for a, b in pairwise(msgs)):
        return msgs
    unique = {m.offset: m for m in msgs}
    return [unique[o] for o in sorted(unique)]


def _keep_predictions_unfetched(app: Any, topic: str) -> None:
    """faust fetches every partition it has not paused; keep ``topic``'s paused for good."""
    consumer = app.consumer
    set_active, resume = consumer._set_active_tps, consumer.resume_partitions

    def _set_active_tps(tps: Any) -> Any:
        return set_active({tp for tp in tps if tp.topic != topic})

    def _resume_partitions(tps: Any) -> None:
        resume([tp for tp in tps if tp.topic != topic])

    consumer._set_active_tps = _set_active_tps
    consumer.resume_partitions = _resume_partitions


def _shorten_fetch_wait(app: Any, wait_ms: int) -> None:
    """Have faust's aiokafka consumer fetch with ``wait_ms`` as its ``fetch_max_wait_ms``
    (see :data:`FETCH_WAIT_MS`): faust passes a fixed 1,500 ms, and the consumer's fetcher
    takes the value from the consumer when it starts."""
    thread = app.consumer._thread
    create = thread._create_consumer

    def _create_consumer(loop: asyncio.AbstractEventLoop) -> Any:
        consumer = create(loop=loop)
        consumer._fetch_max_wait_ms = wait_ms
        return consumer

    thread._create_consumer = _create_consumer


def _pause_in_client(app: Any, tps: list[Any]) -> None:
    """Stop faust's aiokafka client from prefetching partitions faust never reads."""
    if not tps:
        return
    try:
        app.consumer._thread._ensure_consumer().pause(*tps)
    except Exception as exc:  # only a saving: at worst one fetch per partition sits unread
        log.debug("worker.pause_skipped", error=repr(exc))


def _health(
    reader: AssignedReader, source: SourceSide, state: dict[str, Any], uptime: float
) -> dict[str, Any]:
    partitions = {}
    for p, stage in sorted(source.stages.items()):
        high = reader.highwater(p)
        partitions[str(p)] = {
            "position": stage.next_offset,
            "lag": None if high is None else max(high - stage.next_offset, 0),
            "watermark": stage.watermark,
            "open_panes": stage.windows.open_windows(),
        }
    merge: MergeSide | None = state["merge"]
    return {
        "status": "ok",
        "uptime_s": round(uptime, 1),
        "events": source.stats.events,
        "invalid_events": source.stats.invalid,
        "late_events": source.stats.late,
        "events_per_second": round(source.stats.events / uptime, 1) if uptime > 0 else 0.0,
        "source_seconds": {k: round(v, 2) for k, v in source.seconds.items()},
        # Per generation: collections so far and objects they found unreachable (cycles).
        "gc": [[s["collections"], s["collected"]] for s in gc.get_stats()],
        "partitions": partitions,
        "merger": None
        if merge is None
        else {
            "pending_windows": len(merge.stage.pending_keys()),
            "spooled_batches": state["writes"].pending_batches if state.get("writes") else 0,
            "label_windows_waiting": merge.stage.labels.windows.waiting(merge.stage.ready_until())
            if merge.stage.labels is not None
            else 0,
            "label_join_entries": merge.stage.labels.join.entries
            if merge.stage.labels is not None
            else 0,
            "windows_written": merge.stage.stats.windows,
            "rows_written": merge.stage.stats.rows,
            "next_offset": merge.next_offset,
        },
    }


class _WritesWait:
    """The merger's sink: a write that fills the buffer flushes, and when that flush finds the
    store away with no room left to spool, the rows stay buffered instead of failing the
    merger in the middle of a batch. The flush after the batch (:func:`_flush_when_possible`)
    then waits for the store, so nothing is committed before its rows are stored."""

    def __init__(self, sink: Sink) -> None:
        self.inner = sink

    def write(self, rows: Iterable[Any]) -> None:
        try:
            self.inner.write(rows)
        except (StoreUnavailable, SpoolFull) as exc:  # the rows stay in the sink's buffer
            log.warning("merger.store_waiting", reason=str(exc), retry_s=0.0)

    def flush(self) -> None:
        self.inner.flush()

    def drain(self) -> None:
        """Try to store what waits in the spool; while the store is still away, leave it."""
        try:
            self.inner.flush()
        except (StoreUnavailable, SpoolFull):
            pass
        except StoreError as exc:  # the rows stay buffered; the next batch's flush decides
            log.error("merger.drain_failed", error=str(exc))

    @property
    def pending_batches(self) -> int:
        """Batches waiting in the sink's spool for the store to come back."""
        return int(getattr(self.inner, "pending_batches", 0))

    def close(self) -> None:
        self.inner.close()

    @property
    def pressure(self) -> float:
        return self.inner.pressure


def _alert(alerting: Any, sink: Sink, result: WindowResult) -> None:
    rows: list[AlertRow] = alerting.process(result.metrics, watermark=result.end)
    if rows:
        sink.write(rows)


async def _flush_when_possible(sink: Sink) -> None:
    """Flush; while the store is away and the spool is full (or absent), wait and try again.

    Waiting here is the backpressure: the merger reads no more partials, which stay in Kafka,
    so memory does not grow; the source partitions' checkpoints keep being committed because
    their partials are safely in Kafka.
    """
    loop = asyncio.get_running_loop()
    delay = 0.5
    while True:
        try:
            await loop.run_in_executor(None, sink.flush)
            return
        except (StoreUnavailable, SpoolFull) as exc:
            log.warning("merger.store_waiting", reason=str(exc), retry_s=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)


async def _wait_while_pressed(sink: Sink) -> None:
    """Before reading more partials: while the sink asks to slow down, drain it first."""
    if not sink.pressure:
        return
    should_pause = getattr(sink, "should_pause", None)
    while should_pause is not None and should_pause():
        log.info("merger.paused", pressure=round(sink.pressure, 2))
        await asyncio.sleep(1.0)
        await _flush_when_possible(sink)


def _fatal(part: str, exc: BaseException) -> NoReturn:
    """An unexpected error ends the process: a supervisor restarts it and the restart resumes
    exactly from the last checkpoint, which beats a worker that stays up with a dead agent."""
    log.error("worker.fatal", part=part, error=repr(exc), exc_info=exc)
    sys.stderr.flush()
    os._exit(70)


def _open_when_free(open_sink: Callable[[], Sink], timeout_s: float = 120.0) -> Sink:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return open_sink()
        except StoreError as exc:
            locked = "lock" in str(exc).lower() or "EmbeddedServer" in str(exc)
            if not locked or time.monotonic() > deadline:
                raise
            log.info(
                "merger.waiting_for_store", reason="another process still holds the embedded store"
            )
            time.sleep(0.5)


def _state_store(sink: Sink, config: Config) -> MergerStateStore | None:
    client = getattr(sink, "client", None)
    if client is None:
        return None
    return MergerStateStore(client, config.store.database, config.kafka.group)


def _close_merger(state: dict[str, Any]) -> None:
    sink, alerts, sql = state["sink"], state["alerting"], state.get("sql")
    state.update(merge=None, sink=None, writes=None, alerting=None, sql=None, states=None)
    state.pop("slot", None)
    if sql is not None:
        sql.close()
    if alerts is not None:
        alerts.close()
    if sink is not None:
        try:
            sink.close()
        except StoreError as exc:
            # The store is away: the spool keeps the rows (or, without room, the commits
            # never passed them), and the next merger stores them.
            log.warning("merger.close_incomplete", error=str(exc))


def run_worker(app: Any, *, loglevel: str = "WARNING") -> None:
    """Run the app until stopped (SIGTERM/SIGINT), the way ``faust worker`` does."""
    import faust

    tune_gc()
    # Fewer malloc heaps: the snapshot's large, short-lived buffers are freed by other
    # threads than the one that allocated them, and each heap keeps what it was given.
    memory.limit_arenas(2)
    worker = faust.Worker(app, loglevel=loglevel, quiet=True)
    worker.execute_from_commandline()


def tune_gc() -> None:
    """Keep the cyclic garbage collector off the hot path.

    A micro-batch holds tens of thousands of small objects (records, events, feature dicts)
    while it is processed; with the default thresholds they survive into the oldest
    generation, whose collections then walk every object of the process (faust, Numba, the
    store client: about a million). Freezing what the start-up created and collecting the
    young generation less often took the collector from about a quarter of the worker's time
    to a few percent. The pipeline makes no reference cycles per event; the few per batch
    (asyncio, the clients) are collected by the heartbeat (``FULL_COLLECT_EVERY_TICKS``),
    since in steady state allocations and frees balance and these thresholds are never met.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 10)
