"""The live worker: ``drifthouse run -c drifthouse.yaml``.

A faust-streaming app with two agents (each ``concurrency=1``: faust #606 can lose messages with
more):

- the **source** side (a task, its partitions assigned by a cooperative group of its own,
  :mod:`drifthouse.kafka.membership`) reads the predictions topic in micro-batches, runs each partition's
  :class:`~drifthouse.stream.stage.PartitionStage` (decode -> window -> sketch) and publishes
  every closed partial window, and the partition's watermark, to the partials topic
  (:class:`~drifthouse.app.source_loop.SourceLoop`);
- the **merge** agent reads the partials topic, whose partitions are merge shards
  (:mod:`drifthouse.kafka.shards`): whichever process holds a shard is its merger and runs its
  :class:`~drifthouse.stream.merge.MergeStage` and alerts
  (:class:`~drifthouse.app.merge_loop.MergeShards`). The embedded engine admits one process per
  data directory, so it takes one shard only; several shards need a ClickHouse server.

``role`` makes a process only a source worker (``"source"``: the predictions, labels and metrics
topics) or only a merger (``"merger"``: the partials topic); ``"all"`` does both.

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

This module only wires those parts to faust and to the source group: the app, its topics,
agents, timer, rebalance signals and web page.
"""

from __future__ import annotations

import gc
import os
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal, NoReturn, get_args

from drifthouse.alerts import Alerting
from drifthouse.app import memory
from drifthouse.app.assembly import RunParts
from drifthouse.app.faust_kafka import FaustKafka, FaustPartialsLog, GroupSourceKafka
from drifthouse.app.health import Housekeeping, health_report
from drifthouse.app.late_join import ShardLateJoins
from drifthouse.app.merge_loop import MergeLoop, MergeShards
from drifthouse.app.side_forwarder import SideForwarder
from drifthouse.app.source_loop import SourceLoop
from drifthouse.app.source_side import SourceSide
from drifthouse.config import Config, KafkaConfig
from drifthouse.detectors.reference import Profile
from drifthouse.errors import ConfigError
from drifthouse.kafka import faust_patches
from drifthouse.kafka.membership import SourceMembership
from drifthouse.kafka.partials import side_decoders
from drifthouse.kafka.shards import shard_of
from drifthouse.kafka.source import AssignedReader
from drifthouse.logs import get_logger
from drifthouse.sinks.base import Sink
from drifthouse.stream.dead_letters import DeadLetters
from drifthouse.stream.sources import Message

__all__ = ["FETCH_WAIT_MS", "ROLES", "Role", "build_app", "run_worker", "tune_gc"]

log = get_logger("worker")

FETCH_WAIT_MS = 250
"""How long the broker may hold a fetch of faust's consumer (partials, labels, metrics) open
while it has nothing new; faust sets 1,500 ms. aiokafka has one fetch per broker in flight and
leaves out of it a partition whose records it still holds (more than 0.1 s when a merge batch
keeps the event loop busy): the next partials then waited behind an empty fetch of the labels
and metrics topics, up to 1.5 s. 250 ms is the merger's own batching interval; an idle worker
asks four times a second, which costs no measurable CPU (100 ms cost about 1% of a core)."""


Role = Literal["all", "source", "merger"]
"""What a worker process does: both sides, only the source side, or only merging."""
ROLES: tuple[Role, ...] = get_args(Role)


