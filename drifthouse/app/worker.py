"""The live worker: ``drifthouse run -c drifthouse.yaml``.

A faust-streaming app with two agents (each ``concurrency=1``: faust #606 can lose messages with
more):

- the **source** side reads the predictions topic in micro-batches, runs each partition's
  :class:`~drifthouse.stream.stage.PartitionStage` (decode -> window -> sketch) and publishes
  every closed partial window, and the partition's watermark, to the partials topic
  (:class:`~drifthouse.app.source_loop.SourceLoop`);
- the **merge** agent reads the partials topic (one partition: whichever process holds it is
  the merger and the only writer to the store, as the embedded engine admits one process per
  data directory) and runs the :class:`~drifthouse.stream.merge.MergeStage` and the alerts
  (:class:`~drifthouse.app.merge_loop.MergeLoop`).

Labels and metric events reach the merger through the partials topic too
(:class:`~drifthouse.app.side_forwarder.SideForwarder`); the health page and the memory
housekeeping are in :mod:`drifthouse.app.health`.

**Exact recovery.** faust never acknowledges or commits on its own here (the streams are
``noack``, and :mod:`drifthouse.kafka.faust_patches` switches faust's commits off). A source
partition's offset is committed only after the partials it covers are acknowledged by Kafka,
and the offset committed is the partition's *checkpoint*: the first offset of the oldest pane
still open, with the watermark state in the commit metadata. A restarted or newly assigned
worker restores the stage from that metadata and re-reads from there, rebuilding exactly the
open panes. The merger commits the partials topic the same way, only after the rows are flushed
to the store, at the oldest partial of a window not yet written.

This module only wires those parts to faust: the app, its topics, agents, timer, rebalance
signals and web page.
"""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NoReturn

from drifthouse.alerts import Alerting
from drifthouse.app import memory
from drifthouse.app.assembly import RunParts
from drifthouse.app.health import Housekeeping, health_report
from drifthouse.app.merge_loop import MergeLoop
from drifthouse.app.side_forwarder import SideForwarder
from drifthouse.app.source_loop import SourceLoop
from drifthouse.app.source_side import SourceSide
from drifthouse.config import Config, KafkaConfig
from drifthouse.detectors.reference import Profile
from drifthouse.kafka import faust_patches
from drifthouse.kafka.partials import side_decoders
from drifthouse.kafka.source import AssignedReader
from drifthouse.logs import get_logger
from drifthouse.sinks.base import Sink
from drifthouse.stream.dead_letters import DeadLetters
from drifthouse.stream.sources import Message
from drifthouse.stream.stage import Checkpoint

__all__ = ["FETCH_WAIT_MS", "build_app", "run_worker", "tune_gc"]

log = get_logger("worker")

FETCH_WAIT_MS = 250
"""How long the broker may hold a fetch of faust's consumer (partials, labels, metrics) open
while it has nothing new; faust sets 1,500 ms. aiokafka has one fetch per broker in flight and
leaves out of it a partition whose records it still holds (more than 0.1 s when a merge batch
keeps the event loop busy): the next partials then waited behind an empty fetch of the labels
and metrics topics, up to 1.5 s. 250 ms is the merger's own batching interval; an idle worker
asks four times a second, which costs no measurable CPU (100 ms cost about 1% of a core)."""


