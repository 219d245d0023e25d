"""Cooperative rebalances against the real broker: a worker joining or dying moves only the
partitions that change owner.

The source workers' group of the predictions topic uses librdkafka's cooperative-sticky
assignor (:mod:`drifthouse.kafka.membership`). The stream of
:mod:`tests.app.test_sticky_rebalance` (12 partitions, one model keyed by event id) flows while

- a second worker joins: the first is never asked to give back a partition it keeps
  (``revocations`` on its health page names only those that moved), holds every one of them
  all through the rebalance, and reads them on meanwhile;
- the second is killed (SIGKILL): the first takes its partitions over when its session ends,
  and still gives back nothing.

The stored ``metrics`` rows equal an in-process replay of the topic, to the last digit.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import pytest

from drifthouse.config import load_config
from tests.app.test_sticky_rebalance import (
    PARTITIONS,
    Producer,
    Stream,
    Watch,
    _closed_until,
    _config,
    stream,
)
from tests.workers import Workers, assert_same, replayed_rows, stored_rows

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

__all__ = ["stream"]  # the fixture, shared with the sticky tests


def _held(report: dict[str, Any]) -> dict[int, int]:
    """The partitions a health report holds, with their positions."""
    return {int(p): v["position"] for p, v in report.get("partitions", {}).items()}


def test_a_worker_joining_or_dying_takes_nothing_from_the_partitions_another_keeps(
    tmp_path: Path, kafka_bootstrap: str, make_topic: Any, stream: Stream
) -> None:
    topic = make_topic(partitions=PARTITIONS)
    config = _config(tmp_path, kafka_bootstrap, topic, "coop", stream)
    workers = Workers(config, PARTITIONS)
    watch = Watch(workers)
    producer = Producer(kafka_bootstrap, topic, stream, 0, len(stream.records), seconds=40.0)
    producer.sentinels = True
    try:
        first = workers.start()
        watch.until("the first worker's partitions", watch.settled(1))
        producer.start()
        time.sleep(3)  # some of the stream read
        second = workers.start()
        # All through the second worker's joining, what the first holds, every 0.2 s.
        seen: list[dict[int, int]] = []
        deadline = time.monotonic() + 180
        while not watch.settled(2)(watch.look()):
            assert time.monotonic() < deadline, f"the second worker never joined: {watch.look()}"
            seen.append(_held(workers.status(first)))
            time.sleep(0.2)
        kept = set(_held(workers.status(first)))
        moved = set(_held(workers.status(second)))
        assert kept, moved
        assert moved, kept
        assert kept | moved == set(range(PARTITIONS)), (kept, moved)
        revoked = {int(p) for p in workers.status(first)["revocations"]}
        assert revoked == moved, f"revoked {sorted(revoked)}, moved {sorted(moved)}"
        # Never without one of the partitions it keeps, and reading them on meanwhile.
        assert all(kept <= set(held) for held in seen), [sorted(h) for h in seen]
        assert sum(seen[-1][p] for p in kept) > sum(seen[0][p] for p in kept), (seen[0], seen[-1])
        # The second dies mid-stream: the first takes its partitions over, gives back nothing.
        workers.kill(second, signal.SIGKILL)
        watch.until("the partitions taken over", watch.settled(1))
        assert {int(p) for p in workers.status(first)["revocations"]} == moved
        producer.join(timeout=120)
        assert producer.error is None, producer.error
        workers.wait_done(load_config(config), len(stream.records))
    finally:
        workers.stop_all()
    want = replayed_rows(config, _closed_until(stream))
    assert want
    assert_same(stored_rows(config), want, "coop")
