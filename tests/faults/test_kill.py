"""SIGKILL at random moments: a killed worker loses and doubles nothing, and pages once."""

from __future__ import annotations

import random
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from tests.fakes import FakeApi
from tests.faults.conftest import PacedRun, check_stored, wait_for
from tests.workers import PARTITIONS

pytestmark = [pytest.mark.faults, pytest.mark.kafka, pytest.mark.slow]


def test_sigkill_at_random_moments_loses_and_doubles_nothing(
    tmp_path: Path, kafka_bootstrap: str, make_topic: Any, small_stream: Any, api: FakeApi
) -> None:
    """Five workers in a row are killed (SIGKILL: no goodbye, no flush) at random moments
    while the stream flows, every other one once it is the merger, then a sixth finishes: the
    rows, the alerts and the pages are those of an undisturbed run."""
    records = small_stream.records
    # Paced slowly enough that five start-up-and-kill rounds fit well inside it even on a
    # loaded machine; once they are done, the rest goes at once.
    run = PacedRun.of(
        tmp_path, kafka_bootstrap, make_topic(partitions=PARTITIONS), small_stream, api,
        name="kill", seconds=120.0,
    )  # fmt: skip
    workers, producer = run.workers, run.producer
    rng = random.Random(7)
    kills = []
    try:
        port = workers.start()
        producer.start()
        for i in range(5):
            # A dead member holds the group until its session times out (10 s): the next
            # worker starts at once and spends that time starting up.
            if i % 2:
                wait_for("the merger", lambda p=port: bool(workers.status(p).get("merger")))
            else:
                wait_for("a worker to read", lambda p=port: workers.status(p).get("events", 0) > 0)
            time.sleep(rng.uniform(0.0, 2.5))
            report = workers.status(port)
            workers.kill(port, signal.SIGKILL)
            kills.append((producer.sent, report.get("events"), bool(report.get("merger"))))
            port = workers.start()
        reference = run.finish(api, tmp_path)
    finally:
        run.stop()
    check_stored(run.config, reference)
    assert sum(1 for *_, merger in kills if merger) >= 2, f"the kills should hit mergers: {kills}"
    assert all(sent < len(records) for sent, *_ in kills), f"kills after the stream: {kills}"