def build_app(
    config: Config,
    *,
    profiles: dict[str, Profile],
    open_sink: Callable[[int], Sink],
    dead_letters: DeadLetters,
    alerting: Callable[[int], Alerting] | None = None,
    serve_sql: Callable[[], Any] | None = None,
    web_port: int | None = None,
    datadir: Path | None = None,
    side_dead_letters: Mapping[str, DeadLetters] | None = None,
    role: Role = "all",
) -> Any:
    """The faust app of a worker process (see the module docstring).

    ``open_sink(shard)`` and ``alerting(shard)`` make a merge shard's sink and alerting.
    ``side_dead_letters`` maps the labels and metrics topics to where their refused messages go
    (by default they are counted and logged only). The app's ``drifthouse_worker`` is its
    :class:`Worker` (the source loop, merge loops and side forwarder).
    """
    from drifthouse.kafka.admin import ensure_partials_topic, ensure_topics, partitions_for

    kcfg = config.kafka
    check_shards(config, role)
    ensure_partials_topic(kcfg)
    ensure_topics(kcfg, {kcfg.labels_topic: 1, kcfg.metrics_topic: 1})
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
        role=role,
    )
    worker.connect()
    app.drifthouse_worker = worker
    return app


def check_shards(config: Config, role: str) -> None:
    """Refuse what cannot run: an unknown role, several merge shards on the embedded store
    (it admits one process, and each shard's merger writes the store), or a shadow model on
    another merge shard than its primary."""
    if role not in ROLES:
        raise ConfigError(f"--role must be one of {', '.join(ROLES)} (got {role!r})")
    shards = config.kafka.partials_partitions
    if shards > 1 and config.store_dsn().startswith("chdb://"):
        raise ConfigError(
            f"kafka.partials_partitions is {shards}, but the store is the embedded engine "
            f"({config.masked_store_dsn()}), which admits one process: each merge shard's "
            "merger writes the store, so several shards need a ClickHouse server "
            "(store.dsn: http://...); or set kafka.partials_partitions to 1",
            [("kafka.partials_partitions", f"{shards} merge shards need store.dsn")],
        )
    for name, model in config.models.items():  # a shadow pairs on its primary's merger
        primary = model.shadow_of
        if primary is not None and shard_of(name, shards) != shard_of(primary, shards):
            raise ConfigError(
                f"models.{name}.shadow_of: shadow {name!r} is on merge shard "
                f"{shard_of(name, shards)}, its primary {primary!r} on {shard_of(primary, shards)} "
                f"(crc32(name) % kafka.partials_partitions), so their predictions never meet; "
                "name the shadow so that it falls on its primary's shard, or use one merge shard",
                [(f"models.{name}.shadow_of", "on another merge shard than its primary")],
            )


