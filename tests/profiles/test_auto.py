"""A model without a profile file is monitored against an automatic reference built from its
first span of traffic: drift and quality after the span, quality inside it; the reference is the
same whatever the arrival order, partitioning, batching or restarts, and the windows evaluated on
it are those an explicit profile gives, to the last digit."""

from __future__ import annotations

import json
import math
import random
import signal
import subprocess
import sys
import time
import zlib
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from river import datasets

from drifthouse.app.pipeline import Pipeline
from drifthouse.app.replay import replay
from drifthouse.config import Config, load_config
from drifthouse.detectors.reference import Profile
from drifthouse.profiles.auto import AUTO_VERSION, DRIFT_METRICS
from drifthouse.sinks.base import MemorySink
from drifthouse.stream.dead_letters import MemoryDeadLetters
from drifthouse.stream.sources import Message
from tests.workers import (
    PARTITIONS,
    Workers,
    assert_same,
    produce_stream,
    replayed_rows,
    sentinels,
    stored_rows,
    write_config,
)

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
HOUR = 3_600_000
MODEL = "bananas"
CONFIG = Config.model_validate(
    {
        "windows": [{"size": "15m"}, {"size": "30m", "hop": "15m"}],
        "metrics": {"allowed_lateness": "30s", "auto_reference_span": "1h"},
    }
)
#: The built-in data-drift rule fires above this PSI (drifthouse/config/default_rules.yaml).
FIRES = 0.25


def _events(shift: float) -> list[dict[str, Any]]:
    """river's Bananas (5,300 rows, two numeric features and a class), shuffled once: the first
    half over hours 0-2, the second over hours 2-4 with ``shift`` added to ``x1``."""
    rows = list(datasets.Bananas())
    random.Random(7).shuffle(rows)
    half = len(rows) // 2
    out = []
    for i, (x, y) in enumerate(rows):
        later = i >= half
        ts = T0 + (2 * HOUR if later else 0) + (i - (half if later else 0)) * 2 * HOUR // half
        x1 = x["1"] + (shift if later else 0.0)
        out.append(
            {
                "model": MODEL,
                "ts": ts,
                "event_id": f"e{i}",
                "features": {"x1": x1, "x2": x["2"], "kind": "yes" if y else "no"},
                "prediction": round(1.0 / (1.0 + math.exp(-x1)), 6),
                "latency_ms": 10.0 + i % 7,
            }
        )
    return out


def _messages(events: list[dict[str, Any]], partitions: int) -> list[Message]:
    offsets: Counter[int] = Counter()
    out = []
    for e in events:
        value = json.dumps(e).encode()
        p = zlib.crc32(e["event_id"].encode()) % partitions
        out.append(Message(value, p, offsets[p], "predictions", MODEL.encode()))
        offsets[p] += 1
    return out


def _disorder(events: list[dict[str, Any]], seed: int) -> list[dict[str, Any]]:
    """Arrival order shuffled within runs of 8 events (under 22 s: within the lateness)."""
    rng = random.Random(seed)
    out = []
    for lo in range(0, len(events), 8):
        chunk = events[lo : lo + 8]
        rng.shuffle(chunk)
        out += chunk
    return out


def _run(
    messages: list[Message],
    *,
    profiles: dict[str, Profile] | None = None,
    batch: int = 500,
    config: Config = CONFIG,
) -> tuple[MemorySink, Pipeline]:
    sink = MemorySink()
    pipe = Pipeline(
        config=config, profiles=profiles or {}, sink=sink, dead_letters=MemoryDeadLetters(),
        run_id="t", computed_at=lambda: 0,
    )  # fmt: skip
    pipe.expect_partitions({m.partition for m in messages})
    for lo in range(0, len(messages), batch):
        pipe.process(messages[lo : lo + batch])
    pipe.finish()
    sink.flush()
    return sink, pipe


def _metrics(sink: MemorySink) -> dict[tuple[Any, ...], tuple[float, int]]:
    return {r.key(): (r.value, r.n) for r in sink.rows("metrics")}  # type: ignore[attr-defined]


def _profile(pipe: Pipeline) -> Profile:
    profile = pipe.merge.auto_references()[MODEL].profile
    assert profile is not None
    return profile


