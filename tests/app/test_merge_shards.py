"""A sharded merge tier on a real broker: ``kafka.partials_partitions: 3``, source workers and
mergers in processes of their own (``drifthouse run --role``), a ClickHouse server store.

The topic is test_any_key's: 12 partitions, one hot model keyed by event id (on every
partition), two small models keyed by model, labels keyed the same ways, every tenth event with
no key. The three models fall on the three merge shards. 1, 2 and 3 source workers with 1, 2 and
3 mergers must store the ``metrics`` rows of a single-process replay of the same topics to the
last digit (regression label metrics to rounding, as every live run: docs/model-performance.md,
"Exactness"); so must a run whose merger is killed (SIGKILL) mid-stream and replaced.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from drifthouse.config import Config, load_config
from drifthouse.kafka.admin import end_offsets
from drifthouse.kafka.shards import shard_of
from drifthouse.simulate import Record, Scenario, simulate
from drifthouse.sinks import open_store
from drifthouse.sinks.schema import migrate
from tests.sinks.conftest import HttpClickHouse
from tests.workers import (
    Workers,
    assert_same,
    profiles_from,
    replayed_rows,
    sentinels,
    write_config,
)

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

PARTITIONS = 12
SHARDS = 3
HOT = "fraud"  # shard 1 of 3
SMALL = ("eta_west", "eta_east")  # shards 0 and 2 of 3
UNKEYED_EVERY = 10


@pytest.fixture(scope="module")
def events() -> tuple[list[Record], list[Record]]:
    """6 hours: ~5,800 predictions of the hot model, ~700 of each small one, and labels."""
    assert sorted(shard_of(m, SHARDS) for m in (HOT, *SMALL)) == [0, 1, 2]
    sc = Scenario.demo(days=0.25, rate_per_min=16, reference_hours=3)
    predictions: list[Record] = []
    labels: list[Record] = []
    owner: dict[str, str] = {}
    small = 0
    for r in simulate(sc, seed=11):
        event = json.loads(r.value)
        if r.topic == "predictions":
            if event["model"] == HOT:
                owner[event["event_id"]] = HOT
                predictions.append(r)
                continue
            small += 1
            if small % 4:
                continue
            model = SMALL[(small // 4) % 2]
            owner[event["event_id"]] = model
            predictions.append(_rename(r, model))
        elif event["event_id"] in owner:
            labels.append(_rename(r, owner[event["event_id"]]))
    return predictions, labels


def _rename(record: Record, model: str) -> Record:
    event = json.loads(record.value)
    event["model"] = model
    return Record(record.topic, model.encode(), json.dumps(event).encode(), record.ts_ms)


def _key(record: Record, i: int) -> bytes | None:
    if i % UNKEYED_EVERY == 0:
        return None
    event = json.loads(record.value)
    return str(event["event_id"] if event["model"] == HOT else event["model"]).encode()


def _produce(bootstrap: str, topic: str, predictions: list[Record], labels: list[Record]) -> int:
    """The events, then a far-ahead sentinel per partition; the watermark they bring."""
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20)
    for i, r in enumerate(predictions):
        producer.send(topic, key=_key(r, i), value=r.value)
    for i, r in enumerate(labels):
        producer.send(f"{topic}-labels", key=_key(r, i), value=r.value)
    sentinel_ts, values = sentinels(predictions, PARTITIONS)
    for p, value in enumerate(values):
        producer.send(topic, key=HOT.encode(), value=value, partition=p)
    producer.flush()
    producer.close()
    return sentinel_ts - 30_000


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpClickHouse]:
    """A ClickHouse server (the HTTP front over the embedded engine): mergers in several
    processes share it."""
    server = HttpClickHouse(tmp_path_factory.mktemp("clickhouse"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def stream(
    kafka_bootstrap: str, kafka_admin: Any, events: tuple[list[Record], list[Record]]
) -> Iterator[tuple[str, int, dict[str, Any]]]:
    """The topics, filled: ``(topic, closed_until, profiles)``."""
    import uuid

    topic = f"t-shards-{uuid.uuid4().hex[:8]}"
    specs = {topic: PARTITIONS, f"{topic}-labels": 4, f"{topic}-metrics": 1}
    kafka_admin.create_topics(
        {n: {"num_partitions": p, "replication_factor": 1} for n, p in specs.items()},
        wait_for_metadata=True,
    )
    predictions, labels = events
    closed_until = _produce(kafka_bootstrap, topic, predictions, labels)
    start = predictions[0].ts_ms
    profiles = profiles_from([r for r in predictions if r.ts_ms < start + 3 * 3_600_000], Config())
    yield topic, closed_until, profiles
    kafka_admin.delete_topics(list(specs))


def _config(
    tmp_path: Path, bootstrap: str, stream: tuple[str, int, Any], name: str, dsn: str
) -> Path:
    topic, _, profiles = stream
    database = f"shards_{name}"
    dsn = dsn.replace("/drifthouse?", f"/{database}?")  # the HTTP front's current database
    store = {"dsn": dsn, "database": database, "ttl_days": {"predictions": 3650}}
    path = write_config(tmp_path, bootstrap, topic, name, profiles, extra={"store": store})
    cfg = json.loads(path.read_text())
    cfg["kafka"]["partials_partitions"] = SHARDS
    path.write_text(json.dumps(cfg))
    # Created once before the deployments start (as `drifthouse migrate` may be run): mergers
    # starting at once on an empty database are tested in tests/sinks/test_schema_concurrent.py.
    migrate(open_store(dsn, database), database)
    return path


@pytest.fixture(scope="module")
def want(
    tmp_path_factory: pytest.TempPathFactory,
    kafka_bootstrap: str,
    stream: tuple[str, int, Any],
    store: HttpClickHouse,
) -> dict[Any, Any]:
    """The rows of a single-process replay of the topics."""
    config = _config(
        tmp_path_factory.mktemp("replay"), kafka_bootstrap, stream, "replay", store.dsn
    )
    rows = replayed_rows(config, stream[1], side_inputs=True)
    assert {HOT, *SMALL} <= {k[2] for k in rows}
    assert {k[2] for k in rows if k[-1] == "rmse"} >= set(SMALL)  # labels joined
    assert any(k[2] == HOT and k[-1] == "accuracy" for k in rows)
    return rows


# Deployments run side by side (each its own group, partials topic and database): the roles of
# their processes, a process of role "all" being a source worker and a merger. "1x3" is one
# source worker and three mergers, "3x1" three source workers and one merger.
DEPLOYMENTS = {
    "1x1": ["all"],
    "2x2": ["all", "all"],
    "3x3": ["all", "all", "all"],
    "1x3": ["all", "merger", "merger"],
    "3x1": ["all", "source", "source"],
}


def test_one_to_three_sources_and_mergers_store_the_rows_of_a_replay_even_after_a_kill(
    tmp_path: Path,
    kafka_bootstrap: str,
    stream: tuple[str, int, Any],
    store: HttpClickHouse,
    want: dict[Any, Any],
) -> None:
    """The deployments of DEPLOYMENTS, and one (a merger, then a worker of role all) whose
    merger is killed (SIGKILL) once it has written windows, before it has read its shards to
    the end, and replaced; all run at once, to keep the test short."""
    runs: dict[str, Workers] = {}
    try:
        for name, roles in [*DEPLOYMENTS.items(), ("kill", ["merger"])]:
            config = _config(tmp_path, kafka_bootstrap, stream, name, store.dsn)
            workers = runs[name] = Workers(config, PARTITIONS)
            workers.next_port += 10 * len(runs)
            for role in roles:
                workers.start(role)
        killed, held = _kill_a_merger(runs["kill"])
        for name, workers in runs.items():
            workers.wait_done(load_config(workers.config), 0)
            reports = {port: workers.status(port) for port in workers.procs}
            shards = sorted(s for r in reports.values() for s in r.get("mergers") or {})
            assert shards == ["0", "1", "2"], (name, reports)
            if name in DEPLOYMENTS:  # source-only processes hold no shard
                roles = dict(zip(workers.procs, DEPLOYMENTS[name], strict=True))
                assert all(not r.get("mergers") for p, r in reports.items() if roles[p] == "source")
    finally:
        _stop(runs.values())
    cfg = load_config(runs["kill"].config)
    ends = end_offsets(cfg.kafka, cfg.kafka.partials_topic)
    # The killed merger had not read its shards' partials to the end.
    assert any(m["next_offset"] < ends[int(s)] for s, m in held.items()), (held, ends)
    assert killed not in runs["kill"].procs
    for name, workers in runs.items():
        assert_same(_stored(workers.config), want, name)


def _kill_a_merger(workers: Workers) -> tuple[int, dict[str, Any]]:
    """Start a worker of role all beside the merger; once the merger has written windows,
    kill it and start another; its port and what it held when killed."""
    first = next(iter(workers.procs))
    workers.start("all")
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        held: dict[str, Any] = workers.status(first).get("mergers") or {}
        if sum(m["windows_written"] for m in held.values()) > 0:
            break
        time.sleep(0.1)
    else:
        raise AssertionError(f"the first merger wrote nothing: {workers.health()}")
    workers.kill(first, signal.SIGKILL)
    workers.start("merger")
    return first, held


def _stop(runs: Iterable[Workers]) -> None:
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


def _stored(config: Path) -> dict[Any, Any]:
    """The run's ``metrics`` rows, as :func:`tests.workers.stored_rows` reads them, through the
    server (no embedded engine in this process)."""
    cfg = load_config(config)
    client = open_store(cfg.store_dsn(), cfg.store.database)
    try:
        result = client.query(
            "SELECT toUnixTimestamp64Milli(window_start), window, model, model_version, feature, "
            "segment, metric, value, n FROM metrics FINAL WHERE run_id = 'live'"
        )
    finally:
        client.close()
    return {tuple(r[:7]): (r[7], r[8]) for r in result.result_rows}
