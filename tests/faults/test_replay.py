"""A replay running beside the live worker, into the same ClickHouse: the live rows are those of
an undisturbed run, the replay's rows (under its run id) equal them, and only the live worker
pages."""

from __future__ import annotations

import subprocess
import sys
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
from tests.sinks.conftest import HttpClickHouse
from tests.workers import PARTITIONS, Workers, write_config

pytestmark = [pytest.mark.faults, pytest.mark.kafka, pytest.mark.slow]


def test_replay_beside_the_live_worker_changes_nothing_live(
    tmp_path: Path,
    kafka_bootstrap: str,
    shared_topic: tuple[str, int],
    reference: Reference,
    small_stream: Any,
    api: FakeApi,
) -> None:
    topic, _ = shared_topic
    # Two processes write at once: a ClickHouse server (the embedded engine admits one process).
    store = HttpClickHouse(tmp_path / "engine")
    store.start()
    sections = alerting(api, dsn=store.dsn, ttl_days={"predictions": 3650})
    config = write_config(
        tmp_path, kafka_bootstrap, topic, "beside", small_stream.profiles, extra=sections
    )
    workers = Workers(config, PARTITIONS)
    try:
        port = workers.start()
        wait_for("the worker to read", lambda: workers.status(port).get("events", 0) > 0)
        replayed = subprocess.run(
            [sys.executable, "-m", "drifthouse", "replay", "-c", str(config),
             "--source", f"kafka:{topic}", "--run-id", "backtest-1"],
            capture_output=True, text=True, timeout=240, cwd=config.parent,
        )  # fmt: skip
        assert replayed.returncode == 0, replayed.stderr[-3000:]
        workers.wait_done(load_config(config), len(small_stream.records))
        check_delivered_once(api, reference)  # the replay notified nobody
        check_stored(config, reference)
        check_stored(config, reference, run_id="backtest-1")
    finally:
        workers.stop_all()
        store.stop()
    assert "(receivers not notified; --notify sends)" in replayed.stdout