class FaustKafka:
    """The worker's Kafka through faust: publish to the partials topic, read and write
    commits (with their metadata) through faust's consumer. It serves the source loop
    (:class:`~drifthouse.app.source_loop.SourceKafka`), the merge loop
    (:class:`~drifthouse.app.merge_loop.PartialsLog`) and the side forwarder."""

    def __init__(self, app: Any, kcfg: KafkaConfig, partials: Any) -> None:
        self.app = app
        self.kcfg = kcfg
        self.partials = partials
        #: Held while publishing and committing (see :class:`SourceLoop`).
        self.lock = asyncio.Lock()

    async def send(self, key: bytes, value: bytes) -> None:
        await self.partials.send(key=key, value=value)

    async def flush(self) -> None:
        await self.app.producer.flush()

    async def commit_offsets(self, offsets: dict[tuple[str, int], tuple[int, str]]) -> bool:
        """Commit ``{(topic, partition): (offset, metadata)}``; ``False`` if refused."""
        from aiokafka.structs import OffsetAndMetadata, TopicPartition

        wanted = {
            TopicPartition(t, p): OffsetAndMetadata(o, m) for (t, p), (o, m) in offsets.items()
        }
        try:
            await faust_patches.commit_with_metadata(self.app, wanted)
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

        return await asyncio.get_running_loop().run_in_executor(
            None, read_commits, self.kcfg, self.kcfg.group, topic, partitions
        )

    # -- the source loop's side

    async def committed(self, partitions: list[int]) -> dict[int, tuple[int, str]]:
        return await self.read_commits_of(self.kcfg.topic, partitions)

    async def commit(self, checkpoints: dict[int, Checkpoint]) -> bool:
        topic = self.kcfg.topic
        return await self.commit_offsets(
            {(topic, p): (cp.offset, cp.encode()) for p, cp in checkpoints.items()}
        )

    async def commit_side(self, offsets: dict[tuple[str, int], int]) -> bool:
        return await self.commit_offsets({tp: (o, "") for tp, o in offsets.items()})


class FaustPartialsLog:
    """The partials topic's one partition as the merge loop reads and commits it."""

    def __init__(self, kafka: FaustKafka) -> None:
        self.kafka = kafka
        self.topic = kafka.kcfg.partials_topic

    async def committed(self) -> tuple[int, str] | None:
        return (await self.kafka.read_commits_of(self.topic, [0])).get(0)

    async def beginning(self) -> int:
        from drifthouse.kafka.admin import beginning_offsets

        loop = asyncio.get_running_loop()
        begins = await loop.run_in_executor(None, beginning_offsets, self.kafka.kcfg, self.topic)
        return int(begins.get(0, 0))

    async def end(self) -> int:
        from drifthouse.kafka.admin import end_offsets

        loop = asyncio.get_running_loop()
        ends = await loop.run_in_executor(None, end_offsets, self.kafka.kcfg, self.topic)
        return int(ends.get(0, 0))

    async def seek(self, offset: int) -> None:
        from aiokafka.structs import TopicPartition

        await self.kafka.app.consumer.seek(TopicPartition(self.topic, 0), offset)

    async def commit(self, offset: int, metadata: str) -> bool:
        async with self.kafka.lock:
            return await self.kafka.commit_offsets({(self.topic, 0): (offset, metadata)})


def build_app(
    config: Config,
    *,
    profiles: dict[str, Profile],
    open_sink: Callable[[], Sink],
    dead_letters: DeadLetters,
    alerting: Callable[[], Alerting] | None = None,
    serve_sql: Callable[[], Any] | None = None,
    web_port: int | None = None,
    datadir: Path | None = None,
    side_dead_letters: Mapping[str, DeadLetters] | None = None,
) -> Any:
    """The faust app of a worker process (see the module docstring).

    ``side_dead_letters`` maps the labels and metrics topics to where their refused messages go
    (by default they are counted and logged only). The app's ``drifthouse_worker`` is its
    :class:`Worker` (the source loop, merge loop and side forwarder).
    """
    from drifthouse.kafka.admin import ensure_topics, partitions_for

    kcfg = config.kafka
    ensure_topics(kcfg, {kcfg.partials_topic: 1, kcfg.labels_topic: 1, kcfg.metrics_topic: 1})
    app = _faust_app(kcfg, web_port, datadir)
    parts = RunParts.of(config, profiles)
    worker = Worker(
        app,
        parts,
        partitions_for(kcfg, kcfg.topic),
        open_sink=open_sink,
        dead_letters=dead_letters,
        alerting=alerting,
        serve_sql=serve_sql,
        side_dead_letters=side_dead_letters or {},
    )
    worker.connect()
    app.drifthouse_worker = worker
    return app


