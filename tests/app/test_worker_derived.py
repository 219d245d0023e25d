"""The live worker against the real broker with a window built from stored base windows
(``{size: 3h, from: 1h}``, docs/configuration.md "Long windows: `from`"): a worker killed
mid-stream (SIGKILL) and replaced stores the rows of an in-process replay, derived windows
included, and no derived window is held back."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import pytest

from drifthouse.config import load_config
from tests.workers import (
    PARTITIONS,
    Workers,
    assert_same,
    produce_stream,
    replayed_rows,
    stored_rows,
    write_config,
)

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def test_a_worker_killed_mid_stream_writes_the_derived_windows_of_a_replay(
    tmp_path: Path, kafka_bootstrap: str, make_topic: Any, small_stream: Any
) -> None:
    topic = make_topic(partitions=PARTITIONS)
    closed_until = produce_stream(kafka_bootstrap, topic, small_stream.records)
    extra = {"windows": [{"size": "1h"}, {"size": "3h", "from": "1h"}]}
    config = write_config(
        tmp_path, kafka_bootstrap, topic, "derived", small_stream.profiles, extra=extra
    )
    cfg = load_config(config)
    workers = Workers(config, PARTITIONS)
    try:
        first = workers.start()
        written = 0
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # kill it once it has written some windows
            merger = workers.status(first).get("merger") or {}
            written = merger.get("windows_written", 0)
            if written > 0:
                break
            time.sleep(0.2)
        workers.kill(first, signal.SIGKILL)
        second = workers.start()
        workers.wait_done(cfg, len(small_stream.records))
        merger = workers.status(second)["merger"]
        assert merger["incomplete_windows"] == 0
        # The source stages hold panes of the 1h window only: two models, at most two hours
        # open per partition (the current one and one waiting for lateness).
        for p in workers.status(second)["partitions"].values():
            assert p["open_panes"] <= 4
    finally:
        workers.stop_all()
    want = replayed_rows(config, closed_until)
    assert len({k[0] for k in want if k[1] == "3h"}) >= 4  # derived windows of 12 hours
    assert 0 < written < len({k[:4] for k in want})  # killed mid-stream
    assert_same(stored_rows(config), want)
