from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest

from drifthouse.config import StoreConfig
from drifthouse.errors import RowsNotStored, SpoolFull, StoreError, StoreUnavailable
from drifthouse.rows import MetricRow, PredictionRow
from drifthouse.sinks.base import finish
from drifthouse.sinks.clickhouse import ClickHouseSink
from drifthouse.sinks.schema import migrate
from drifthouse.sinks.spool import Spool
from drifthouse.sinks.store import call, open_store, redact
from tests.sinks import rowgen
from tests.sinks.conftest import HttpClickHouse


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def _metrics(
    count: int, *, computed_at: int = 1, value: float = 1.0, start: int | None = None
) -> list[MetricRow]:
    first = rowgen.now_hour() if start is None else start
    return [
        rowgen.metric(
            first + i * rowgen.HOUR,
            "fraud",
            "1.0.0",
            "amount",
            "psi",
            value,
            computed_at=computed_at,
        )
        for i in range(count)
    ]


def _count(client: Any, sql: str, parameters: dict[str, Any] | None = None) -> int:
    return int(client.query(sql, parameters=parameters or {}).result_rows[0][0])


def test_rows_arrive_with_their_times(store_client: Any, database: str) -> None:
    sink = ClickHouseSink(store_client, database=database)
    rows = _metrics(3)
    sink.write(rows)
    sink.flush()
    got = store_client.query(
        "SELECT toUnixTimestamp64Milli(window_start), toUnixTimestamp64Milli(window_end), model, value "
        "FROM metrics ORDER BY window_start"
    ).result_rows
    assert got == [(r.window_start, r.window_end, "fraud", 1.0) for r in rows]


def test_same_window_twice_leaves_one_row_per_key(store_client: Any, database: str) -> None:
    metrics, sketches, alerts = rowgen.results(hours=3)
    sink = ClickHouseSink(store_client, database=database)
    sink.write([*metrics, *sketches, *alerts])
    sink.flush()
    rewritten = [
        MetricRow(
            **{
                **{f: getattr(r, f) for f in r.__struct_fields__},
                "value": r.value + 1,
                "computed_at": 2,
            }
        )
        for r in metrics
    ]
    sink.write(
        [*rewritten, *sketches, *alerts]
    )  # a retry, a restart, a replay with the same run id
    sink.flush()
    assert _count(store_client, "SELECT count() FROM metrics") >= len(
        metrics
    )  # no merge needed below
    assert _count(store_client, "SELECT count() FROM metrics FINAL") == len(metrics)
    assert _count(store_client, "SELECT count() FROM metrics_latest") == len(metrics)
    assert _count(store_client, "SELECT count() FROM sketches_latest") == len(sketches)
    assert _count(store_client, "SELECT count() FROM alerts_latest") == len(alerts)
    assert (
        _count(
            store_client,
            "SELECT countIf(computed_at != toDateTime64(0.002, 3)) FROM metrics_latest",
        )
        == 0
    )
    by_argmax = store_client.query(
        "SELECT count(), sum(v) FROM (SELECT argMax(value, computed_at) AS v FROM metrics "
        "GROUP BY model, metric, feature, window, window_start, model_version, segment, run_id)"
    ).result_rows[0]
    assert by_argmax == (len(metrics), pytest.approx(sum(r.value for r in rewritten)))


def test_batches_by_rows(store_client: Any, database: str) -> None:
    sink = ClickHouseSink(
        store_client, database=database, batch_rows=100, flush_interval_ms=3_600_000
    )
    for row in _metrics(250):
        sink.write([row])
    assert sink.inserted_rows == 200
    assert _count(store_client, "SELECT count() FROM metrics") == 200
    sink.flush()
    assert _count(store_client, "SELECT count() FROM metrics") == 250


def test_batches_by_time(store_client: Any, database: str) -> None:
    clock = FakeClock()
    sink = ClickHouseSink(store_client, database=database, flush_interval_ms=1_000, clock=clock)
    sink.write(_metrics(1))
    assert not sink.flush_if_due()
    assert sink.inserted_rows == 0
    clock.now += 1.5
    assert sink.flush_if_due()
    assert _count(store_client, "SELECT count() FROM metrics") == 1
    clock.now += 0.5
    sink.write(_metrics(1, start=0))  # not yet due: buffered
    assert sink.inserted_rows == 1
    clock.now += 0.6
    sink.write([])  # any write checks the clock
    assert sink.inserted_rows == 2


