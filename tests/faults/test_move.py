"""A merger killed and started again on another host: its alerts are paged once, resolved once."""

from __future__ import annotations

import random
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from tests.fakes import FakeApi
from tests.faults.conftest import PacedRun, alerting, check_stored, wait_for
from tests.workers import PARTITIONS

pytestmark = [pytest.mark.faults, pytest.mark.kafka, pytest.mark.slow]


def test_a_merger_killed_and_moved_to_another_disk_pages_once(
    tmp_path: Path, kafka_bootstrap: str, make_topic: Any, small_stream: Any, api: FakeApi
) -> None:
    """Each worker keeps its alerting folder on a disk of its own (``outbox_dir`` named by its
    port), as on machines of their own; the store is shared. Three mergers in a row are killed
    (SIGKILL) while the stream flows, the first once it has paged, and each next merger starts
    with an empty folder: the pages, the resolutions and the Slack messages are those of an
    undisturbed run, once each."""
    records = small_stream.records
    sections = alerting(api)
    sections["alerting"] = {
        **sections["alerting"],
        "outbox_dir": "./alerting-of-${DRIFTHOUSE_WEB_PORT:-none}",
    }
    run = PacedRun.of(
        tmp_path, kafka_bootstrap, make_topic(partitions=PARTITIONS), small_stream, api,
        sections=sections, name="move", seconds=120.0,
    )  # fmt: skip
    workers, producer = run.workers, run.producer
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
        reference = run.finish(api, tmp_path)
        assert reference.pagerduty, "the stream should raise alerts"
    finally:
        run.stop()
    check_stored(run.config, reference)
    # Mid-stream: the stream was still being sent at every kill, and pages came after the first.
    assert all(sent < len(records) for sent, _ in kills), f"kills after the stream: {kills}"
    assert kills[0][1] < len(reference.pagerduty), f"every page before the kills: {kills}"
