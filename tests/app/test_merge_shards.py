"""A sharded merge tier on a real broker: ``kafka.partials_partitions: 3``, source workers and
mergers in processes of their own (``drifthouse run --role``), a ClickHouse server store.

The topic is the session's keyed topic (``tests/keyed_topic.py``), which test_any_key reads
too: 12 partitions, one hot model keyed by event id (on every partition), two small models
keyed by model, labels keyed the same ways, every tenth event with no key. The three models
fall on the three merge shards. 1, 2 and 3 source workers with 1, 2 and 3 mergers (all nine
pairs, side by side) must store the ``metrics`` rows of a single-process replay of the same
topics to the last digit (regression label metrics to rounding, as every live run:
docs/model-performance.md, "Exactness"); so must the one whose merger is killed (SIGKILL)
mid-stream and replaced.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from drifthouse.config import load_config
from drifthouse.kafka.admin import end_offsets
from drifthouse.kafka.shards import shard_of
from drifthouse.sinks import open_store
from drifthouse.sinks.schema import migrate
from tests.keyed_topic import HOT, PARTITIONS, SMALL, KeyedTopic
from tests.sinks.conftest import HttpClickHouse
from tests.workers import (
    ROWS_SQL,
    Metrics,
    Workers,
    assert_same,
    stop_together,
    wait_all_done,
    write_config,
)

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

SHARDS = 3


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpClickHouse]:
    """A ClickHouse server (the HTTP front over the embedded engine): mergers in several
    processes share it."""
    server = HttpClickHouse(tmp_path_factory.mktemp("clickhouse"))
    server.start()
    yield server
    server.stop()


def _config(tmp_path: Path, bootstrap: str, keyed: KeyedTopic, name: str, dsn: str) -> Path:
    topic, profiles = keyed.topic, keyed.profiles
    database = f"shards_{name}"
    dsn = dsn.replace("/drifthouse?", f"/{database}?")  # the HTTP front's current database
    store = {"dsn": dsn, "database": database, "ttl_days": {"predictions": 3650}}
    path = write_config(tmp_path, bootstrap, topic, name, profiles, extra={"store": store})
    cfg = json.loads(path.read_text())
    cfg["kafka"]["partials_partitions"] = SHARDS
    path.write_text(json.dumps(cfg))
    # Created once before the deployment starts (as `drifthouse migrate` may be run): mergers
    # starting at once on an empty database are tested in tests/sinks/test_schema_concurrent.py.
    migrate(open_store(dsn, database), database)
    return path


# Deployments run side by side (each its own group, partials topic and database): the roles of
# their processes, a process of role "all" being a source worker and a merger. "1x3" is one
# source worker and three mergers, "3x1" three source workers and one merger. Every pair of 1, 2
# and 3 source workers with 1, 2 and 3 mergers; "1x2" is the deployment whose first merger is
# killed (see _kill_a_merger), which starts as one merger and a worker of role all.
DEPLOYMENTS = {
    "1x1": ["all"],
    "1x2": ["merger"],
    "1x3": ["all", "merger", "merger"],
    "2x1": ["all", "source"],
    "2x2": ["all", "all"],
    "2x3": ["all", "all", "merger"],
    "3x1": ["all", "source", "source"],
    "3x2": ["all", "all", "source"],
    "3x3": ["all", "all", "all"],
}
KILLED = "1x2"
# The roles a deployment ends with (the killed merger replaced by another).
FINAL_ROLES = {**DEPLOYMENTS, KILLED: ["all", "merger"]}


def test_one_to_three_sources_and_mergers_store_the_rows_of_a_replay_even_after_a_kill(
    tmp_path: Path,
    kafka_bootstrap: str,
    keyed_topic: KeyedTopic,
    keyed_replay: tuple[Path, Metrics],
    store: HttpClickHouse,
) -> None:
    """The deployments of DEPLOYMENTS, all at once (the topics and the replay they are compared
    with are made once, for the session): one of them (KILLED) has its first merger killed
    (SIGKILL) once it has written windows, before it has read its shards to the end, and
    replaced."""
    assert sorted(shard_of(m, SHARDS) for m in (HOT, *SMALL)) == [0, 1, 2]
    runs: dict[str, Workers] = {}
    try:
        # Each deployment starts once its database is made, while the next one's is made: the
        # store is one engine, which runs one statement at a time, and making every database
        # first held every deployment back.
        for name, roles in DEPLOYMENTS.items():
            config = _config(tmp_path, kafka_bootstrap, keyed_topic, name, store.dsn)
            workers = runs[name] = Workers(config, PARTITIONS)
            workers.next_port += 10 * len(runs)
            for role in roles:
                workers.start(role)
        killed, held = _kill_a_merger(runs[KILLED])
        wait_all_done(runs.values())
        for name, workers in runs.items():
            reports = {port: workers.status(port) for port in workers.procs}
            shards = sorted(s for r in reports.values() for s in r.get("mergers") or {})
            assert shards == ["0", "1", "2"], (name, reports)
            roles = dict(zip(workers.procs, FINAL_ROLES[name], strict=True))
            # As many source workers and mergers as the name says: source-only processes hold
            # no shard, merger-only ones no source partition.
            sources = [roles[p] for p, r in reports.items() if r.get("partitions")]
            mergers = [roles[p] for p, r in reports.items() if r.get("mergers")]
            assert (len(sources), len(mergers)) == (int(name[0]), int(name[2])), (name, reports)
            assert "merger" not in sources, (name, reports)
            assert "source" not in mergers, (name, reports)
    finally:
        stop_together(runs.values())
    cfg = load_config(runs[KILLED].config)
    ends = end_offsets(cfg.kafka, cfg.kafka.partials_topic)
    # The killed merger had not read its shards' partials to the end.
    assert any(m["next_offset"] < ends[int(s)] for s, m in held.items()), (held, ends)
    assert killed not in runs[KILLED].procs
    _, want = keyed_replay
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


def _stored(config: Path) -> dict[Any, Any]:
    """The run's ``metrics`` rows, as :func:`tests.workers.stored_rows` reads them, through the
    server (no embedded engine in this process)."""
    cfg = load_config(config)
    client = open_store(cfg.store_dsn(), cfg.store.database)
    try:
        result = client.query(ROWS_SQL, parameters={"run": "live"})
    finally:
        client.close()
    return {tuple(r[:7]): (r[7], r[8]) for r in result.result_rows}
