"""Shared inputs for pipeline tests: a small simulated stream and reference profiles built from
it; a topic holding it, worker configs, worker processes driven through their health endpoint,
and the rows they stored (used by ``tests/app/test_worker.py``, ``tests/e2e`` and the fault
suite, ``tests/faults``)."""

from __future__ import annotations

import collections
import contextlib
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
import zlib
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from drifthouse.app.replay import replay
from drifthouse.config import Config, load_config
from drifthouse.detectors.reference import Profile
from drifthouse.errors import SourceError
from drifthouse.kafka.admin import end_offsets, lag
from drifthouse.profiles.columns import build_profile
from drifthouse.rows import AlertRow, MetricRow
from drifthouse.simulate import Record, Scenario, simulate
from drifthouse.sinks import MemorySink
from tests.ports import free_port, port_run


@dataclass(frozen=True)
class Stream:
    scenario: Scenario
    records: list[Record]
    profiles: dict[str, Profile]


def profiles_from(
    records: list[Record], settings: Config, labels: Mapping[str, object] | None = None
) -> dict[str, Profile]:
    """Reference profiles of every model in ``records`` (prediction events), with the labels
    of their event ids when given (a labelled classifier's profile then has a calibration)."""
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
            label=[labels.get(e.get("event_id", "")) for e in events] if labels else None,
        )
    return out


@pytest.fixture(scope="session")
def small_stream() -> Stream:
    """Two simulated models over 12 hours at 6 events a minute each; faults after hour 6."""
    sc = Scenario.demo(days=0.5, rate_per_min=6, reference_hours=6)
    records = [r for r in simulate(sc, seed=3) if r.topic == "predictions"]
    reference = [r for r in records if r.ts_ms < sc.reference_end_ms]
    return Stream(sc, records, profiles_from(reference, Config()))


_LOG_EVENT = re.compile(r"\[(warning|error|critical) *\] (\S+)")


def log_digest(folder: Path, last: int = 12) -> str:
    """What the worker logs in ``folder`` say went wrong: warnings and errors by event name,
    then the last error lines."""
    counts: collections.Counter[str] = collections.Counter()
    errors: list[str] = []
    for path in sorted(folder.glob("worker-*.log")):
        for line in path.read_text(errors="replace").splitlines():
            m = _LOG_EVENT.search(line)
            if m:
                counts[f"{m.group(1)} {m.group(2)}"] += 1
            if (m and m.group(1) != "warning") or "Traceback" in line:
                errors.append(f"{path.name}: {line[-300:]}")
    summary = ", ".join(f"{k} x{n}" for k, n in counts.most_common()) or "none"
    return f"worker logs: {summary}\n" + "\n".join(errors[-last:])


#: How long :meth:`Workers.wait_done` sees the work done before it believes it (three polls a
#: second apart, as it used to be: a batch in flight shows no lag and no new partial yet).
STABLE_S = 2.0


