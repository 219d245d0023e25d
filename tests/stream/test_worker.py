"""The live worker against the real broker: exact recovery after SIGKILL, and scale-out.

Each test produces a simulated stream to a 4-partition topic, runs ``drifthouse run`` worker
processes on it (killing, adding and removing them), and compares every ``metrics`` row they
wrote with a replay of the same topic through the in-process pipeline: the rows must be equal
to the last digit.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
import zlib
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaProducer

from drifthouse.config import load_config
from drifthouse.sinks import MemorySink
from drifthouse.stream.replay import replay
from tests.stream.conftest import Workers, assert_same, stored_rows

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

PARTITIONS = 4
HOUR = 3_600_000
DONE_TIMEOUT_S = 240.0


def _produce(bootstrap: str, topic: str, records: list[Any]) -> int:
    """The stream, keyed by event id hash across partitions, then one far-ahead event per
    partition so every window of the stream closes. Returns the sentinels' watermark floor."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20)
    for r in records:
        event_id = json.loads(r.value)["event_id"]
        producer.send(
            topic, key=r.key, value=r.value, partition=zlib.crc32(event_id.encode()) % PARTITIONS
        )
    sentinel_ts = max(r.ts_ms for r in records) + 3 * HOUR
    for p in range(PARTITIONS):
        event = {"model": "fraud", "ts": sentinel_ts, "event_id": f"sentinel-{p}", "features": {}}
        producer.send(topic, key=b"fraud", value=json.dumps(event).encode(), partition=p)
    producer.flush()
    producer.close()
    return sentinel_ts


def _write_config(
    tmp_path: Path,
    bootstrap: str,
    topic: str,
    name: str,
    profiles: dict[str, Any],
    serve_port: int | None = None,
) -> Path:
    folder = tmp_path / name
    (folder / "refs").mkdir(parents=True)
    models = {}
    for model, profile in profiles.items():
        (folder / "refs" / f"{model}.json").write_bytes(profile.to_json())
        models[model] = {"reference": f"refs/{model}.json"}
    cfg = {
        "kafka": {
            "bootstrap": bootstrap,
            "topic": topic,
            "group": f"g-{name}-{topic}",
            "partials_topic": f"{topic}-{name}-partials",
            "idle_after": "3s",
            "batch_size": 256,
        },
        # Test events are stamped January 2026: a 30-day TTL would delete their logged predictions.
        "store": {"path": "./data", "serve_port": serve_port, "ttl_days": {"predictions": 3650}},
        "windows": [{"size": "1h"}, {"size": "30m", "hop": "10m"}],
        "models": models,
    }
    path = folder / "drifthouse.yaml"
    path.write_text(json.dumps(cfg))
    return path


def _replayed_rows(
    config_path: Path, closed_until: int
) -> dict[tuple[Any, ...], tuple[float, int]]:
    cfg = load_config(config_path)
    sink = MemorySink()
    replay(cfg, source=f"kafka:{cfg.kafka.topic}", sink=sink, run_id="expected")
    return {
        (r.window_start, r.window, r.model, r.model_version, r.feature, r.segment, r.metric): (
            r.value,
            r.n,
        )
        for r in sink.rows("metrics")
        if r.window_end <= closed_until
    }


@pytest.fixture
def produced(kafka_bootstrap: str, make_topic: Any, small_stream: Any) -> tuple[str, int]:
    topic = make_topic(partitions=PARTITIONS)
    sentinel = _produce(kafka_bootstrap, topic, small_stream.records)
    return topic, sentinel - 30_000  # the watermark the sentinels bring every partition to