def test_rejects_foreign_objects(store_client: Any, database: str) -> None:
    sink = ClickHouseSink(store_client, database=database)
    with pytest.raises(TypeError, match="MetricRow"):
        sink.write([{"metric": "psi"}])  # type: ignore[list-item]


def _http_sink(
    server: HttpClickHouse, tmp_path: Path, clock: FakeClock | None = None, **kw: Any
) -> ClickHouseSink:
    client = open_store(server.dsn)
    migrate(client, "drifthouse")
    options: dict[str, Any] = {
        "spool_dir": tmp_path / "spool",
        "backoff_s": 0.05,
        "max_backoff_s": 0.2,
    }
    if clock is not None:
        options.update(clock=clock, sleep=clock.sleep)
    options.update(kw)
    return ClickHouseSink(client, **options)


def test_retries_retryable_errors_with_backoff(
    http_clickhouse: HttpClickHouse, tmp_path: Path
) -> None:
    clock = FakeClock()
    sink = _http_sink(http_clickhouse, tmp_path, clock, backoff_s=0.2, max_backoff_s=5.0)
    sink.write(_metrics(1, start=0))
    sink.flush()
    http_clickhouse.fault(503, 3)
    sink.write(_metrics(2))
    sink.flush()
    assert clock.sleeps == [0.2, 0.4, 0.8]
    assert sink.pending_batches == 0
    assert _count(sink.client, "SELECT count() FROM metrics FINAL") == 3


def test_gives_up_on_errors_a_retry_cannot_fix(
    http_clickhouse: HttpClickHouse, tmp_path: Path
) -> None:
    clock = FakeClock()
    sink = _http_sink(http_clickhouse, tmp_path, clock)
    sink.client.command("ALTER TABLE drifthouse.metrics DROP COLUMN n")
    sink.write(_metrics(1))
    sink.flush()  # set aside, not retried, not spooled
    (refusal,) = sink.report().refused
    assert (refusal.table, refusal.rows) == ("metrics", 1)
    assert "run `drifthouse migrate`" in refusal.reason
    assert sink.pending_batches == 0
    with pytest.raises(StoreError) as info:
        call("a query", sink.client.query, "SELEC 1")
    assert type(info.value) is StoreError
    assert "Syntax error" in str(info.value)
    assert clock.sleeps == []


def test_store_errors_never_show_the_password(
    http_clickhouse: HttpClickHouse, tmp_path: Path
) -> None:
    dsn = http_clickhouse.dsn
    http_clickhouse.stop()
    with pytest.raises(StoreUnavailable) as info:
        open_store(dsn)
    assert "s3cret-pw" not in str(info.value)
    assert "s3cret-pw" not in str(info.value.__cause__)
    assert redact(f"failed {dsn}") == f"failed {dsn.replace('s3cret-pw', '***')}"


def test_spool_signals_pressure_before_it_is_full(
    http_clickhouse: HttpClickHouse, tmp_path: Path
) -> None:
    clock = FakeClock()
    sink = _http_sink(http_clickhouse, tmp_path, clock, spool_max_bytes=20_000, retries=0)
    http_clickhouse.stop()
    pressures: list[float] = []
    paused_at: int | None = None

    def fill() -> None:
        nonlocal paused_at
        for i in range(1_000):
            sink.write(_metrics(20, start=i * 100 * rowgen.HOUR))
            sink.flush()
            pressures.append(sink.pressure)
            if paused_at is None and sink.should_pause():
                paused_at = i

    with pytest.raises(SpoolFull):
        fill()
    assert paused_at is not None
    assert paused_at < len(pressures) - 1
    assert pressures == sorted(pressures)
    assert pressures[-1] <= 1.0
    assert sink.spool is not None
    assert sink.spool.bytes <= 20_000
    assert sink._buffered == 20  # the batch that did not fit is still held, not lost


