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
from tests.workers import HOUR, PARTITIONS

pytestmark = [pytest.mark.faults, pytest.mark.kafka, pytest.mark.slow]

# The stream's first page is the latency regression of hour 8 (of 12), paged when the first
# window holding it closes. The hours before it take LEAD_SECONDS, so the first merger has been
# through a snapshot or two (every 30 s) when it is killed, as in a longer run; the rest goes at
# 13 s an hour, which leaves the three kill rounds (each waits out a session timeout) about
# 45 s after the first page.
PACED_FROM_HOUR = 7.5
LEAD_SECONDS = 40.0
SECONDS_PER_HOUR = 13.0


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
    paced_from = small_stream.scenario.start_ms + int(PACED_FROM_HOUR * HOUR)
    lead = sum(1 for r in records if r.ts_ms < paced_from)
    hours = (records[-1].ts_ms - paced_from) / HOUR
    run = PacedRun.of(
        tmp_path, kafka_bootstrap, make_topic(partitions=PARTITIONS), small_stream, api,
        sections=sections, name="move", lead=(lead, LEAD_SECONDS),
        seconds=hours * SECONDS_PER_HOUR,
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
    # Mid-stream: the paced part was still being sent at every kill, and pages came after it.
    assert all(lead < sent < len(records) for sent, _ in kills), f"kills after the stream: {kills}"
    assert kills[0][1] < len(reference.pagerduty), f"every page before the kills: {kills}"
