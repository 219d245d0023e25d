"""The ``bin`` column of ``metrics`` (migration 0007, docs/clickhouse.md): attribution rows of
different bins are different rows for the ReplacingMergeTree, a rewrite of one bin collapses,
and a database migrated before version 7 gets the column and the key with its rows kept."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import msgspec

from drifthouse.rows import AttributionWithdrawal, MetricRow
from drifthouse.sinks import ClickHouseSink
from drifthouse.sinks.base import MemorySink
from drifthouse.sinks.schema import load_migrations, migrate
from drifthouse.sinks.store import open_store
from tests.sinks.conftest import HttpClickHouse


def _row(bin_: str, value: float, computed_at: int, metric: str = "psi_contribution") -> MetricRow:
    return MetricRow(
        window_start=1_767_225_600_000,
        window_end=1_767_229_200_000,
        window="1h",
        model="fraud",
        model_version="1",
        feature="amount",
        segment="",
        metric=metric,
        value=value,
        n=100,
        run_id="live",
        computed_at=computed_at,
        bin=bin_,
    )


def test_metric_rows_key_on_their_bin() -> None:
    assert _row("[1.0, 2.0)", 0.1, 1).key() != _row("[2.0, 3.0)", 0.1, 1).key()
    assert _row("", 0.1, 1).key() == _row("", 0.2, 2).key()


def _stored(client: Any, database: str) -> list[tuple[str, float]]:
    client.command(f"OPTIMIZE TABLE `{database}`.metrics FINAL")
    rows = client.query(
        f"SELECT bin, value FROM `{database}`.metrics WHERE metric = 'psi_contribution' ORDER BY bin"
    ).result_rows
    return [(b, v) for b, v in rows]


def test_rows_of_different_bins_survive_a_merge(store_client: Any, database: str) -> None:
    sink = ClickHouseSink(store_client, database=database, batch_rows=1)
    sink.write([_row("[1.0, 2.0)", 0.1, 1), _row("[2.0, 3.0)", 0.2, 1)])
    sink.write([_row("[2.0, 3.0)", 0.3, 2)])  # the window written again: its row collapses
    sink.write([_row("", 0.5, 1, metric="psi")])
    sink.flush()
    assert _stored(store_client, database) == [("[1.0, 2.0)", 0.1), ("[2.0, 3.0)", 0.3)]
    key = store_client.query(
        "SELECT sorting_key FROM system.tables WHERE database = {db:String} AND name = 'metrics'",
        parameters={"db": database},
    ).result_rows[0][0]
    assert key.endswith(", run_id, bin")
    (n,) = store_client.query(
        f"SELECT count() FROM `{database}`.metrics FINAL WHERE bin = ''"
    ).result_rows[0]
    assert n == 1
    sink.close()


def test_a_database_of_version_6_gets_the_bin_column_and_keeps_its_rows(store_client: Any) -> None:
    database = f"before_bin_{os.getpid()}"
    store_client.command(f"DROP DATABASE IF EXISTS `{database}`")
    store_client.command(f"CREATE DATABASE `{database}`")
    try:
        for migration in load_migrations():
            if migration.version >= 7:
                continue
            for statement in migration.statements(database):
                store_client.command(statement)
        store_client.command(
            f"INSERT INTO `{database}`.metrics (window_start, window_end, window, model, "
            "model_version, feature, segment, metric, value, n, run_id, computed_at) VALUES "
            "(1767225600000, 1767229200000, '1h', 'fraud', '1', 'amount', '', 'psi', 0.5, 100, 'live', 1)"
        )
        store_client.command(
            f"CREATE TABLE IF NOT EXISTS `{database}`.schema_migrations "
            "(version UInt32, name String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3)) "
            "ENGINE = ReplacingMergeTree ORDER BY version"
        )
        store_client.insert(
            f"`{database}`.schema_migrations",
            [
                [m.version for m in load_migrations() if m.version < 7],
                [m.name for m in load_migrations() if m.version < 7],
            ],
            column_names=["version", "name"],
            column_oriented=True,
        )
        assert 7 in migrate(store_client, database)
        assert migrate(store_client, database) == []
        rows = store_client.query(
            f"SELECT metric, bin, value FROM `{database}`.metrics FINAL"
        ).result_rows
        assert rows == [("psi", "", 0.5)]
        sink = ClickHouseSink(store_client, database=database, batch_rows=1)
        sink.write([_row("[1.0, 2.0)", 0.1, 1), _row("[2.0, 3.0)", 0.2, 1)])
        sink.flush()
        assert _stored(store_client, database) == [("[1.0, 2.0)", 0.1), ("[2.0, 3.0)", 0.2)]
        sink.close()
    finally:
        store_client.command(f"DROP DATABASE IF EXISTS `{database}`")


def _withdrawal(computed_at: int, *keep: str) -> AttributionWithdrawal:
    return AttributionWithdrawal(
        window_start=1_767_225_600_000, window="1h", model="fraud", model_version="1",
        run_id="live", computed_at=computed_at,
        keep=tuple(("amount", "", "psi_contribution", b) for b in keep),
    )  # fmt: skip


def test_a_withdrawal_deletes_the_earlier_rows_it_does_not_keep(
    store_client: Any, database: str
) -> None:
    """A rewrite's rows, then its withdrawal: the first write's other bins go, the rewrite's
    rows, other metrics, other windows and any row written since stay; MemorySink agrees."""
    first = [_row("[1.0, 2.0)", 0.1, 1), _row("[2.0, 3.0)", 0.2, 1), _row("", 0.5, 1, "psi")]
    other = msgspec.structs.replace(_row("[2.0, 3.0)", 0.2, 1), window_start=1_767_229_200_000)
    rewrite = [_row("[1.0, 2.0)", 0.3, 2), _withdrawal(2, "[1.0, 2.0)")]
    later = [_row("[2.0, 3.0)", 0.4, 3)]  # a third write brings the bin back
    late_withdrawal = [_withdrawal(2, "[1.0, 2.0)")]  # the same withdrawal run again, late
    memory = MemorySink()
    sink = ClickHouseSink(store_client, database=database)
    for out in (memory, sink):
        out.write([*first, other])
        out.write(rewrite)
        out.flush()
    assert _stored(store_client, database) == [("[1.0, 2.0)", 0.3), ("[2.0, 3.0)", 0.2)]
    for out in (memory, sink):
        out.write(later + late_withdrawal)
        out.flush()
    rows = store_client.query(
        f"SELECT bin, value, toUnixTimestamp64Milli(window_start) FROM `{database}`.metrics FINAL "
        "ORDER BY window_start, metric, bin"
    ).result_rows
    want = [("", 0.5, 1_767_225_600_000), ("[1.0, 2.0)", 0.3, 1_767_225_600_000),
            ("[2.0, 3.0)", 0.4, 1_767_225_600_000), ("[2.0, 3.0)", 0.2, 1_767_229_200_000)]  # fmt: skip
    assert [tuple(r) for r in rows] == want
    mem = sorted(((r.window_start, r.metric, r.bin), r.value) for r in memory.rows("metrics"))
    assert [(k[2], v, k[0]) for k, v in mem] == want
    sink.close()


def test_a_spooled_withdrawal_is_replayed_after_the_rows_before_it(
    http_clickhouse: HttpClickHouse, tmp_path: Path
) -> None:
    """The store away during the first write and its rewrite: both land from the spool, in
    order, and the withdrawal takes the first write's rows it does not keep."""
    client = open_store(http_clickhouse.dsn)
    migrate(client, "drifthouse")
    sink = ClickHouseSink(client, spool_dir=tmp_path / "spool", retries=0, backoff_s=0.01)
    http_clickhouse.stop()
    http_clickhouse.wait_refused()
    sink.write([_row("[1.0, 2.0)", 0.1, 1), _row("[2.0, 3.0)", 0.2, 1)])
    sink.flush()
    sink.write([_row("[1.0, 2.0)", 0.3, 2), _withdrawal(2, "[1.0, 2.0)")])
    sink.flush()
    assert sink.pending_batches == 3  # metrics, metrics, then the withdrawal
    http_clickhouse.start()
    assert sink.replay() == 3
    rows = client.query(
        "SELECT bin, value FROM metrics FINAL WHERE metric = 'psi_contribution'"
    ).result_rows
    assert [tuple(r) for r in rows] == [("[1.0, 2.0)", 0.3)]