def test_outage_results_arrive_exactly_once(
    http_clickhouse: HttpClickHouse, tmp_path: Path
) -> None:
    """ClickHouse refuses connections for a while, then returns: nothing lost, nothing doubled."""
    sink = _http_sink(http_clickhouse, tmp_path, batch_rows=50)
    metrics, sketches, alerts = rowgen.results(hours=4)
    before, during, after = metrics[:200], metrics[200:600], metrics[600:]
    sink.write(before)
    sink.flush()
    assert sink.pending_batches == 0

    http_clickhouse.stop()
    http_clickhouse.wait_refused()
    sink.write(during)
    sink.write(sketches)
    sink.write(alerts)
    sink.flush()  # returns: everything is fsync'd in the spool
    assert sink.pending_batches > 0
    assert not sink.available
    assert 0.0 < sink.pressure < sink.pause_at

    http_clickhouse.start()
    sink.write(after)
    for _ in range(100):
        sink.flush()
        if sink.pending_batches == 0:
            break
        sink._sleep(0.05)
    assert sink.pending_batches == 0
    client = sink.client
    assert _count(client, "SELECT count() FROM metrics") == len(metrics)  # raw: not one row doubled
    assert _count(client, "SELECT count() FROM metrics FINAL") == len(metrics)
    assert _count(client, "SELECT count() FROM sketches") == len(sketches)
    assert _count(client, "SELECT count() FROM alerts") == len(alerts)
    assert list(sink.spool.directory.iterdir()) == []  # type: ignore[union-attr]


def test_spool_survives_a_restart(http_clickhouse: HttpClickHouse, tmp_path: Path) -> None:
    sink = _http_sink(http_clickhouse, tmp_path, retries=0)
    http_clickhouse.stop()
    first, second = _metrics(5, value=1.0), _metrics(5, value=2.0, computed_at=1)
    sink.write(first)
    sink.flush()
    sink.write(second)  # same keys and version: the later insert must win, so order matters
    sink.flush()
    assert sink.pending_batches == 2
    del sink  # the process dies; the spool stays

    http_clickhouse.start()
    reborn = _http_sink(http_clickhouse, tmp_path)
    assert reborn.pending_batches == 2
    assert reborn.replay() == 2
    values = reborn.client.query("SELECT DISTINCT value FROM metrics FINAL").result_rows
    assert values == [(2.0,)]
    assert _count(reborn.client, "SELECT count() FROM metrics") == 10


def test_spool_orders_and_bounds(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=10_000)
    for value in range(5):
        spool.append("metrics", _metrics(2, value=float(value)))
    assert [b.rows[0].value for b in spool.batches()] == [0.0, 1.0, 2.0, 3.0, 4.0]
    used = spool.bytes
    with pytest.raises(SpoolFull, match=r"store\.spool_max_bytes"):
        spool.append("metrics", _metrics(200))
    assert spool.bytes == used
    assert len(Spool(tmp_path, max_bytes=10_000)) == 5
    for batch in spool.batches():
        spool.remove(batch)
    assert spool.bytes == 0
    assert list(tmp_path.iterdir()) == []


def test_timeouts_count_as_unavailable(http_clickhouse: HttpClickHouse, tmp_path: Path) -> None:
    client = open_store(http_clickhouse.dsn, send_receive_timeout=1)
    http_clickhouse.fault(503, 0, delay=3.0)
    with pytest.raises(StoreUnavailable, match="unreachable"):
        call("a slow query", client.query, "SELECT 1")
    http_clickhouse.fault(503, 0, delay=0.0)
    assert call("a quick query", client.query, "SELECT 1").result_rows == [(1,)]


def test_a_spooled_batch_the_store_refuses_is_set_aside(
    http_clickhouse: HttpClickHouse, tmp_path: Path
) -> None:
    sink = _http_sink(http_clickhouse, tmp_path, retries=0)
    sink.write(_metrics(1, start=0))
    sink.flush()  # learns the column types
    http_clickhouse.stop()
    sink.write(_metrics(3))
    sink.flush()
    http_clickhouse.start()
    sink.client.command("ALTER TABLE drifthouse.metrics DROP COLUMN n")  # the batch no longer fits
    assert sink.replay() == 0
    assert sink.pending_batches == 0
    assert [p.suffix for p in (tmp_path / "spool").iterdir()] == [".rejected"]
    assert [r.rows for r in sink.report().refused] == [3]


def test_from_config_takes_the_store_section(
    store_client: Any, database: str, tmp_path: Path
) -> None:
    store = StoreConfig(
        batch_rows=7,
        flush_interval="5s",
        spool_dir=tmp_path / "s",
        spool_max_bytes=1234,
        database=database,
    )
    sink = ClickHouseSink.from_config(store_client, store)
    assert (sink.batch_rows, sink.flush_interval_s, sink.database) == (7, 5.0, database)
    assert sink.spool is not None
    assert sink.spool.max_bytes == 1234


