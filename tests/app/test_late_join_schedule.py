"""The scheduled late join (``metrics.late_labels_every``, :mod:`drifthouse.app.late_join`), on
the real embedded engine: running it twice, or later, gives the rows of running it once; a merge
shard rewrites only its own models' windows; a label weeks after its prediction, over months of
event time, ends up in its window's label metrics; and the merger runs it on its own."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest

from drifthouse.app import late_join
from drifthouse.app.assembly import RunParts
from drifthouse.app.late_join import LateJoinSchedule, ShardLateJoins, next_slot, shard_models
from drifthouse.app.merge_loop import MergeLoop, MergeShards
from drifthouse.app.replay import replay
from drifthouse.config import Config
from drifthouse.kafka.shards import shard_of
from drifthouse.rows import LabelPaneRow, Row
from drifthouse.sinks import ClickHouseSink, migrate
from drifthouse.stream.dead_letters import MemoryDeadLetters
from tests.app.test_replay_late_labels import _files, _rows
from tests.app.test_worker_loops import FakePartials
from tests.stream.labels import test_late_join as labels_late

HOUR = 3_600_000
DAY = 24 * HOUR
START = 1_767_225_600_000  # 2026-01-01
MODELS = ("claims-triage", "refund-abuse")


def _config(**metrics: Any) -> Config:
    return Config.model_validate(
        {
            "windows": [{"size": "1h"}, {"size": "1d"}],
            "metrics": {"label_horizon": "7d", "late_labels": True, **metrics},
            "kafka": {"partials_partitions": 3},
        }
    )


def _short_replay(tmp_path: Path, client: Any, database: str) -> ClickHouseSink:
    """The two models of ``_files`` replayed with a 7-day horizon: late labels stored."""
    migrate(client, database)
    source, labels = _files(tmp_path)
    sink = ClickHouseSink(client, database=database)
    replay(_config(), source=source, labels=labels, sink=sink, run_id="short", profiles={},
           dead_letters=MemoryDeadLetters())  # fmt: skip
    return sink


def test_running_the_schedule_twice_or_later_gives_the_rows_of_running_once(
    tmp_path: Path, ch_database: tuple[Any, str]
) -> None:
    client, database = ch_database
    sink = _short_replay(tmp_path, client, database)
    before = _rows(client, database, "short")
    schedule = LateJoinSchedule(every_ms=HOUR)
    assert schedule.due(0)  # a new schedule runs at once
    first = schedule.run(client, database, _config(), {}, sink, run_id="short", now_ms=START)
    assert first.pairs > 300
    assert first.waiting == 0
    once = _rows(client, database, "short")
    assert sum(once.get(k) != v for k, v in before.items()) > 100  # it rewrote windows
    assert schedule.since_s > 0  # the next run reads only what was stored since this one
    assert schedule.next_ms == next_slot(START, HOUR) == START + HOUR
    assert not schedule.due(START + HOUR - 1)
    assert schedule.due(START + HOUR)
    schedule.run(client, database, _config(), {}, sink, run_id="short", now_ms=START + HOUR)
    assert _rows(client, database, "short") == once
    # A run much later, over everything, writes the same values again.
    later = LateJoinSchedule(every_ms=DAY)
    report = later.run(
        client, database, _config(), {}, sink, run_id="short", now_ms=START + 90 * DAY
    )
    assert report.pairs == first.pairs
    assert _rows(client, database, "short") == once


def test_a_shard_rewrites_only_its_own_models(tmp_path: Path, ch_database: tuple[Any, str]) -> None:
    client, database = ch_database
    sink = _short_replay(tmp_path, client, database)
    before = _rows(client, database, "short")
    shards = {m: shard_of(m, 3) for m in MODELS}
    assert len(set(shards.values())) == 2  # the two models live on different shards
    mine, _other = MODELS
    schedule = LateJoinSchedule(every_ms=HOUR)
    report = schedule.run(
        client, database, _config(), {}, sink, run_id="short", now_ms=START,
        owns=shard_models(shards[mine], 3),
    )  # fmt: skip
    assert report.models == 1
    after = _rows(client, database, "short")
    changed = {k[0] for k, v in after.items() if before.get(k) != v}
    assert changed == {mine}


def _weeks_late(tmp_path: Path) -> tuple[str, str, list[dict[str, Any]]]:
    """One model over 160 days, a prediction every 2 hours; labels 14 to 45 days later."""
    rng = np.random.default_rng(21)
    preds, labels, pairs = [], [], []
    for i in range(1_920):
        ts = START + i * 2 * HOUR
        eid = "loan-" + hashlib.blake2b(str(i).encode(), digest_size=8).hexdigest()
        score = float(rng.beta(2, 2))
        preds.append({"model": "loan-default", "model_version": "7", "ts": ts, "event_id": eid,
                      "prediction": score, "features": {"income": float(rng.gamma(3, 900))}})  # fmt: skip
        if rng.random() < 0.9:
            late = int(rng.integers(14 * DAY, 45 * DAY))
            label = int(rng.random() < score)
            labels.append(
                {"event_id": eid, "model": "loan-default", "ts": ts + late, "label": label}
            )
            pairs.append({"ts": ts, "score": score, "label": label, "label_ts": ts + late})
    labels.sort(key=lambda d: d["ts"])
    p, lab = tmp_path / "loans.jsonl", tmp_path / "loan-labels.jsonl"
    p.write_text("".join(json.dumps(d) + "\n" for d in preds))
    lab.write_text("".join(json.dumps(d) + "\n" for d in labels))
    return f"file:{p}", f"file:{lab}", pairs


def _accuracy(client: Any, database: str, run_id: str, window: str) -> dict[int, tuple[float, int]]:
    result = client.query(
        "SELECT toUnixTimestamp64Milli(window_start), value, n "
        f"FROM `{database}`.metrics FINAL WHERE run_id = {{run:String}} AND metric = 'accuracy' "
        "AND window = {window:String} AND segment = '' AND model_version != 'unknown'",
        parameters={"run": run_id, "window": window},
    )
    return {int(s): (float(v), int(n)) for s, v, n in result.result_rows}


def test_a_label_weeks_late_over_months_ends_up_in_its_window(
    tmp_path: Path, ch_database: tuple[Any, str]
) -> None:
    client, database = ch_database
    migrate(client, database)
    source, labels, pairs = _weeks_late(tmp_path)
    times = [p["ts"] for p in pairs]
    assert max(times) - min(times) > 100 * DAY
    sink = ClickHouseSink(client, database=database)
    config = _config()
    replay(config, source=source, labels=labels, sink=sink, run_id="loans", profiles={},
           dead_letters=MemoryDeadLetters())  # fmt: skip
    expected: dict[int, tuple[float, int]] = {}
    for start in sorted({t // DAY * DAY for t in times}):
        inside = [p for p in pairs if start <= p["ts"] < start + DAY]
        right = sum((p["score"] >= 0.5) == bool(p["label"]) for p in inside)
        expected[start] = (right / len(inside), len(inside))
    stream = _accuracy(client, database, "loans", "1d")
    assert sum(stream.get(k) != v for k, v in expected.items()) > 100  # every label is late
    LateJoinSchedule(every_ms=HOUR).run(client, database, config, {}, sink, run_id="loans")
    assert _accuracy(client, database, "loans", "1d") == expected
    # The one label 44 days after its prediction, in the 120th day's window.
    far = max(
        (p for p in pairs if p["ts"] >= START + 120 * DAY), key=lambda p: p["label_ts"] - p["ts"]
    )
    assert far["label_ts"] - far["ts"] > 40 * DAY
    assert _accuracy(client, database, "loans", "1d")[far["ts"] // DAY * DAY][1] >= 1


def _live_rows() -> list[Row]:
    """What a merger with a 7-day horizon wrote for ``labels_late``'s model, under ``live``."""
    rows: list[Row] = []
    labels_late._run(labels_late._config("7d", late=True), labels_late._inputs()[:2_000], rows)
    return [msgspec.structs.replace(r, run_id="live") for r in rows]  # type: ignore[type-var]


