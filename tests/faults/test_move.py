"""A merger killed, or moved in order, to another host: its alerts are paged once, resolved once."""

from __future__ import annotations

import json
import random
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.fakes import FakeApi
from tests.faults.conftest import PacedProducer, PacedRun, alerting, check_stored, wait_for
from tests.workers import HOUR, PARTITIONS, Workers

pytestmark = [pytest.mark.faults, pytest.mark.kafka, pytest.mark.slow]

# The stream's first page is the latency regression of hour 8 (of 12). The hours before
# LEAD_HOURS are sent at once, the rest at SECONDS_PER_HOUR but for the last HELD_HOURS, which
# wait until the three moves (two kills, each waiting out a session timeout, and an orderly
# move) are done.
LEAD_HOURS = 7.5
SECONDS_PER_HOUR = 4.0
HELD_HOURS = 1.0


class LeadThenPaced(PacedProducer):
    """The first ``lead`` records at once, the rest evenly over ``seconds``; the last ``held``
    records wait for :attr:`go` (or ``hurry``): the moves land mid-stream however slow the
    machine."""

    def __init__(self, producer: PacedProducer, lead: int, held: int) -> None:
        super().__init__(producer.bootstrap, producer.topic, producer.records, producer.seconds)
        self.lead, self.held = lead, held
        self.go = threading.Event()

    def before(self, lo: int) -> None:
        while lo >= len(self.records) - self.held and not self.go.wait(0.1):
            if self.hurry.is_set() or self.stop.is_set():
                break

    def share(self, sent: int) -> float:
        return max(0, sent - self.lead) / (len(self.records) - self.lead)


def test_a_merger_killed_or_moved_to_another_disk_pages_once(
    tmp_path: Path, kafka_bootstrap: str, make_topic: Any, small_stream: Any, api: FakeApi
) -> None:
    """Each worker keeps its alerting folder on a disk of its own (``outbox_dir`` named by its
    port), as on machines of their own; the store is shared. The merger moves three times while
    the stream flows: killed (SIGKILL) a second after its first page, then stopped in order
    (SIGTERM: a rolling restart, a host drained) with another worker ready to take over, then
    killed again; each next merger starts with an empty folder. The pages, the resolutions and
    the Slack messages are those of an undisturbed run, once each: a notification leaves only
    once the alert state that raised it is saved, so a merger that takes over never raises it
    again (docs/alerting.md, "Where alerting's state lives")."""
    records = small_stream.records
    sections = alerting(api)
    sections["alerting"] = {
        **sections["alerting"],
        "outbox_dir": "./alerting-of-${DRIFTHOUSE_WEB_PORT:-none}",
    }
    paced_from = small_stream.scenario.start_ms + int(LEAD_HOURS * HOUR)
    lead = sum(1 for r in records if r.ts_ms < paced_from)
    hours = (records[-1].ts_ms - paced_from) / HOUR
    run = PacedRun.of(
        tmp_path, kafka_bootstrap, make_topic(partitions=PARTITIONS), small_stream, api,
        sections=sections, name="move", seconds=hours * SECONDS_PER_HOUR,
    )  # fmt: skip
    held = sum(1 for r in records if r.ts_ms >= records[-1].ts_ms - HELD_HOURS * HOUR)
    run.producer = producer = LeadThenPaced(run.producer, lead, held)
    # Snapshots (and the commits that name them) every 2 s, as every 30 s in a longer run: a
    # merger that takes over resumes from the last one, and pages in its turn.
    cfg = json.loads(run.config.read_text())
    cfg["kafka"]["snapshot_every"] = "2s"
    run.config.write_text(json.dumps(cfg))
    workers = run.workers
    rng = random.Random(11)
    moves: list[tuple[str, int, int]] = []  # (how, records sent, pages sent)
    kills: list[float] = []  # when each SIGKILL was sent (time.monotonic())
    try:
        port = workers.start()
        producer.start()
        # A second after the page. A kill between a receiver's answer and the outbox's `done`
        # row sends that notification again (at least once there, which PagerDuty folds by
        # dedup key): the check lets a request answered just before a kill come once more
        # after it, the same, and compares every other request.
        wait_for("a page", lambda: bool(api.pd_events()), timeout=120.0)
        time.sleep(1.0)
        kills.append(time.monotonic())
        port = _move(workers, port, signal.SIGKILL, moves, producer, api, standby=True)
        time.sleep(rng.uniform(0.5, 1.5))
        port = _move(workers, port, signal.SIGTERM, moves, producer, api, standby=False)
        time.sleep(rng.uniform(0.5, 1.5))
        kills.append(time.monotonic())
        port = _move(workers, port, signal.SIGKILL, moves, producer, api, standby=False)
        producer.go.set()
        reference = run.finish(api, tmp_path, kills=kills)
        assert reference.pagerduty, "the stream should raise alerts"
    finally:
        run.stop()
    check_stored(run.config, reference)
    # Mid-stream: the stream was still being sent at every move, and pages came after the first.
    assert all(sent < len(records) for _, sent, _ in moves), f"moves after the stream: {moves}"
    assert moves[0][2] < len(reference.pagerduty), f"every page before the moves: {moves}"


def _move(
    workers: Workers,
    port: int,
    sig: int,
    moves: list[tuple[str, int, int]],
    producer: PacedProducer,
    api: FakeApi,
    *,
    standby: bool,
) -> int:
    """Stop the merger at ``port`` with ``sig`` and start another worker (with ``standby``
    two: the next move, in order, goes to the one already running); return the new merger's
    port."""
    others = [p for p in workers.procs if p != port]
    moves.append((signal.Signals(sig).name, producer.sent, len(api.pd_events())))
    workers.kill(port, sig)
    started = [workers.start() for _ in range(2 if standby else 1 if not others else 0)]
    candidates = others + started
    merger: list[int] = []

    def moved() -> bool:
        merger[:] = [p for p in candidates if workers.status(p).get("merger")]
        return bool(merger)

    wait_for("the next merger", moved)
    return merger[0]
