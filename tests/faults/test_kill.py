"""SIGKILL at random moments: a killed worker loses and doubles nothing, and pages once."""

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
    Reference,
    alerting,
    check_delivered_once,
    check_stored,
    wait_for,
)
from tests.stream.conftest import Workers, write_config

pytestmark = [pytest.mark.faults, pytest.mark.kafka, pytest.mark.slow]


def test_sigkill_at_random_moments_loses_and_doubles_nothing(
    tmp_path: Path,
    kafka_bootstrap: str,
    shared_topic: tuple[str, int],
    reference: Reference,
    small_stream: Any,
    api: FakeApi,
) -> None:
    """Five workers in a row are killed (SIGKILL: no goodbye, no flush) at random moments
    once they are reading, then a sixth finishes: the rows, the alerts and the pages are those
    of an undisturbed run."""
    topic, _ = shared_topic
    config = write_config(
        tmp_path, kafka_bootstrap, topic, "kill", small_stream.profiles, extra=alerting(api)
    )
    workers = Workers(config)
    rng = random.Random(7)
    kills = []
    try:
        port = workers.start()
        for _ in range(5):
            # A dead member holds the group until its session times out (10 s): the next
            # worker starts at once and spends that time starting up.
            wait_for("a worker to read", lambda p=port: workers.status(p).get("events", 0) > 0)
            time.sleep(rng.uniform(0.0, 2.5))
            report = workers.status(port)
            workers.kill(port, signal.SIGKILL)
            kills.append((report.get("events"), report.get("merger")))
            port = workers.start()
        workers.wait_done(load_config(config), len(small_stream.records))
        check_delivered_once(api, reference)
    finally:
        workers.stop_all()
    check_stored(config, reference)
    assert sum(1 for _, merger in kills if merger) >= 2, f"the kills should hit mergers: {kills}"
