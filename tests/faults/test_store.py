"""ClickHouse unreachable for a while: results wait in the spool, nothing is lost or doubled."""

from __future__ import annotations

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
    window_end,
)
from tests.sinks.conftest import HttpClickHouse
from tests.workers import PARTITIONS, Workers, assert_same, stored_rows, write_config

pytestmark = [pytest.mark.faults, pytest.mark.kafka, pytest.mark.slow]


def test_store_outage_slows_the_merger_and_loses_nothing(
    tmp_path: Path,
    kafka_bootstrap: str,
    shared_topic: tuple[str, int],
    reference: Reference,
    small_stream: Any,
    api: FakeApi,
) -> None:
    """ClickHouse (over HTTP) goes away as the merger starts: results spool to a small on-disk
    spool, the merger stops reading partials while it is pressed, and when the store returns
    every row arrives exactly once, and every alert is stored and paged once."""
    topic, _ = shared_topic
    store = HttpClickHouse(tmp_path / "engine")
    store.start()
    sections = alerting(
        api,
        dsn=store.dsn,
        spool_dir="./spool",
        spool_max_bytes=3_000_000,
        ttl_days={"predictions": 3650},
    )
    config = write_config(
        tmp_path, kafka_bootstrap, topic, "outage", small_stream.profiles, extra=sections
    )
    workers = Workers(config, PARTITIONS)
    try:
        port = workers.start()
        wait_for("the merger", lambda: bool(workers.status(port).get("merger")))
        store.stop()  # connections refused from here on

        def slowed_down() -> bool:
            logs = workers.logs()
            return (
                (config.parent / "spool").exists()
                and "sink.spooled" in logs
                and ("merger.paused" in logs or "merger.store_waiting" in logs)
            )

        # Away until results went to the spool and the merger held back (not a fixed time).
        wait_for("the spool and the merger slowed down", slowed_down, every=0.5)
        spooled = (config.parent / "spool").exists()
        store.start()
        workers.wait_done(load_config(config), len(small_stream.records))
        check_delivered_once(api, reference)
    finally:
        workers.stop_all()
    try:
        assert spooled, "results written during the outage should have gone to the spool"
        check_stored(config, reference)
        logs = workers.logs()
        assert "sink.spooled" in logs  # written to the spool while the store was away
        assert "sink.replayed" in logs  # and replayed, in order, when it came back
        assert "merger.paused" in logs or "merger.store_waiting" in logs  # the merger slowed down
    finally:
        store.stop()


def test_store_back_after_the_stream_ended_gets_the_spool_without_new_input(
    tmp_path: Path,
    kafka_bootstrap: str,
    shared_topic: tuple[str, int],
    reference: Reference,
    small_stream: Any,
    api: FakeApi,
) -> None:
    """The whole stream is read while ClickHouse is away and every result fits the spool; when
    the store returns, with nothing more to read, the spool drains on its own: the rows are
    stored before the worker stops, each once."""
    topic, _ = shared_topic
    store = HttpClickHouse(tmp_path / "engine")
    store.start()
    sections = alerting(api, dsn=store.dsn, spool_dir="./spool", ttl_days={"predictions": 3650})
    config = write_config(
        tmp_path, kafka_bootstrap, topic, "late-store", small_stream.profiles, extra=sections
    )
    workers = Workers(config, PARTITIONS)
    try:
        port = workers.start()
        wait_for("the merger", lambda: bool(workers.status(port).get("merger")))
        store.stop()

        def all_spooled() -> bool:
            report = workers.status(port)
            merger = report.get("merger") or {}
            lags = [p["lag"] for p in report.get("partitions", {}).values()]
            return (
                len(lags) == PARTITIONS
                and all(lag == 0 for lag in lags)
                and merger.get("pending_windows") == 0
                and merger.get("spooled_batches", 0) > 0
            )

        wait_for("every result in the spool", all_spooled)
        store.start()
        workers.wait_done(load_config(config), len(small_stream.records))  # spool drained too
        stored = stored_rows(config)  # while the worker still runs: not stored by its shutdown
        check_delivered_once(api, reference)
    finally:
        workers.stop_all()
    try:
        check_stored(config, reference)
        # ... and so were they before the worker was stopped (which also flushes and replays).
        assert_same(
            {k: v for k, v in stored.items() if window_end(k) <= reference.closed_until},
            reference.metrics,
        )
        logs = workers.logs()
        assert "sink.replayed" in logs
        assert "merger.paused" not in logs  # the spool had room: no backpressure needed
    finally:
        store.stop()
