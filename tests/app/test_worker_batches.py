"""The live worker on batched messages (docs/events.md, "Batched messages"): the same
predictions sent one per message and in batches, rows and columns, give identical rows."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec
import pytest

from drifthouse.config import load_config
from drifthouse.events import PredictionEvent, encode_batch, encode_columns
from drifthouse.simulate import Record
from tests.workers import (
    PARTITIONS,
    Workers,
    assert_same,
    partition_of,
    produce_stream,
    replayed_rows,
    sentinels,
    stored_rows,
    write_config,
)

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

_DECODE = msgspec.json.Decoder(PredictionEvent).decode


def _batched(records: Sequence[Record], size: int) -> tuple[list[tuple[int, bytes]], list[Record]]:
    """``(partition, value)`` messages of at most ``size`` events of one model and version, as
    a model server holding each model's events until it has ``size`` sends them, rows and
    columns in turn; and the records in the order the messages hold them (per partition)."""
    out: list[tuple[int, bytes]] = []
    order: list[Record] = []
    held: dict[tuple[int, str, str], list[Record]] = {}

    def send(p: int, run: list[Record]) -> None:
        events = [_DECODE(r.value) for r in run]
        try:
            value = encode_columns(events) if len(out) % 2 else encode_batch(events)
        except ValueError:  # other feature names inside the run: rows take any
            value = encode_batch(events)
        out.append((p, value))
        order.extend(run)

    for r in records:
        p, event = partition_of(r.value), _DECODE(r.value)
        run = held.setdefault((p, event.model, event.model_version), [])
        run.append(r)
        if len(run) == size:
            send(p, held.pop((p, event.model, event.model_version)))
    for (p, _, _), run in held.items():
        send(p, run)
    return out, order


def test_batched_messages_give_the_rows_of_single_events(
    tmp_path: Path, kafka_bootstrap: str, make_topic: Any, small_stream: Any
) -> None:
    from kafka import KafkaProducer

    messages, order = _batched(small_stream.records, 20)
    assert len(messages) < len(small_stream.records) / 10  # mostly batches
    single = make_topic(partitions=PARTITIONS)
    closed_until = produce_stream(kafka_bootstrap, single, order)
    batched = make_topic(partitions=PARTITIONS)
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, linger_ms=20)
    for p, value in messages:
        producer.send(batched, key=json.loads(value)["model"].encode(), value=value, partition=p)
    for p, value in enumerate(sentinels(small_stream.records)[1]):
        producer.send(batched, key=b"fraud", value=value, partition=p)
    producer.flush()
    producer.close()

    config = write_config(tmp_path, kafka_bootstrap, batched, "batched", small_stream.profiles)
    workers = Workers(config, PARTITIONS)
    try:
        workers.start()
        workers.wait_done(load_config(config), len(small_stream.records))
    finally:
        workers.stop_all()
    live = stored_rows(config)
    expected = write_config(tmp_path, kafka_bootstrap, single, "single", small_stream.profiles)
    want = replayed_rows(expected, closed_until)
    assert len(want) > 100
    assert_same(live, want, "batched")
