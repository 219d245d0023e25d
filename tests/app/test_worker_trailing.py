"""The live worker against the real broker with models on trailing baselines
(``reference: {trailing: 2h}``, docs/statistics.md "Trailing baselines"): a worker killed
mid-stream (SIGKILL) and replaced reads the stored states of the windows before it back from
the store, and writes the rows of an in-process replay to the last digit."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import pytest

from drifthouse.config import load_config
from tests.workers import (
    PARTITIONS,
    Workers,
    assert_same,
    partition_of,
    produce_stream,
    replayed_rows,
    stored_rows,
    write_config,
)

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

WINDOWS = [{"size": "1h"}, {"size": "3h", "from": "1h"}]


def test_a_worker_killed_mid_stream_writes_the_trailing_rows_of_a_replay(
    tmp_path: Path, kafka_bootstrap: str, make_topic: Any, small_stream: Any
) -> None:
    topic = make_topic(partitions=PARTITIONS)
    records = small_stream.records
    half = next(i for i, r in enumerate(records) if r.ts_ms >= records[0].ts_ms + 19_800_000)
    _produce(kafka_bootstrap, topic, records[:half])
    models = {
        model: {"reference": {"trailing": "2h", "profile": f"refs/{model}.json", "min_events": 50}}
        for model in small_stream.profiles
    }
    config = write_config(
        tmp_path, kafka_bootstrap, topic, "trailing", small_stream.profiles,
        extra={"windows": WINDOWS, "models": models},
    )  # fmt: skip
    cfg = load_config(config)
    workers = Workers(config, PARTITIONS)
    try:
        first = workers.start()
        deadline = time.monotonic() + 120
        report: dict[str, Any] = {}
        while time.monotonic() < deadline and not _caught_up(report):
            time.sleep(0.5)
            report = workers.status(first)
        assert _caught_up(report), workers.logs()[-3000:]
        time.sleep(3)  # its checkpoints are committed (every second)
        workers.kill(first, signal.SIGKILL)
        closed_until = produce_stream(kafka_bootstrap, topic, records[half:])
        second = workers.start()
        workers.wait_done(cfg, len(records))
        assert workers.status(second)["merger"]["incomplete_windows"] == 0
    finally:
        workers.stop_all()
    want = replayed_rows(config, closed_until)
    live = stored_rows(config)
    psi = {k[0] for k in want if k[1] == "1h" and k[6] == "psi"}
    starts = sorted({k[0] for k in want if k[1] == "1h"})
    # The first hour has no earlier window: no drift rows; every later hour has them.
    assert starts[0] not in psi
    assert set(starts[1:]) <= psi
    assert any(k[1] == "3h" and k[6] == "psi" for k in want)
    assert_same(live, want)


def _caught_up(report: dict[str, Any]) -> bool:
    parts = report.get("partitions") or {}
    merger = report.get("merger") or {}
    return (
        len(parts) == PARTITIONS
        and all(p["lag"] == 0 for p in parts.values())
        and merger.get("windows_written", 0) > 0
    )


def _produce(bootstrap: str, topic: str, records: list[Any]) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20)
    for r in records:
        producer.send(topic, key=r.key, value=r.value, partition=partition_of(r.value))
    producer.flush()
    producer.close()