#: How long :meth:`Workers.status` waits for a report: a busy machine (tests side by side) can
#: keep a worker from answering for seconds, and a report it misses is read as "no answer yet".
STATUS_TIMEOUT_S = 10.0


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
        # Health ports from a run of this process's own (tests/ports.py); deployments side by
        # side in one test may move theirs further along the run.
        self.next_port = port_run()

    def start(self, role: str = "all") -> int:
        """Start a worker (``role``: all, source or merger); return its health port."""
        port = free_port(self.next_port)
        self.next_port = port + 1
        log = (self.config.parent / f"worker-{port}.log").open("wb")
        code = (
            "import sys; from drifthouse.config import load_config; from drifthouse.app.run import run; "
            "cfg = load_config(sys.argv[1]); "
            "cfg = cfg.model_copy(update={'kafka': cfg.kafka.model_copy(update={'web_port': int(sys.argv[2])})}); "
            "run(cfg, role=sys.argv[3])"
        )
        args = (
            [sys.executable, "-m", "drifthouse", "run", "-c", str(self.config), "--role", role]
            if self.cli
            else [sys.executable, "-c", code, str(self.config), str(port), role]
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
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            # A worker that does not stop must not outlive its test (and slow the next ones).
            proc.kill()
            proc.wait(timeout=30)
            raise AssertionError(
                f"worker {port} ignored signal {sig} for 60 s:\n{self._log_tail(port)}"
            ) from None

    def health(self) -> list[dict[str, Any]]:
        """Every worker's health report (see :meth:`status`)."""
        return [self.status(port) for port in self.procs]

    def wait_done(self, cfg: Config, events: int) -> None:
        """Until every partition is read, the merger has read every partial and holds none,
        and that has held for ``STABLE_S`` seconds (a batch still in flight shows no lag and
        no new partial yet)."""
        deadline = time.monotonic() + self.timeout_s
        done_since: float | None = None
        while time.monotonic() < deadline:
            time.sleep(0.5)
            report = self.health()
            # Per partition, what its owner reports: a worker may still list a partition it
            # lost in a rebalance (lag unknown) beside the one that holds it now.
            parts: dict[str, dict[str, Any]] = {}
            for h in report:
                for p, v in h.get("partitions", {}).items():
                    if p not in parts or parts[p]["lag"] is None:
                        parts[p] = v
            # Per merge shard, its merger's report: each shard held by exactly one worker.
            held = [(int(s), m) for h in report for s, m in (h.get("mergers") or {}).items()]
            mergers = dict(held)
            try:
                partials_end = end_offsets(cfg.kafka, cfg.kafka.partials_topic)
                # Labels and metric events are forwarded to the merger by whichever worker
                # holds their partition: all of them must be read (and committed) too.
                sides_behind = sum(
                    p.lag
                    for topic in (cfg.kafka.labels_topic, cfg.kafka.metrics_topic)
                    for p in lag(cfg.kafka, cfg.kafka.group, topic).values()
                )
            except SourceError:  # the first worker has not created the topics yet
                continue
            done = (
                len(parts) == self.partitions
                and all(v["lag"] == 0 for v in parts.values())
                and len(held) == len(mergers) == len(partials_end)
                and all(
                    m["pending_windows"] == 0
                    and m.get("label_windows_waiting", 0) == 0
                    and m.get("spooled_batches", 0) == 0
                    and m["next_offset"] >= partials_end.get(shard, 0)
                    for shard, m in mergers.items()
                )
                and sides_behind == 0
            )
            now = time.monotonic()
            done_since = (done_since or now) if done else None
            if done_since is not None and now - done_since >= STABLE_S:
                return
        raise AssertionError(
            f"workers did not finish {events} events in time: {self.health()}\n"
            f"{log_digest(self.config.parent)}"
        )

    def stop_all(self) -> None:
        errors = []
        for port in list(self.procs):
            try:
                self.kill(port, signal.SIGTERM)
            except AssertionError as exc:
                errors.append(exc)
        if errors:
            raise errors[0]

    def status(self, port: int) -> dict[str, Any]:
        """One worker's health report; ``{}`` while it does not answer; fails if it died."""
        assert self.procs[port].poll() is None, self._log_tail(port)
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{port}/drifthouse/health/", timeout=STATUS_TIMEOUT_S
            ) as resp:
                report: dict[str, Any] = json.loads(resp.read())
                return report
        except OSError:
            return {}

    def logs(self) -> str:
        """Every worker log of this configuration, concatenated."""
        return "".join(
            p.read_text(errors="replace") for p in sorted(self.config.parent.glob("worker-*.log"))
        )

    def _log_tail(self, port: int) -> str:
        return (self.config.parent / f"worker-{port}.log").read_text(errors="replace")[-3000:]


def wait_all_done(runs: Iterable[Workers]) -> None:
    """:meth:`Workers.wait_done` for deployments running side by side, waited for at once."""
    with ThreadPoolExecutor() as pool:
        waits = [pool.submit(w.wait_done, load_config(w.config), 0) for w in runs]
        for wait in waits:
            wait.result()


def stop_together(runs: Iterable[Workers]) -> None:
    """SIGTERM to every worker at once, then wait for each (one by one is seconds each)."""
    runs = list(runs)
    for workers in runs:
        for proc in workers.procs.values():
            proc.send_signal(signal.SIGTERM)
    for workers in runs:
        for port, proc in list(workers.procs.items()):
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=60)
                del workers.procs[port]
        workers.stop_all()  # what did not stop: SIGTERM again, then killed, and the test fails


