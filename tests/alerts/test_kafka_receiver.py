"""The Kafka receiver against the real broker (``tests/conftest.py`` starts or finds it)."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from drifthouse.alerts.base import Notification
from drifthouse.alerts.receivers.kafka import KafkaReceiver
from drifthouse.errors import NotifyRetryable
from tests.alerts.conftest import MIN, arow


@pytest.mark.kafka
def test_kafka_receiver_produces_one_record_per_notification(
    kafka_bootstrap: str, make_topic: Callable[..., str]
) -> None:
    from kafka import KafkaConsumer

    topic = make_topic()
    receiver = KafkaReceiver(topic=topic, bootstrap=kafka_bootstrap)
    alert = arow(MIN, rule="accuracy-drop", metric="accuracy")
    note = Notification(
        id="n1",
        receiver="retrain",
        kind="firing",
        ts=MIN,
        group_key="0:{}",
        group_labels={},
        firing=[alert],
        resolved=[],
        new=[alert.dedup_key],
    )
    receiver.send(note)
    receiver.close()
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        auto_offset_reset="earliest",
        consumer_timeout_ms=10_000,
        group_id=None,
    )
    records = list(consumer)
    consumer.close()
    assert len(records) == 1
    assert records[0].key == b"0:{}"
    body = json.loads(records[0].value)
    assert body["id"] == "n1"
    assert body["firing"][0]["rule"] == "accuracy-drop"


def test_kafka_receiver_unreachable_is_retryable() -> None:
    receiver = KafkaReceiver(
        topic="retrain",
        bootstrap="127.0.0.1:1",
        timeout=2.0,
        api_version=(2, 8),
        request_timeout_ms=2_000,
        max_block_ms=2_000,
    )
    note = Notification(
        id="n1",
        receiver="retrain",
        kind="firing",
        ts=MIN,
        group_key="g",
        group_labels={},
        firing=[],
        resolved=[],
    )
    with pytest.raises(NotifyRetryable):
        receiver.send(note)