@pytest.mark.parametrize(
    ("shift", "drifted"),
    [pytest.param(0.0, set(), id="steady"), pytest.param(1.5, {"x1"}, id="x1-shifted")],
)
def test_an_unlisted_model_replayed_from_a_file_gets_drift_and_quality(
    tmp_path: Path, shift: float, drifted: set[str]
) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in _events(shift)))
    sink = MemorySink()
    summary = replay(CONFIG, source=f"file:{path}", sink=sink, run_id="r")

    ref = summary.auto_references[MODEL]
    assert (ref.start, ref.end) == (T0, T0 + HOUR)
    stored = sink.rows("references")
    assert [(r.model, r.model_version) for r in stored] == [(MODEL, AUTO_VERSION)]  # type: ignore[attr-defined]
    profile = Profile.from_json(stored[0].profile)  # type: ignore[attr-defined]
    assert {f.name: f.kind for f in profile.features} == {
        "x1": "numeric", "x2": "numeric", "kind": "categorical",
    }  # fmt: skip
    # Half of the first two hours: the reference holds the first hour's events.
    assert profile.baselines.events == sum(1 for e in _events(shift) if e["ts"] < T0 + HOUR)

    rows = [r for r in sink.rows("metrics") if r.window == "15m" and r.segment == ""]  # type: ignore[attr-defined]

    def values(feature: str, metric: str, lo: int, hi: int) -> list[float]:
        return [
            r.value
            for r in rows
            if (r.feature, r.metric) == (feature, metric) and lo <= r.window_start < hi
        ]

    for feature in ("x1", "x2", "kind"):
        # Inside the span: quality, no comparison with itself.
        assert len(values(feature, "missing_rate", T0, T0 + HOUR)) == 4
        assert values(feature, "psi", T0, T0 + HOUR) == []
        # After it, the same distribution: no drift.
        steady = values(feature, "psi", T0 + HOUR, T0 + 2 * HOUR)
        assert len(steady) == 4
        assert max(steady) < FIRES, (feature, steady)
        later = values(feature, "psi", T0 + 2 * HOUR, T0 + 4 * HOUR)
        assert len(later) == 8
        if feature in drifted:
            assert min(later) > FIRES, (feature, later)
        else:
            assert max(later) < FIRES, (feature, later)
    assert all(r.metric not in DRIFT_METRICS for r in rows if r.window_start < T0 + HOUR)


def test_the_reference_depends_on_the_events_not_their_order_partitions_or_batches() -> None:
    events = _events(1.5)
    want = _profile(_run(_messages(events, 1), batch=5_000)[1])
    for partitions, seed, batch in [(3, 1, 97), (4, 2, 500), (2, 3, 1)]:
        got = _profile(_run(_messages(_disorder(events, seed), partitions), batch=batch)[1])
        assert got.to_json() == want.to_json(), (partitions, seed, batch)


def test_windows_on_the_automatic_reference_equal_those_of_the_same_profile_given() -> None:
    """Panes sketched before the reference existed (kept as events, sketched when it was built)
    give every row an explicit profile gives, to the last digit; only the comparisons of the
    windows inside the span (and the change detectors fed by them) are left out."""
    msgs = _messages(_disorder(_events(1.5), 5), 3)
    auto_sink, auto_pipe = _run(msgs, batch=311)
    profile = _profile(auto_pipe)
    given = _metrics(_run(msgs, profiles={MODEL: profile}, batch=311)[0])
    auto = _metrics(auto_sink)
    assert auto.keys() <= given.keys()
    # Keys: (window_start, window, model, model_version, feature, segment, bin, metric, run_id).
    left_out = given.keys() - auto.keys()
    assert left_out
    assert {k[7] for k in left_out} <= DRIFT_METRICS | {"change_detected"}
    assert all(k[0] < T0 + HOUR or k[7] == "change_detected" for k in left_out)
    # The change detectors of a drift series start after the span; every other row is equal.
    differ = [
        k
        for k in auto
        if auto[k] != given[k] and not (k[7] == "change_detected" and k[4].endswith(":psi"))
    ]
    assert differ == []


def test_batch_cuts_and_restarts_change_no_digit() -> None:
    msgs = _messages(_disorder(_events(1.5), 9), 3)
    want = _metrics(_run(msgs, batch=1_000)[0])
    assert _metrics(_run(msgs, batch=37)[0]) == want
    got = _metrics(_restartable_run(msgs, crash_after=[400, 1_900, 2_600, 4_100]))
    assert got == want


def _restartable_run(msgs: list[Message], crash_after: list[int], batch: int = 300) -> MemorySink:
    """Crash after each count (losing what the sink did not confirm), restart each partition
    from its checkpoint and the merge stage from its snapshot, as the worker does."""
    sink = MemorySink()
    partitions = sorted({m.partition for m in msgs})
    by_part = {p: [m for m in msgs if m.partition == p] for p in partitions}
    index = {id(m): i for i, m in enumerate(msgs)}
    checkpoints: dict[int, Any] = {}
    snapshot = None
    position = 0
    for stop in [*crash_after, len(msgs)]:
        pipe = Pipeline(
            config=CONFIG, profiles={}, sink=sink, dead_letters=MemoryDeadLetters(),
            run_id="t", computed_at=lambda: 0,
        )  # fmt: skip
        pipe.expect_partitions(partitions)
        for p, cp in checkpoints.items():
            pipe.stage(p).restore(cp)
        if snapshot is not None:
            pipe.merge.restore_snapshot(snapshot)
        again = [
            m
            for p in partitions
            for m in by_part[p]
            if p in checkpoints and checkpoints[p].offset <= m.offset and index[id(m)] < position
        ]
        todo = again + msgs[position:stop]
        for lo in range(0, len(todo), batch):
            pipe.process(todo[lo : lo + batch])
        if stop == len(msgs):
            pipe.finish()
        sink.flush()
        checkpoints = {p: pipe.checkpoint(p) for p in partitions}
        snapshot = pipe.merge.snapshot()
        position = stop
    return sink


