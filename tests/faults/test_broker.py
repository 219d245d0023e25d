"""The Kafka broker stopped and restarted mid-stream: the worker waits for it and resumes, and
nothing is lost or doubled.

The test runs a broker of its own (``scripts/kafka`` with its data kept across the restart) on
``FAULTS_KAFKA_PORT`` (and the next port for its controller), or on free ports.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaAdminClient

from drifthouse.config import load_config
from tests.fakes import FakeApi
from tests.faults.conftest import (
    PacedProducer,
    alerting,
    check_delivered_once,
    check_stored,
    reference_of,
    wait_for,
)
from tests.workers import PARTITIONS, Workers, sentinels, write_config

pytestmark = [pytest.mark.faults, pytest.mark.kafka, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def _free_pair() -> int:
    """A port whose successor is free too (the controller listens there)."""
    for _ in range(50):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no two free ports in a row")


class Broker:
    """A broker of ``scripts/kafka`` that keeps its data when stopped and started again."""

    def __init__(self, port: int, state: Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KAFKA_")}
        self.env = {
            **env, "KAFKA_PORT": str(port), "KAFKA_STATE_DIR": str(state),
            "KAFKA_KEEP_DATA": "1", "PYTHON": sys.executable,
        }  # fmt: skip
        self.address = f"127.0.0.1:{port}"

    def _script(self, command: str) -> None:
        done = subprocess.run(
            [str(ROOT / "scripts" / "kafka"), command],
            env=self.env, capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        assert done.returncode == 0, f"scripts/kafka {command} failed:\n{done.stderr[-3000:]}"

    def start(self) -> None:
        self._script("start")

    def stop(self) -> None:
        self._script("stop")


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    port = int(os.environ.get("FAULTS_KAFKA_PORT") or _free_pair())
    own = Broker(port, tmp_path / "broker")
    own.start()
    try:
        yield own
    finally:
        own.stop()


def test_broker_stopped_and_restarted_mid_stream_loses_and_doubles_nothing(
    tmp_path: Path, broker: Broker, small_stream: Any, api: FakeApi
) -> None:
    topic = "faults-broker-restart"
    admin = KafkaAdminClient(bootstrap_servers=broker.address)
    spec = {"num_partitions": PARTITIONS, "replication_factor": 1, "configs": {}}
    admin.create_topics({topic: spec}, wait_for_metadata=True)
    admin.close()
    records = small_stream.records
    config = write_config(
        tmp_path, broker.address, topic, "restart", small_stream.profiles, extra=alerting(api)
    )
    workers = Workers(config, PARTITIONS)
    producer = PacedProducer(broker.address, topic, records, seconds=16.0)
    try:
        port = workers.start()
        # Down while the stream flows (the model servers' producer buffers and retries). The
        # merger is up first: one that starts while the broker is away for more than 30 s
        # gives up reading its commit and exits (code 70) for its supervisor to restart it. The
        # stream starts then: a worker slow to start on a busy machine would otherwise find it
        # all sent before the broker stops.
        wait_for("the merger", lambda: bool(workers.status(port).get("merger")))
        producer.start()
        wait_for("a third of the stream", lambda: producer.sent >= len(records) // 3)
        broker.stop()
        stopped_at = producer.sent
        time.sleep(5)  # the worker keeps running, its fetches, commits and sends failing
        broker.start()
        producer.join(timeout=180)
        assert producer.error is None, producer.error
        workers.wait_done(load_config(config), len(records))
        assert workers.procs[port].poll() is None, "the worker should ride the outage out"
        closed_until = sentinels(records)[0] - 30_000
        reference = reference_of(
            broker.address, topic, small_stream.profiles, tmp_path, closed_until
        )
        check_delivered_once(api, reference)
    finally:
        producer.stop.set()
        workers.stop_all()
    check_stored(config, reference)
    assert stopped_at < len(records), "the broker should stop mid-stream"
