"""A merger killed and started again on another host: its alerts are paged once, resolved once."""

from __future__ import annotations

import random
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
    reference_of,
    wait_for,
)
from tests.workers import PARTITIONS, Workers, sentinels, write_config

pytestmark = [pytest.mark.faults, pytest.mark.kafka, pytest.mark.slow]


def test_a_merger_killed_and_moved_to_another_disk_pages_once(
    tmp_path: Path, kafka_bootstrap: str, make_topic: Any, small_stream: Any, api: FakeApi
) -> None:
    """Each worker keeps its alerting folder on a disk of its own (``outbox_dir`` named by its
    port), as on machines of their own; the store is shared. Three mergers in a row are killed
    (SIGKILL) while the stream flows, the first once it has paged, and each next merger starts
    with an empty folder: the pages, the resolutions and the Slack messages are those of an
    undisturbed run, once each."""
    topic = make_topic(partitions=PARTITIONS)
    records = small_stream.records
    sections = alerting(api)
    sections["alerting"] = {
        **sections["alerting"],
        "outbox_dir": "./alerting-of-${DRIFTHOUSE_WEB_PORT:-none}",
    }
    config = write_config(
        tmp_path, kafka_bootstrap, topic, "move", small_stream.profiles, extra=sections
    )
    workers = Workers(config, PARTITIONS)
    producer = PacedProducer(kafka_bootstrap, topic, records, seconds=120.0)
    rng = random.Random(11)
    kills = []
    try:
        port = workers.start()
        producer.start()
        # The first merger is killed once it has paged (its alerts fire), the next ones at
        # random moments after they take over. A second after the page: a kill between
        # PagerDuty's answer and the outbox's `done` row would send it again (at least once,
        # which PagerDuty folds by dedup key; this test compares every request).
        wait_for("a page", lambda: bool(api.pd_events()), timeout=240.0)
        time.sleep(1.0)
        for _ in range(3):
            wait_for("the merger", lambda p=port: bool(workers.status(p).get("merger")))
            kills.append((producer.sent, len(api.pd_events())))
            workers.kill(port, signal.SIGKILL)
            port = workers.start()  # another host: its alerting folder is new and empty
            wait_for("the next merger", lambda p=port: bool(workers.status(p).get("merger")))
            time.sleep(rng.uniform(0.5, 2.5))
        producer.hurry.set()
        producer.join(timeout=120)
        assert producer.error is None, producer.error
        workers.wait_done(load_config(config), len(records))
        closed_until = sentinels(records)[0] - 30_000
        reference = reference_of(
            kafka_bootstrap, topic, small_stream.profiles, tmp_path, closed_until
        )
        assert reference.pagerduty, "the stream should raise alerts"
        check_delivered_once(api, reference)
    finally:
        producer.stop.set()
        workers.stop_all()
    check_stored(config, reference)
    assert all(sent < len(records) for sent, _ in kills), f"kills after the stream: {kills}"
