"""A topic keyed the three ways producers key prediction events, shared by the session.

A 12-partition topic holds one hot model keyed by event id (Kafka's own partitioner spreads it
over every partition), two small models keyed by model (one partition each, beside the hot
one), and every tenth event of each with no key (a partition of the producer's choosing); the
labels, keyed the same ways, are on ``<topic>-labels`` (4 partitions), and ``<topic>-metrics``
(1 partition) stays empty. The three models fall on the three merge shards of
``kafka.partials_partitions: 3``. Produced once per session and read by every test that needs
it, each with a consumer group of its own (``tests/app/test_any_key.py``,
``tests/app/test_merge_shards.py``); :func:`keyed_replay` is the single-process replay they
compare with.
"""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from drifthouse.config import Config
from drifthouse.detectors.reference import Profile
from drifthouse.simulate import Record, Scenario, simulate
from tests.workers import HOUR, Metrics, profiles_from, replayed_rows, sentinels, write_config

PARTITIONS = 12
HOT = "fraud"  # merge shard 1 of 3
# Simulated "eta" events, every fourth kept, shared out between two models keyed by model:
# Kafka's partitioner puts them on partitions 2 and 0 of 12; they are merge shards 0 and 2 of 3.
SMALL = ("eta_west", "eta_east")
UNKEYED_EVERY = 10  # every tenth event of each model (and label) is sent with no key
REFERENCE_HOURS = 3


@dataclass(frozen=True)
class KeyedTopic:
    """The topic, filled: what was sent and where it went."""

    topic: str
    closed_until: int  # the watermark the sentinels bring every partition to
    predictions: list[Record]
    labels: list[Record]
    # The partitions each model's predictions went to, keyed ``(model, sent with a key)``.
    partitions: dict[tuple[str, bool], set[int]]
    profiles: dict[str, Profile]  # built from the first REFERENCE_HOURS


def keyed_events() -> tuple[list[Record], list[Record]]:
    """6 hours: ~5,800 predictions of the hot model (every tenth by a canary version), ~700
    of each small one (an event every ~30 s of event time), and their labels."""
    sc = Scenario.demo(days=0.25, rate_per_min=16, reference_hours=REFERENCE_HOURS)
    predictions: list[Record] = []
    labels: list[Record] = []
    owner: dict[str, str] = {}  # event id -> model, for the labels
    small = hot = 0
    for r in simulate(sc, seed=11):
        event = json.loads(r.value)
        if r.topic == "predictions":
            if event["model"] == HOT:
                owner[event["event_id"]] = HOT
                hot += 1
                if hot % 10 == 0:  # a canary beside the main version (docs/metrics.md)
                    event["model_version"] = "canary"
                    r = Record(r.topic, r.key, json.dumps(event).encode(), r.ts_ms)
                predictions.append(r)
                continue
            small += 1
            if small % 4:
                continue
            model = SMALL[(small // 4) % 2]
            owner[event["event_id"]] = model
            predictions.append(_rename(r, model))
        elif event["event_id"] in owner:
            labels.append(_rename(r, owner[event["event_id"]]))
    return predictions, labels


def _rename(record: Record, model: str) -> Record:
    event = json.loads(record.value)
    event["model"] = model
    return Record(record.topic, model.encode(), json.dumps(event).encode(), record.ts_ms)


def _key(record: Record, i: int) -> bytes | None:
    """The hot model by event id, the small ones by model; every UNKEYED_EVERY-th with none."""
    if i % UNKEYED_EVERY == 0:
        return None
    event = json.loads(record.value)
    key: str = event["event_id"] if event["model"] == HOT else event["model"]
    return key.encode()


def produce_keyed(
    bootstrap: str, topic: str, predictions: list[Record], labels: list[Record]
) -> tuple[int, dict[tuple[str, bool], set[int]]]:
    """Predictions and labels with their keys, Kafka's default partitioner choosing the
    partition; then a far-ahead sentinel per partition so every window closes. Returns the
    watermark the sentinels bring and the partitions each model's predictions went to."""
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20)
    sent = []
    for i, r in enumerate(predictions):
        key = _key(r, i)
        future = producer.send(topic, key=key, value=r.value)
        sent.append(((json.loads(r.value)["model"], key is not None), future))
    for i, r in enumerate(labels):
        producer.send(f"{topic}-labels", key=_key(r, i), value=r.value)
    sentinel_ts, values = sentinels(predictions, PARTITIONS)
    for p, value in enumerate(values):
        producer.send(topic, key=HOT.encode(), value=value, partition=p)
    producer.flush()
    producer.close()
    partitions: dict[tuple[str, bool], set[int]] = defaultdict(set)
    for which, future in sent:
        partitions[which].add(future.get(timeout=30).partition)
    return sentinel_ts - 30_000, dict(partitions)


@pytest.fixture(scope="session")
def keyed_topic(kafka_bootstrap: str, kafka_admin: Any) -> Iterator[KeyedTopic]:
    """The topics, created and filled once for the session."""
    topic = f"t-keyed-{uuid.uuid4().hex[:8]}"
    specs = {topic: PARTITIONS, f"{topic}-labels": 4, f"{topic}-metrics": 1}
    kafka_admin.create_topics(
        {n: {"num_partitions": p, "replication_factor": 1} for n, p in specs.items()},
        wait_for_metadata=True,
    )
    try:
        predictions, labels = keyed_events()
        closed_until, partitions = produce_keyed(kafka_bootstrap, topic, predictions, labels)
        start = predictions[0].ts_ms
        reference = [r for r in predictions if r.ts_ms < start + REFERENCE_HOURS * HOUR]
        profiles = profiles_from(reference, Config())
        yield KeyedTopic(topic, closed_until, predictions, labels, partitions, profiles)
    finally:
        kafka_admin.delete_topics(list(specs))


@pytest.fixture(scope="session")
def keyed_replay(
    kafka_bootstrap: str, keyed_topic: KeyedTopic, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Metrics]:
    """``(config, rows)``: a worker configuration on :func:`keyed_topic` (embedded store, one
    merge shard) and the ``metrics`` rows an in-process replay of its topics writes, labels
    included (windows the sentinels close)."""
    config = write_config(
        tmp_path_factory.mktemp("keyed"), kafka_bootstrap, keyed_topic.topic, "replay",
        keyed_topic.profiles,
    )  # fmt: skip
    rows = replayed_rows(config, keyed_topic.closed_until, side_inputs=True)
    assert {HOT, *SMALL} <= {k[2] for k in rows}
    assert {k[2] for k in rows if k[-1] == "rmse"} >= set(SMALL)  # labels joined
    assert any(k[2] == HOT and k[-1] == "accuracy" for k in rows)
    return config, rows
