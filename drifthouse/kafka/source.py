"""Reading Kafka in bulk: a bounded replay of a topic over a time range
(``drifthouse replay --source kafka:TOPIC``, :class:`KafkaRangeSource`) and the live worker's
reader of the partitions its group assigned to it (:class:`AssignedReader`).

:class:`KafkaRangeSource` reads every partition of a topic from the first offset whose record
timestamp is at or after ``from_ms`` up to (not including) the first offset whose record timestamp
is at or after ``to_ms``. The stop offsets are fixed when the source is built (``to_ms=None``
stops at the end offsets of that moment), so the read ends by position on each partition, never by
a timeout, even while producers keep writing to the topic.

Record time and event time
--------------------------
Kafka finds offsets by *record timestamp*: the producer's ``CreateTime`` (or the broker's append
time on topics with ``message.timestamp.type=LogAppendTime``). drifthouse's event time is the
``ts`` field inside each event. The range here only positions the read; the pipeline then applies
``--from``/``--to`` to the event time. Two consequences:

* Record timestamps need not grow within a partition; Kafka returns the *first* offset at or after
  a time, so a record stamped out of order near a boundary can fall on either side of it. The
  pipeline's event-time filter is the authority on what is in the range.
* An event whose ``ts`` lies in the range but whose record was written outside it (a producer that
  sent hours late) is not read; widen the range to catch such stragglers.

No consumer group is used (``group_id=None``, nothing is committed): a replay never moves the
offsets of the live worker's group.

Example
-------
>>> from drifthouse.config import KafkaConfig
>>> src = KafkaRangeSource(KafkaConfig(), "predictions", from_ms=1_700_000_000_000)  # doctest: +SKIP
>>> for messages, progress in src.batches():  # doctest: +SKIP
...     print(len(messages), f"{progress.done}/{progress.total}")
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any, NamedTuple, cast

from drifthouse.config import KafkaConfig
from drifthouse.errors import SourceError, UsageError
from drifthouse.kafka.admin import partitions_for
from drifthouse.kafka.client import (
    aiokafka_kwargs,
    open_client,
    translate,
)
from drifthouse.logs import get_logger
from drifthouse.stream.sources import Message

__all__ = ["AssignedReader", "KafkaRangeSource", "Progress"]

log = get_logger("stream.kafka")


class Progress(NamedTuple):
    """Messages read so far and in all, for a progress bar (events/s and ETA)."""

    done: int
    total: int


class KafkaRangeSource:
    """Every message of ``topic`` whose record timestamp is in ``[from_ms, to_ms)``, read once.

    Parameters
    ----------
    cfg:
        Broker address and security settings.
    topic:
        The topic to read; all of its partitions are read.
    from_ms, to_ms:
        Record-timestamp bounds in epoch milliseconds; ``None`` means the beginning of the topic
        and the end offsets when the source is built. See the module notes on event time.
    batch_size:
        Most messages per batch (default ``cfg.batch_size``).
    timeout_ms:
        Bound on bootstrapping and on each offset lookup (default ``cfg.timeout``).
    stall_timeout_ms:
        A read that gets no message for this long while messages are still owed fails with
        :class:`SourceError` (a broker gone away), rather than hang.

    The offsets are looked up when the source is built, so :meth:`total` is known before
    reading. Messages keep their order within each partition; a batch may mix partitions.
    """

    def __init__(
        self,
        cfg: KafkaConfig,
        topic: str,
        from_ms: int | None = None,
        to_ms: int | None = None,
        *,
        batch_size: int | None = None,
        timeout_ms: int | None = None,
        stall_timeout_ms: int = 120_000,
    ) -> None:
        for name, value in (("--from", from_ms), ("--to", to_ms)):
            if value is not None and value < 0:
                raise UsageError(f"{name} must be a time after 1970-01-01 (got {value} ms)")
        if from_ms is not None and to_ms is not None and from_ms > to_ms:
            raise UsageError(
                f"--from ({from_ms} ms) must not be after --to ({to_ms} ms); swap them"
            )
        self.cfg = cfg
        self.topic = topic
        self.from_ms = from_ms
        self.to_ms = to_ms
        self.batch_size = batch_size or cfg.batch_size
        self.timeout_ms = cfg.timeout if timeout_ms is None else timeout_ms
        self.stall_timeout_ms = stall_timeout_ms
        self._consumer: Any = None
        self.start, self.stop = self._bounds()

    # -- setup ---------------------------------------------------------------------------

    def _open(self) -> Any:
        if self._consumer is None:
            from kafka import KafkaConsumer

            self._consumer = open_client(
                KafkaConsumer,
                self.cfg,
                "opening the replay consumer",
                topic=self.topic,
                group_id=None,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                max_poll_records=self.batch_size,
                bootstrap_timeout_ms=self.timeout_ms,
                request_timeout_ms=self.timeout_ms,
                fetch_max_wait_ms=min(500, self.timeout_ms // 2),
            )
        return self._consumer

    def _bounds(self) -> tuple[dict[int, int], dict[int, int]]:
        from kafka import TopicPartition
        from kafka.errors import KafkaError

        partitions = partitions_for(self.cfg, self.topic, timeout_ms=self.timeout_ms)
        tps = [TopicPartition(self.topic, p) for p in partitions]
        consumer = self._open()
        try:
            # The end offsets come first: every later lookup is clamped to them, so
            # messages written after this moment are never read.
            ends = {
                tp.partition: int(o) for tp, o in consumer.end_offsets(tps, self.timeout_ms).items()
            }
            begins = {
                tp.partition: int(o)
                for tp, o in consumer.beginning_offsets(tps, self.timeout_ms).items()
            }
            start = self._offsets_at(consumer, tps, self.from_ms, begins, ends)
            stop = self._offsets_at(consumer, tps, self.to_ms, ends, ends)
        except (KafkaError, OSError) as exc:
            self.close()
            raise translate(
                exc, self.cfg, "looking up the replay offsets", topic=self.topic
            ) from exc
        stop = {p: max(stop[p], start[p]) for p in partitions}
        log.info(
            "kafka.replay_range",
            topic=self.topic,
            from_ms=self.from_ms,
            to_ms=self.to_ms,
            partitions=len(partitions),
            messages=sum(stop[p] - start[p] for p in partitions),
        )
        return start, stop

    def _offsets_at(
        self,
        consumer: Any,
        tps: list[Any],
        ts: int | None,
        default: dict[int, int],
        ends: dict[int, int],
    ) -> dict[int, int]:
        """First offset with record timestamp >= ``ts`` per partition (``default`` when ``ts`` is None)."""
        if ts is None:
            return dict(default)
        found = consumer.offsets_for_times(dict.fromkeys(tps, ts), self.timeout_ms)
        out: dict[int, int] = {}
        for tp in tps:
            hit = found.get(tp)
            # No message at or after ts: the position is the end of the partition.
            out[tp.partition] = (
                ends[tp.partition] if hit is None else min(int(hit.offset), ends[tp.partition])
            )
        return out

    # -- reading -------------------------------------------------------------------------

    def total(self) -> int:
        """How many offsets the range covers (the messages to read, bar transaction markers)."""
        return sum(self.stop[p] - self.start[p] for p in self.start)

    def batches(self) -> Iterator[tuple[list[Message], Progress]]:
        """Yield ``(messages, Progress(done, total))`` until every partition reaches its stop offset.

        Every batch but possibly the last holds at least one message; a last, empty batch only
        brings ``done`` up to ``total`` when the range ends in offsets that hold no message
        (transaction markers, compacted records). The consumer is closed at the end.
        """
        from kafka import TopicPartition

        total = self.total()
        tps = {p: TopicPartition(self.topic, p) for p in self.start}
        active = {p for p in self.start if self.stop[p] > self.start[p]}
        done = dict.fromkeys(self.start, 0)
        reported = 0
        try:
            if not active:
                return
            consumer = self._open()
            consumer.assign([tps[p] for p in sorted(active)])
            for p in active:
                consumer.seek(tps[p], self.start[p])
            last_seen = time.monotonic()
            while active:
                polled = self._call(consumer.poll, timeout_ms=500, max_records=self.batch_size)
                batch, finished = self._take(polled, active, done)
                if not polled:
                    finished.extend(self._passed_stop(consumer, tps, active))
                for p in finished:
                    active.discard(p)
                    done[p] = self.stop[p] - self.start[p]
                    consumer.pause(tps[p])
                if batch or finished:
                    last_seen = time.monotonic()
                elif (time.monotonic() - last_seen) * 1000 > self.stall_timeout_ms:
                    raise self._stalled(active, done)
                if batch:
                    reported = sum(done.values())
                    yield batch, Progress(reported, total)
            if reported < total:
                yield [], Progress(total, total)
        finally:
            self.close()

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)`` on the consumer, its errors translated."""
        from kafka.errors import KafkaError

        try:
            return fn(*args, **kwargs)
        except (KafkaError, OSError) as exc:
            raise translate(exc, self.cfg, "reading the replay", topic=self.topic) from exc

    def _take(
        self, polled: dict[Any, list[Any]], active: set[int], done: dict[int, int]
    ) -> tuple[list[Message], list[int]]:
        """The polled messages before each partition's stop offset, and the partitions that
        reached it; ``done`` is brought up to date."""
        batch: list[Message] = []
        finished: list[int] = []
        for tp, records in polled.items():
            p = tp.partition
            if p not in active or not records:
                continue
            stop = self.stop[p]
            for r in records:
                if r.offset >= stop:
                    break
                batch.append(
                    Message(r.value if r.value is not None else b"", p, r.offset, self.topic, r.key)
                )
            reached = min(records[-1].offset + 1, stop)
            done[p] = reached - self.start[p]
            if reached >= stop:
                finished.append(p)
        return batch, finished

    def _passed_stop(self, consumer: Any, tps: dict[int, Any], active: set[int]) -> list[int]:
        """After an empty poll: a partition whose remaining offsets hold no records
        (transaction markers) is done once its position passes the stop."""
        out = []
        for p in sorted(active):
            position = self._call(consumer.position, tps[p], timeout_ms=self.timeout_ms)
            if position is not None and position >= self.stop[p]:
                out.append(p)
        return out

    def _stalled(self, active: set[int], done: dict[int, int]) -> SourceError:
        where = ", ".join(
            f"partition {p} at {self.start[p] + done[p]} of {self.stop[p]}" for p in sorted(active)
        )
        return SourceError(
            f"replay of topic {self.topic!r} from {self.cfg.bootstrap} stalled: no message for "
            f"{self.stall_timeout_ms / 1000:.0f}s while {where}; check that the broker is up "
            "(`scripts/kafka status` for a local one) and rerun the replay with the same --run-id"
        )

    def close(self) -> None:
        """Close the consumer (also done at the end of :meth:`batches`)."""
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            consumer.close(autocommit=False)

    def __enter__(self) -> KafkaRangeSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"KafkaRangeSource(topic={self.topic!r}, from_ms={self.from_ms}, to_ms={self.to_ms}, "
            f"messages={self.total()})"
        )


