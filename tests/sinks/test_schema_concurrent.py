"""Several processes migrating one new database at once (merge shards starting together).

Each thread has its own clickhouse-connect client on the HTTP front (``tests/sinks/chhttp.py``),
as each merger has its own connection to the server; they start together on a barrier, over a
few rounds of new databases so that their statements interleave in many orders.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

import pytest

from drifthouse.errors import StoreError, StoreUnavailable
from drifthouse.sinks import schema
from drifthouse.sinks.schema import expected_tables, load_migrations, migrate
from drifthouse.sinks.store import open_store
from tests.sinks.conftest import HttpClickHouse
from tests.sinks.old_store import schema_at

WORKERS = 4
ROUNDS = 4


def _dsn(server: HttpClickHouse) -> str:
    return f"http://default:s3cret-pw@127.0.0.1:{server.port}/default?compress=false"


def _migrate_together(dsn: str, database: str) -> list[BaseException]:
    clients = [open_store(dsn, database="default", create_database=False) for _ in range(WORKERS)]
    barrier = threading.Barrier(WORKERS)
    errors: list[BaseException] = []

    def run(client: Any) -> None:
        barrier.wait()
        try:
            migrate(client, database, {"predictions": 30, "metrics": 400})
        except BaseException as exc:  # collected: every thread must succeed
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(c,)) for c in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    for client in clients:
        client.close()
    assert not any(t.is_alive() for t in threads), "a migration did not finish in 120 s"
    return errors


def test_concurrent_first_migrations_all_succeed(http_clickhouse: HttpClickHouse) -> None:
    dsn = _dsn(http_clickhouse)
    check = open_store(dsn, database="default", create_database=False)
    try:
        for round_ in range(ROUNDS):
            database = f"concurrent_{round_}"
            errors = _migrate_together(dsn, database)
            assert errors == [], f"round {round_}: {[repr(e) for e in errors]}"
            tables = dict(
                check.query(
                    "SELECT name, engine_full FROM system.tables WHERE database = {db:String}",
                    parameters={"db": database},
                ).result_rows
            )
            assert set(expected_tables(database)) <= set(tables), round_
            assert "predictions_by_month" not in tables, round_
            assert "PARTITION BY toYYYYMM(ts)" in tables["predictions"], round_
            assert "TTL inserted_at + toIntervalDay(30)" in tables["predictions"], round_
            assert "TTL inserted_at + toIntervalDay(400)" in tables["metrics"], round_
            assert "TTL" not in tables["alerts"], round_
            versions = check.query(
                f"SELECT DISTINCT version FROM `{database}`.schema_migrations ORDER BY version"
            ).result_rows
            assert [v for (v,) in versions] == [m.version for m in load_migrations()], round_
            # A later start finds nothing to do.
            assert migrate(check, database, {"predictions": 30, "metrics": 400}) == []
    finally:
        check.close()


def test_an_error_that_is_not_a_race_is_not_retried(http_clickhouse: HttpClickHouse) -> None:
    """Only errors a concurrent migration causes run the pass again; an outage fails at once."""
    dsn = _dsn(http_clickhouse)
    client = open_store(dsn, database="default", create_database=False)
    try:
        http_clickhouse.fault(503, 1)
        with pytest.raises(StoreUnavailable, match="creating the database"):
            migrate(client, "concurrent_outage")
        with pytest.raises(StoreError, match="unknown tables"):
            migrate(client, "concurrent_outage", {"metricz": 3})
        assert migrate(client, "concurrent_outage") == [m.version for m in load_migrations()]
    finally:
        client.close()


def test_concurrent_upgrades_keep_every_prediction(http_clickhouse: HttpClickHouse) -> None:
    """A store at version 2 (the prediction log by day, with rows) upgraded by four at once."""
    client = open_store(_dsn(http_clickhouse), database="default", create_database=False)
    try:
        for round_ in range(ROUNDS):
            database = f"upgrade_{round_}"
            _old_store(client, database)
            errors = _migrate_together(_dsn(http_clickhouse), database)
            assert errors == [], f"round {round_}: {[repr(e) for e in errors]}"
            tables = dict(
                client.query(
                    "SELECT name, engine_full FROM system.tables WHERE database = {db:String}",
                    parameters={"db": database},
                ).result_rows
            )
            assert "predictions_by_month" not in tables, round_
            assert "PARTITION BY toYYYYMM(ts)" in tables["predictions"], round_
            assert "TTL inserted_at + toIntervalDay(30)" in tables["predictions"], round_
            got = client.query(
                f"SELECT count(), uniqExact(event_id) FROM `{database}`.predictions FINAL"
            ).result_rows
            assert got == [(300, 300)], round_
    finally:
        client.close()


def _old_store(client: Any, database: str) -> None:
    """``database`` at version 2: the prediction log by day, with 300 rows."""
    schema_at(client, database, 2)
    client.command(
        f"INSERT INTO `{database}`.predictions (ts, model, model_version, event_id, "
        "features, prediction, latency_ms, status, segment, kept_because, sample_rate) "
        "SELECT toDateTime64('2023-01-01 00:00:00', 3, 'UTC') + number * 3600, 'fraud', "
        "'1', toString(number), '{}', '0.5', 1.0, 200, '{}', 'sample', 1.0 "
        "FROM numbers(300)"
    )


def test_upgrades_exchanging_at_the_same_moment_every_time_still_move_the_log(
    http_clickhouse: HttpClickHouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Processes upgrading one store in lockstep: every exchange of the prediction log tables
    waits, up to 3 s, for every other process to reach its own exchange too, on every attempt.
    Exchanging one shared copy, an even number of exchanges undid the move every time, until the
    attempts ran out (seen failing: "still partitioned by day after 6 moves"). The log must come
    out by month, every row kept, in every process."""
    barrier = threading.Barrier(WORKERS)
    real_call = schema.call

    def in_lockstep(what: str, *args: Any, **kwargs: Any) -> Any:
        if what.startswith("exchanging the prediction log"):
            try:
                barrier.wait(timeout=3)
            except threading.BrokenBarrierError:  # fewer exchange this time: line up again later
                barrier.reset()
        return real_call(what, *args, **kwargs)

    monkeypatch.setattr(schema, "call", in_lockstep)
    client = open_store(_dsn(http_clickhouse), database="default", create_database=False)
    try:
        _old_store(client, "lockstep")
        errors = _migrate_together(_dsn(http_clickhouse), "lockstep")
        assert errors == [], [repr(e) for e in errors]
        tables = dict(
            client.query(
                "SELECT name, engine_full FROM system.tables WHERE database = 'lockstep'"
            ).result_rows
        )
        assert sorted(t for t in tables if t.startswith("predictions")) == ["predictions"]
        assert "PARTITION BY toYYYYMM(ts)" in tables["predictions"]
        got = client.query(
            "SELECT count(), uniqExact(event_id) FROM `lockstep`.predictions FINAL"
        ).result_rows
        assert got == [(300, 300)]
    finally:
        client.close()