_CHILD = """
import sys
from drifthouse.logs import configure
from drifthouse.sinks import ClickHouseSink, open_store
configure(level="WARNING")  # logs to stderr; stdout talks to the test
from tests.sinks.test_clickhouse import _metrics
sink = ClickHouseSink(open_store(sys.argv[1]), spool_dir=sys.argv[2], retries=0)
print("connected", flush=True)
sys.stdin.readline()  # the store is down now
sink.write(_metrics(30, value=7.0))
sink.flush()
print("spooled", sink.pending_batches, flush=True)
sys.stdin.readline()  # killed before this returns
"""


def test_spool_survives_the_death_of_the_process(
    http_clickhouse: HttpClickHouse, tmp_path: Path
) -> None:
    spool_dir = tmp_path / "spool"
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, http_clickhouse.dsn, str(spool_dir)],
        cwd=Path(__file__).resolve().parents[2],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdin is not None
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "connected"
    http_clickhouse.stop()
    child.stdin.write("go\n")
    child.stdin.flush()
    assert child.stdout.readline().split() == ["spooled", "1"]
    child.kill()  # SIGKILL: no clean-up, no flush
    child.wait()

    http_clickhouse.start()
    client = open_store(http_clickhouse.dsn)
    migrate(client, "drifthouse")
    reborn = ClickHouseSink(client, spool_dir=spool_dir)
    assert reborn.replay() == 1
    assert client.query("SELECT count(), sum(value) FROM metrics FINAL").result_rows == [
        (30, 210.0)
    ]


# -- history of any span, and rows the store refuses for good ---------------------------------


def _prediction(ts: int, event_id: str, status: int = 200) -> PredictionRow:
    return PredictionRow(
        ts=ts, model="fraud", model_version="1", event_id=event_id, features="{}",
        prediction="0.5", latency_ms=3.0, status=status, segment="{}", kept_because="sample",
        sample_rate=1.0,
    )  # fmt: skip


MONTH = 31 * 24 * rowgen.HOUR


@pytest.mark.parametrize(
    "table",
    [
        pytest.param("metrics", id="metrics-150-months"),
        pytest.param("predictions", id="predictions-150-months"),
    ],
)
def test_a_batch_spanning_more_partitions_than_one_insert_takes_lands(
    store_client: Any, database: str, table: str
) -> None:
    """150 months of history in one batch: more than max_partitions_per_insert_block (100)."""
    start = 1_000_000_000_000  # 2001-09-09
    batch: list[Any] = (
        [
            rowgen.metric(start + i * MONTH, "fraud", "1", "amount", "psi", 0.1, computed_at=1)
            for i in range(150)
        ]
        if table == "metrics"
        else [_prediction(start + i * MONTH, f"e{i}") for i in range(150)]
    )
    sink = ClickHouseSink(store_client, database=database, batch_rows=1_000_000)
    sink.write(batch)
    sink.flush()
    assert _count(store_client, f"SELECT count() FROM {table} FINAL") == 150
    assert _count(store_client, f"SELECT uniqExact(_partition_id) FROM {table}") == 150
    report = sink.report()
    assert report.ok
    assert report.stored == {table: 150}


def test_splits_by_partition_keeping_each_partitions_order(
    store_client: Any, database: str
) -> None:
    sink = ClickHouseSink(store_client, database=database, max_partitions=3)
    rows = _metrics(10, start=0)  # ten hours of one month
    later = [
        rowgen.metric(i * MONTH, "fraud", "1.0.0", "amount", "psi", float(i)) for i in range(8)
    ]
    chunks = sink._chunks("metrics", [*later, *rows])
    assert [len(c) for c in chunks] == [
        13,
        3,
        2,
    ]  # months 0-2 (month 0 holds the ten hours), 3-5, 6-7
    month0 = [r for r in chunks[0] if r.window_start < MONTH]
    assert month0 == [later[0], *rows]  # in the order written: the later rewrite wins