class AssignedReader:
    """Bulk reads of the partitions of ``topic`` that the live worker's group gave it.

    The reader has no consumer group of its own and commits nothing: faust's group consumer
    owns membership, assignment and the commits (with their metadata). The worker tells the
    reader which partitions it holds and where each resumes (:meth:`assign`); :meth:`fetch`
    then returns whole fetched batches, which skips faust's per-message delivery (a coroutine
    hand-off per message, about 6k messages/s) and reads at aiokafka's own pace.

    All calls come from one task (the worker's source loop): assignment changes are applied
    between fetches, never under one.
    """

    def __init__(self, cfg: KafkaConfig, topic: str, *, max_records: int) -> None:
        self.cfg = cfg
        self.topic = topic
        self.max_records = max_records
        self._consumer: Any = None
        self._assigned: frozenset[int] = frozenset()

    async def start(self) -> None:
        from aiokafka import AIOKafkaConsumer

        self._consumer = AIOKafkaConsumer(
            **aiokafka_kwargs(
                self.cfg,
                group_id=None,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                max_poll_records=self.max_records,
                # Bigger fetches: one response carries a few thousand events per partition.
                max_partition_fetch_bytes=4 << 20,
                fetch_max_bytes=64 << 20,
                fetch_max_wait_ms=200,
                request_timeout_ms=self.cfg.timeout,
            )
        )
        await self._consumer.start()

    async def stop(self) -> None:
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            await consumer.stop()

    @property
    def assigned(self) -> frozenset[int]:
        return self._assigned

    def assign(self, positions: dict[int, int | None]) -> None:
        """Read exactly these partitions from now on, each from its offset (``None``: from the
        earliest offset still in the log). Anything fetched before is dropped."""
        from aiokafka.structs import TopicPartition

        consumer = self._require()
        tps = {p: TopicPartition(self.topic, p) for p in positions}
        consumer.assign(list(tps.values()))
        for p, offset in positions.items():
            if offset is not None:
                consumer.seek(tps[p], offset)
        self._assigned = frozenset(positions)

    async def fetch(self, timeout_ms: int) -> list[Message]:
        """The next fetched messages of the assigned partitions, each partition in order.

        The messages are aiokafka's records as they come: a record has every attribute of a
        :class:`Message` (``value``, ``partition``, ``offset``, ``topic``, ``key``), and copying
        each into a ``Message`` cost about 1.3 µs a record, 6% of the worker's time. Only a
        record without a value (a tombstone) is copied, with an empty value.
        """
        consumer = self._require()
        if not self._assigned:
            return []
        fetched = await consumer.getmany(timeout_ms=timeout_ms, max_records=self.max_records)
        out: list[Message] = []
        for records in fetched.values():
            if any(r.value is None for r in records):
                records = [
                    Message(b"", r.partition, r.offset, r.topic, r.key) if r.value is None else r
                    for r in records
                ]
            out.extend(cast(list[Message], records))
        return out

    def highwater(self, partition: int) -> int | None:
        """The partition's end offset as of the last fetch (``None`` before one)."""
        from aiokafka.structs import TopicPartition

        if self._consumer is None or partition not in self._assigned:
            return None
        high = self._consumer.highwater(TopicPartition(self.topic, partition))
        return None if high is None else int(high)

    def _require(self) -> Any:
        if self._consumer is None:
            raise SourceError(
                f"the reader of topic {self.topic!r} is not started; call start() first"
            )
        return self._consumer