_QUERY = """
import json, sys
from drifthouse.config import load_config
from drifthouse.sinks import open_store
cfg = load_config(sys.argv[1])
client = open_store(cfg.store_dsn(), cfg.store.database)
out = [client.query(sql, parameters={"run": run}).result_rows for sql, run in json.loads(sys.argv[2])]
json.dump([[list(r) for r in rows] for rows in out], sys.stdout)
"""

ROWS_SQL = (
    "SELECT toUnixTimestamp64Milli(window_start), window, model, model_version, feature, segment, "
    "if(bin = '', metric, concat(metric, '@', bin)), value, n FROM metrics FINAL "
    "WHERE run_id = {run:String}"
)


def query_store(config_path: Path, queries: Sequence[tuple[str, str]]) -> list[list[list[Any]]]:
    """The rows of each ``(sql, run id)`` (the run id bound to ``{run:String}``) in the
    configured store, read in one process of its own: this one may already hold another
    embedded data folder, and the engine admits one folder per process."""
    out = subprocess.run(
        [sys.executable, "-c", _QUERY, str(config_path), json.dumps(list(queries))],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    rows: list[list[list[Any]]] = json.loads(out.stdout)
    return rows


def metrics_of(rows: Sequence[Sequence[Any]]) -> Metrics:
    """:data:`ROWS_SQL`'s rows, keyed as :func:`stored_rows` gives them."""
    return {tuple(r[:7]): (r[7], r[8]) for r in rows}


def stored_rows(config_path: Path, run_id: str = "live") -> Metrics:
    """The ``metrics`` rows of one run in the configured store, ``(window_start ms, window, model,
    model_version, feature, segment, metric) -> (value, n)``; an attribution row's metric carries
    its bin (``psi_contribution@[1.0, 2.0)``)."""
    return metrics_of(query_store(config_path, [(ROWS_SQL, run_id)])[0])


# Regression label metrics are float sums over joined pairs, and which pair completes first
# depends on how the labels and predictions topics interleave: they agree to rounding only
# (docs/model-performance.md, "Exactness").
FLOAT_SUMS = frozenset(
    # ... and the estimation errors of the regression estimates: estimated − realized
    {"mae", "rmse", "r2", "mape", "estimation_error_mae", "estimation_error_rmse"}
)


def _same(key: tuple[Any, ...], live: tuple[float, int], want: tuple[float, int]) -> bool:
    if key[-1] in FLOAT_SUMS:
        return live[1] == want[1] and math.isclose(live[0], want[0], rel_tol=1e-12, abs_tol=1e-12)
    return live == want


def assert_same(live: dict[Any, Any], want: dict[Any, Any], run: str = "live") -> None:
    """The same keys and, to the last digit, the same values (regression label metrics: to
    rounding)."""
    # Not `live.keys() == want.keys()`: pytest would diff thousands of keys, for minutes.
    only_live = sorted(live.keys() - want.keys(), key=repr)
    only_want = sorted(want.keys() - live.keys(), key=repr)
    assert (len(only_live), len(only_want)) == (0, 0), (
        f"{run}: {len(only_live)} rows only in the run, {len(only_want)} only in the reference; "
        f"e.g. only in the run {only_live[:8]}, only in the reference {only_want[:8]}"
    )
    differ = [k for k in want if not _same(k, live[k], want[k])]
    assert not differ, (
        f"{run}: {len(differ)} rows differ, e.g. {[(k, live[k], want[k]) for k in differ[:8]]}"
    )


# -- a topic holding the small stream, and worker configs on it ------------------------------------

PARTITIONS = 4
HOUR = 3_600_000


def partition_of(value: bytes, partitions: int = PARTITIONS) -> int:
    """The partition an event goes to: a hash of its event id, as a model server might key it."""
    return zlib.crc32(json.loads(value)["event_id"].encode()) % partitions


def sentinels(records: Sequence[Record], partitions: int = PARTITIONS) -> tuple[int, list[bytes]]:
    """One far-ahead event per partition, so every window of the stream closes: ``(ts, values)``.
    Windows ending at or before ``ts - 30 s`` (the default lateness) are then closed."""
    ts = max(r.ts_ms for r in records) + 3 * HOUR
    return ts, [
        json.dumps(
            {"model": "fraud", "ts": ts, "event_id": f"sentinel-{p}", "features": {}}
        ).encode()
        for p in range(partitions)
    ]


def produce_records(bootstrap: str, topic: str, records: Sequence[Record]) -> None:
    """The records, keyed by event id hash across partitions (:func:`partition_of`), and no
    sentinels: the first part of a stream whose rest :func:`produce_stream` sends."""
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20)
    for r in records:
        producer.send(topic, key=r.key, value=r.value, partition=partition_of(r.value))
    producer.flush()
    producer.close()