def test_a_malformed_row_is_set_aside_and_the_rest_lands(
    store_client: Any, database: str, tmp_path: Path
) -> None:
    good = _metrics(40, start=0)
    bad = MetricRow(**{**msgspec.structs.asdict(good[7]), "value": "abc", "window_start": 5})  # type: ignore[arg-type]
    sink = ClickHouseSink(store_client, database=database, spool_dir=tmp_path / "spool")
    sink.write([*good[:20], bad, *good[20:]])
    sink.flush()
    assert _count(store_client, "SELECT count() FROM metrics FINAL") == 40
    report = sink.report()
    (refusal,) = report.refused
    assert (refusal.table, refusal.rows) == ("metrics", 1)
    assert "value" in refusal.reason
    assert "window_start 1970-01-01T00:00:00Z" in refusal.which
    assert refusal.kept_in is not None
    assert refusal.kept_in.suffix == ".rejected"
    assert report.stored == {"metrics": 40}
    assert not report.ok
    with pytest.raises(RowsNotStored, match=r"metrics: 1 rows refused .*kept in .*\.rejected"):
        report.check()
    assert sink.pending_batches == 0  # never spooled: nothing queues behind it


def test_rows_breaking_a_constraint_are_found_and_the_others_land(
    store_client: Any, database: str
) -> None:
    store_client.command(
        f"ALTER TABLE `{database}`.predictions ADD CONSTRAINT ok_status CHECK status < 500"
    )
    rows = [
        _prediction(1_700_000_000_000 + i, f"e{i}", 500 if i in (3, 64, 65) else 200)
        for i in range(100)
    ]
    sink = ClickHouseSink(store_client, database=database)
    sink.write(rows)
    sink.flush()
    assert _count(store_client, "SELECT count() FROM predictions FINAL") == 97
    (refusal,) = sink.report().refused
    assert refusal.rows == 3
    assert "VIOLATED_CONSTRAINT" in refusal.reason
    assert refusal.kept_in is None  # no spool: said so
    assert "not kept" in refusal.describe()


def test_a_bounded_run_with_rows_left_in_the_spool_says_so(
    http_clickhouse: HttpClickHouse, tmp_path: Path
) -> None:
    sink = _http_sink(http_clickhouse, tmp_path, retries=0)
    sink.write(_metrics(2, start=0))
    sink.flush()
    http_clickhouse.stop()
    sink.write(_metrics(5))
    report = finish(sink)
    assert report.stored == {"metrics": 2}
    assert report.spooled_rows == 5
    with pytest.raises(RowsNotStored, match=r"5 rows still in the spool at .*spool"):
        report.check()


def test_a_table_altered_to_a_conflicting_type_refuses_its_rows_only(
    store_client: Any, database: str, tmp_path: Path
) -> None:
    store_client.command(f"ALTER TABLE `{database}`.predictions MODIFY COLUMN features UInt32")
    sink = ClickHouseSink(store_client, database=database, spool_dir=tmp_path / "spool")
    logged = [_prediction(1_700_000_000_000 + i, f"e{i}") for i in range(30)]
    sink.write([*logged, *_metrics(12, start=0)])
    sink.flush()
    sink.write(_metrics(5, start=100 * rowgen.HOUR))  # later rows are not held behind them
    sink.flush()
    report = sink.report()
    assert report.stored == {"metrics": 17}
    assert [(r.table, r.rows) for r in report.refused] == [("predictions", 30)]
    assert "cannot take the values while inserting" in report.refused[0].reason
    assert "into predictions: ValueError" in report.refused[0].reason
    assert _count(store_client, "SELECT count() FROM metrics FINAL") == 17
    assert sink.pending_batches == 0


def test_rows_go_in_again_once_a_dropped_table_is_migrated_back(
    store_client: Any, database: str, tmp_path: Path
) -> None:
    sink = ClickHouseSink(store_client, database=database, spool_dir=tmp_path / "spool")
    sink.write(_metrics(3, start=0))
    sink.flush()
    store_client.command(f"DROP TABLE `{database}`.metrics")
    sink.write(_metrics(2, start=10 * rowgen.HOUR))
    sink.flush()
    (refusal,) = sink.report().refused
    assert "UNKNOWN_TABLE" in refusal.reason
    assert refusal.reason.endswith("run `drifthouse migrate`")
    migrate(store_client, database)  # what the refusal's log line asks an operator to do
    sink.write(_metrics(4, start=20 * rowgen.HOUR))
    sink.flush()  # the sink learns the table anew
    assert _count(store_client, "SELECT count() FROM metrics FINAL") == 4
    assert sink.report().stored == {"metrics": 7}
