"""``drifthouse produce``: the simulated stream on a real broker, stamped with the present."""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from typing import Any

import msgspec
import pytest
from rich.console import Console

from drifthouse.config import Config
from drifthouse.errors import UsageError
from drifthouse.events import parse_ts
from drifthouse.produce import Restamp, run_produce, scenario_named
from drifthouse.simulate import Scenario, simulate


def _config(bootstrap: str, topic: str, labels: str) -> Config:
    return Config.model_validate(
        {"kafka": {"bootstrap": bootstrap, "topic": topic, "labels_topic": labels}}
    )


def _read(bootstrap: str, topic: str, timeout_s: float = 10.0) -> list[Any]:
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=int(timeout_s * 1000),
    )
    try:
        return list(consumer)
    finally:
        consumer.close()


def _quiet() -> Console:
    return Console(file=io.StringIO())


@pytest.mark.kafka
def test_as_fast_as_possible_ends_now_with_the_scenarios_spacing(
    kafka_bootstrap: str, make_topic: Callable[..., str]
) -> None:
    topic, labels = make_topic(3), make_topic(3)
    before = int(time.time() * 1000)
    sent = run_produce(
        _config(kafka_bootstrap, topic, labels),
        rate=0,
        scenario="demo",
        count=300,
        console=_quiet(),
    )
    after = int(time.time() * 1000)
    assert sent == 300
    predictions = _read(kafka_bootstrap, topic)
    assert len(predictions) == 300
    assert {m.key for m in predictions} == {b"fraud", b"eta"}
    ids = set()
    for m in predictions:
        event = msgspec.json.decode(m.value)
        assert m.key == event["model"].encode()
        assert parse_ts(event["ts"]) == m.timestamp
        ids.add(event["event_id"])
    stamps = sorted(m.timestamp for m in predictions)
    # 300 events at the scenario's ~1/s span about five minutes, moved by whole hours so that
    # the last one is stamped within the hour before "now".
    assert before - 70 * 60_000 < stamps[0] < stamps[-1] <= after
    assert stamps[-1] > before - 60 * 60_000
    assert stamps[-1] - stamps[0] > 2 * 60_000
    one = predictions[0]
    event_id = msgspec.json.decode(one.value)["event_id"]
    simulated = next(
        r
        for r in simulate(Scenario.demo(), seed=0)
        if msgspec.json.decode(r.value)["event_id"] == event_id
    )
    assert (one.timestamp - simulated.ts_ms) % 3_600_000 == 0
    for m in _read(kafka_bootstrap, labels, timeout_s=3.0):
        label = msgspec.json.decode(m.value)
        assert label["event_id"] in ids
        assert label["ts"] == m.timestamp <= after


@pytest.mark.kafka
def test_a_rate_paces_the_stream_in_real_time(
    kafka_bootstrap: str, make_topic: Callable[..., str]
) -> None:
    topic, labels = make_topic(), make_topic()
    started = time.monotonic()
    before = int(time.time() * 1000)
    sent = run_produce(
        _config(kafka_bootstrap, topic, labels),
        rate=100,
        scenario="demo",
        count=100,
        console=_quiet(),
    )
    took = time.monotonic() - started
    after = int(time.time() * 1000)
    assert sent == 100
    assert took > 0.7  # 100 events at 100/s take about a second (Poisson arrivals)
    stamps = sorted(m.timestamp for m in _read(kafka_bootstrap, topic))
    assert len(stamps) == 100
    assert before <= stamps[0]
    assert stamps[-1] <= after
    assert 0.7 * 1000 < stamps[-1] - stamps[0] < 2.0 * 1000


def test_an_unknown_scenario_names_the_known_ones() -> None:
    with pytest.raises(UsageError, match="unknown scenario 'nope'; known scenarios: demo"):
        run_produce(Config(), rate=1, scenario="nope", count=1, console=_quiet())


def test_a_negative_rate_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="--rate"):
        run_produce(Config(), rate=-1, scenario="demo", count=1, console=_quiet())


def test_restamp_scales_from_the_origin() -> None:
    restamp = Restamp(start=1_000, origin=10_000, speed=100.0)
    assert [restamp(t) for t in (1_000, 101_000)] == [10_000, 11_000]


@pytest.mark.parametrize("name", ["demo", "quick"])
def test_days_lengthen_a_scenario_and_spread_its_faults(name: str) -> None:
    own = scenario_named(name)
    longer = scenario_named(name, 40)
    assert (longer.name, longer.days, longer.rate_per_min) == (name, 40, own.rate_per_min)
    assert longer.reference_end_ms == own.reference_end_ms  # the same clean reference
    assert [f.name for f in longer.faults] == [f.name for f in own.faults]
    # The faults come in the same order after the reference, spread over the longer span.
    starts = [f.start_ms for f in longer.faults]
    assert starts == sorted(starts)
    assert starts[0] >= longer.reference_end_ms
    assert starts[-1] > own.end_ms
    assert starts[-1] < longer.end_ms
    assert longer.end_ms == longer.start_ms + 40 * 86_400_000  # where simulate() stops


def test_days_must_leave_time_after_the_reference() -> None:
    with pytest.raises(UsageError, match=r"--days must leave time after .* 24 reference hours"):
        scenario_named("demo", 1)
    with pytest.raises(UsageError, match="unknown scenario"):
        scenario_named("nope", 3)