def test_sigkill_at_random_moments_loses_and_doubles_nothing(
    tmp_path: Path, kafka_bootstrap: str, produced: tuple[str, int], small_stream: Any
) -> None:
    topic, closed_until = produced
    config = _write_config(tmp_path, kafka_bootstrap, topic, "kill", small_stream.profiles)
    cfg = load_config(config)
    workers = Workers(config, PARTITIONS)
    rng = random.Random(7)
    try:
        for _ in range(5):
            port = workers.start()
            time.sleep(rng.uniform(4.0, 9.0))
            workers.kill(port, signal.SIGKILL)
        workers.start()
        workers.wait_done(cfg, len(small_stream.records))
    finally:
        workers.stop_all()
    assert_same(stored_rows(config), _replayed_rows(config, closed_until))


def test_one_two_three_workers_and_a_rebalance_give_identical_rows(
    tmp_path: Path, kafka_bootstrap: str, produced: tuple[str, int], small_stream: Any
) -> None:
    topic, closed_until = produced
    results = {}
    for name, plan in {"one": [0], "three": [0, 0, 0], "join-leave": [0, 3, 6]}.items():
        port = 18000 + random.randrange(0, 1000) if name == "one" else None
        config = _write_config(tmp_path, kafka_bootstrap, topic, name, small_stream.profiles, port)
        cfg = load_config(config)
        workers = Workers(config, PARTITIONS)
        try:
            started = []
            for delay in plan:
                time.sleep(delay - (plan[len(started) - 1] if started else 0))
                started.append(workers.start())
            if name == "join-leave":
                time.sleep(3)
                workers.kill(started[0], signal.SIGTERM)  # a worker leaves mid-stream
            workers.wait_done(cfg, len(small_stream.records))
            if port is not None:
                # The worker holds the embedded store: `drifthouse sql` asks it instead.
                asked = subprocess.run(
                    [sys.executable, "-m", "drifthouse", "sql", "-c", str(config),
                     "SELECT count() FROM predictions WHERE status >= 500"],
                    capture_output=True, text=True, timeout=120,
                )  # fmt: skip
                assert asked.returncode == 0, asked.stderr
                errors = sum(
                    1 for r in small_stream.records if json.loads(r.value).get("status", 200) >= 500
                )
                assert f"│ {errors} " in asked.stdout
        finally:
            workers.stop_all()
        results[name] = stored_rows(config)
    want = _replayed_rows(config, closed_until)
    for rows in results.values():
        assert_same(rows, want)


def test_store_outage_slows_the_merger_and_loses_nothing(
    tmp_path: Path, kafka_bootstrap: str, produced: tuple[str, int], small_stream: Any
) -> None:
    """ClickHouse (over HTTP) goes away mid-stream: results spool to a small on-disk spool, the
    merger stops reading partials while it is pressed, and when the store returns every row
    arrives exactly once: the same rows as a replay."""
    from tests.sinks.conftest import HttpClickHouse

    topic, closed_until = produced
    store = HttpClickHouse(tmp_path / "engine")
    store.start()
    config = _write_config(tmp_path, kafka_bootstrap, topic, "outage", small_stream.profiles)
    cfg_data = json.loads(config.read_text())
    cfg_data["store"] = {"dsn": store.dsn, "spool_dir": "./spool", "spool_max_bytes": 3_000_000}
    config.write_text(json.dumps(cfg_data))
    cfg = load_config(config)
    workers = Workers(config, PARTITIONS)
    try:
        workers.start()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not any(h.get("merger") for h in workers.health()):
            time.sleep(0.2)
        store.stop()  # connections refused from here on
        time.sleep(12)
        paused = (config.parent / "spool").exists()
        store.start()
        workers.wait_done(cfg, len(small_stream.records))
    finally:
        workers.stop_all()
    try:
        assert paused, "results written during the outage should have gone to the spool"
        assert_same(stored_rows(config), _replayed_rows(config, closed_until))
        logs = "".join(p.read_text(errors="replace") for p in config.parent.glob("worker-*.log"))
        assert "sink.spooled" in logs  # written to the spool while the store was away
        assert "sink.replayed" in logs  # and replayed, in order, when it came back
        assert "merger.paused" in logs or "merger.store_waiting" in logs  # the merger slowed down
    finally:
        store.stop()