class Worker:
    """One worker process's parts, connected to its faust app by :meth:`connect`."""

    def __init__(
        self,
        app: Any,
        parts: RunParts,
        source_partitions: list[int],
        *,
        open_sink: Callable[[], Sink],
        dead_letters: DeadLetters,
        alerting: Callable[[], Alerting] | None,
        serve_sql: Callable[[], Any] | None,
        side_dead_letters: Mapping[str, DeadLetters],
    ) -> None:
        kcfg = parts.config.kafka
        self.app = app
        self.kcfg = kcfg
        self.started = time.monotonic()
        self.predictions = app.topic(kcfg.topic, value_serializer="raw", key_serializer="raw")
        partials = app.topic(kcfg.partials_topic, value_serializer="raw", key_serializer="raw")
        self.partials = partials
        self.side_topics = app.topic(
            kcfg.labels_topic, kcfg.metrics_topic, value_serializer="raw", key_serializer="raw"
        )
        self.kafka = FaustKafka(app, kcfg, partials)
        self.source = SourceSide(
            parts,
            dead_letters,
            now_ms=lambda: int(time.time() * 1000),
            prediction_log=parts.prediction_log(),
        )
        self.reader = AssignedReader(kcfg, kcfg.topic, max_records=kcfg.batch_size)
        self.source_loop = SourceLoop(
            self.source,
            self.reader,
            self.kafka,
            dead_letters,
            publish_lock=self.kafka.lock,
            idle_after_s=kcfg.idle_after / 1000.0,
            on_error=fatal,
        )
        self.merge_loop = MergeLoop(
            parts,
            source_partitions,
            FaustPartialsLog(self.kafka),
            open_sink=open_sink,
            alerting=alerting,
            serve_sql=serve_sql,
            on_error=fatal,
        )
        self.side = SideForwarder(
            {kcfg.labels_topic: "labels", kcfg.metrics_topic: "metrics"},
            side_decoders(kcfg),
            side_dead_letters,
            send=self.kafka.send,
            flush=self.kafka.flush,
            commit=self.kafka.commit_side,
            publish_lock=self.kafka.lock,
        )
        self.housekeeping = Housekeeping()

    def connect(self) -> None:
        """Patch faust's consumer (see :mod:`drifthouse.kafka.faust_patches`) and register
        the agents, the heartbeat, the rebalance and shutdown handlers and the health page."""
        app = self.app
        faust_patches.disable_commits(app)
        # The predictions topic is subscribed through faust, so the group assigns its
        # partitions, but faust never fetches it: faust delivers one message at a time through
        # its streams (about 6k messages/s), so the source reads its partitions in bulk with a
        # reader of its own (AssignedReader) and faust keeps membership, rebalances, commits
        # and the web page.
        faust_patches.keep_topic_unfetched(app, self.kcfg.topic)
        faust_patches.shorten_fetch_wait(app, FETCH_WAIT_MS)
        app.agent(self.predictions, concurrency=1)(self._consume)
        app.task(self._read_source)
        app.agent(self.side_topics, concurrency=1)(self._side_inputs)
        app.agent(self.partials, concurrency=1)(self._merge)
        app.timer(1.0)(self._heartbeat)
        app.on_partitions_revoked.connect(self._revoked)
        app.on_before_shutdown.connect(self._shutdown)
        app.on_partitions_assigned.connect(self._assigned)

        async def health(view: Any, request: Any) -> Any:
            """Progress and health as JSON: partitions, lag, events/s, open windows, the merger."""
            return view.json(self.health())

        # A function, not a method: faust makes it a method of its view class.
        app.page("/drifthouse/health/")(health)

    async def _consume(self, stream: Any) -> None:
        # Only here so that the group assigns the predictions partitions to this worker;
        # the partitions stay paused in faust, so nothing ever arrives.
        async for _ in stream.noack():
            pass

    async def _read_source(self) -> None:
        await self.source_loop.run()

    def _current(self, events: list[Any], topics: set[str]) -> list[Any]:
        """The messages of ``events`` still this worker's: take_events also hands out what it
        buffered before a rebalance, after faust has sent the consumer back to the last
        commit; those messages come again, in order, so the old ones are dropped."""
        assigned = {(tp.topic, tp.partition) for tp in self.app.consumer.assignment()}
        generation = self.app.consumer_generation_id
        return [
            m
            for m in (e.message for e in events)
            if m.generation_id == generation
            and m.topic in topics
            and (m.topic, m.partition) in assigned
        ]

    async def _side_inputs(self, stream: Any) -> None:
        # Labels and metric events go to the merger through the partials topic, checked, with
        # their offsets; their offsets are committed once the partials topic has them.
        # Forwarded out of order, messages buffered before a rebalance would make the merger
        # take a label twice or skip one (see _current).
        topics = {self.kcfg.labels_topic, self.kcfg.metrics_topic}
        async for events in stream.noack().take_events(self.kcfg.batch_size, within=0.25):
            groups: dict[tuple[str, int], list[Message]] = {}
            for m in self._current(events, topics):
                groups.setdefault((m.topic, m.partition), []).append(
                    Message(m.value, m.partition, m.offset, m.topic, m.key)
                )
            if not groups:
                continue
            try:
                await self.side.forward(groups)
            except Exception as exc:
                fatal("side inputs", exc)

    async def _merge(self, stream: Any) -> None:
        topic = self.kcfg.partials_topic
        async for events in stream.noack().take_events(256, within=0.25):

            def current(events: list[Any] = events) -> list[tuple[int, bytes]]:
                # Evaluated under the merge loop's lock: fetched before a rebalance took the
                # partials away, or buffered before one (read again from the merger's commit,
                # in order), they are dropped.
                return [(m.offset, m.value) for m in self._current(events, {topic})]

            await self.merge_loop.take(current)

    async def _heartbeat(self) -> None:
        await self.source_loop.tick()
        await self.merge_loop.quiet(self.kcfg.idle_after / 1000.0)
        await self.merge_loop.drain()
        await self.housekeeping.tick(self.source, self.merge_loop.merger is not None)

    async def _revoked(self, app: Any, revoked: Any, **kwargs: Any) -> None:
        # No commit here: this runs inside the consumer's rebalance callback, before the
        # group reassigns anything, and the group no longer takes commits from this member.
        # The next owner (maybe this worker again) resumes exactly from the last checkpoint
        # committed. Waiting for the batch in hand first means this worker reads, publishes
        # and commits nothing of these partitions once the callback returns, so the next
        # owner never starts while this one is still at work.
        log.info("worker.revoked", partitions=sorted((tp.topic, tp.partition) for tp in revoked))
        await self.source_loop.revoked()
        if any(tp.topic == self.kcfg.partials_topic for tp in revoked):
            await self.merge_loop.close()  # never closes the store under a batch being written
        log.info("worker.revoke_done")

    async def _shutdown(self, app: Any, **kwargs: Any) -> None:
        # Stopped (SIGTERM): the merger's last rows are flushed, and its spool replayed if the
        # store is there; what cannot be stored stays in the spool for the next start.
        await self.merge_loop.close()

    async def _assigned(self, app: Any, assigned: Any, **kwargs: Any) -> None:
        mine = [tp for tp in assigned if tp.topic == self.kcfg.topic]
        faust_patches.pause_in_client(app, mine)
        self.source_loop.assigned({tp.partition for tp in mine})

    def health(self) -> dict[str, Any]:
        """The health page's report (see :func:`~drifthouse.app.health.health_report`)."""
        return health_report(
            self.reader, self.source, self.merge_loop.merger, time.monotonic() - self.started
        )


def _faust_app(kcfg: KafkaConfig, web_port: int | None, datadir: Path | None) -> Any:
    import faust

    from drifthouse.kafka.client import faust_broker, faust_credentials

    return faust.App(
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


def fatal(part: str, exc: BaseException) -> NoReturn:
    """An unexpected error ends the process: a supervisor restarts it and the restart resumes
    exactly from the last checkpoint, which beats a worker that stays up with a dead agent."""
    log.error("worker.fatal", part=part, error=repr(exc), exc_info=exc)
    sys.stderr.flush()
    os._exit(70)


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
    (asyncio, the clients) are collected by the heartbeat (``FULL_COLLECT_EVERY_TICKS`` in
    :mod:`drifthouse.app.health`), since in steady state allocations and frees balance and
    these thresholds are never met.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 10)
