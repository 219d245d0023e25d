"""The source workers' consumer group of the predictions topic: cooperative-sticky membership.

librdkafka (through confluent-kafka) keeps the group; its ``cooperative-sticky`` assignor moves
only the partitions that change owner, so a worker joining or leaving takes nothing from the
others beyond what it must: every other partition stays where it is, read all along, its
stage untouched (faust's aiokafka has only the eager protocol, in which every member gives
every partition back at every rebalance).

:class:`SourceMembership` only holds the membership and the commits: it never fetches (each
partition assigned is paused at once) and the worker's
:class:`~drifthouse.kafka.source.AssignedReader` reads the partitions in bulk. Its consumer is
polled in a thread of its own; the group's callbacks (partitions added, revoked, lost) are
handed to the worker's event loop (:class:`Rebalances`), and a revocation waits until the
worker has committed and set those partitions aside: their next owner starts from that commit.

The group is ``<kafka.group>-source`` (:func:`source_group`): one group cannot mix faust's
assignor with librdkafka's, so faust keeps ``kafka.group`` for the labels, metrics and partials
topics. A partition without a commit in the source group resumes from the one ``kafka.group``
made of it (the worker's commits before this group existed).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable, Coroutine, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, Protocol

from drifthouse.config import KafkaConfig
from drifthouse.kafka.checkpoints import read_commits
from drifthouse.kafka.client import librdkafka_config
from drifthouse.kafka.spill import CheckpointSpill
from drifthouse.logs import get_logger

__all__ = ["Rebalances", "SourceMembership", "source_group"]

log = get_logger("worker")

POLL_S = 0.05
"""How long one poll of the membership consumer waits (it serves the group's callbacks):
the worker's commits wait for the end of one (see :meth:`SourceMembership._in_poll_thread`)."""


def source_group(cfg: KafkaConfig) -> str:
    """The consumer group of the predictions topic: ``<kafka.group>-source``."""
    return f"{cfg.group}-source"


class Rebalances(Protocol):
    """What the worker does when the group changes its partitions (on its event loop)."""

    async def added(self, partitions: set[int]) -> None:
        """These partitions are this worker's too now."""

    async def revoked(self, partitions: set[int]) -> None:
        """Commit these partitions and let them go (the others stay as they are)."""

    async def lost(self, partitions: set[int]) -> None:
        """These partitions may be another's already: let them go without committing."""


class SourceMembership:
    """This worker's membership of the source group (see the module docstring).

    ``commit`` and ``committed`` block (run them in an executor); ``start`` and ``close``
    are called on the worker's event loop.
    """

    def __init__(self, cfg: KafkaConfig, topic: str, spill: CheckpointSpill) -> None:
        self.cfg = cfg
        self.topic = topic
        self.group = source_group(cfg)
        self.spill = spill
        self._consumer: Any = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._closed = threading.Event()
        # Calls of the consumer from other threads, made by the polling thread (see
        # _in_poll_thread); the lock orders them with the consumer's closing.
        self._requests: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]]] = (
            queue.SimpleQueue()
        )
        self._requests_lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handler: Rebalances | None = None
        #: The partitions the group gives this worker now.
        self.assigned: set[int] = set()

    async def start(self, handler: Rebalances) -> None:
        """Join the group; ``handler`` hears of every change of this worker's partitions."""
        from confluent_kafka import Consumer

        self._loop = asyncio.get_running_loop()
        self._handler = handler
        self._consumer = Consumer(
            librdkafka_config(
                self.cfg,
                **{
                    "group.id": self.group,
                    "partition.assignment.strategy": "cooperative-sticky",
                    "enable.auto.commit": False,
                    "enable.auto.offset.store": False,
                    # As faust's group: a worker killed without a goodbye holds its partitions
                    # this long (kafka.session_timeout; Kafka's floor is 6 s).
                    "session.timeout.ms": self.cfg.session_timeout,
                    "heartbeat.interval.ms": min(2_000, self.cfg.session_timeout // 3),
                    # Never fetches (its partitions are paused): keep the queues small anyway.
                    "queued.max.messages.kbytes": 1024,
                    "fetch.max.bytes": 1 << 20,
                    # librdkafka's own lines go to the logging module, not to stderr.
                    "logger": logging.getLogger("drifthouse.librdkafka"),
                },
            )
        )
        self._consumer.subscribe(
            [self.topic],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        self._thread = threading.Thread(target=self._poll, name="source-membership", daemon=True)
        self._thread.start()

    async def close(self) -> None:
        """Leave the group (the worker has made its last commits). Idempotent."""
        if self._thread is None:
            return
        self._stopping.set()
        thread, self._thread = self._thread, None
        await asyncio.get_running_loop().run_in_executor(None, thread.join)

    def _poll(self) -> None:
        consumer = self._consumer
        try:
            while not self._stopping.is_set():
                msg = consumer.poll(POLL_S)
                if msg is not None and msg.error() is not None:
                    log.warning("worker.membership_error", error=str(msg.error()))
                self._serve()
        finally:
            with self._requests_lock:
                self._closed.set()  # the callbacks of close() change nothing any more
            self._serve(closed=True)
            consumer.close()

    def _in_poll_thread(self, call: Callable[[], Any]) -> Any:
        """``call()`` made by the polling thread, its result or error returned here.

        confluent-kafka's consumer cannot be called from another thread while one polls it:
        the call waits for a gap between two polls that the polling thread, taking its lock
        again at once, never leaves (a synchronous commit from another thread hung forever,
        measured). So the polling thread makes every call, between two polls, and while a
        rebalance callback waits for the worker (see :meth:`_hand_over`)."""
        if threading.current_thread() is self._thread:
            return call()
        done: Future[Any] = Future()
        with self._requests_lock:
            if self._closed.is_set():
                raise RuntimeError("the source group's consumer is closed")
            self._requests.put((call, done))
        return done.result()

    def _serve(self, *, closed: bool = False) -> None:
        while True:
            try:
                call, done = self._requests.get_nowait()
            except queue.Empty:
                return
            if closed:
                done.set_exception(RuntimeError("the source group's consumer is closed"))
                continue
            try:
                done.set_result(call())
            except BaseException as exc:
                done.set_exception(exc)

    # -- the group's callbacks, in the polling thread

    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        consumer.incremental_assign(partitions)
        # Never fetched here: the worker's bulk reader reads them.
        consumer.pause(partitions)
        mine = {tp.partition for tp in partitions}
        self.assigned |= mine
        log.info("worker.source_assigned", partitions=sorted(mine), group=self.group)
        if mine:
            self._hand_over(lambda h: h.added(mine))

    def _on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        mine = {tp.partition for tp in partitions}
        self.assigned -= mine
        log.info("worker.source_revoked", partitions=sorted(mine), group=self.group)
        if mine:
            self._hand_over(lambda h: h.revoked(mine))

    def _on_lost(self, consumer: Any, partitions: list[Any]) -> None:
        mine = {tp.partition for tp in partitions}
        self.assigned -= mine
        log.warning("worker.source_lost", partitions=sorted(mine), group=self.group)
        if mine:
            self._hand_over(lambda h: h.lost(mine))

    def _hand_over(self, call: Any) -> None:
        """Run ``call(handler)`` on the worker's loop and wait for it: the group goes on only
        once the worker has done what the change asks."""
        if self._closed.is_set() or self._loop is None or self._handler is None:
            return  # closing: the worker made its last commits before
        coro: Coroutine[Any, Any, None] = call(self._handler)
        try:
            done = asyncio.run_coroutine_threadsafe(coro, self._loop)
            while True:
                try:
                    done.result(timeout=POLL_S)
                    break
                except FutureTimeout:
                    self._serve()  # the worker's commits of the partitions revoked
        except Exception as exc:
            log.error("worker.rebalance_failed", error=repr(exc), exc_info=exc)

    # -- commits (blocking)

    def commit(self, offsets: dict[int, tuple[int, str]]) -> bool:
        """Commit ``{partition: (offset, metadata)}``; ``False`` when refused (a rebalance
        took the partitions, or the worker is closing): the last commit stands."""
        from confluent_kafka import TopicPartition

        if self._closed.is_set() or self._stopping.is_set() or self._consumer is None:
            return False
        try:
            # Past 4 KB the broker refuses a commit: such checkpoints go to the compacted
            # topic and the commit names the record.
            metadata = {p: self.spill.prepare(self.topic, p, m) for p, (_, m) in offsets.items()}
            wanted = [
                TopicPartition(self.topic, p, o, metadata[p])
                for p, (o, _) in sorted(offsets.items())
            ]
            consumer = self._consumer
            self._in_poll_thread(lambda: consumer.commit(offsets=wanted, asynchronous=False))
        except Exception as exc:
            log.warning("worker.commit_refused", error=str(exc), partitions=sorted(offsets))
            return False
        for p, m in metadata.items():
            self.spill.committed(self.topic, p, m)
        return True

    def committed(self, partitions: Sequence[int]) -> dict[int, tuple[int, str]]:
        """Per partition with a commit: ``(offset, checkpoint)``, the source group's, else
        the one ``kafka.group`` made (before the source group existed)."""
        found = read_commits(self.cfg, self.group, self.topic, partitions)
        missing = [p for p in partitions if p not in found]
        if missing:
            found.update(read_commits(self.cfg, self.cfg.group, self.topic, missing))
        out = {}
        for p, (offset, stored) in found.items():
            # confluent-kafka stores the metadata with C's closing NUL byte (seen on the
            # broker; its own committed() hides it).
            metadata = stored.removesuffix("\x00")
            self.spill.committed(self.topic, p, metadata)  # the next spill keeps this one's slot
            out[p] = (offset, self.spill.resolve(metadata))
        return out
