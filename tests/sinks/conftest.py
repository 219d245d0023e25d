"""Fixtures for the sink tests: the embedded store, fresh databases, an HTTP ClickHouse front and
a store filled by the real pipeline.

The embedded engine admits one data folder per process, so every test shares one client: the
project-wide ``ch_client`` fixture when ``tests/conftest.py`` provides it, else one opened here.

``pipeline_store`` (session) runs a simulated stream (two models, 36 hours ending at the current
hour, the demo's faults, a canary version of ``fraud`` in the last 12 hours) through
:class:`~drifthouse.app.pipeline.Pipeline` and the replay alert stage into a
:class:`~drifthouse.sinks.ClickHouseSink`, in a database of its own on the session's folder, with
the reference profiles stored by :func:`~drifthouse.sinks.store_reference`.
"""

from __future__ import annotations

import bisect
import itertools
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from drifthouse.app.pipeline import Pipeline, PipelineStats
from drifthouse.app.replay import replay_alerts
from drifthouse.config import Config
from drifthouse.detectors.reference import Profile
from drifthouse.simulate import HOUR, Scenario, simulate
from drifthouse.sinks import ClickHouseSink, store_reference
from drifthouse.sinks.schema import migrate
from drifthouse.sinks.store import open_store
from drifthouse.stream.dead_letters import MemoryDeadLetters
from drifthouse.stream.sources import Message

ROOT = Path(__file__).resolve().parents[2]
_own_client: Any = None
_counter = itertools.count()


@pytest.fixture(scope="session")
def store_client(request: pytest.FixtureRequest) -> Any:
    """The process's one embedded-engine client."""
    global _own_client
    try:
        return request.getfixturevalue("ch_client")
    except pytest.FixtureLookupError:
        pass
    if _own_client is None:
        folder = tempfile.mkdtemp(prefix="drifthouse-sinks-")
        _own_client = open_store(f"chdb://{folder}", database="default")
    return _own_client


@pytest.fixture
def database(store_client: Any) -> Iterator[str]:
    """A fresh, migrated database for one test; the client's current database meanwhile."""
    name = f"sinks_{os.getpid()}_{next(_counter)}"
    migrate(store_client, name)
    previous = store_client.database
    store_client.database = name
    yield name
    store_client.database = previous
    store_client.command(f"DROP DATABASE IF EXISTS `{name}`")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class HttpClickHouse:
    """A ClickHouse HTTP endpoint served by ``tests/sinks/chhttp.py`` in a child process."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def dsn(self) -> str:
        return f"http://default:s3cret-pw@127.0.0.1:{self.port}/drifthouse?compress=false"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.sinks.chhttp",
                "--path",
                str(self.folder),
                "--port",
                str(self.port),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.strip() == b"ready", f"the HTTP front did not start: {line!r}"

    def stop(self) -> None:
        """Kill the server: connections are refused until :meth:`start`."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def fault(self, status: int, count: int, delay: float = 0.0) -> None:
        """Make the next ``count`` requests fail with HTTP ``status``; every request wait ``delay`` s."""
        url = f"http://127.0.0.1:{self.port}/__fault?status={status}&count={count}&delay={delay}"
        urllib.request.urlopen(
            urllib.request.Request(url, data=b"", method="POST"), timeout=10
        ).read()

    def wait_refused(self) -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
            except OSError:
                return
            time.sleep(0.05)
        raise AssertionError("the port still accepts connections")


@pytest.fixture
def http_clickhouse(tmp_path: Path) -> Iterator[HttpClickHouse]:
    server = HttpClickHouse(tmp_path / "engine")
    server.start()
    yield server
    server.stop()


# -- a store filled by the pipeline ---------------------------------------------------------------