def _live_store(ch_database: tuple[Any, str], shards: int | None = None) -> tuple[Any, str, Config]:
    """A migrated store holding :func:`_live_rows`, and a merger's config for it: hourly and
    daily (6h hop) windows, a 7-day horizon, the late join every hour, ``shards`` merge shards."""
    client, database = ch_database
    migrate(client, database)
    settings: dict[str, Any] = {
        "windows": [{"size": "1h"}, {"size": "1d", "hop": "6h"}],
        "metrics": {"label_horizon": "7d", "late_labels": True, "late_labels_every": "1h"},
        "store": {"database": database},
    }
    if shards is not None:
        settings["kafka"] = {"partials_partitions": shards}
    sink = ClickHouseSink(client, database=database)
    sink.write(_live_rows())
    sink.flush()
    return client, database, Config.model_validate(settings)


def test_the_merger_runs_the_join_on_its_shards_schedule(ch_database: tuple[Any, str]) -> None:
    client, database, config = _live_store(ch_database, shards=3)
    before = _live(client, database)
    mine = shard_of(labels_late.MODEL, 3)
    clock = [START / 1000]

    def on_error(part: str, exc: BaseException) -> None:
        raise exc

    def make(shard: int) -> MergeLoop:
        return MergeLoop(
            RunParts.of(config, {}), [0], FakePartials(),
            open_sink=lambda: ClickHouseSink(client, database=database),
            on_error=on_error, shard=shard,
        )  # fmt: skip

    async def scenario() -> tuple[bool, dict[int, int], dict[int, int]]:
        shards = MergeShards(make)
        late = ShardLateJoins(config, clock=lambda: clock[0])
        for shard in range(3):
            loop = shards.loops[shard] = make(shard)
            loop.merger = await loop._open(0)
        await late.tick(shards)  # a merger's first run waits for the next slot
        await late.wait()
        untouched = _live(client, database) == before
        clock[0] = next_slot(START, HOUR) / 1000
        await late.tick(shards)
        await late.wait()
        runs = {s: late.schedules[s].runs for s in range(3)}
        models = {s: late.schedules[s].last.models for s in range(3)}  # type: ignore[union-attr]
        await shards.close()
        return untouched, runs, models

    untouched, runs, models = asyncio.run(scenario())
    assert untouched
    assert runs == {0: 1, 1: 1, 2: 1}
    assert models == {s: int(s == mine) for s in range(3)}  # each over its own models only
    after = _live(client, database)
    assert len(after) > len(before)  # the windows whose labels all came late have their rows