def caught_up(report: dict[str, Any], partitions: int = PARTITIONS) -> bool:
    """The worker read every partition to its end and wrote windows."""
    parts = report.get("partitions") or {}
    merger = report.get("merger") or {}
    return (
        len(parts) == partitions
        and all(p["lag"] == 0 for p in parts.values())
        and merger.get("windows_written", 0) > 0
    )


def kill_once_caught_up(workers: Workers, port: int, timeout_s: float = 120.0) -> None:
    """Wait until the worker on ``port`` has read what was sent (:func:`caught_up`), let its
    checkpoints commit (every second), then SIGKILL it: the middle of a stream for the next."""
    deadline = time.monotonic() + timeout_s
    report: dict[str, Any] = {}
    while time.monotonic() < deadline and not caught_up(report, workers.partitions):
        time.sleep(0.5)
        report = workers.status(port)
    assert caught_up(report, workers.partitions), workers.logs()[-3000:]
    time.sleep(3)
    workers.kill(port, signal.SIGKILL)


def produce_stream(bootstrap: str, topic: str, records: Sequence[Record]) -> int:
    """The stream, keyed by event id hash across partitions, then the :func:`sentinels`.
    Returns the watermark the sentinels bring every partition to: windows ending at or before
    it are closed."""
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20)
    for r in records:
        producer.send(topic, key=r.key, value=r.value, partition=partition_of(r.value))
    sentinel_ts, values = sentinels(records)
    for p, value in enumerate(values):
        producer.send(topic, key=b"fraud", value=value, partition=p)
    producer.flush()
    producer.close()
    return sentinel_ts - 30_000


