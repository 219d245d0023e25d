"""The live worker against the real broker with models on trailing baselines
(``reference: {trailing: 2h}``, docs/statistics.md "Trailing baselines"): a worker killed
mid-stream (SIGKILL) and replaced reads the stored states of the windows before it back from
the store, and writes the rows of an in-process replay to the last digit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from drifthouse.config import load_config
from tests.workers import (
    PARTITIONS,
    Workers,
    assert_same,
    kill_once_caught_up,
    produce_records,
    produce_stream,
    replayed_rows,
    stored_rows,
    write_config,
)

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

WINDOWS = [{"size": "1h"}, {"size": "3h", "from": "1h"}]


def test_a_worker_killed_mid_stream_writes_the_trailing_rows_of_a_replay(
    tmp_path: Path, kafka_bootstrap: str, make_topic: Any, small_stream: Any
) -> None:
    topic = make_topic(partitions=PARTITIONS)
    records = small_stream.records
    half = next(i for i, r in enumerate(records) if r.ts_ms >= records[0].ts_ms + 19_800_000)
    produce_records(kafka_bootstrap, topic, records[:half])
    models = {
        model: {"reference": {"trailing": "2h", "profile": f"refs/{model}.json", "min_events": 50}}
        for model in small_stream.profiles
    }
    config = write_config(
        tmp_path, kafka_bootstrap, topic, "trailing", small_stream.profiles,
        extra={"windows": WINDOWS, "models": models},
    )  # fmt: skip
    cfg = load_config(config)
    workers = Workers(config, PARTITIONS)
    try:
        kill_once_caught_up(workers, workers.start())
        closed_until = produce_stream(kafka_bootstrap, topic, records[half:])
        second = workers.start()
        workers.wait_done(cfg, len(records))
        assert workers.status(second)["merger"]["incomplete_windows"] == 0
    finally:
        workers.stop_all()
    want = replayed_rows(config, closed_until)
    live = stored_rows(config)
    psi = {k[0] for k in want if k[1] == "1h" and k[6] == "psi"}
    starts = sorted({k[0] for k in want if k[1] == "1h"})
    # The first hour has no earlier window: no drift rows; every later hour has them.
    assert starts[0] not in psi
    assert set(starts[1:]) <= psi
    assert any(k[1] == "3h" and k[6] == "psi" for k in want)
    assert_same(live, want)