def _live(client: Any, database: str) -> dict[tuple[Any, ...], tuple[float, int]]:
    result = client.query(
        "SELECT window, toUnixTimestamp64Milli(window_start), model_version, segment, feature, "
        f"metric, value, n FROM `{database}`.metrics FINAL WHERE run_id = 'live'"
    )
    return {tuple(r[:6]): (float(r[6]), int(r[7])) for r in result.result_rows}


@pytest.mark.parametrize(
    ("now", "every", "slot"),
    [
        pytest.param(START, HOUR, START + HOUR, id="on-a-slot"),
        pytest.param(START + 1, HOUR, START + HOUR, id="inside-a-slot"),
        pytest.param(START + 5 * HOUR, DAY, START + DAY, id="daily-at-midnight-utc"),
    ],
)
def test_next_slot(now: int, every: int, slot: int) -> None:
    assert next_slot(now, every) == slot


def test_a_window_that_waited_is_rewritten_by_a_later_run(
    ch_database: tuple[Any, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its pairs were stored before the previous run began: the next run still reaches them."""
    monkeypatch.setattr(late_join, "MARGIN_S", 0)  # no slack: the reach back alone finds them
    client, database = ch_database
    migrate(client, database)
    items = labels_late._inputs()
    long_rows: list[Row] = []
    labels_late._run(labels_late._config("400d", late=False), items, long_rows)
    expected = labels_late._latest(long_rows)
    rows: list[Row] = []
    labels_late._run(labels_late._config("7d", late=True), items, rows)
    # The panes the stream hands on at the end of its input come later.
    last = [r for r in rows if isinstance(r, LabelPaneRow) and r.computed_at == 10**6]
    sink = ClickHouseSink(client, database=database)
    sink.write([r for r in rows if not (isinstance(r, LabelPaneRow) and r.computed_at == 10**6)])
    sink.flush()
    time.sleep(2.1)  # inserted_at has whole seconds
    config = labels_late._config("7d", late=True)
    schedule = LateJoinSchedule(every_ms=HOUR)
    first = schedule.run(client, database, config, {}, sink, run_id=labels_late.RUN)
    assert first.waiting > 0
    assert first.waiting_since_s is not None
    assert schedule.since_s == first.waiting_since_s
    sink.write(last)
    sink.flush()
    second = schedule.run(client, database, config, {}, sink, run_id=labels_late.RUN)
    assert second.waiting == 0
    assert second.windows >= first.waiting
    after = labels_late._stored(client, database)
    wrong = {k: (after.get(k), v) for k, v in expected.items() if after.get(k) != v}
    assert not wrong, f"{len(wrong)} rows differ, e.g. {list(wrong.items())[:3]}"


def test_a_merger_whose_store_fails_tries_again_a_minute_later(
    ch_database: tuple[Any, str],
) -> None:
    client, database, config = _live_store(ch_database)
    before = _live(client, database)
    clock = [next_slot(START, HOUR) / 1000]

    def on_error(part: str, exc: BaseException) -> None:
        raise exc

    def make(shard: int) -> MergeLoop:
        return MergeLoop(
            RunParts.of(config, {}), [0], FakePartials(),
            open_sink=lambda: ClickHouseSink(client, database=database),
            on_error=on_error, shard=shard,
        )  # fmt: skip

    async def scenario() -> list[tuple[int, int | None]]:
        shards = MergeShards(make)
        late = ShardLateJoins(config, clock=lambda: clock[0])
        loop = shards.loops[0] = make(0)
        loop.merger = await loop._open(0)
        seen = []
        await late.tick(shards)  # opened: its first run at the next slot
        client.command(f"RENAME TABLE `{database}`.labels TO `{database}`.labels_away")
        clock[0] = next_slot(int(clock[0] * 1000), HOUR) / 1000
        await late.tick(shards)
        await late.wait()  # the store fails this run: no crash, tried again in a minute
        seen.append((late.schedules[0].runs, late.schedules[0].next_ms))
        client.command(f"RENAME TABLE `{database}`.labels_away TO `{database}`.labels")
        clock[0] += 59
        await late.tick(shards)
        await late.wait()
        seen.append((late.schedules[0].runs, late.schedules[0].next_ms))
        clock[0] += 1
        await late.tick(shards)
        await late.wait()
        seen.append((late.schedules[0].runs, late.schedules[0].next_ms))
        await shards.close()
        return seen

    slot = next_slot(next_slot(START, HOUR), HOUR)
    seen = asyncio.run(scenario())
    assert seen == [(0, slot + 60_000), (0, slot + 60_000), (1, slot + HOUR)]
    assert len(_live(client, database)) > len(before)


def test_the_shards_batches_wait_for_one_chunk_of_a_run_at_most(
    ch_database: tuple[Any, str],
) -> None:
    """The run takes its shard's lock a chunk (7 days) at a time: the model's
    predictions (six weeks) are seven chunks, between which the shard's batches (and a rebalance) go."""
    client, database, config = _live_store(ch_database)
    clock = [START / 1000]

    def on_error(part: str, exc: BaseException) -> None:
        raise exc

    loop = MergeLoop(
        RunParts.of(config, {}), [0], FakePartials(),
        open_sink=lambda: ClickHouseSink(client, database=database), on_error=on_error,
    )  # fmt: skip

    async def scenario() -> list[int]:
        shards = MergeShards(lambda shard: loop)
        late = ShardLateJoins(config, clock=lambda: clock[0])
        shards.loops[0] = loop
        loop.merger = await loop._open(0)
        await late.tick(shards)
        clock[0] = next_slot(START, HOUR) / 1000
        await late.tick(shards)
        taken = []  # a batch's turn: had the run ended?
        while not late.schedules[0].runs:
            async with loop.lock:
                taken.append(late.schedules[0].runs)
            await asyncio.sleep(0)
        await late.wait()
        await shards.close()
        return taken

    taken = asyncio.run(scenario())
    assert taken.count(0) >= 5


def test_a_merger_that_restarts_resumes_its_shards_late_join_schedule(
    ch_database: tuple[Any, str],
) -> None:
    """The schedule's progress (how far back the next run looks, when it is due) goes with the
    merger's commit: a merger that restarts, here or on another host, neither looks at
    everything again nor waits past a slot its predecessor had not run."""
    client, database, config = _live_store(ch_database)
    partials = FakePartials()
    clock = [START / 1000]

    def on_error(part: str, exc: BaseException) -> None:
        raise exc

    def make(shard: int) -> MergeLoop:
        return MergeLoop(
            RunParts.of(config, {}), [0], partials,
            open_sink=lambda: ClickHouseSink(client, database=database),
            on_error=on_error, shard=shard,
        )  # fmt: skip

    async def merger(late: ShardLateJoins) -> tuple[MergeShards, LateJoinSchedule]:
        shards = MergeShards(make)
        loop = shards.loops[0] = make(0)
        loop.merger = await loop._open(0)
        await late.tick(shards)
        return shards, late.schedules[0]

    async def scenario() -> tuple[tuple[int, int | None], tuple[int, int | None], int, int]:
        late = ShardLateJoins(config, clock=lambda: clock[0])
        shards, schedule = await merger(late)
        clock[0] = next_slot(START, HOUR) / 1000
        await late.tick(shards)
        await late.wait()
        assert schedule.runs == 1
        ran = (schedule.since_s, schedule.next_ms)
        # Its next batch: a snapshot, and the commit that names it.
        first = shards.loops[0].merger
        assert first is not None
        assert first.states is not None
        await shards.loops[0]._snapshot(first, first.states)
        await partials.commit(*first.side.checkpoint())
        await shards.close()
        # Restarted (another process) past the slot its predecessor had not run yet.
        partials.commit_found = partials.commits[-1]
        restarted_ms = (ran[1] or 0) + 60_000
        clock[0] = restarted_ms / 1000
        late = ShardLateJoins(config, clock=lambda: clock[0])
        shards, schedule = await merger(late)
        await late.wait()
        resumed = (schedule.since_s, schedule.next_ms)
        runs = schedule.runs
        await shards.close()
        return ran, resumed, runs, restarted_ms

    ran, resumed, runs, restarted_ms = asyncio.run(scenario())
    assert ran[0] > 0  # the first run looked at everything, the next ones since it began
    # The slot due when it restarted is run at once, looking back as far as it was to.
    assert runs == 1
    assert resumed[0] >= ran[0]
    assert resumed[1] == next_slot(restarted_ms, HOUR)