def test_processes_exchanging_at_the_same_moment_still_start(
    http_clickhouse: HttpClickHouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worst interleaving, made certain: every process that exchanges the prediction log
    tables waits for the others to be there too before it sends its exchange, so that they all
    exchange at once (four exchanges undo each other). A new database must still come out right
    in every process: four workers starting together on a new ClickHouse (replicas) all start."""
    barrier = threading.Barrier(WORKERS)
    real_call = schema.call

    def together(what: str, *args: Any, **kwargs: Any) -> Any:
        if what.startswith("exchanging the prediction log"):
            # Not every process exchanges: then there is nothing to line up.
            with contextlib.suppress(threading.BrokenBarrierError):
                barrier.wait(timeout=10)
        return real_call(what, *args, **kwargs)

    monkeypatch.setattr(schema, "call", together)
    dsn = _dsn(http_clickhouse)
    errors = _migrate_together(dsn, "concurrent_lined_up")
    assert errors == [], [repr(e) for e in errors]
    check = open_store(dsn, database="default", create_database=False)
    try:
        tables = dict(
            check.query(
                "SELECT name, engine_full FROM system.tables WHERE database = {db:String}",
                parameters={"db": "concurrent_lined_up"},
            ).result_rows
        )
        assert set(expected_tables("concurrent_lined_up")) <= set(tables)
        assert "predictions_by_month" not in tables
        assert "PARTITION BY toYYYYMM(ts)" in tables["predictions"]
        assert "TTL inserted_at + toIntervalDay(30)" in tables["predictions"]
        versions = check.query(
            "SELECT DISTINCT version FROM `concurrent_lined_up`.schema_migrations ORDER BY version"
        ).result_rows
        assert [v for (v,) in versions] == [m.version for m in load_migrations()]
        assert migrate(check, "concurrent_lined_up", {"predictions": 30, "metrics": 400}) == []
    finally:
        check.close()


def test_a_new_prediction_log_is_the_one_an_upgrade_leaves(
    http_clickhouse: HttpClickHouse,
) -> None:
    """The log a new database gets at once (by month) has the columns, keys and engine that the
    move of migration 3 leaves in a database that had it by day."""
    client = open_store(_dsn(http_clickhouse), database="default", create_database=False)
    try:
        migrate(client, "shape_new")
        client.command("CREATE DATABASE `shape_old`")
        for statement in load_migrations()[0].statements("shape_old"):
            client.command(statement)
        migrate(client, "shape_old")

        def shape(database: str) -> list[Any]:
            columns = client.query(
                "SELECT name, type, default_kind, default_expression FROM system.columns "
                "WHERE database = {db:String} AND table = 'predictions' ORDER BY position",
                parameters={"db": database},
            ).result_rows
            keys = client.query(
                "SELECT engine, partition_key, sorting_key, primary_key FROM system.tables "
                "WHERE database = {db:String} AND name = 'predictions'",
                parameters={"db": database},
            ).result_rows
            return [columns, keys]

        assert shape("shape_new") == shape("shape_old")
        assert shape("shape_new")[1][0][1] == "toYYYYMM(ts)"
    finally:
        client.close()
