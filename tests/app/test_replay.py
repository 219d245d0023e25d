"""``replay()`` of a file with ``--labels``: labels join as they do live, whatever the span."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from drifthouse.app.replay import LabelCounts, replay
from drifthouse.config import Config
from drifthouse.errors import SourceError
from drifthouse.sinks.base import MemorySink
from drifthouse.stream.dead_letters import MemoryDeadLetters
from tests.live_feed import live_run

MINUTE = 60_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR
START = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def _config(**metrics: object) -> Config:
    return Config.model_validate(
        {
            "windows": [{"size": "1h"}, {"size": "1d"}],
            "models": {"fraud": {"task": "classification"}, "churn": {}},
            "metrics": metrics,
        }
    )


def _stream(days: int, every_ms: int, delay_ms: int) -> tuple[list[bytes], list[bytes]]:
    """Predictions of two models every ``every_ms`` for ``days``, each labelled ``delay_ms``
    later; the labels file is in label-time order, as a labels topic is."""
    preds, labels = [], []
    n = days * DAY // every_ms
    for i in range(n):
        ts = START + i * every_ms
        model = "fraud" if i % 3 else "churn"
        score = (i * 7919 % 1000) / 1000
        preds.append(
            json.dumps(
                {"model": model, "ts": ts, "event_id": f"e{i}", "prediction": score,
                 "features": {"amount": float(i % 97)}}
            ).encode()
        )  # fmt: skip
        labels.append(
            json.dumps(
                {
                    "event_id": f"e{i}",
                    "model": model,
                    "ts": ts + delay_ms,
                    "label": int(score > 0.4),
                }
            ).encode()
        )
    return preds, labels


def _write(path: Path, lines: Sequence[bytes]) -> str:
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return f"file:{path}"


def _key(row: object) -> tuple[object, ...]:
    return tuple(
        getattr(row, f)
        for f in ("window", "window_start", "model", "feature", "segment", "metric", "value", "n")
    )


@pytest.mark.parametrize(
    ("days", "every_ms", "delay_ms", "horizon"),
    [
        pytest.param(120, 90 * MINUTE, 2 * HOUR, "7d", id="four-months-labels-2h-later"),
        pytest.param(30, 40 * MINUTE, 3 * DAY, "7d", id="labels-3-days-later"),
        pytest.param(20, HOUR, 2 * HOUR, "1d", id="span-20-horizons"),
    ],
)
def test_file_replay_joins_every_label_whatever_the_span(
    tmp_path: Path, days: int, every_ms: int, delay_ms: int, horizon: str
) -> None:
    config = _config(label_horizon=horizon)
    preds, labels = _stream(days, every_ms, delay_ms)
    sink = MemorySink()
    summary = replay(
        config,
        source=_write(tmp_path / "preds.jsonl", preds),
        labels=_write(tmp_path / "labels.jsonl", labels),
        sink=sink,
        run_id="r",
        profiles={},
        dead_letters=MemoryDeadLetters(),
    )
    assert summary.labels is not None
    assert summary.labels == LabelCounts(len(labels), len(labels), 0, 0, 0, 0, 0)
    got = sorted(_key(r) for r in sink.rows("metrics"))
    labelled = sum(
        r.value
        for r in sink.rows("metrics")
        if (r.window, r.metric, r.segment) == ("1d", "labels", "")
    )
    assert labelled == len(labels)  # the windows' label metrics hold every label
    assert got == sorted(_key(r) for r in live_run(config, preds, labels).rows("metrics"))


@pytest.mark.parametrize("lead", ["invalid-lines-first", "from-later"])
def test_labels_join_when_the_first_batches_hold_no_prediction(tmp_path: Path, lead: str) -> None:
    """Micro-batches with no prediction in them (a file's first 1,100 lines refused, or every
    event before ``--from``) released every held label at once: the join's clock jumped to the
    last label and its horizon evicted the labels of the predictions still to come (seen
    failing: most labels "unmatched"). Labels must join as in the plain run."""
    config = _config(label_horizon="7d")
    preds, labels = _stream(30, 10 * MINUTE, 3 * HOUR)
    from_ms = None
    if lead == "invalid-lines-first":
        lines = [b'{"model": "fraud", "ts": "not a time"}'] * 1_100 + preds
    else:  # the first 1,440 lines are before it, and most labels more than 7 days after it
        lines, from_ms = preds, START + 10 * DAY
    plain_preds = [p for p in preds if from_ms is None or json.loads(p)["ts"] >= from_ms]

    def run(source: Sequence[bytes], name: str, start: int | None) -> tuple[LabelCounts, list]:
        sink = MemorySink()
        summary = replay(
            config, source=_write(tmp_path / f"{name}.jsonl", source),
            labels=_write(tmp_path / "labels.jsonl", labels), sink=sink, run_id="r",
            profiles={}, dead_letters=MemoryDeadLetters(), from_ms=start,
        )  # fmt: skip
        assert summary.labels is not None
        return summary.labels, sorted(_key(r) for r in sink.rows("metrics"))

    counts, rows = run(lines, "lead", from_ms)
    want_counts, want_rows = run(plain_preds, "plain", None)
    assert counts.joined == want_counts.joined == len(plain_preds)
    # the same rows, but the count of the refused lines
    assert [r for r in rows if r[5] != "invalid_events"] == [
        r for r in want_rows if r[5] != "invalid_events"
    ]


def test_predictions_out_of_order_by_more_than_the_label_horizon_fail_the_run(
    tmp_path: Path,
) -> None:
    """Predictions shuffled within each day (none late: their windows are open) with a label
    horizon of 2 hours: a label released as the predictions' time passed it waits for a
    prediction that comes hours of event time later, and the horizon drops it. The replay
    stored the rest and exited 0, the labels only "unmatched" (a tester saw MAE off by 33%).
    Now the run says the file is out of order by more than the horizon, and fails."""
    import random

    from drifthouse.app.unused import check_inputs
    from drifthouse.errors import InputsNotUsed

    config = Config.model_validate(
        {"windows": [{"size": "1d"}], "models": {"fraud": {"task": "classification"}, "churn": {}},
         "metrics": {"label_horizon": "2h"}}
    )  # fmt: skip
    preds, labels = _stream(10, 30 * MINUTE, HOUR)
    rng = random.Random(4)
    by_day: dict[int, list[bytes]] = {}
    for p in preds:
        by_day.setdefault((json.loads(p)["ts"] - START) // DAY, []).append(p)
    shuffled = []
    for day in sorted(by_day):
        rng.shuffle(by_day[day])
        shuffled += by_day[day]
    sorted_summary = replay(
        config, source=_write(tmp_path / "sorted.jsonl", preds),
        labels=_write(tmp_path / "labels.jsonl", labels), sink=MemorySink(), run_id="r",
        profiles={}, dead_letters=MemoryDeadLetters(),
    )  # fmt: skip
    check_inputs(sorted_summary)  # in order: every label joins, nothing to say
    summary = replay(
        config, source=_write(tmp_path / "shuffled.jsonl", shuffled),
        labels=_write(tmp_path / "labels.jsonl", labels), sink=MemorySink(), run_id="r",
        profiles={}, dead_letters=MemoryDeadLetters(),
    )  # fmt: skip
    assert summary.stats.late == 0
    assert summary.labels is not None
    assert summary.labels.unmatched > 0
    with pytest.raises(InputsNotUsed, match=r"out of event-time order by up to \d+"):
        check_inputs(summary)


def test_the_summary_counts_predictions_sent_twice(tmp_path: Path) -> None:
    """A prediction sent twice (same ``event_id``) is counted twice as an event, but joins its
    label once: ``labels_coverage`` then looks low with no reason given. The summary counts
    them (it said nothing)."""
    config = _config(label_horizon="7d")
    preds, labels = _stream(2, 30 * MINUTE, HOUR)
    twice = [p for i, p in enumerate(preds) for _ in range(2 if i % 10 == 0 else 1)]
    summary = replay(
        config, source=_write(tmp_path / "preds.jsonl", twice),
        labels=_write(tmp_path / "labels.jsonl", labels), sink=MemorySink(), run_id="r",
        profiles={}, dead_letters=MemoryDeadLetters(),
    )  # fmt: skip
    assert summary.labels is not None
    assert summary.labels.joined == len(labels)
    assert summary.labels.predictions_sent_twice == len(twice) - len(preds)


def test_file_replay_keeps_metric_events_of_every_window_whatever_the_span(
    tmp_path: Path,
) -> None:
    config = _config()
    preds, _ = _stream(120, 30 * MINUTE, 0)  # a few micro-batches
    metrics = [
        json.dumps(
            {"model": "fraud", "ts": START + d * DAY + HOUR, "metrics": {"cpu_util": d / 100}}
        ).encode()
        for d in range(120)
    ]
    sink = MemorySink()
    replay(
        config,
        source=_write(tmp_path / "preds.jsonl", preds),
        metric_events=_write(tmp_path / "metrics.jsonl", metrics),
        sink=sink,
        run_id="r",
        profiles={},
        dead_letters=MemoryDeadLetters(),
    )
    days = sorted(
        (r.window_start - START) // DAY
        for r in sink.rows("metrics")
        if (r.window, r.metric) == ("1d", "cpu_util")
    )
    assert days == list(range(120))


def test_a_file_timed_in_epoch_seconds_is_refused_with_a_hint(tmp_path: Path) -> None:
    preds = [
        json.dumps({"model": "fraud", "ts": (START + i * MINUTE) // 1000, "features": {}}).encode()
        for i in range(50)
    ]
    source = _write(tmp_path / "preds.jsonl", preds)
    with pytest.raises(SourceError) as info:
        replay(config=_config(), source=source, sink=MemorySink(), run_id="r", profiles={})
    message = str(info.value)
    assert "no event has a plausible time (50 refused" in message
    assert "looks like epoch seconds (2026-01-01T00:00:00.000Z)" in message
    assert "send milliseconds (multiply by 1000)" in message
    # Nothing is lost: every event is in the dead letters beside the file, with the hint.
    letters = [json.loads(line) for line in (tmp_path / "preds.jsonl.dlq").read_text().splitlines()]
    assert [d["reason"] for d in letters] == ["implausible_ts"] * 50


def test_a_few_events_in_seconds_are_dead_lettered_and_the_rest_replayed(tmp_path: Path) -> None:
    preds, _ = _stream(1, MINUTE, 0)
    preds[10] = preds[10].replace(str(START + 10 * MINUTE).encode(), str(START // 1000).encode())
    dead = MemoryDeadLetters()
    summary = replay(
        _config(),
        source=_write(tmp_path / "preds.jsonl", preds),
        sink=MemorySink(),
        run_id="r",
        profiles={},
        dead_letters=dead,
    )
    assert (summary.stats.events, summary.stats.invalid) == (len(preds) - 1, 1)
    assert dead.reasons() == {"implausible_ts": 1}
