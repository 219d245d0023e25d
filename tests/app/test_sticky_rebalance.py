"""Cheap rebalances against the real broker: a worker keeps the partitions it still owns.

A 12-partition topic holds one model keyed by event id, its events 150 ms of event time apart
(about 33 a partition in each one-minute window), windows of one minute and no allowed
lateness: a partition's only open pane is the minute of its newest event. Live ``drifthouse
run`` workers report, per partition, the messages they read again below where the partition
had been read before (``reread_messages`` on the health page), which the tests sum up:

- a second worker joins: the first re-reads nothing of the partitions it keeps;
- a rolling restart of both workers of a group, the stream flowing (20 s): each partition
  re-reads at most one window's messages each time it moves to another worker, and none where
  it stays.

Both store the ``metrics`` rows of an in-process replay of the topic, to the last digit.
"""

from __future__ import annotations

import json
import signal
import threading
import time
import zlib
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaProducer

from drifthouse.config import Config, load_config
from drifthouse.simulate import Record
from tests.workers import (
    Workers,
    assert_same,
    profiles_from,
    replayed_rows,
    sentinels,
    stored_rows,
    write_config,
)

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

PARTITIONS = 12
STEP_MS = 150  # event time between two events of the stream
MINUTE = 60_000


@dataclass(frozen=True)
class Stream:
    records: list[Record]
    partition: list[int]  # of each record

    def window_most(self) -> dict[int, int]:
        """Per partition, the most messages one one-minute window holds."""
        counts: Counter[tuple[int, int]] = Counter(
            (p, r.ts_ms // MINUTE) for r, p in zip(self.records, self.partition, strict=True)
        )
        most: dict[int, int] = defaultdict(int)
        for (p, _), n in counts.items():
            most[p] = max(most[p], n)
        return dict(most)


@pytest.fixture(scope="module")
def stream(small_stream: Any) -> Stream:
    """The small stream's fraud model, 150 ms apart in event time (about 11 minutes)."""
    records = []
    start = small_stream.records[0].ts_ms
    for r in small_stream.records:
        event = json.loads(r.value)
        if event["model"] != "fraud":
            continue
        ts = start + len(records) * STEP_MS
        event["ts"] = ts
        records.append(Record(r.topic, r.key, json.dumps(event).encode(), ts))
    partition = [zlib.crc32(json.loads(r.value)["event_id"].encode()) % PARTITIONS for r in records]
    return Stream(records, partition)


class Producer(threading.Thread):
    """Sends ``records[lo:hi]`` evenly over ``seconds``, then the sentinels if asked."""

    def __init__(
        self, bootstrap: str, topic: str, stream: Stream, lo: int, hi: int, seconds: float
    ) -> None:
        super().__init__(daemon=True)
        self.bootstrap, self.topic, self.stream = bootstrap, topic, stream
        self.lo, self.hi, self.seconds = lo, hi, seconds
        self.sentinels = False
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            producer = KafkaProducer(bootstrap_servers=self.bootstrap, linger_ms=5)
            started, step = time.monotonic(), 40
            for i in range(self.lo, self.hi, step):
                for j in range(i, min(i + step, self.hi)):
                    r = self.stream.records[j]
                    producer.send(self.topic, value=r.value, partition=self.stream.partition[j])
                producer.flush()
                due = started + self.seconds * (i + step - self.lo) / max(self.hi - self.lo, 1)
                time.sleep(max(0.0, due - time.monotonic()))
            if self.sentinels:
                for p, value in enumerate(sentinels(self.stream.records, PARTITIONS)[1]):
                    producer.send(self.topic, key=b"fraud", value=value, partition=p)
            producer.flush()
            producer.close()
        except BaseException as exc:
            self.error = exc


@dataclass
class Watch:
    """Who holds each partition over time, and what each worker re-read, from health pages."""

    workers: Workers
    owners: dict[int, list[int]] = field(default_factory=lambda: defaultdict(list))
    reread: dict[tuple[int, int], int] = field(default_factory=dict)  # (port, partition) ->

    def look(self) -> list[dict[str, Any]]:
        reports = []
        for port in list(self.workers.procs):
            report = self.workers.status(port)
            reports.append(report)
            for p, v in report.get("partitions", {}).items():
                seen = self.owners[int(p)]
                if v.get("lag") is not None and (not seen or seen[-1] != port):
                    seen.append(port)
            for p, n in (report.get("reread_messages") or {}).items():
                self.reread[port, int(p)] = max(self.reread.get((port, int(p)), 0), n)
        return reports

    def until(self, what: str, ready: Callable[[list[dict[str, Any]]], bool]) -> None:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if ready(self.look()):
                return
            time.sleep(0.3)
        raise AssertionError(f"timed out waiting for {what}: {self.look()}")

    def settled(self, ports: int) -> Callable[[list[dict[str, Any]]], bool]:
        """Every partition held by one of ``ports`` workers, each caught up to the end."""

        def ready(reports: list[dict[str, Any]]) -> bool:
            held = [
                (p, v) for r in reports for p, v in r.get("partitions", {}).items()
                if v.get("lag") is not None
            ]  # fmt: skip
            return (
                len(reports) == ports
                and all(r.get("partitions") for r in reports)
                and sorted(int(p) for p, _ in held) == list(range(PARTITIONS))
                and all(v["lag"] == 0 for _, v in held)
            )

        return ready

    def moves(self, partition: int) -> int:
        return max(len(self.owners[partition]) - 1, 0)

    def reread_of(self, partition: int) -> int:
        return sum(n for (_, p), n in self.reread.items() if p == partition)


def _config(tmp_path: Path, bootstrap: str, topic: str, name: str, stream: Stream) -> Path:
    profiles = profiles_from(stream.records[: len(stream.records) // 2], Config())
    return write_config(
        tmp_path, bootstrap, topic, name, profiles,
        extra={"windows": [{"size": "1m"}], "metrics": {"allowed_lateness": "0s"}},
    )  # fmt: skip


def _closed_until(stream: Stream) -> int:
    return sentinels(stream.records, PARTITIONS)[0] - 3_600_000


def test_a_worker_joining_makes_the_first_re_read_nothing_it_keeps(
    tmp_path: Path, kafka_bootstrap: str, make_topic: Any, stream: Stream
) -> None:
    topic = make_topic(partitions=PARTITIONS)
    config = _config(tmp_path, kafka_bootstrap, topic, "join", stream)
    workers = Workers(config, PARTITIONS)
    watch = Watch(workers)
    half = len(stream.records) // 2
    try:
        first = workers.start()
        watch.until("the first worker's partitions", watch.settled(1))
        first_half = Producer(kafka_bootstrap, topic, stream, 0, half, seconds=0.0)
        first_half.run()
        assert first_half.error is None, first_half.error
        # Every partition read to its end, its current minute open.
        watch.until("the first half read", watch.settled(1))
        before = workers.status(first)["partitions"]
        assert all(v["open_panes"] > 0 for v in before.values()), before
        second = workers.start()
        watch.until("the second worker's partitions", watch.settled(2))
        kept = sorted(int(p) for p in workers.status(first)["partitions"])
        assert 0 < len(kept) < PARTITIONS, kept
        rest = Producer(kafka_bootstrap, topic, stream, half, len(stream.records), seconds=0.0)
        rest.sentinels = True
        rest.run()
        assert rest.error is None, rest.error
        workers.wait_done(load_config(config), len(stream.records))
        report = workers.status(first)
        # Not one message of the partitions it kept read twice; those that moved to the
        # second worker were read again there from their checkpoints, at most their open pane.
        assert {p: report["reread_messages"].get(str(p), 0) for p in kept} == dict.fromkeys(kept, 0)
        most = stream.window_most()
        moved = workers.status(second)["reread_messages"]
        assert all(int(p) not in kept and n <= most[int(p)] for p, n in moved.items()), moved
        assert second  # the worker that joined
    finally:
        workers.stop_all()
    want = replayed_rows(config, _closed_until(stream))
    assert want
    assert_same(stored_rows(config), want, "join")


def test_a_rolling_restart_re_reads_at_most_one_window_per_partition_and_move(
    tmp_path: Path, kafka_bootstrap: str, make_topic: Any, stream: Stream
) -> None:
    topic = make_topic(partitions=PARTITIONS)
    config = _config(tmp_path, kafka_bootstrap, topic, "rolling", stream)
    workers = Workers(config, PARTITIONS)
    watch = Watch(workers)
    producer = Producer(kafka_bootstrap, topic, stream, 0, len(stream.records), seconds=20.0)
    producer.sentinels = True
    try:
        for _ in range(2):
            workers.start()
        # The group settles before the stream starts: the first assignments re-read nothing.
        watch.until("both workers' partitions", watch.settled(2))
        producer.start()
        # Every worker in turn: stopped (SIGTERM) while the stream flows, then started again.
        for port in list(workers.procs):
            since = time.monotonic()
            watch.until("more of the stream", lambda _, t=since: time.monotonic() - t > 2.0)
            workers.kill(port, signal.SIGTERM)
            watch.until("the partitions taken over", watch.settled(1))
            workers.start()
            watch.until("the restarted worker's partitions", watch.settled(2))
        producer.join(timeout=120)
        assert producer.error is None, producer.error
        workers.wait_done(load_config(config), len(stream.records))
        watch.look()
    finally:
        workers.stop_all()
    most = stream.window_most()
    moves = {p: watch.moves(p) for p in range(PARTITIONS)}
    reread = {p: watch.reread_of(p) for p in range(PARTITIONS)}
    # Each partition moved at least once (every worker was restarted); what a move re-reads is
    # the open pane of the partition, at most one minute of its events.
    assert all(m >= 1 for m in moves.values()), moves
    over = {p: (reread[p], moves[p], most[p]) for p in reread if reread[p] > moves[p] * most[p]}
    assert not over, f"re-read more than a window per move (re-read, moves, window): {over}"
    assert sum(reread.values()) > 0, "moves re-read the open panes: the count should show it"
    print(
        f"per partition (re-read, moves, window): { {p: (reread[p], moves[p], most[p]) for p in reread} }"
    )
    want = replayed_rows(config, _closed_until(stream))
    assert_same(stored_rows(config), want, "rolling")
