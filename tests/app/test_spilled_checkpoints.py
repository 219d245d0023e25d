"""A merger with 220 source partitions: its checkpoint (a watermark per source partition) passes
the 4 KB Kafka allows in a commit's metadata, so it goes to the compacted checkpoints topic and
the commit names it; a worker that takes over resumes from it and stores the same rows."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from drifthouse.config import Config, load_config
from drifthouse.kafka.checkpoints import read_commits
from drifthouse.kafka.spill import CheckpointSpill
from tests.workers import (
    Workers,
    assert_same,
    profiles_from,
    replayed_rows,
    sentinels,
    stored_rows,
    write_config,
)

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

PARTITIONS = 220


def _produce(bootstrap: str, topic: str, values: list[tuple[int, bytes]]) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20)
    for partition, value in values:
        producer.send(topic, value=value, partition=partition)
    producer.flush()
    producer.close()


def test_a_checkpoint_past_4_kb_is_spilled_and_a_new_merger_resumes_from_it(
    tmp_path: Path, kafka_bootstrap: str, make_topic: Any, small_stream: Any
) -> None:
    topic = make_topic(partitions=PARTITIONS)
    records = [(i % PARTITIONS, r.value) for i, r in enumerate(small_stream.records[:1500])]
    ts, values = sentinels(small_stream.records[:1500], PARTITIONS)
    _produce(kafka_bootstrap, topic, records[:750])
    config = write_config(
        tmp_path, kafka_bootstrap, topic, "spill", profiles_from(small_stream.records, Config())
    )
    settings = json.loads(config.read_text())
    settings["kafka"]["snapshot_every"] = "3s"  # the commit follows the merger's snapshots
    config.write_text(json.dumps(settings))
    cfg = load_config(config)
    workers = Workers(config, PARTITIONS)
    try:
        port = workers.start()
        # The merger's commit moves with its snapshots (every kafka.snapshot_every, when partials
        # come): a trickle of events until one holds every partition's watermark, spilled.
        deadline = time.monotonic() + 180
        pointer, sent = "", 750
        while time.monotonic() < deadline and not pointer.startswith("spilled:"):
            time.sleep(1.0)
            workers.status(port)  # fails if the worker died
            _produce(kafka_bootstrap, topic, records[sent : sent + 1])
            sent += 1
            found = read_commits(cfg.kafka, cfg.kafka.group, cfg.kafka.partials_topic, [0])
            pointer = found.get(0, (0, ""))[1]
        assert pointer.startswith("spilled:"), pointer[:80]
        with CheckpointSpill(cfg.kafka) as spill:
            checkpoint = spill.resolve(pointer)
        assert len(checkpoint.encode()) > 4096
        assert len(json.loads(checkpoint)["watermarks"]) == PARTITIONS
        # SIGKILL, mid-stream: the next worker resumes from the spilled checkpoint.
        workers.kill(port, signal.SIGKILL)
        _produce(kafka_bootstrap, topic, [*records[sent:], *enumerate(values)])
        workers.start()
        workers.wait_done(cfg, len(records))
    finally:
        workers.stop_all()
    logs = workers.logs()
    assert "commit_refused" not in logs, "a commit the broker refused"
    assert "snapshot_missing" not in logs
    resumed = [line for line in logs.splitlines() if "merger.start" in line]
    assert len(resumed) == 2
    assert "resume=None" not in resumed[1], resumed
    assert_same(stored_rows(config), replayed_rows(config, ts - 30_000), "spill")
