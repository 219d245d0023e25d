"""The live worker against the real broker: scale-out gives the rows of a replay.

The test produces a simulated stream to a 4-partition topic, runs ``drifthouse run`` worker
processes on it (one, three, and one joining while another leaves), and compares every
``metrics`` row they wrote with a replay of the same topic through the in-process pipeline: the
rows must be equal to the last digit. faust's own consumer fetches with the worker's wait. Faults (SIGKILL, a broker restart, a store outage, failing
receivers, poison messages, a replay beside the worker) are in ``tests/faults``.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from drifthouse.app.worker import FETCH_WAIT_MS, build_app
from drifthouse.config import Config, load_config
from drifthouse.sinks.base import MemorySink
from drifthouse.stream.dead_letters import MemoryDeadLetters
from tests.ports import free_port
from tests.workers import (
    PARTITIONS,
    Workers,
    assert_same,
    produce_side_inputs,
    produce_stream,
    replayed_rows,
    stored_rows,
    write_config,
)

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


@pytest.fixture
def produced(kafka_bootstrap: str, make_topic: Any, small_stream: Any) -> tuple[str, int]:
    topic = make_topic(partitions=PARTITIONS)
    closed_until = produce_stream(kafka_bootstrap, topic, small_stream.records)
    # Delayed labels and metric events too: the merger joins and windows them.
    produce_side_inputs(kafka_bootstrap, topic, small_stream.scenario)
    return topic, closed_until


def test_one_two_three_workers_and_a_rebalance_give_identical_rows(
    tmp_path: Path, kafka_bootstrap: str, produced: tuple[str, int], small_stream: Any
) -> None:
    topic, closed_until = produced
    results = {}
    for name, plan in {"one": [0], "three": [0, 0, 0], "join-leave": [0, 3, 6]}.items():
        port = free_port() if name == "one" else None
        config = write_config(tmp_path, kafka_bootstrap, topic, name, small_stream.profiles, port)
        cfg = load_config(config)
        workers = Workers(config, PARTITIONS)
        try:
            started = []
            for delay in plan:
                time.sleep(delay - (plan[len(started) - 1] if started else 0))
                started.append(workers.start())
            if name == "join-leave":
                time.sleep(3)
                workers.kill(started[0], signal.SIGTERM)  # a worker leaves mid-stream
            workers.wait_done(cfg, len(small_stream.records))
            if port is not None:
                # The worker holds the embedded store: `drifthouse sql` asks it instead.
                asked = subprocess.run(
                    [sys.executable, "-m", "drifthouse", "sql", "-c", str(config),
                     "SELECT count() FROM predictions WHERE status >= 500"],
                    capture_output=True, text=True, timeout=120,
                )  # fmt: skip
                assert asked.returncode == 0, asked.stderr
                errors = sum(
                    1 for r in small_stream.records if json.loads(r.value).get("status", 200) >= 500
                )
                assert f"│ {errors} " in asked.stdout
        finally:
            workers.stop_all()
        results[name] = stored_rows(config)
    want = replayed_rows(config, closed_until, side_inputs=True)
    assert any(k[-1] == "accuracy" for k in want)
    assert any(k[-1] == "cpu_util" for k in want)
    for name, rows in results.items():
        assert_same(rows, want, name)


def test_fausts_consumer_fetches_with_the_workers_wait(
    tmp_path: Path, kafka_bootstrap: str, make_topic: Any, small_stream: Any
) -> None:
    """faust's consumer (partials, labels, metrics) lets the broker hold an empty fetch for
    FETCH_WAIT_MS, not faust's fixed 1.5 s, behind which the next partials used to wait."""
    topic = make_topic(partitions=PARTITIONS)
    config = Config.model_validate(
        {"kafka": {"bootstrap": kafka_bootstrap, "topic": topic, "group": f"g-{topic}",
                   "partials_topic": f"{topic}-partials"}}
    )  # fmt: skip
    app = build_app(
        config, profiles=small_stream.profiles, open_sink=MemorySink,
        dead_letters=MemoryDeadLetters(), datadir=tmp_path / "faust",
    )  # fmt: skip

    async def created() -> Any:
        # What the consumer thread starts with (faust's AIOKafkaConsumerThread.on_start).
        thread = app.consumer._thread
        return thread._create_consumer(loop=asyncio.get_running_loop())

    consumer = asyncio.run(created())
    assert consumer._fetch_max_wait_ms == FETCH_WAIT_MS < 1500
