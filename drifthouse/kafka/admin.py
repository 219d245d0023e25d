"""Topic and offset administration: create topics, list partitions, offsets and consumer lag.

Each function opens one kafka-python ``KafkaAdminClient`` with the settings of
:func:`~drifthouse.kafka.client.client_kwargs`, does its work and closes it. Every failure
is a :class:`~drifthouse.errors.SourceError` saying what failed, where and the fix.

Example
-------
>>> from drifthouse.config import KafkaConfig
>>> cfg = KafkaConfig(bootstrap="127.0.0.1:9092")
>>> ensure_topics(cfg, {"predictions": 3, "predictions.dlq": 1})  # doctest: +SKIP
['predictions', 'predictions.dlq']
>>> lag(cfg, "drifthouse", "predictions")  # doctest: +SKIP
{0: PartitionLag(partition=0, committed=120, end=130, lag=10), ...}
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from drifthouse.config import KafkaConfig
from drifthouse.errors import SourceError
from drifthouse.kafka.client import open_client, translate
from drifthouse.logs import get_logger

__all__ = [
    "PartitionLag",
    "admin_client",
    "beginning_offsets",
    "committed_offsets",
    "end_offsets",
    "ensure_partials_topic",
    "ensure_topics",
    "lag",
    "partitions_for",
]

log = get_logger("stream.kafka")

_TOPIC_ALREADY_EXISTS = 36
_CREATE_FIXES = {
    17: "use only ASCII letters, digits, '.', '_' and '-' (at most 249) in topic names",
    29: "grant the CREATE ACL on the topic, or have an operator create it",
    37: "give at least 1 partition",
    38: "use a replication factor of at most the number of brokers (replication=...)",
    40: "check the topic configs passed to ensure_topics",
}


@dataclass(frozen=True, slots=True)
class PartitionLag:
    """How far a consumer group is behind on one partition.

    ``committed`` is ``None`` when the group has committed nothing there yet; ``lag`` then counts
    every message still in the partition (``end - beginning``).
    """

    partition: int
    committed: int | None
    end: int
    lag: int


@contextmanager
def admin_client(cfg: KafkaConfig, *, timeout_ms: int | None = None) -> Iterator[Any]:
    """An open ``KafkaAdminClient``; errors inside the block become :class:`SourceError`."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    timeout_ms = cfg.timeout if timeout_ms is None else timeout_ms
    admin = open_client(
        KafkaAdminClient,
        cfg,
        "connecting to Kafka",
        bootstrap_timeout_ms=timeout_ms,
        request_timeout_ms=timeout_ms,
    )
    try:
        yield admin
    except (KafkaError, OSError) as exc:
        raise translate(exc, cfg, "a Kafka admin request") from exc
    finally:
        admin.close()


def _describe(admin: Any, topics: list[str]) -> dict[str, list[int]]:
    """Partition ids of each existing topic among ``topics``."""
    out: dict[str, list[int]] = {}
    for info in admin.describe_topics(topics):
        if info.get("error_code", 0) == 0:
            out[info["name"]] = sorted(p["partition_index"] for p in info["partitions"])
    return out


def _partitions(admin: Any, cfg: KafkaConfig, topic: str) -> list[int]:
    found = _describe(admin, [topic]).get(topic)
    if not found:
        raise SourceError(
            f"topic {topic!r} does not exist at {cfg.bootstrap}; check the topic name "
            "(kafka.topic) or create it"
        )
    return found


def ensure_topics(
    cfg: KafkaConfig,
    topics: Mapping[str, int],
    *,
    replication: int = 1,
    configs: Mapping[str, str] | None = None,
    timeout_ms: int | None = None,
) -> list[str]:
    """Create the topics of ``{name: partitions}`` that do not exist yet; return the created names.

    Idempotent, and safe when several workers race to create the same topic. An existing topic
    is left as it is, even when its partition count differs (a warning is logged): adding
    partitions to a keyed topic moves keys between partitions, which is the operator's call.
    Returns once every created topic has a leader for each partition.
    """
    for name, partitions in topics.items():
        if partitions < 1:
            raise SourceError(f"topic {name!r} needs at least 1 partition (got {partitions})")
    if not topics:
        return []
    timeout_ms = cfg.timeout if timeout_ms is None else timeout_ms
    with admin_client(cfg, timeout_ms=timeout_ms) as admin:
        existing = _describe(admin, list(topics))
        for name, found in existing.items():
            if len(found) != topics[name]:
                log.warning(
                    "kafka.topic_partitions_differ",
                    topic=name,
                    partitions=len(found),
                    wanted=topics[name],
                )
        missing = {
            name: {
                "num_partitions": partitions,
                "replication_factor": replication,
                "configs": dict(configs or {}),
            }
            for name, partitions in topics.items()
            if name not in existing
        }
        if not missing:
            return []
        response = admin.create_topics(missing, timeout_ms=timeout_ms, raise_errors=False)
        created: list[str] = []
        raced: list[str] = []
        for result in response["topics"]:
            code = result["error_code"]
            if code == 0:
                created.append(result["name"])
            elif code == _TOPIC_ALREADY_EXISTS:
                # Another worker won the race. The controller knows the topic, but this broker's
                # metadata may not show it yet (KRaft publishes it a moment later, and later
                # still under load): wait for it like the winner does, or the caller's next
                # describe reads "does not exist".
                raced.append(result["name"])
            else:
                fix = _CREATE_FIXES.get(code, "see the broker log")
                raise SourceError(
                    f"creating topic {result['name']!r} at {cfg.bootstrap} failed: "
                    f"{result.get('error_message') or f'error code {code}'}; {fix}"
                )
        if created or raced:
            admin.wait_for_topics(created + raced, timeout_ms=timeout_ms)
        if created:
            log.info("kafka.topics_created", topics=created)
        return created


