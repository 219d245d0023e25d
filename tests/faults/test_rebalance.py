"""Rebalances while windows are open: a worker joins, another leaves, as the stream flows."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import pytest

from drifthouse.config import load_config
from tests.fakes import FakeApi
from tests.faults.conftest import (
    PacedProducer,
    alerting,
    check_delivered_once,
    check_stored,
    deliveries,
    reference_of,
    wait_for,
)
from tests.workers import PARTITIONS, Workers, sentinels, write_config

pytestmark = [pytest.mark.faults, pytest.mark.kafka, pytest.mark.slow]

SECONDS = 24.0  # how long the stream takes to arrive


def test_rebalances_while_windows_are_open_lose_and_double_nothing(
    tmp_path: Path, kafka_bootstrap: str, make_topic: Any, small_stream: Any, api: FakeApi
) -> None:
    topic = make_topic(partitions=PARTITIONS)
    records = small_stream.records
    config = write_config(
        tmp_path, kafka_bootstrap, topic, "rebalance", small_stream.profiles, extra=alerting(api)
    )
    workers = Workers(config, PARTITIONS)
    producer = PacedProducer(kafka_bootstrap, topic, records, SECONDS)
    open_at: list[int] = []
    try:
        first = workers.start()
        producer.start()
        wait_for("the first worker to read", lambda: workers.status(first).get("events", 0) > 0)
        # A second worker joins while the first holds open windows: partitions move, with
        # their panes rebuilt from the checkpoints by their new owner.
        wait_for("a third of the stream", lambda: producer.sent >= len(records) // 3)
        open_at.append(sum(p["open_panes"] for p in workers.status(first)["partitions"].values()))
        second = workers.start()
        wait_for(
            "the second worker's partitions",
            lambda: bool(workers.status(second).get("partitions")),
        )
        # ... and the first leaves mid-stream, with windows open again.
        wait_for("two thirds of the stream", lambda: producer.sent >= 2 * len(records) // 3)
        report = workers.status(first)
        open_at.append(sum(p["open_panes"] for p in report.get("partitions", {}).values()))
        workers.kill(first, signal.SIGTERM)
        producer.join(timeout=120)
        assert producer.error is None, producer.error
        assert producer.sent >= len(records)
        workers.wait_done(load_config(config), len(records))
        closed_until = sentinels(records)[0] - 30_000  # where the sentinels bring watermarks
        reference = reference_of(
            kafka_bootstrap, topic, small_stream.profiles, tmp_path, closed_until
        )

        def all_delivered() -> bool:
            pagerduty, slack = deliveries(api)
            return len(pagerduty) >= len(reference.pagerduty) and len(slack) >= len(reference.slack)

        # Checked once the workers are stopped: every notification is out before they are
        # (and a second more for any sent twice, as check_delivered_once waits).
        wait_for("every notification", all_delivered, timeout=60.0)
        time.sleep(1.0)
    finally:
        producer.stop.set()
        workers.stop_all()
    assert all(n > 0 for n in open_at), f"windows should be open at each rebalance: {open_at}"
    check_stored(config, reference)
    check_delivered_once(api, reference)
