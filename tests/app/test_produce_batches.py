"""``drifthouse produce --batch N [--columnar]`` on a real broker: the predictions of
``--batch 1``, in batched messages (docs/events.md, "Batched messages")."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import msgspec
import pytest
from rich.console import Console

from drifthouse.config import Config
from drifthouse.errors import UsageError
from drifthouse.events import EventDecoder, PredictionEvent, decode_messages
from drifthouse.produce import run_produce

pytestmark = pytest.mark.kafka


def _config(bootstrap: str, topic: str, labels: str) -> Config:
    return Config.model_validate(
        {"kafka": {"bootstrap": bootstrap, "topic": topic, "labels_topic": labels}}
    )


def _read(bootstrap: str, topic: str) -> list[Any]:
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=5_000,
    )
    try:
        return list(consumer)
    finally:
        consumer.close()


def _produce(bootstrap: str, make_topic: Callable[..., str], **batching: Any) -> list[Any]:
    topic, labels = make_topic(3), make_topic(3)
    quiet = Console(file=io.StringIO())
    sent = run_produce(
        _config(bootstrap, topic, labels),
        rate=0,
        scenario="quick",
        count=600,
        console=quiet,
        **batching,
    )
    assert sent == 600
    return _read(bootstrap, topic)


def _events(messages: list[Any]) -> tuple[dict[bytes, list[dict[str, Any]]], int]:
    """Per key (model), the events' fields in their order; and the largest message time."""
    by_key: dict[bytes, list[dict[str, Any]]] = {}
    decoded = decode_messages(EventDecoder(PredictionEvent), [m.value for m in messages])
    assert decoded.refused == []
    for pos, event in decoded.ok:
        assert messages[pos].key == event.model.encode()
        by_key.setdefault(messages[pos].key, []).append(msgspec.structs.asdict(event))
    for events in by_key.values():
        events.sort(key=lambda e: (e["ts_ms"], e["event_id"] or ""))
    return by_key, max(m.timestamp for m in messages)


@pytest.mark.parametrize("columnar", [False, True], ids=["rows", "columns"])
def test_batches_carry_the_predictions_of_single_messages(
    kafka_bootstrap: str, make_topic: Callable[..., str], columnar: bool
) -> None:
    singles = _produce(kafka_bootstrap, make_topic)
    batches = _produce(kafka_bootstrap, make_topic, batch=50, columnar=columnar)
    assert len(singles) == 600
    assert len(batches) < 600 / 10
    single_events, single_last = _events(singles)
    batch_events, batch_last = _events(batches)
    assert batch_events == single_events
    assert abs(batch_last - single_last) < 3_600_000  # both stamped near now
    field = b'"columns"' if columnar else b'"events"'
    assert all(field in m.value for m in batches)


def test_batch_must_be_positive(kafka_bootstrap: str) -> None:
    with pytest.raises(UsageError, match="--batch"):
        run_produce(
            _config(kafka_bootstrap, "t", "l"),
            rate=0,
            scenario="quick",
            count=1,
            console=Console(file=io.StringIO()),
            batch=0,
        )