class Worker:
    """One worker process's parts, connected to its faust app by :meth:`connect`."""

    def __init__(
        self,
        app: Any,
        parts: RunParts,
        source_partitions: list[int],
        *,
        open_sink: Callable[[int], Sink],
        dead_letters: DeadLetters,
        alerting: Callable[[int], Alerting] | None,
        serve_sql: Callable[[], Any] | None,
        side_dead_letters: Mapping[str, DeadLetters],
        role: Role = "all",
    ) -> None:
        kcfg = parts.config.kafka
        self.app = app
        self.kcfg = kcfg
        self.role = role
        self.started = time.monotonic()
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
        self.membership = SourceMembership(kcfg, kcfg.topic, self.kafka.spill)
        self.source_loop = SourceLoop(
            self.source,
            self.reader,
            GroupSourceKafka(self.kafka, self.membership),
            dead_letters,
            publish_lock=self.kafka.lock,
            idle_after_s=kcfg.idle_after / 1000.0,
            on_error=fatal,
        )

        def merge_loop(shard: int) -> MergeLoop:
            return MergeLoop(
                parts,
                source_partitions,
                FaustPartialsLog(self.kafka, shard),
                open_sink=lambda: open_sink(shard),
                alerting=(lambda: alerting(shard)) if alerting is not None else None,
                # `drifthouse sql` asks one process: the merger of shard 0.
                serve_sql=serve_sql if shard == 0 else None,
                on_error=fatal,
                shard=shard,
            )

        self.merge = MergeShards(merge_loop)
        self.side = SideForwarder(
            {kcfg.labels_topic: "labels", kcfg.metrics_topic: "metrics"},
            side_decoders(kcfg),
            side_dead_letters,
            send=self.kafka.send,
            flush=self.kafka.flush,
            commit=self.kafka.commit_side,
            publish_lock=self.kafka.lock,
            shards=kcfg.partials_partitions,
        )
        self.housekeeping = Housekeeping()
        self.late_joins = ShardLateJoins(parts.config)  # metrics.late_labels_every

    def connect(self) -> None:
        """Patch faust's consumer (see :mod:`drifthouse.kafka.faust_patches`) and register
        the agents, the heartbeat, the rebalance and shutdown handlers and the health page."""
        app = self.app
        faust_patches.disable_commits(app)
        # The predictions partitions are not faust's: a group of their own assigns them
        # cooperatively (SourceMembership), and the source reads them in bulk with a reader
        # of its own (AssignedReader), as faust delivers one message at a time through its
        # streams (about 6k messages/s).
        faust_patches.shorten_fetch_wait(app, FETCH_WAIT_MS)
        # A member subscribes only to the topics of its role, and the group assigns a topic's
        # partitions only among its subscribers.
        if self.role in ("all", "source"):
            app.task(self._read_source)
            app.agent(self.side_topics, concurrency=1)(self._side_inputs)
        if self.role in ("all", "merger"):
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

    async def _read_source(self) -> None:
        # The source group tells the source loop of every change of its partitions.
        await self.membership.start(self.source_loop)
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
            shards = sorted({e.message.partition for e in events})
            for shard in shards:

                def current(events: list[Any] = events, shard: int = shard) -> list[Any]:
                    # Evaluated under the shard's merge-loop lock: fetched before a rebalance
                    # took the shard away, or buffered before one (read again from the shard's
                    # commit, in order), they are dropped.
                    return [
                        (m.offset, m.value)
                        for m in self._current(events, {topic})
                        if m.partition == shard
                    ]

                await self.merge.take(shard, current)

    async def _heartbeat(self) -> None:
        await self.source_loop.tick()
        await self.merge.quiet(self.kcfg.idle_after / 1000.0)
        await self.merge.drain()
        await self.late_joins.tick(self.merge)
        await self.housekeeping.tick(self.source, bool(self.merge.mergers))

    async def _revoked(self, app: Any, revoked: Any, **kwargs: Any) -> None:
        # This runs inside faust's consumer's rebalance callback (labels, metrics, partials),
        # before the group reassigns anything. The source partitions are another group's
        # (SourceMembership), which hands its revocations to the source loop itself.
        log.info("worker.revoked", partitions=sorted((tp.topic, tp.partition) for tp in revoked))
        # Each shard's merger is closed after its batch in hand (never under a batch being
        # written); the next owner resumes from the shard's commit and snapshot.
        await self.merge.close(
            tp.partition for tp in revoked if tp.topic == self.kcfg.partials_topic
        )
        log.info("worker.revoke_done")

    async def _shutdown(self, app: Any, **kwargs: Any) -> None:
        # Stopped (SIGTERM): the source commits its last checkpoints, so the next owners
        # re-read no more than the panes still open; the merger's last rows are flushed, and
        # its spool replayed if the store is there; what cannot be stored stays in the spool
        # for the next start.
        if self.role in ("all", "source"):
            await self.source_loop.stop()
            await self.membership.close()
        await self.merge.close()
        await self.late_joins.wait()
        self.kafka.spill.close()

    async def _assigned(self, app: Any, assigned: Any, **kwargs: Any) -> None:
        log.info("worker.assigned", partitions=sorted((tp.topic, tp.partition) for tp in assigned))

    def health(self) -> dict[str, Any]:
        """The health page's report (see :func:`~drifthouse.app.health.health_report`)."""
        return health_report(
            self.reader, self.source, self.merge.mergers, time.monotonic() - self.started
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
        # A worker that dies leaves no LeaveGroup behind: the group waits this long for it
        # (kafka.session_timeout; Kafka's floor is 6 s). Heartbeats at a third of it or less.
        broker_session_timeout=kcfg.session_timeout / 1000,
        broker_heartbeat_interval=min(2.0, kcfg.session_timeout / 3000),
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