@pytest.mark.parametrize(
    ("models", "metrics", "features"),
    [
        pytest.param({}, {}, True, id="unlisted"),
        pytest.param({"other": {"task": "regression"}}, {}, True, id="misspelled"),
        pytest.param({MODEL: {"reference": "auto", "reference_span": "30m"}}, {}, True, id="auto"),
        pytest.param({}, {"default_reference": "none"}, False, id="default-none"),
    ],
)
def test_which_models_run_on_an_automatic_reference(
    models: dict[str, Any], metrics: dict[str, Any], features: bool
) -> None:
    config = Config.model_validate(
        {"windows": [{"size": "15m"}], "models": models, "metrics": metrics}
    )
    sink, pipe = _run(_messages(_events(0.0), 2), config=config)
    got = {r.feature for r in sink.rows("metrics")}  # type: ignore[attr-defined]
    assert ("x1" in got) is features
    assert (MODEL in pipe.merge.auto_references()) is features
    if MODEL in models:
        assert pipe.merge.auto_references()[MODEL].end == T0 + HOUR // 2


_READ_REFERENCES = """
import json, sys
from drifthouse.config import load_config
from drifthouse.sinks import open_store
cfg = load_config(sys.argv[1])
client = open_store(cfg.store_dsn(), cfg.store.database)
rows = client.query("SELECT model, model_version FROM references ORDER BY model").result_rows
json.dump([list(r) for r in rows], sys.stdout)
"""


@pytest.mark.kafka
@pytest.mark.slow
def test_two_live_workers_write_the_rows_of_a_replay(
    tmp_path: Path, kafka_bootstrap: str, make_topic: Any, small_stream: Any
) -> None:
    """No model listed: both run on automatic references. Two worker processes share the
    partitions; the one that merges builds the references, the other keeps sending its panes'
    events. Every row equals the replay's, to the last digit."""
    topic = make_topic(partitions=PARTITIONS)
    closed_until = produce_stream(kafka_bootstrap, topic, small_stream.records)
    config = write_config(tmp_path, kafka_bootstrap, topic, "auto", {})
    cfg = load_config(config)
    assert cfg.models == {}
    workers = Workers(config, PARTITIONS)
    try:
        workers.start()
        workers.start()
        workers.wait_done(cfg, len(small_stream.records))
    finally:
        workers.stop_all()
    live = stored_rows(config)
    stored = subprocess.run(
        [sys.executable, "-c", _READ_REFERENCES, str(config)],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    assert json.loads(stored.stdout) == [["eta", AUTO_VERSION], ["fraud", AUTO_VERSION]]
    want = replayed_rows(config, closed_until)
    assert any(k[4] == "amount" and k[6] == "psi" for k in want)
    assert_same(live, want)


@pytest.mark.kafka
@pytest.mark.slow
@pytest.mark.faults
def test_killed_workers_and_mergers_write_the_rows_of_a_replay(
    tmp_path: Path, kafka_bootstrap: str, make_topic: Any, small_stream: Any
) -> None:
    """SIGKILL a worker while it reads, then the merger, while the stream flows: the next
    ones rebuild the automatic references (from the partials they re-read, or the merger's
    snapshot) and every row equals the replay's."""
    from tests.faults.conftest import PacedProducer, wait_for

    topic = make_topic(partitions=PARTITIONS)
    records = small_stream.records
    config = write_config(tmp_path, kafka_bootstrap, topic, "auto-kill", {})
    workers = Workers(config, PARTITIONS)
    producer = PacedProducer(kafka_bootstrap, topic, records, seconds=60.0)
    kills = []
    try:
        port = workers.start()
        producer.start()
        for merger in (False, True):
            if merger:
                wait_for("the merger", lambda p=port: bool(workers.status(p).get("merger")))
            else:
                wait_for("a worker to read", lambda p=port: workers.status(p).get("events", 0) > 0)
            time.sleep(1.0)
            report = workers.status(port)
            workers.kill(port, signal.SIGKILL)
            kills.append((producer.sent, bool(report.get("merger"))))
            port = workers.start()
        producer.hurry.set()
        producer.join(timeout=120)
        assert producer.error is None, producer.error
        workers.wait_done(load_config(config), len(records))
    finally:
        producer.stop.set()
        workers.stop_all()
    assert kills[1][1], f"the second kill should hit the merger: {kills}"
    assert all(sent < len(records) for sent, _ in kills), f"kills after the stream: {kills}"
    closed_until = sentinels(records)[0] - 30_000
    live = {k: v for k, v in stored_rows(config).items() if k[0] < closed_until - HOUR}
    want = {
        k: v for k, v in replayed_rows(config, closed_until).items() if k[0] < closed_until - HOUR
    }
    assert any(k[4] == "amount" and k[6] == "psi" for k in want)
    assert_same(live, want)
