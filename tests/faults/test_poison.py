"""Poison in every partition: refused, dead-lettered with the reason, counted, and nothing else
changes: the rows, alerts and pages are those of the clean stream."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer

from drifthouse.config import load_config
from tests.fakes import FakeApi
from tests.faults.conftest import Reference, alerting, check_delivered_once, window_end
from tests.workers import (
    PARTITIONS,
    Workers,
    assert_same,
    partition_of,
    sentinels,
    stored,
    write_config,
)

pytestmark = [pytest.mark.faults, pytest.mark.kafka, pytest.mark.slow]

TS = 1_767_250_000_000  # inside the stream
POISON: list[tuple[bytes, str]] = [
    (b"\xff\xfe\x00 not JSON at all", "invalid_json"),
    (b"[1, 2, 3]", "schema"),
    (json.dumps({"model": "fraud", "ts": "yesterday", "features": {}}).encode(), "schema"),
    (json.dumps({"model": "fraud", "ts": TS, "features": [1, 2]}).encode(), "schema"),
    (json.dumps({"model": 42, "ts": TS, "features": {}}).encode(), "schema"),
    # far in the future (year 2100): it would drag every watermark past every window
    (json.dumps({"model": "fraud", "ts": 4_102_444_800_000, "features": {}}).encode(), "future_ts"),
]


def _produce_poisoned(bootstrap: str, topic: str, records: list[Any]) -> None:
    """The clean stream, each partition in the same order, with the poison in the middle of
    every partition."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20)
    half = len(records) // 2
    for i, r in enumerate(records):
        if i == half:
            for p in range(PARTITIONS):
                for value, _ in POISON:
                    producer.send(topic, key=b"fraud", value=value, partition=p)
        producer.send(topic, key=r.key, value=r.value, partition=partition_of(r.value))
    for p, value in enumerate(sentinels(records)[1]):
        producer.send(topic, key=b"fraud", value=value, partition=p)
    producer.flush()
    producer.close()


def _dead_letters(bootstrap: str, topic: str, expected: int) -> list[Any]:
    consumer = KafkaConsumer(
        f"{topic}.dlq",
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=5_000,
    )
    try:
        out = []
        for message in consumer:
            out.append(message)
            if len(out) > expected:
                break
        return out
    finally:
        consumer.close()


def test_poison_in_every_partition_is_dead_lettered_and_changes_nothing_else(
    tmp_path: Path,
    kafka_bootstrap: str,
    make_topic: Any,
    reference: Reference,
    small_stream: Any,
    api: FakeApi,
) -> None:
    topic = make_topic(partitions=PARTITIONS)
    _produce_poisoned(kafka_bootstrap, topic, small_stream.records)
    config = write_config(
        tmp_path, kafka_bootstrap, topic, "poison", small_stream.profiles, extra=alerting(api)
    )
    workers = Workers(config, PARTITIONS)
    try:
        port = workers.start()
        workers.wait_done(load_config(config), len(small_stream.records))
        invalid = workers.status(port)["invalid_events"]
        check_delivered_once(api, reference)
    finally:
        workers.stop_all()
    poison = PARTITIONS * len(POISON)
    assert invalid == poison

    # Dead-lettered, each with its reason, where it came from, and what was wrong.
    letters = _dead_letters(kafka_bootstrap, topic, poison)
    assert len(letters) == poison
    headers = [{k: v.decode() for k, v in m.headers} for m in letters]
    assert Counter(h["drifthouse.partition"] for h in headers) == {
        str(p): len(POISON) for p in range(PARTITIONS)
    }
    by_value = {value: reason for value, reason in POISON}
    for message, h in zip(letters, headers, strict=True):
        assert h["drifthouse.topic"] == topic
        assert h["drifthouse.error"], h
        assert h["drifthouse.path"].startswith("$"), h
        assert h["drifthouse.reason"] == by_value[message.value], (message.value, h)

    # Counted, in the windows open when the poison came (under the model its key names, and
    # the version `unknown` when the message does not say); otherwise the clean stream's rows.
    metrics, alerts = stored(config)
    metrics = {k: v for k, v in metrics.items() if window_end(k) <= reference.closed_until}
    hourly = sum(v[0] for k, v in metrics.items() if k[6] == "invalid_events" and k[1] == "1h")
    assert hourly == poison
    served = {(k[2], k[3]) for k in reference.metrics}
    refused_only = {k: v for k, v in metrics.items() if (k[2], k[3]) not in served}
    assert refused_only, "the poison should be counted under its key's model"
    assert all(n == 0 for _, n in refused_only.values()), "windows of refused messages only"
    assert_same(
        {k: v for k, v in metrics.items() if k not in refused_only and k[6] != "invalid_events"},
        {k: v for k, v in reference.metrics.items() if k[6] != "invalid_events"},
    )
    assert [a for a in alerts if a[12] <= reference.closed_until] == reference.alerts