def write_config(
    tmp_path: Path,
    bootstrap: str,
    topic: str,
    name: str,
    profiles: dict[str, Profile],
    serve_port: int | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """``<tmp_path>/<name>/drifthouse.yaml`` for a worker on ``topic``; ``extra`` sections
    (rules, routes, receivers, alerting, store) replace the defaults."""
    folder = tmp_path / name
    (folder / "refs").mkdir(parents=True)
    models = {}
    for model, profile in profiles.items():
        (folder / "refs" / f"{model}.json").write_bytes(profile.to_json())
        models[model] = {"reference": f"refs/{model}.json"}
    cfg: dict[str, Any] = {
        "kafka": {
            "bootstrap": bootstrap,
            "topic": topic,
            "group": f"g-{name}-{topic}",
            "partials_topic": f"{topic}-{name}-partials",
            "labels_topic": f"{topic}-labels",
            "metrics_topic": f"{topic}-metrics",
            "idle_after": "3s",
            # A killed worker's partitions move after Kafka's shortest session (tests kill many).
            "session_timeout": "6s",
            "batch_size": 256,
        },
        # Test events are stamped January 2026: a 30-day TTL would delete their logged predictions.
        "store": {"path": "./data", "serve_port": serve_port, "ttl_days": {"predictions": 3650}},
        "windows": [{"size": "1h"}, {"size": "30m", "hop": "10m"}],
        # Late labels rewrite their window at once, so the last write holds every label.
        "metrics": {"label_rewrite_every": "1ms"},
        "models": models,
        **(extra or {}),
    }
    path = folder / "drifthouse.yaml"
    path.write_text(json.dumps(cfg))
    return path


Metrics = dict[tuple[Any, ...], tuple[float, int]]
"""``(window_start ms, window, model, model_version, feature, segment, metric) -> (value, n)``"""

ALERTS_SQL = (
    "SELECT toUnixTimestamp64Milli(ts), rule, severity, status, model, model_version, feature, "
    "segment, metric, value, threshold, toUnixTimestamp64Milli(window_start), "
    "toUnixTimestamp64Milli(window_end), message, receivers, dedup_key "
    "FROM alerts FINAL WHERE run_id = {run:String}"
)


def stored_alerts(config_path: Path, run_id: str = "live") -> list[tuple[Any, ...]]:
    """The ``alerts`` rows of one run in the configured store (every column but ``run_id``),
    sorted, as :func:`alert_rows` gives them."""
    return sorted(alert_tuple(r) for r in query_store(config_path, [(ALERTS_SQL, run_id)])[0])


def stored(config_path: Path, run_id: str = "live") -> tuple[Metrics, list[tuple[Any, ...]]]:
    """:func:`stored_rows` and :func:`stored_alerts` of one run, read at once."""
    rows, alerts = query_store(config_path, [(ROWS_SQL, run_id), (ALERTS_SQL, run_id)])
    return metrics_of(rows), sorted(alert_tuple(r) for r in alerts)


def alert_tuple(values: Sequence[Any]) -> tuple[Any, ...]:
    """An alert row's columns, comparable (a NaN value or threshold equals a NaN)."""
    return tuple(
        "nan" if isinstance(v, float) and v != v else (tuple(v) if isinstance(v, list) else v)
        for v in values
    )


def _metric(row: MetricRow) -> str:
    """The metric as :data:`ROWS_SQL` reads it: with the bin of an attribution row."""
    return f"{row.metric}@{row.bin}" if row.bin else row.metric


def metric_rows(rows: Sequence[MetricRow], closed_until: int) -> Metrics:
    """Metric rows of windows closed by ``closed_until``, keyed like :func:`stored_rows`."""
    return {
        (r.window_start, r.window, r.model, r.model_version, r.feature, r.segment, _metric(r)): (
            r.value,
            r.n,
        )
        for r in rows
        if r.window_end <= closed_until
    }


def alert_rows(rows: Sequence[AlertRow], closed_until: int) -> list[tuple[Any, ...]]:
    """Alert rows of windows closed by ``closed_until``, as :func:`stored_alerts` gives them."""
    return sorted(
        alert_tuple(
            (
                a.ts,
                a.rule,
                a.severity,
                a.status,
                a.model,
                a.model_version,
                a.feature,
                a.segment,
                a.metric,
                a.value,
                a.threshold,
                a.window_start,
                a.window_end,
                a.message,
                a.receivers,
                a.dedup_key,
            )
        )
        for a in rows
        if a.window_end <= closed_until
    )


def produce_side_inputs(bootstrap: str, topic: str, scenario: Scenario) -> tuple[int, int]:
    """The scenario's delayed labels to ``<topic>-labels`` and 400 metric events to
    ``<topic>-metrics`` (two partitions each, created here); returns how many of each."""
    from kafka import KafkaProducer

    from drifthouse.kafka.admin import ensure_topics

    cfg = Config.model_validate({"kafka": {"bootstrap": bootstrap}})
    ensure_topics(cfg.kafka, {f"{topic}-labels": 2, f"{topic}-metrics": 2})
    labels = [r for r in simulate(scenario, seed=3) if r.topic == "labels"]
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20)
    for r in labels:
        producer.send(f"{topic}-labels", value=r.value, partition=partition_of(r.value, 2))
    for i in range(400):
        event = {"model": "fraud", "model_version": "2.3.0", "ts": scenario.start_ms + i * 97_000,
                 "metrics": {"cpu_util": (i % 17) / 20}}  # fmt: skip
        producer.send(f"{topic}-metrics", value=json.dumps(event).encode(), partition=i % 2)
    producer.flush()
    producer.close()
    return len(labels), 400


def replayed_rows(config_path: Path, closed_until: int, *, side_inputs: bool = False) -> Metrics:
    """The metrics rows an in-process replay of the config's topic writes (windows closed by
    ``closed_until``), with its labels and metric events topics when ``side_inputs``."""
    cfg = load_config(config_path)
    sink = MemorySink()
    side = (
        {"labels": f"kafka:{cfg.kafka.labels_topic}",
         "metric_events": f"kafka:{cfg.kafka.metrics_topic}"}
        if side_inputs
        else {}
    )  # fmt: skip
    replay(cfg, source=f"kafka:{cfg.kafka.topic}", sink=sink, run_id="expected", **side)
    return metric_rows(sink.rows("metrics"), closed_until)  # type: ignore[arg-type]
