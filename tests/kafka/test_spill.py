"""Checkpoints too large for a commit's metadata: the broker refuses them (4 KB by default), so
they go to a compacted topic and the commit names the record; read back, they are whole."""

from __future__ import annotations

import contextlib
import json
import uuid
from typing import Any

import pytest

from drifthouse.config import KafkaConfig
from drifthouse.errors import SourceError
from drifthouse.kafka.checkpoints import read_commits
from drifthouse.kafka.spill import SPILL_OVER, CheckpointSpill, spill_topic

pytestmark = pytest.mark.kafka


def _merger_metadata(partitions: int) -> str:
    """The merger's commit metadata with the watermarks of ``partitions`` source partitions."""
    return json.dumps(
        {
            "final": 1_767_225_600_000,
            "watermarks": {str(p): 1_767_225_600_000 + p for p in range(partitions)},
            "idle": [],
            "snapshot": 12_345,
        },
        separators=(",", ":"),
    )


def _commit(bootstrap: str, group: str, topic: str, offset: int, metadata: str) -> None:
    from kafka import KafkaConsumer, TopicPartition
    from kafka.structs import OffsetAndMetadata

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.commit({tp: OffsetAndMetadata(offset, metadata, -1)})
    finally:
        consumer.close()


@pytest.fixture
def kcfg(kafka_bootstrap: str, make_topic: Any, kafka_admin: Any) -> Any:
    topic = make_topic(partitions=1)
    cfg = KafkaConfig(
        bootstrap=kafka_bootstrap, group=f"g-{uuid.uuid4().hex[:8]}", partials_topic=topic
    )
    yield cfg
    with contextlib.suppress(Exception):  # a test that spilled nothing created none
        kafka_admin.delete_topics([spill_topic(cfg)])


def test_the_commit_of_a_merger_with_220_source_partitions_is_refused_by_the_broker(
    kcfg: KafkaConfig,
) -> None:
    from kafka.errors import OffsetMetadataTooLargeError

    metadata = _merger_metadata(220)
    assert len(metadata) > 4096
    with pytest.raises(OffsetMetadataTooLargeError):
        _commit(kcfg.bootstrap, kcfg.group, kcfg.partials_topic, 7, metadata)


def test_a_checkpoint_too_large_for_the_commit_is_spilled_and_read_back_whole(
    kcfg: KafkaConfig, kafka_admin: Any
) -> None:
    topic = kcfg.partials_topic
    small, large = _merger_metadata(10), _merger_metadata(1_000)
    with CheckpointSpill(kcfg) as spill:
        assert spill.prepare(topic, 0, small) == small  # fits: committed as it is
        pointer = spill.prepare(topic, 0, large)
        assert len(pointer) < SPILL_OVER < len(large)
        _commit(kcfg.bootstrap, kcfg.group, topic, 7, pointer)
        spill.committed(topic, 0, pointer)
    with CheckpointSpill(kcfg) as again:  # a restarted merger, on another host
        found = read_commits(kcfg, kcfg.group, topic, [0])
        assert found[0][0] == 7
        assert again.resolve(found[0][1]) == large
        assert again.resolve(small) == small
    configs = kafka_admin.describe_configs(
        [__import__("kafka").admin.ConfigResource("TOPIC", spill_topic(kcfg))]
    )
    assert "compact" in repr(configs)


def test_a_spilled_checkpoint_whose_commit_failed_never_replaces_the_committed_one(
    kcfg: KafkaConfig,
) -> None:
    topic = kcfg.partials_topic
    first, second, third = (_merger_metadata(n) for n in (400, 500, 600))
    with CheckpointSpill(kcfg) as spill:
        committed = spill.prepare(topic, 0, first)
        _commit(kcfg.bootstrap, kcfg.group, topic, 1, committed)
        spill.committed(topic, 0, committed)
        failed = spill.prepare(topic, 0, second)  # its commit never happens
        retried = spill.prepare(topic, 0, third)  # nor this one's
        assert failed.split(":")[1] == retried.split(":")[1] != committed.split(":")[1]
    with CheckpointSpill(kcfg) as again:
        found = read_commits(kcfg, kcfg.group, topic, [0])
        assert again.resolve(found[0][1]) == first
        with pytest.raises(SourceError, match="no checkpoint record"):
            again.resolve(committed.replace(committed.rsplit(":", 1)[1], "999999"))
