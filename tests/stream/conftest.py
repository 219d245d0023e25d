"""Shared inputs for pipeline tests: a small simulated stream and reference profiles built from
it; worker processes driven through their health endpoint, and the rows they stored."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from drifthouse.config import Config
from drifthouse.detectors.reference import Profile, build_profile
from drifthouse.errors import SourceError
from drifthouse.simulate import Record, Scenario, simulate
from drifthouse.stream.kafka_admin import end_offsets


@dataclass(frozen=True)
class Stream:
    scenario: Scenario
    records: list[Record]
    profiles: dict[str, Profile]


def profiles_from(records: list[Record], settings: Config) -> dict[str, Profile]:
    """Reference profiles of every model in ``records`` (prediction events)."""
    by_model: dict[str, list[dict]] = {}
    for r in records:
        event = json.loads(r.value)
        by_model.setdefault(event["model"], []).append(event)
    out = {}
    for model, events in by_model.items():
        # PII features are never profiled (as `drifthouse profile -c CONFIG` does).
        pii = set(settings.model(model).pii)
        names = [n for n in events[0]["features"] if n not in pii]
        out[model] = build_profile(
            model=model,
            model_version=events[0]["model_version"],
            created_at="2026-01-01T00:00:00Z",
            source_digest="test",
            settings=settings.metrics,
            features={n: [e["features"].get(n) for e in events] for n in names},
            prediction=[e["prediction"] for e in events],
            latency_ms=[e["latency_ms"] for e in events],
            status=[e["status"] for e in events],
        )
    return out


@pytest.fixture(scope="session")
def small_stream() -> Stream:
    """Two simulated models over 12 hours at 6 events a minute each; faults after hour 6."""
    sc = Scenario.demo(days=0.5, rate_per_min=6, reference_hours=6)
    records = [r for r in simulate(sc, seed=3) if r.topic == "predictions"]
    reference = [r for r in records if r.ts_ms < sc.reference_end_ms]
    return Stream(sc, records, profiles_from(reference, Config()))


class Workers:
    """Worker processes of one configuration, each with its own health port."""

    def __init__(self, config: Path, partitions: int, *, cli: bool = False) -> None:
        self.config = config
        self.partitions = partitions
        # cli: `drifthouse run -c CONFIG`, whose config reads its health port from the
        # environment (`web_port: ${DRIFTHOUSE_WEB_PORT}`); else the same worker, port set here.
        self.cli = cli
        self.timeout_s = 240.0
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self.next_port = 17000 + random.randrange(0, 2000) * 4

    def start(self) -> int:
        port = self.next_port
        self.next_port += 1
        log = (self.config.parent / f"worker-{port}.log").open("wb")
        code = (
            "import sys; from drifthouse.config import load_config; from drifthouse.stream.run import run; "
            "cfg = load_config(sys.argv[1]); "
            "cfg = cfg.model_copy(update={'kafka': cfg.kafka.model_copy(update={'web_port': int(sys.argv[2])})}); "
            "run(cfg)"
        )
        args = (
            [sys.executable, "-m", "drifthouse", "run", "-c", str(self.config)]
            if self.cli
            else [sys.executable, "-c", code, str(self.config), str(port)]
        )
        self.procs[port] = subprocess.Popen(
            args,
            cwd=self.config.parent,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "DRIFTHOUSE_WEB_PORT": str(port)},
        )
        return port

    def kill(self, port: int, sig: int = signal.SIGKILL) -> None:
        proc = self.procs.pop(port)
        proc.send_signal(sig)
        proc.wait(timeout=60)

    def health(self) -> list[dict[str, Any]]:
        out = []
        for port, proc in self.procs.items():
            assert proc.poll() is None, self._log_tail(port)
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/drifthouse/health/", timeout=2
                ) as resp:
                    out.append(json.loads(resp.read()))
            except OSError:
                out.append({})
        return out

    def wait_done(self, cfg: Config, events: int) -> None:
        """Until every partition is read, the merger has read every partial and holds none."""
        deadline = time.monotonic() + self.timeout_s
        stable = 0
        while time.monotonic() < deadline:
            time.sleep(1.0)
            report = self.health()
            # Per partition, what its owner reports: a worker may still list a partition it
            # lost in a rebalance (lag unknown) beside the one that holds it now.
            parts: dict[str, dict[str, Any]] = {}
            for h in report:
                for p, v in h.get("partitions", {}).items():
                    if p not in parts or parts[p]["lag"] is None:
                        parts[p] = v
            mergers = [h["merger"] for h in report if h.get("merger")]
            try:
                partials_end = end_offsets(cfg.kafka, cfg.kafka.partials_topic).get(0, 0)
            except SourceError:  # the first worker has not created the partials topic yet
                continue
            done = (
                len(parts) == self.partitions
                and all(v["lag"] == 0 for v in parts.values())
                and len(mergers) == 1
                and mergers[0]["pending_windows"] == 0
                and mergers[0]["next_offset"] >= partials_end
            )
            stable = stable + 1 if done else 0
            if stable >= 3:
                return
        raise AssertionError(f"workers did not finish {events} events in time: {self.health()}")

    def stop_all(self) -> None:
        for port in list(self.procs):
            self.kill(port, signal.SIGTERM)

    def _log_tail(self, port: int) -> str:
        return (self.config.parent / f"worker-{port}.log").read_text(errors="replace")[-3000:]


_READ_ROWS = """
import json, sys
from drifthouse.config import load_config
from drifthouse.sinks import open_store
cfg = load_config(sys.argv[1])
client = open_store(cfg.store_dsn(), cfg.store.database)
result = client.query(
    "SELECT toUnixTimestamp64Milli(window_start), window, model, model_version, feature, segment, "
    "metric, value, n "
    "FROM metrics FINAL WHERE run_id = {run:String}", parameters={"run": sys.argv[2]}
)
json.dump([list(r) for r in result.result_rows], sys.stdout)
"""


def stored_rows(
    config_path: Path, run_id: str = "live"
) -> dict[tuple[Any, ...], tuple[float, int]]:
    """The ``metrics`` rows of one run in the configured store, ``(window_start ms, window, model,
    model_version, feature, segment, metric) -> (value, n)``."""
    # In a process of its own: this one may already hold another embedded data folder, and
    # the engine admits one folder per process.
    out = subprocess.run(
        [sys.executable, "-c", _READ_ROWS, str(config_path), run_id],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return {tuple(r[:7]): (r[7], r[8]) for r in json.loads(out.stdout)}


def assert_same(live: dict[Any, Any], want: dict[Any, Any]) -> None:
    """The same keys and, to the last digit, the same values."""
    assert live.keys() == want.keys(), (
        f"{len(live.keys() - want.keys())} rows only live, {len(want.keys() - live.keys())} only replayed"
    )
    differ = [k for k in want if live[k] != want[k]]
    assert not differ, (
        f"{len(differ)} rows differ, e.g. {[(k, live[k], want[k]) for k in differ[:3]]}"
    )
