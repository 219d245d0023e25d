"""Merge shards: a model's shard is the same in every process, and the partials topic has the
configured partitions (never silently another count) on a real broker."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest

from drifthouse.config import KafkaConfig
from drifthouse.errors import SourceError
from drifthouse.kafka.admin import ensure_partials_topic, partitions_for
from drifthouse.kafka.shards import shard_of

# zlib.crc32 of the UTF-8 name, modulo the shard count: pinned, as every process and every
# release must route a model to the same shard.
PINNED = [
    pytest.param("fraud", 3, 1, id="fraud-3"),
    pytest.param("fraud", 12, 10, id="fraud-12"),
    pytest.param("churn", 3, 0, id="churn-3"),
    pytest.param("modèle", 3, 2, id="non-ascii-3"),
    pytest.param("eta_us", 4, 3, id="eta_us-4"),
    pytest.param("anything", 1, 0, id="one-shard"),
]


@pytest.mark.parametrize(("model", "shards", "want"), PINNED)
def test_a_models_shard_is_pinned(model: str, shards: int, want: int) -> None:
    assert shard_of(model, shards) == want


def test_a_models_shard_is_the_same_in_every_process() -> None:
    """Python's own ``hash`` of a string changes with each process (PYTHONHASHSEED)."""
    names = [f"model-{i}" for i in range(50)] + ["fraud", "modèle", ""]
    code = (
        "import sys, json; from drifthouse.kafka.shards import shard_of; "
        "print(json.dumps([shard_of(n, 7) for n in json.loads(sys.argv[1])]))"
    )
    import json

    seen = set()
    for seed in ("1", "2", "random"):
        out = subprocess.run(
            [sys.executable, "-c", code, json.dumps(names)],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        )
        seen.add(out.stdout.strip())
    assert seen == {json.dumps([shard_of(n, 7) for n in names])}
    assert len({shard_of(n, 7) for n in names}) == 7  # and the models spread over every shard


@pytest.mark.parametrize("shards", [0, -1])
def test_a_shard_count_below_one_is_refused(shards: int) -> None:
    with pytest.raises(ValueError, match=r"at least 1 \(got"):
        shard_of("fraud", shards)


@pytest.mark.kafka
def test_the_partials_topic_is_created_with_the_configured_partitions(
    kafka_bootstrap: str, request: pytest.FixtureRequest, kafka_admin: Any
) -> None:
    name = f"t-partials-{os.getpid()}-{request.node.name[-20:]}"
    cfg = KafkaConfig(bootstrap=kafka_bootstrap, partials_topic=name, partials_partitions=3)
    try:
        ensure_partials_topic(cfg)
        assert partitions_for(cfg, name) == [0, 1, 2]
        ensure_partials_topic(cfg)  # again: fine, it has them
    finally:
        kafka_admin.delete_topics([name])


@pytest.mark.kafka
def test_a_partials_topic_with_another_partition_count_is_refused(
    kafka_bootstrap: str, make_topic: Any
) -> None:
    topic = make_topic(partitions=1)
    cfg = KafkaConfig(bootstrap=kafka_bootstrap, partials_topic=topic, partials_partitions=3)
    with pytest.raises(SourceError) as caught:
        ensure_partials_topic(cfg)
    message = str(caught.value)
    assert f"{topic!r}" in message
    assert kafka_bootstrap in message
    assert "kafka.partials_partitions" in message
    assert "partials_partitions is 3" in message
    assert "has 1" in message
    assert partitions_for(cfg, topic) == [0]  # never resharded behind the operator's back


def test_the_partials_settings_default_to_one_shard_and_refuse_zero() -> None:
    cfg = KafkaConfig()
    assert (cfg.partials_partitions, cfg.partials_replication) == (1, 1)
    with pytest.raises(ValueError, match="partials_partitions"):
        KafkaConfig(partials_partitions=0)
    with pytest.raises(ValueError, match="partials_replication"):
        KafkaConfig(partials_replication=0)
