"""The live worker against the real broker with a window built from stored base windows
(``{size: 3h, from: 1h}``, docs/configuration.md "Long windows: `from`"): a worker killed
mid-stream (SIGKILL) and replaced, and two merge shards (each merger storing and reading its own
models' base windows in a shared ClickHouse server), store the rows of an in-process replay,
derived windows included, and no derived window is held back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from drifthouse.config import load_config
from drifthouse.kafka.shards import shard_of
from drifthouse.sinks import open_store
from drifthouse.sinks.schema import migrate
from tests.sinks.conftest import HttpClickHouse
from tests.workers import (
    PARTITIONS,
    Workers,
    assert_same,
    kill_once_caught_up,
    partition_of,
    produce_records,
    produce_stream,
    replayed_rows,
    stored_rows,
    write_config,
)

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

WINDOWS = [{"size": "1h"}, {"size": "3h", "from": "1h"}]


def test_a_worker_killed_mid_stream_writes_the_derived_windows_of_a_replay(
    tmp_path: Path, kafka_bootstrap: str, make_topic: Any, small_stream: Any
) -> None:
    """The first half of the stream is read by a worker that is then killed (SIGKILL) once it
    has read it all and written windows; the second half comes while a new worker takes over."""
    topic = make_topic(partitions=PARTITIONS)
    records = small_stream.records
    # Cut mid-way through a 3h window (5.5 h in): a 3h window kept in the stream would be
    # re-read from its start, 2.5 hours back.
    half = next(i for i, r in enumerate(records) if r.ts_ms >= records[0].ts_ms + 19_800_000)
    produce_records(kafka_bootstrap, topic, records[:half])
    config = write_config(
        tmp_path, kafka_bootstrap, topic, "derived", small_stream.profiles,
        extra={"windows": WINDOWS},
    )  # fmt: skip
    cfg = load_config(config)
    workers = Workers(config, PARTITIONS)
    try:
        kill_once_caught_up(workers, workers.start())
        closed_until = produce_stream(kafka_bootstrap, topic, records[half:])
        second = workers.start()
        workers.wait_done(cfg, len(records))
        report = workers.status(second)
        assert report["merger"]["incomplete_windows"] == 0
        # The source stages hold panes of the 1h window only: two models, at most two hours
        # open per partition (the current one and one waiting for lateness).
        for p in report["partitions"].values():
            assert p["open_panes"] <= 4
        # The new worker re-read, per partition, at most two hours of its messages (the open
        # hour and the one before while lateness holds it), never the 3h window.
        reread = {int(p): n for p, n in report["reread_messages"].items()}
        bound = _two_hours(records[:half])
        assert sum(reread.values()) > 0
        assert all(reread[p] <= bound[p] for p in reread), (reread, bound)
    finally:
        workers.stop_all()
    want = replayed_rows(config, closed_until)
    assert len({k[0] for k in want if k[1] == "3h"}) >= 4  # derived windows of 12 hours
    assert_same(stored_rows(config), want)


def _two_hours(records: list[Any]) -> dict[int, int]:
    """Per partition, the most messages of two consecutive hours."""
    hourly: dict[int, dict[int, int]] = {p: {} for p in range(PARTITIONS)}
    for r in records:
        by_hour = hourly[partition_of(r.value)]
        by_hour[r.ts_ms // 3_600_000] = by_hour.get(r.ts_ms // 3_600_000, 0) + 1
    return {p: max(h.get(k, 0) + h.get(k + 1, 0) for k in h) if h else 0 for p, h in hourly.items()}


def test_two_merge_shards_write_the_derived_windows_of_a_replay(
    tmp_path: Path, kafka_bootstrap: str, make_topic: Any, small_stream: Any
) -> None:
    assert sorted(shard_of(m, 2) for m in ("fraud", "eta")) == [0, 1]
    topic = make_topic(partitions=PARTITIONS)
    closed_until = produce_stream(kafka_bootstrap, topic, small_stream.records)
    server = HttpClickHouse(tmp_path / "clickhouse")
    server.start()
    try:
        database = "derived_shards"
        dsn = server.dsn.replace("/drifthouse?", f"/{database}?")
        store = {"dsn": dsn, "database": database, "ttl_days": {"predictions": 3650}}
        config = write_config(
            tmp_path, kafka_bootstrap, topic, "shards", small_stream.profiles,
            extra={"windows": WINDOWS, "store": store},
        )  # fmt: skip
        cfg = json.loads(config.read_text())
        cfg["kafka"]["partials_partitions"] = 2
        config.write_text(json.dumps(cfg))
        migrate(open_store(dsn, database), database)
        workers = Workers(config, PARTITIONS)
        try:
            ports = [workers.start("all"), workers.start("merger")]
            workers.wait_done(load_config(config), len(small_stream.records))
            mergers = [m for p in ports for m in (workers.status(p).get("mergers") or {}).values()]
            assert len(mergers) == 2
            assert all(m["incomplete_windows"] == 0 for m in mergers)
        finally:
            workers.stop_all()
        live = stored_rows(config)
        want = replayed_rows(config, closed_until)
        assert {k[2] for k in want if k[1] == "3h"} == {"fraud", "eta"}
        assert_same(live, want)
    finally:
        server.stop()
