"""Any key: producers may key prediction events by model, by event id or not at all.

A 12-partition topic holds one hot model keyed by event id (Kafka's own partitioner spreads it
over every partition), two small models keyed by model (one partition each, beside the hot
one), and some events of each with no key (a partition of the producer's choosing). Live
``drifthouse run`` workers (one, then two) must store the ``metrics`` rows of an in-process
replay of the same topic to the last digit, labels included (keyed the same three ways); a
replay of the same events from files agrees on every count, and on float sums to rounding.

The small models send an event every ~20 s of event time on their partitions: a partition's
windows wait for the slowest model on it (docs/architecture.md, "watermark"), so a small model
keyed by model paces its partition, not the whole topic.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from drifthouse.app.replay import replay
from drifthouse.config import Config, load_config
from drifthouse.simulate import Record, Scenario, simulate
from drifthouse.sinks import MemorySink
from tests.workers import (
    FLOAT_SUMS,
    Metrics,
    Workers,
    assert_same,
    metric_rows,
    profiles_from,
    replayed_rows,
    sentinels,
    stored_rows,
    write_config,
)

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

PARTITIONS = 12
HOT = "fraud"
# Simulated "eta" events, every fourth kept, shared out between two models keyed by model;
# Kafka's partitioner puts them on partitions 2 and 0 of 12.
SMALL = ("eta_eu", "eta_us")
UNKEYED_EVERY = 10  # every tenth event of each model (and label) is sent with no key


@dataclass(frozen=True)
class Events:
    predictions: list[Record]
    labels: list[Record]


def _rename(record: Record, model: str) -> Record:
    event = json.loads(record.value)
    event["model"] = model
    return Record(record.topic, model.encode(), json.dumps(event).encode(), record.ts_ms)


@pytest.fixture(scope="module")
def events() -> Events:
    """12 hours: ~17,000 predictions of the hot model, ~2,100 of each small one, and labels."""
    sc = Scenario.demo(days=0.5, rate_per_min=24, reference_hours=6)
    predictions: list[Record] = []
    labels: list[Record] = []
    owner: dict[str, str] = {}  # event id -> model, for the labels
    small = 0
    for r in simulate(sc, seed=11):
        event = json.loads(r.value)
        if r.topic == "predictions":
            if event["model"] == HOT:
                owner[event["event_id"]] = HOT
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
    return Events(predictions, labels)


def _key(record: Record, i: int) -> bytes | None:
    """The hot model by event id, the small ones by model; every UNKEYED_EVERY-th with none."""
    if i % UNKEYED_EVERY == 0:
        return None
    event = json.loads(record.value)
    key: str = event["event_id"] if event["model"] == HOT else event["model"]
    return key.encode()


def _produce(
    bootstrap: str, topic: str, events: Events
) -> tuple[int, dict[tuple[str, bool], set[int]]]:
    """Predictions and labels with their keys, Kafka's default partitioner choosing the
    partition; then a far-ahead sentinel per partition so every window closes. Returns the
    watermark the sentinels bring and the partitions each model's predictions went to, keyed
    ``(model, sent with a key)``."""
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20)
    sent = []
    for i, r in enumerate(events.predictions):
        key = _key(r, i)
        future = producer.send(topic, key=key, value=r.value)
        sent.append(((json.loads(r.value)["model"], key is not None), future))
    for i, r in enumerate(events.labels):
        producer.send(f"{topic}-labels", key=_key(r, i), value=r.value)
    sentinel_ts, values = sentinels(events.predictions, PARTITIONS)
    for p, value in enumerate(values):
        producer.send(topic, key=HOT.encode(), value=value, partition=p)
    producer.flush()
    producer.close()
    partitions: dict[tuple[str, bool], set[int]] = defaultdict(set)
    for which, future in sent:
        partitions[which].add(future.get(timeout=30).partition)
    return sentinel_ts - 30_000, dict(partitions)


def test_any_key_gives_the_rows_of_a_replay_with_one_and_two_workers(
    tmp_path: Path, kafka_bootstrap: str, make_topic: Any, events: Events
) -> None:
    topic = make_topic(partitions=PARTITIONS)
    make_topic(partitions=4, name=f"{topic}-labels")
    make_topic(partitions=1, name=f"{topic}-metrics")
    closed_until, partitions = _produce(kafka_bootstrap, topic, events)
    # The hot model is on every partition; a small one keyed by model on a partition of its
    # own, beside the hot model; events without a key anywhere.
    assert partitions[HOT, True] == set(range(PARTITIONS))
    assert [partitions[m, True] for m in SMALL] == [{2}, {0}]
    assert all(len(partitions[m, False]) > 1 for m in (HOT, *SMALL))

    reference = [
        r for r in events.predictions if r.ts_ms < events.predictions[0].ts_ms + 6 * 3_600_000
    ]
    profiles = profiles_from(reference, Config())
    results = {}
    for name, count in {"one": 1, "two": 2}.items():
        config = write_config(tmp_path, kafka_bootstrap, topic, name, profiles)
        workers = Workers(config, PARTITIONS)
        try:
            for _ in range(count):
                workers.start()
            workers.wait_done(load_config(config), len(events.predictions))
        finally:
            workers.stop_all()
        results[name] = stored_rows(config)

    want = replayed_rows(config, closed_until, side_inputs=True)
    models = {k[2] for k in want}
    assert {HOT, *SMALL} <= models
    assert {k[2] for k in want if k[-1] == "rmse"} >= set(SMALL)  # labels joined
    assert any(k[2] == HOT and k[-1] == "accuracy" for k in want)
    for name, rows in results.items():
        assert_same(rows, want, name)

    # The same events replayed from files, one partition holding every model.
    preds, labels = tmp_path / "predictions.jsonl", tmp_path / "labels.jsonl"
    preds.write_bytes(b"".join(r.value + b"\n" for r in events.predictions))
    labels.write_bytes(b"".join(r.value + b"\n" for r in events.labels))
    sink = MemorySink()
    replay(load_config(config), source=f"file:{preds}", sink=sink, labels=f"file:{labels}")
    from_file = metric_rows(sink.rows("metrics"), closed_until)  # type: ignore[arg-type]
    _assert_same_to_rounding(from_file, want)


def _assert_same_to_rounding(got: Metrics, want: Metrics) -> None:
    """A file holds the events in another order than the topic's partitions: every count-based
    metric agrees exactly, float accumulators (``mean``, ``std``, the regression label metrics)
    to rounding (docs/architecture.md, "Sketches and exactness")."""
    only = sorted(got.keys() ^ want.keys(), key=repr)
    assert not only, f"file: {len(only)} rows in one only, e.g. {only[:8]}"
    rounded = FLOAT_SUMS | {"mean", "std"}
    differ = [
        k
        for k, (value, n) in want.items()
        if got[k][1] != n
        or not (
            math.isclose(got[k][0], value, rel_tol=1e-12, abs_tol=1e-12)
            if k[-1] in rounded
            else got[k][0] == value or (got[k][0] != got[k][0] and value != value)
        )
    ]
    assert not differ, (
        f"file: {len(differ)} rows differ, e.g. {[(k, got[k], want[k]) for k in differ[:8]]}"
    )