def ensure_partials_topic(cfg: KafkaConfig, *, timeout_ms: int | None = None) -> None:
    """Create the partials topic with ``kafka.partials_partitions`` partitions (replication
    ``kafka.partials_replication``) if it does not exist; refuse one with another count.

    Each partition is a merge shard (:mod:`drifthouse.kafka.shards`): with another count,
    models would move between shards with their windows and label joins left behind, so an
    existing topic is never resharded here, and a mismatch is a :class:`SourceError`.
    """
    name, wanted = cfg.partials_topic, cfg.partials_partitions
    ensure_topics(cfg, {name: wanted}, replication=cfg.partials_replication, timeout_ms=timeout_ms)
    found = partitions_for(cfg, name, timeout_ms=timeout_ms)
    if len(found) != wanted:
        raise SourceError(
            f"the partials topic {name!r} at {cfg.bootstrap} has {len(found)} partition(s), "
            f"but kafka.partials_partitions is {wanted}: each partition is a merge shard, and "
            "drifthouse never reshards an existing topic; set kafka.partials_partitions to "
            f"{len(found)}, or stop every worker, let the mergers' windows close and use a new "
            "kafka.partials_topic (or kafka.group) with the new count"
        )


def partitions_for(cfg: KafkaConfig, topic: str, *, timeout_ms: int | None = None) -> list[int]:
    """The partition ids of ``topic``, sorted; :class:`SourceError` when it does not exist."""
    with admin_client(cfg, timeout_ms=timeout_ms) as admin:
        return _partitions(admin, cfg, topic)


def _list_offsets(admin: Any, topic: str, partitions: list[int], spec: Any) -> dict[int, int]:
    from kafka import TopicPartition

    found = admin.list_partition_offsets({TopicPartition(topic, p): spec for p in partitions})
    return {tp.partition: int(found[tp].offset) for tp in found}


def end_offsets(cfg: KafkaConfig, topic: str, *, timeout_ms: int | None = None) -> dict[int, int]:
    """Per partition, the offset the next message will get (one past the last message)."""
    from kafka import OffsetSpec

    with admin_client(cfg, timeout_ms=timeout_ms) as admin:
        return _list_offsets(admin, topic, _partitions(admin, cfg, topic), OffsetSpec.LATEST)


def beginning_offsets(
    cfg: KafkaConfig, topic: str, *, timeout_ms: int | None = None
) -> dict[int, int]:
    """Per partition, the offset of the oldest message still kept."""
    from kafka import OffsetSpec

    with admin_client(cfg, timeout_ms=timeout_ms) as admin:
        return _list_offsets(admin, topic, _partitions(admin, cfg, topic), OffsetSpec.EARLIEST)


def _committed(
    admin: Any, group: str, topic: str, partitions: list[int], timeout_ms: int
) -> dict[int, int | None]:
    from kafka import TopicPartition
    from kafka.errors import (
        CoordinatorLoadInProgressError,
        CoordinatorNotAvailableError,
        NotCoordinatorError,
    )

    tps = [TopicPartition(topic, p) for p in partitions]
    deadline = time.monotonic() + timeout_ms / 1000
    while True:
        try:
            found = admin.list_group_offsets({group: tps})[group]
            break
        except (CoordinatorNotAvailableError, CoordinatorLoadInProgressError, NotCoordinatorError):
            # The group coordinator (and __consumer_offsets) may still be starting: a
            # fresh cluster answers the first lookup with "not available".
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    out: dict[int, int | None] = {p: None for p in partitions}
    for tp, meta in found.items():
        out[tp.partition] = int(meta.offset) if meta.offset >= 0 else None
    return out


def committed_offsets(
    cfg: KafkaConfig, group: str, topic: str, *, timeout_ms: int | None = None
) -> dict[int, int | None]:
    """Per partition, the offset ``group`` committed on ``topic`` (``None`` where it has none)."""
    timeout_ms = cfg.timeout if timeout_ms is None else timeout_ms
    with admin_client(cfg, timeout_ms=timeout_ms) as admin:
        return _committed(admin, group, topic, _partitions(admin, cfg, topic), timeout_ms)


def lag(
    cfg: KafkaConfig, group: str, topic: str, *, timeout_ms: int | None = None
) -> dict[int, PartitionLag]:
    """Per partition, how many messages ``group`` has not committed yet on ``topic``."""
    from kafka import OffsetSpec

    timeout_ms = cfg.timeout if timeout_ms is None else timeout_ms
    with admin_client(cfg, timeout_ms=timeout_ms) as admin:
        partitions = _partitions(admin, cfg, topic)
        committed = _committed(admin, group, topic, partitions, timeout_ms)
        ends = _list_offsets(admin, topic, partitions, OffsetSpec.LATEST)
        begins = _list_offsets(admin, topic, partitions, OffsetSpec.EARLIEST)
    out: dict[int, PartitionLag] = {}
    for p in partitions:
        done = committed[p]
        start = begins[p] if done is None else max(done, begins[p])
        out[p] = PartitionLag(partition=p, committed=done, end=ends[p], lag=max(0, ends[p] - start))
    return out