CANARY = "2.4.0"  # the second version of `fraud`, served to every other event in the last 12 h
PIPELINE_CONFIG: dict[str, Any] = {
    "windows": [{"size": "1h"}, {"size": "4h", "hop": "1h"}],
    # The shipped rules' scopes: serving and drift model-wide (segment ""), one series per model.
    "rules": [
        {"name": "serving-errors", "metric": "error_rate_5xx", "feature": "", "segment": "",
         "when": "value > 0.05", "severity": "critical"},
        {"name": "latency-regression", "metric": "latency_p95", "feature": "", "segment": "",
         "when": "value > 2 * baseline", "severity": "critical"},
        {"name": "data-drift", "metric": "psi", "segment": "", "when": "value > 0.25", "clear": "value < 0.1",
         "for": 2, "severity": "warning"},
    ],
}  # fmt: skip


@dataclass(frozen=True)
class PipelineStore:
    """A database filled by the pipeline, and what went into it."""

    client: Any
    database: str
    scenario: Scenario
    profiles: dict[str, Profile]
    stats: PipelineStats
    alerts: int
    dead_letters: int
    canary_from_ms: int
    events: dict[tuple[str, str], int]  # (model, model_version) -> events sent


def _canary(value: bytes, index: int) -> bytes:
    # Every other event of `fraud` is served by the canary: same traffic, second version.
    if index % 2 or not value.startswith(b'{"model":"fraud"'):
        return value
    return re.sub(
        rb'"model_version":"[^"]*"', f'"model_version":"{CANARY}"'.encode(), value, count=1
    )


@pytest.fixture(scope="session")
def pipeline_store(ch_dsn: str) -> Iterator[PipelineStore]:
    """See the module docstring; the client's current database is the filled one."""
    from tests.workers import profiles_from

    config = Config.model_validate(PIPELINE_CONFIG)
    end = int(time.time() * 1000) // HOUR * HOUR
    scenario = Scenario.demo(days=1.5, rate_per_min=8, reference_hours=6, start_ms=end - 36 * HOUR)
    stream = list(simulate(scenario, seed=11))
    records = [r for r in stream if r.topic == "predictions"]
    labels = [
        Message(r.value, 0, i, "labels", r.key)
        for i, r in enumerate(r for r in stream if r.topic == "labels")
    ]
    label_times = [json.loads(m.value)["ts"] for m in labels]
    profiles = profiles_from([r for r in records if r.ts_ms < scenario.reference_end_ms], config)
    canary_from = end - 12 * HOUR

    name = f"pipeline_{os.getpid()}"
    client = open_store(ch_dsn, database=name)
    migrate(client, name)
    sink = ClickHouseSink(client, database=name)
    for profile in profiles.values():
        store_reference(sink, profile)
    alerts = replay_alerts(config, sink, profiles, run_id="live", notify=False, keep_rows=False)
    dead = MemoryDeadLetters()
    pipeline = Pipeline(
        config=config, profiles=profiles, sink=sink, dead_letters=dead, on_window=[alerts]
    )
    pipeline.expect_partitions([0])
    messages = [
        Message(
            _canary(r.value, i) if r.ts_ms >= canary_from else r.value, 0, i, "predictions", r.key
        )
        for i, r in enumerate(records)
    ]
    events: dict[tuple[str, str], int] = {}
    for m in messages:
        head = json.loads(m.value)
        key = (head["model"], head["model_version"])
        events[key] = events.get(key, 0) + 1
    fed = 0
    for i in range(0, len(messages), 1000):
        # The labels that came in before this batch, as a worker reading both topics sees them.
        reached = pipeline.max_event_time()
        upto = fed if reached is None else bisect.bisect_right(label_times, reached)
        pipeline.add_labels(labels[fed:upto])
        fed = max(fed, upto)
        pipeline.process(messages[i : i + 1000])
    pipeline.add_labels(labels[fed:])
    pipeline.finish()
    alerts.finish()
    sink.flush()
    try:
        yield PipelineStore(
            client, name, scenario, profiles, pipeline.stats, alerts.alerts, len(dead.letters),
            canary_from, events,
        )  # fmt: skip
    finally:
        client.command(f"DROP DATABASE IF EXISTS `{name}`")
        client.close()
