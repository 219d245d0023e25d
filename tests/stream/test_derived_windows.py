"""Long windows built from stored base windows (``windows: [{size: 1d, from: 1h}]``).

A derived window holds no pane in the source stages nor in the merge stage: the merger stores
each closed base window's whole state (table ``window_states``) and, once the watermark passes
the long window's end, merges the stored states of its span in ascending start and evaluates
it as any window (docs/configuration.md "windows").
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from drifthouse.app.assembly import RunParts
from drifthouse.app.pipeline import Pipeline
from drifthouse.app.replay import replay
from drifthouse.config import Config
from drifthouse.errors import SketchError, StoreUnavailable
from drifthouse.sinks import ClickHouseSink
from drifthouse.sinks.base import MemorySink
from drifthouse.sinks.schema import migrate
from drifthouse.stream import derived
from drifthouse.stream.dead_letters import MemoryDeadLetters
from drifthouse.stream.derived import DerivedWindows
from drifthouse.stream.sources import Message

MINUTE = 60_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR
START = 1_767_225_600_000  # 2026-01-01T00:00:00Z, a day boundary


def _config(long: dict[str, Any], **extra: Any) -> Config:
    return Config.model_validate(
        {
            "windows": [{"size": "1h"}, long],
            "models": {"fraud": {"task": "classification"}, "churn": {}},
            **extra,
        }
    )


STREAM = {"size": "1d"}
DERIVED = {"size": "1d", "from": "1h"}


def _events(days: float, every_ms: int, *, skip_hours: Sequence[int] = ()) -> list[bytes]:
    """Two models, a numeric and a categorical feature, segments, latency and errors; no event
    in the hours (since START) listed in ``skip_hours``."""
    out = []
    for i in range(int(days * DAY // every_ms)):
        ts = START + i * every_ms
        if (ts - START) // HOUR in skip_hours:
            continue
        model = "fraud" if i % 3 else "churn"
        score = (i * 7919 % 1000) / 1000
        out.append(
            json.dumps(
                {
                    "model": model,
                    "ts": ts,
                    "event_id": f"e{i}",
                    "prediction": score,
                    "latency_ms": float(i * 31 % 250) + 0.125,
                    "status": 500 if i % 41 == 0 else 200,
                    "segment": {"country": ["DE", "FR", "US"][i % 3]},
                    "features": {
                        "amount": float(i % 97) * 1.37,
                        "channel": ["web", "app", "pos"][i * 13 % 3],
                    },
                }
            ).encode()
        )
    return out


def _write(path: Path, lines: Sequence[bytes]) -> str:
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return f"file:{path}"


def _key(row: Any) -> tuple[Any, ...]:
    return tuple(
        getattr(row, f)
        for f in ("window", "window_start", "model", "model_version", "feature", "segment",
                  "metric", "value", "n")
    )  # fmt: skip


def assert_same_rows(got: list[tuple[Any, ...]], expected: list[tuple[Any, ...]]) -> None:
    """The same rows; values to the last digit, or within 1e-12 relative (sums of floats
    merged hour by hour rather than event by event: docs/configuration.md "windows")."""
    assert [r[:7] + r[8:] for r in got] == [r[:7] + r[8:] for r in expected]
    for g, e in zip(got, expected, strict=True):
        assert g[7] == pytest.approx(e[7], rel=1e-12, abs=1e-12, nan_ok=True), (g, e)
    exact = sum(
        g[7] == e[7] or (g[7] != g[7] and e[7] != e[7]) for g, e in zip(got, expected, strict=True)
    )
    assert exact >= 0.9 * len(got)  # most values are counts, ranks or exact ratios


def _stored_metrics(client: Any, database: str, window: str) -> list[tuple[Any, ...]]:
    result = client.query(
        "SELECT window, toUnixTimestamp64Milli(window_start), model, model_version, feature, "
        f"segment, metric, value, n FROM `{database}`.metrics FINAL WHERE window = {{w:String}}",
        parameters={"w": window},
    )
    return sorted(tuple(r) for r in result.result_rows)


def _store(ch_database: tuple[Any, str]) -> ClickHouseSink:
    client, database = ch_database
    migrate(client, database)
    return ClickHouseSink(client, database=database)


def test_a_derived_day_is_the_day_the_stream_builds_to_the_last_digit(
    tmp_path: Path, ch_database: tuple[Any, str]
) -> None:
    source = _write(tmp_path / "preds.jsonl", _events(3, 7 * MINUTE, skip_hours=(30, 31, 50)))
    today = MemorySink()
    replay(_config(STREAM), source=source, sink=today, run_id="r", profiles={},
           dead_letters=MemoryDeadLetters())  # fmt: skip
    expected = sorted(_key(r) for r in today.rows("metrics") if r.window == "1d")
    assert len({r[1] for r in expected}) == 3  # three days, each with rows

    client, database = ch_database
    sink = _store(ch_database)
    replay(_config(DERIVED), source=source, sink=sink, run_id="r", profiles={},
           dead_letters=MemoryDeadLetters())  # fmt: skip
    assert_same_rows(_stored_metrics(client, database, "1d"), expected)
    # The hourly windows are those of a run without the derived day.
    hourly = sorted(_key(r) for r in today.rows("metrics") if r.window == "1h")
    assert _stored_metrics(client, database, "1h") == hourly


def test_a_derived_day_over_several_partitions_matches_the_stream_day() -> None:
    events = _events(2, 5 * MINUTE)

    def run(long: dict[str, Any]) -> list[tuple[Any, ...]]:
        sink = MemorySink()
        pipe = Pipeline(config=_config(long), profiles={}, sink=sink,
                        dead_letters=MemoryDeadLetters(), run_id="r")  # fmt: skip
        pipe.expect_partitions([0, 1, 2])
        batch = [Message(v, i % 3, i // 3) for i, v in enumerate(events)]
        for lo in range(0, len(batch), 50):
            pipe.process(batch[lo : lo + 50])
        pipe.finish()
        sink.flush()
        return sorted(_key(r) for r in sink.rows("metrics") if r.window == "1d")

    expected = run(STREAM)
    assert expected
    assert_same_rows(run(DERIVED), expected)


def test_the_checkpoint_goes_back_no_further_than_the_short_window() -> None:
    every = MINUTE
    events = _events(2, every)
    per_hour = HOUR // every

    def checkpoint_offset(long: dict[str, Any]) -> int:
        parts = RunParts.of(_config(long), {})
        stage = parts.partition_stage(0, MemoryDeadLetters())
        msgs = [Message(v, 0, i) for i, v in enumerate(events)]
        for lo in range(0, len(msgs), 100):
            stage.process(msgs[lo : lo + 100])
        assert stage.windows.open_windows() <= 2  # one hour's pane of each model
        return stage.checkpoint().offset

    offset = checkpoint_offset(DERIVED)
    # At most one hour (the open 1h pane) is re-read after a restart.
    assert len(events) - offset <= per_hour
    # Without `from`, the whole second day is re-read (its 1d pane is open).
    with pytest.raises(AssertionError):
        checkpoint_offset(STREAM)


@pytest.mark.parametrize("load_states", [24, derived.LOAD_STATES])
def test_a_derived_day_whose_stored_hours_are_lost_is_not_written(
    ch_database: tuple[Any, str], monkeypatch: pytest.MonkeyPatch, load_states: int
) -> None:
    monkeypatch.setattr(derived, "LOAD_STATES", load_states)  # a read per model, or one for all
    client, database = ch_database
    sink = _store(ch_database)
    events = _events(2, 10 * MINUTE)
    pipe = Pipeline(config=_config(DERIVED), profiles={}, sink=sink,
                    dead_letters=MemoryDeadLetters(), run_id="r")  # fmt: skip
    msgs = [Message(v, 0, i) for i, v in enumerate(events)]
    noon = next(i for i, v in enumerate(events) if json.loads(v)["ts"] >= START + 12 * HOUR)
    pipe.process(msgs[:noon])
    sink.flush()
    stored = client.query(
        f"SELECT count() FROM `{database}`.window_states FINAL WHERE window = '1h' "
        "AND window_start = fromUnixTimestamp64Milli({s:Int64}, 'UTC')",
        parameters={"s": START + 5 * HOUR},
    ).result_rows[0][0]
    assert stored == 2  # both models' 05:00 hour
    client.command(
        f"DELETE FROM `{database}`.window_states WHERE window_start = "
        f"fromUnixTimestamp64Milli({START + 5 * HOUR}, 'UTC')"
    )
    pipe.process(msgs[noon:])  # the first day closes: its 05:00 hour is missing
    assert pipe.merge.derived.incomplete == 2  # both models' first day held back, said so
    with pytest.raises(SketchError, match=r"1d window .* 2026-01-01T05:00") as err:
        pipe.finish()
    assert "window_states" in str(err.value)
    sink.flush()
    # Never a partial day: no prediction metric of the first day; its label metrics (here: no
    # label) come from the merger's label join, as for any window.
    days = {r[1] for r in _stored_metrics(client, database, "1d") if r[6] == "events"}
    assert days == {START + DAY}


def test_a_derived_window_must_name_a_tumbling_base_in_the_list() -> None:
    with pytest.raises(ValueError, match="tumbling window of the list"):
        _config({"size": "1d", "from": "2h"})
    with pytest.raises(ValueError, match="tumbling window of the list"):
        _config({"size": "90m", "from": "1h"})


def test_a_merger_resumed_from_its_snapshot_writes_the_same_derived_days() -> None:
    config = _config(DERIVED)
    events = [Message(v, 0, i) for i, v in enumerate(_events(2, 10 * MINUTE))]

    def run(cut: int | None) -> list[tuple[Any, ...]]:
        parts = RunParts.of(config, {})
        sink = MemorySink()
        stage = parts.partition_stage(0, MemoryDeadLetters())
        merge = parts.merge_stage(sink, run_id="r", computed_at=lambda: 0)
        for lo in range(0, len(events), 25):
            if cut is not None and lo == cut:  # a new merger, resumed from the snapshot
                snapshot, owed = merge.snapshot(), merge.derived.to_bytes()
                assert owed != DerivedWindows(merge.specs).to_bytes()  # the day owes hours
                merge = parts.merge_stage(sink, run_id="r", computed_at=lambda: 0)
                merge.restore_snapshot(snapshot)
                assert merge.derived.to_bytes() == owed
            merge.add(stage.process(events[lo : lo + 25]))
            merge.watermark(0, stage.watermark)
            merge.emit()
        merge.add(stage.finish())
        merge.emit(final=True)
        sink.flush()
        return sorted(_key(r) for r in sink.rows("metrics") if r.window == "1d")

    whole = run(None)
    assert len({r[1] for r in whole}) == 2
    assert run(100) == whole  # mid-morning of the first day: its day owes hours already stored


@pytest.mark.parametrize("long", [STREAM, DERIVED], ids=["stream", "derived"])
def test_a_partition_waking_up_rewrites_the_derived_day_with_its_events(
    long: dict[str, Any],
) -> None:
    """Partition 1 is idle while the first day is written from partition 0; it then delivers
    events of that day's last hour: the hour is rewritten, and so is the day, whole."""
    sink = MemorySink()
    pipe = Pipeline(config=_config(long), profiles={}, sink=sink,
                    dead_letters=MemoryDeadLetters(), run_id="r")  # fmt: skip
    pipe.expect_partitions([0, 1])
    events = _events(1.5, 10 * MINUTE)
    late = [_event_at(START + 23 * HOUR + k * MINUTE, f"late{k}") for k in range(5)]
    pipe.process([Message(_event_at(START, "first"), 1, 0)])
    pipe.mark_idle(1)
    pipe.process([Message(v, 0, i) for i, v in enumerate(events)])
    sink.flush()
    day = [
        r for r in sink.rows("metrics") if (r.window, r.metric, r.segment) == ("1d", "events", "")
    ]
    per_day = DAY // (10 * MINUTE)  # 144 events of day one: a third churn, the rest fraud
    assert sorted(r.value for r in day) == [per_day // 3, per_day - per_day // 3]
    pipe.mark_idle(1, False)
    pipe.process([Message(v, 1, 1 + k) for k, v in enumerate(late)])
    pipe.process([Message(_event_at(START + 36 * HOUR, "last"), 1, 9)])
    sink.flush()
    fraud = next(
        r for r in sink.rows("metrics")
        if (r.window, r.window_start, r.model, r.metric, r.segment)
        == ("1d", START, "fraud", "events", "")
    )  # fmt: skip
    assert fraud.value == per_day - per_day // 3 + 1 + len(late)


def _event_at(ts: int, event_id: str) -> bytes:
    return json.dumps(
        {"model": "fraud", "ts": ts, "event_id": event_id, "prediction": 0.5,
         "features": {"amount": 1.0, "channel": "web"}}
    ).encode()  # fmt: skip


def test_a_derived_window_listed_first_changes_nothing() -> None:
    """The automatic reference is built on the first window kept in the stream, wherever the
    derived window is listed."""
    events = [Message(v, 0, i) for i, v in enumerate(_events(2, 15 * MINUTE))]

    def run(windows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        config = Config.model_validate({"windows": windows, "models": {"fraud": {}, "churn": {}}})
        sink = MemorySink()
        pipe = Pipeline(config=config, profiles={}, sink=sink,
                        dead_letters=MemoryDeadLetters(), run_id="r")  # fmt: skip
        pipe.process(events)
        pipe.finish()
        sink.flush()
        return sorted(_key(r) for r in sink.rows("metrics"))

    rows = run([{"size": "1h"}, DERIVED])
    assert any(r[6] == "psi" and r[0] == "1d" for r in rows)  # drift on the automatic reference
    assert run([DERIVED, {"size": "1h"}]) == rows


def test_a_derived_week_is_the_week_the_stream_builds(tmp_path: Path) -> None:
    source = _write(tmp_path / "preds.jsonl", _events(15, 30 * MINUTE))

    def run(long: dict[str, Any]) -> list[tuple[Any, ...]]:
        sink = MemorySink()
        replay(_config(long), source=source, sink=sink, run_id="r", profiles={},
               dead_letters=MemoryDeadLetters())  # fmt: skip
        return sorted(_key(r) for r in sink.rows("metrics") if r.window == "1w")

    expected = run({"size": "7d"})
    assert len({r[1] for r in expected}) == 3  # weeks start on Thursdays: three over 15 days
    assert_same_rows(run({"size": "7d", "from": "1h"}), expected)


def test_a_derived_day_has_the_label_metrics_of_the_stream_day(tmp_path: Path) -> None:
    from tests.app.test_replay import _stream

    preds, labels = _stream(3, 40 * MINUTE, 2 * HOUR)
    source = _write(tmp_path / "preds.jsonl", preds)
    labelled = _write(tmp_path / "labels.jsonl", labels)

    def run(long: dict[str, Any]) -> list[tuple[Any, ...]]:
        sink = MemorySink()
        replay(_config(long), source=source, labels=labelled, sink=sink, run_id="r",
               profiles={}, dead_letters=MemoryDeadLetters())  # fmt: skip
        return sorted(_key(r) for r in sink.rows("metrics") if r.window == "1d")

    expected = run(STREAM)
    assert sum(r[7] for r in expected if (r[5], r[6]) == ("", "labels")) == len(labels)
    assert_same_rows(run(DERIVED), expected)


def test_a_store_away_when_the_day_is_due_delays_it_a_base_window() -> None:
    sink = MemorySink()
    pipe = Pipeline(config=_config(DERIVED), profiles={}, sink=sink,
                    dead_letters=MemoryDeadLetters(), run_id="r")  # fmt: skip
    events = [Message(v, 0, i) for i, v in enumerate(_events(2, 10 * MINUTE))]
    ts = [json.loads(m.value)["ts"] for m in events]
    day_end = next(i for i, t in enumerate(ts) if t >= START + DAY + 10 * MINUTE)
    pipe.process(events[:day_end])  # the last hour of day one is still held by lateness
    sink.flush()
    sink.fail_next.append(StoreUnavailable("the store is away"))
    pipe.process(events[day_end : day_end + 1])  # the day is due: its flush fails
    assert not [r for r in sink.written if getattr(r, "window", "") == "1d"]
    assert pipe.merge.derived.incomplete == 0  # waiting for the store is not a loss
    later = next(i for i, t in enumerate(ts) if t >= START + DAY + 70 * MINUTE)
    pipe.process(events[day_end + 1 : later])  # a base window later it is tried again
    sink.flush()
    days = {r.window_start for r in sink.rows("metrics") if r.window == "1d"}
    assert days == {START}


def test_a_derived_sliding_day_is_the_sliding_day_the_stream_builds(tmp_path: Path) -> None:
    source = _write(tmp_path / "preds.jsonl", _events(3, 11 * MINUTE, skip_hours=(7, 8, 9)))

    def run(long: dict[str, Any]) -> list[tuple[Any, ...]]:
        sink = MemorySink()
        replay(_config(long), source=source, sink=sink, run_id="r", profiles={},
               dead_letters=MemoryDeadLetters())  # fmt: skip
        return sorted(_key(r) for r in sink.rows("metrics") if r.window == "1d/6h")

    expected = run({"size": "1d", "hop": "6h"})
    assert len({r[1] for r in expected}) == 3 * 4 + 3  # every 6 hours, the first day's too
    assert_same_rows(run({"size": "1d", "hop": "6h", "from": "1h"}), expected)
    with pytest.raises(ValueError, match="whole number of base windows"):
        _config({"size": "1d", "hop": "90m", "from": "1h"})
