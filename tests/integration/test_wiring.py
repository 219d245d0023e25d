"""The ground under every other test: the real broker, the stream library and the store talk.

Events produced with kafka-python to a 3-partition topic must all come back, exactly, through a
faust-streaming agent (``concurrency=1``, as drifthouse runs it) and through a plain kafka-python
consumer; a row must round-trip through clickhouse-connect on the embedded engine.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
KAFKA_SCRIPT = ROOT / "scripts" / "kafka"
N_EVENTS = 300
PARTITIONS = 3
DEADLINE_S = 90.0

# A faust worker in its own process: faust owns its event loop, signal handlers and logging,
# which do not sit well inside pytest's process.
FAUST_APP = textwrap.dedent(
    """
    import os

    import faust

    app = faust.App(
        os.environ["WIRING_APP_ID"],
        broker="kafka://" + os.environ["WIRING_BOOTSTRAP"],
        store="memory://",
        datadir=os.environ["WIRING_DATADIR"],
        web_enabled=False,
        consumer_auto_offset_reset="earliest",
    )
    topic = app.topic(os.environ["WIRING_TOPIC"], value_serializer="raw")
    out = open(os.environ["WIRING_OUT"], "a", encoding="utf-8")


    @app.agent(topic, concurrency=1)
    async def collect(stream):
        async for value in stream:
            out.write(value.decode("utf-8") + "\\n")
            out.flush()


    if __name__ == "__main__":
        app.main()
    """
)


def _events() -> list[dict[str, Any]]:
    base = int(time.time() * 1000)
    return [
        {
            "model": f"m{i % 4}",
            "ts": base + i,
            "event_id": f"e-{i:04d}",
            "features": {"x": i * 0.5, "colour": ["red", "green", "blue"][i % 3]},
            "prediction": (i % 10) / 10,
        }
        for i in range(N_EVENTS)
    ]


def _produce(bootstrap: str, topic: str, events: list[dict[str, Any]]) -> set[str]:
    """Send ``events`` spread over every partition; return the exact payloads sent."""
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    payloads = set()
    futures = []
    for i, event in enumerate(events):
        payload = json.dumps(event, sort_keys=True)
        payloads.add(payload)
        futures.append(
            producer.send(
                topic, value=payload.encode(), key=event["model"].encode(), partition=i % PARTITIONS
            )
        )
    producer.flush(timeout=30)
    for future in futures:
        future.get(timeout=30)
    producer.close()
    assert len(payloads) == len(events)
    return payloads


@pytest.fixture
def loaded_topic(kafka_bootstrap: str, make_topic: Any) -> tuple[str, set[str]]:
    """A 3-partition topic holding ``N_EVENTS`` events spread evenly, and their payloads."""
    from kafka import KafkaConsumer, TopicPartition

    topic = make_topic(partitions=PARTITIONS)
    payloads = _produce(kafka_bootstrap, topic, _events())
    probe = KafkaConsumer(bootstrap_servers=kafka_bootstrap, enable_auto_commit=False)
    try:
        ends = probe.end_offsets([TopicPartition(topic, p) for p in range(PARTITIONS)])
    finally:
        probe.close()
    assert sorted(ends.values()) == [N_EVENTS // PARTITIONS] * PARTITIONS, ends
    return topic, payloads


@pytest.mark.kafka
def test_kafka_python_consumer_reads_every_event(
    kafka_bootstrap: str, loaded_topic: tuple[str, set[str]]
) -> None:
    from kafka import KafkaConsumer

    topic, sent = loaded_topic
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        group_id=f"wiring-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    received: list[str] = []
    partitions: set[int] = set()
    deadline = time.monotonic() + DEADLINE_S
    try:
        while len(received) < N_EVENTS and time.monotonic() < deadline:
            for tp, records in consumer.poll(timeout_ms=1000).items():
                partitions.add(tp.partition)
                received.extend(r.value.decode() for r in records)
        consumer.commit()
    finally:
        consumer.close()
    assert len(received) == N_EVENTS, f"got {len(received)} of {N_EVENTS} events"
    assert set(received) == sent
    assert partitions == set(range(PARTITIONS))


@pytest.mark.kafka
def test_faust_agent_reads_every_event(
    kafka_bootstrap: str, loaded_topic: tuple[str, set[str]], tmp_path: Path
) -> None:
    topic, sent = loaded_topic
    app_file = tmp_path / "wiring_app.py"
    app_file.write_text(FAUST_APP)
    out = tmp_path / "received.jsonl"
    out.touch()
    env = {
        **os.environ,
        "WIRING_APP_ID": f"wiring-{uuid.uuid4().hex[:8]}",
        "WIRING_BOOTSTRAP": kafka_bootstrap,
        "WIRING_TOPIC": topic,
        "WIRING_OUT": str(out),
        "WIRING_DATADIR": str(tmp_path / "faust-data"),
    }
    log = tmp_path / "worker.log"
    with log.open("wb") as log_file:
        worker = subprocess.Popen(
            [sys.executable, str(app_file), "worker", "-l", "warn"],
            cwd=tmp_path,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + DEADLINE_S
            lines: list[str] = []
            while time.monotonic() < deadline and worker.poll() is None:
                lines = out.read_text(encoding="utf-8").splitlines()
                if len(lines) >= N_EVENTS:
                    break
                time.sleep(0.25)
            # A moment more so that duplicates, if any, would show up.
            time.sleep(1.0)
            lines = out.read_text(encoding="utf-8").splitlines()
        finally:
            worker.terminate()
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
    tail = log.read_text(errors="replace")[-3000:]
    assert len(lines) == N_EVENTS, (
        f"the faust agent got {len(lines)} of {N_EVENTS} events; log:\n{tail}"
    )
    assert set(lines) == sent


def _as_utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def test_row_round_trips_through_embedded_clickhouse(ch_database: tuple[Any, str]) -> None:
    client, database = ch_database
    client.command(
        """
        CREATE TABLE wiring (
            window_start DateTime64(3, 'UTC'),
            model LowCardinality(String),
            feature LowCardinality(String),
            metric LowCardinality(String),
            value Float64,
            n UInt64,
            counts Array(UInt64)
        ) ENGINE = MergeTree ORDER BY (model, window_start)
        """
    )
    start = dt.datetime(2026, 1, 1, 12, 0, 0, 123000, tzinfo=dt.UTC)
    rows = [
        [start, "fraud", "amount", "psi", 0.125, 1000, [1, 2, 3]],
        [start, "fraud", "", "latency_p95", 87.5, 1000, []],
    ]
    columns = ["window_start", "model", "feature", "metric", "value", "n", "counts"]
    client.insert("wiring", rows, column_names=columns)
    got = client.query(
        f"SELECT {', '.join(columns)} FROM `{database}`.wiring ORDER BY feature DESC"
    ).result_rows
    # clickhouse-connect returns naive datetimes when the column's zone is the engine's (UTC
    # here) and aware ones otherwise: compare instants.
    got = [[_as_utc(r[0]), *r[1:]] for r in got]
    assert got == rows
    merged = client.query(
        "SELECT sumForEach(counts) FROM wiring WHERE length(counts) > 0"
    ).result_rows
    assert merged == [([1, 2, 3],)]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _run_script(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(KAFKA_SCRIPT), *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_kafka_script_leaves_an_external_broker_alone(tmp_path: Path) -> None:
    env = {**os.environ, "KAFKA_BOOTSTRAP": "broker.example:9092", "KAFKA_STATE_DIR": str(tmp_path)}
    started = _run_script("start", env=env)
    assert started.returncode == 0, started.stderr
    assert started.stdout.strip() == "broker.example:9092"
    assert "not starting one" in started.stderr
    assert _run_script("bootstrap", env=env).stdout.strip() == "broker.example:9092"
    assert _run_script("stop", env=env).returncode == 0
    assert not (tmp_path / "kafka.pid").exists()


def test_kafka_script_says_how_to_install_java(tmp_path: Path) -> None:
    # A PATH with the few tools the script needs before it looks for java, and no java.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "dirname", "mkdir", "flock", "date", "cat"):
        found = shutil.which(tool)
        if found:
            (bin_dir / tool).symlink_to(found)
    env = {
        "PATH": str(bin_dir),
        "HOME": str(tmp_path),
        "KAFKA_PORT": str(_free_port()),
        "KAFKA_CONTROLLER_PORT": str(_free_port()),
        "KAFKA_STATE_DIR": str(tmp_path / "state"),
    }
    result = subprocess.run(
        [str(bin_dir / "bash"), str(KAFKA_SCRIPT), "start"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "java not found" in result.stderr
    assert "apt-get install -y openjdk-17-jre-headless" in result.stderr


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        pytest.param(["frobnicate"], {}, "usage: scripts/kafka", id="unknown-command"),
        pytest.param(["stop"], {"KAFKA_LEASE": "me"}, "must be a process id", id="bad-lease"),
    ],
)
def test_kafka_script_usage_errors(args: list[str], env: dict[str, str], message: str) -> None:
    result = _run_script(*args, env={**os.environ, **env})
    assert result.returncode == 2
    assert message in result.stderr
