"""Checkpoints too large for a commit's metadata go to a compacted topic.

A worker commits each partition with its checkpoint in the commit metadata (see
:mod:`drifthouse.kafka.checkpoints`), which Kafka bounds (``offset.metadata.max.bytes``, 4 KB by
default): the merger's checkpoint holds the watermark of every source partition and passes it
at about 180-200 partitions, and the broker then refuses the commit. :class:`CheckpointSpill`
writes such a checkpoint to the compacted topic :func:`spill_topic` and commits a short
pointer instead, ``spilled:<slot>:<offset>``, naming the record; :meth:`CheckpointSpill.resolve`
reads it back.

Records are keyed ``<group>/<topic>/<partition>/<slot>`` with two slots per committed
partition, as the merger's snapshots are (:mod:`drifthouse.sinks.state`): a checkpoint goes to
the slot that does not hold the last committed one, so compaction (which keeps the newest
record of a key) never removes the record a commit names, even when later commits fail.

Example
-------
>>> from drifthouse.config import KafkaConfig
>>> spill_topic(KafkaConfig(partials_topic="drifthouse-partials"))
'drifthouse-partials-checkpoints'
>>> with CheckpointSpill(KafkaConfig()) as spill:       # doctest: +SKIP
...     pointer = spill.prepare("drifthouse-partials", 0, big_metadata)
"""

from __future__ import annotations

import time
from types import TracebackType
from typing import Any

from drifthouse.config import KafkaConfig
from drifthouse.errors import SourceError
from drifthouse.kafka.admin import ensure_topics
from drifthouse.kafka.client import open_client, translate

__all__ = ["SPILL_OVER", "CheckpointSpill", "spill_topic"]

SPILL_OVER = 4_000
"""Checkpoints longer than this (UTF-8 bytes) are spilled: below Kafka's default 4,096."""

_PREFIX = "spilled:"


def spill_topic(cfg: KafkaConfig) -> str:
    """The compacted topic of the spilled checkpoints: ``<partials_topic>-checkpoints``."""
    return f"{cfg.partials_topic}-checkpoints"


class CheckpointSpill:
    """Spill and read back checkpoints of ``cfg.group`` (see the module docstring). Blocking
    calls (kafka-python): the worker runs them in an executor."""

    def __init__(self, cfg: KafkaConfig) -> None:
        self.cfg = cfg
        self.topic = spill_topic(cfg)
        self._producer: Any = None
        # (topic, partition) -> the slot of its last committed checkpoint.
        self._slots: dict[tuple[str, int], int] = {}

    def __enter__(self) -> CheckpointSpill:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._producer is not None:
            self._producer.close()
            self._producer = None

    def prepare(self, topic: str, partition: int, metadata: str) -> str:
        """What to commit for ``metadata``: itself when it fits, else a pointer to the record
        it was written to (acknowledged before this returns)."""
        if len(metadata.encode()) <= SPILL_OVER:
            return metadata
        slot = 1 - self._slots.get((topic, partition), 1)
        key = f"{self.cfg.group}/{topic}/{partition}/{slot}"
        producer = self._open_producer()
        try:
            sent = producer.send(self.topic, key=key.encode(), value=metadata.encode(), partition=0)
            offset = int(sent.get(timeout=self.cfg.timeout / 1000).offset)
        except Exception as exc:
            raise translate(exc, self.cfg, "spilling a checkpoint", topic=self.topic) from exc
        return f"{_PREFIX}{slot}:{offset}"

    def committed(self, topic: str, partition: int, metadata: str) -> None:
        """The commit of ``metadata`` (from :meth:`prepare`, or read back) went through."""
        if metadata.startswith(_PREFIX):
            self._slots[(topic, partition)] = int(metadata.split(":")[1])

    def resolve(self, metadata: str) -> str:
        """The checkpoint a committed ``metadata`` stands for (itself unless spilled)."""
        if not metadata.startswith(_PREFIX):
            return metadata
        offset = int(metadata.rsplit(":", 1)[1])
        value = self._read(offset)
        if value is None:
            raise SourceError(
                f"no checkpoint record at offset {offset} of topic {self.topic!r} at "
                f"{self.cfg.bootstrap}, which the commit of group {self.cfg.group!r} names "
                f"({metadata!r}); was the topic deleted or its cleanup.policy changed from "
                "compact? Reset the group's offsets to resume without the checkpoint"
            )
        return value

    def _open_producer(self) -> Any:
        if self._producer is None:
            from kafka import KafkaProducer

            ensure_topics(
                self.cfg,
                {self.topic: 1},
                replication=self.cfg.partials_replication,
                configs={"cleanup.policy": "compact"},
            )
            self._producer = open_client(
                KafkaProducer, self.cfg, "spilling a checkpoint", topic=self.topic, acks="all"
            )
        return self._producer

    def _read(self, offset: int) -> str | None:
        from kafka import KafkaConsumer, TopicPartition

        consumer = open_client(
            KafkaConsumer,
            self.cfg,
            "reading a spilled checkpoint",
            topic=self.topic,
            group_id=None,
            enable_auto_commit=False,
        )
        try:
            tp = TopicPartition(self.topic, 0)
            consumer.assign([tp])
            if consumer.end_offsets([tp])[tp] <= offset:
                return None
            consumer.seek(tp, offset)
            deadline = time.monotonic() + self.cfg.timeout / 1000
            while time.monotonic() < deadline:
                for record in consumer.poll(timeout_ms=500).get(tp, []):
                    if record.offset != offset:
                        return None  # compacted away: the next record came instead
                    key = record.key.decode() if record.key else ""
                    if not key.startswith(f"{self.cfg.group}/"):
                        return None
                    return str(record.value.decode())
                if consumer.position(tp) > offset:
                    return None
            raise SourceError(
                f"reading offset {offset} of topic {self.topic!r} at {self.cfg.bootstrap} timed "
                f"out after {self.cfg.timeout} ms; retry, or raise kafka.timeout"
            )
        except SourceError:
            raise
        except Exception as exc:
            raise translate(
                exc, self.cfg, "reading a spilled checkpoint", topic=self.topic
            ) from exc
        finally:
            consumer.close()
