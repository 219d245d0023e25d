"""A file replay of predictions sent one per line and in batches (rows and columns) writes the
same rows to the last digit, dead-letters the same bad and late events, each alone with its
index in the batch (docs/events.md, "Batched messages")."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from drifthouse.app.replay import replay
from drifthouse.config import Config
from drifthouse.events import PredictionEvent, encode_batch, encode_columns, encode_event
from drifthouse.profiles.build import profile_from_events
from drifthouse.sinks.base import MemorySink
from drifthouse.stream.dead_letters import MemoryDeadLetters

MINUTE = 60_000
HOUR = 60 * MINUTE
START = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def _config() -> Config:
    return Config.model_validate(
        {
            "windows": [{"size": "1h"}, {"size": "1d"}],
            "models": {"fraud": {"task": "classification"}, "churn": {}},
            "metrics": {"allowed_lateness": "10m"},
        }
    )


def _predictions(n: int) -> list[PredictionEvent]:
    """Two models (one with a reference profile, one with an automatic reference), versions,
    segments, a late event now and then and values of the wrong type."""
    out = []
    for i in range(n):
        model = "fraud" if i % 5 else "churn"
        ts = START + i * 20_000 - (3 * HOUR if i % 97 == 50 else 0)  # some late
        amount: float | str | None = float((i * 7919) % 1000) / 10
        if i % 41 == 0:
            amount = None
        elif i % 59 == 0:
            amount = "n/a"  # a type error, counted, not refused
        out.append(
            PredictionEvent(
                model=model,
                model_version="2" if model == "fraud" and i > n // 2 else "1",
                ts_ms=ts,
                features={"amount": amount, "country": ["DE", "FR", "US"][i % 3]},
                event_id=f"e{i}",
                prediction=((i * 31) % 100) / 100,
                latency_ms=float(i % 17),
                status=503 if i % 83 == 0 else 200,
                segment={"channel": "web" if i % 2 else "app"},
            )
        )
    return out


def _batched(
    events: Sequence[PredictionEvent], size: int, encode: Callable[[list[PredictionEvent]], bytes]
) -> list[bytes]:
    """Consecutive events of one model and version, at most ``size`` to a message."""
    lines: list[bytes] = []
    run: list[PredictionEvent] = []
    for e in events:
        if run and (
            len(run) == size or (e.model, e.model_version) != (run[0].model, run[0].model_version)
        ):
            lines.append(encode(run))
            run = []
        run.append(e)
    lines.append(encode(run))
    return lines


def _run(
    tmp_path: Path, name: str, lines: Sequence[bytes]
) -> tuple[list[tuple[object, ...]], MemoryDeadLetters]:
    path = tmp_path / f"{name}.jsonl"
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    reference = [json.loads(encode_event(e)) for e in _predictions(400) if e.model == "fraud"]
    profile = profile_from_events(
        reference, model="fraud", model_version="1", created_at="2026-01-01T00:00:00Z",
        source_digest="test", task="classification",
    )  # fmt: skip
    sink, dead = MemorySink(), MemoryDeadLetters()
    replay(
        _config(),
        source=f"file:{path}",
        sink=sink,
        run_id="r",
        profiles={"fraud": profile},
        dead_letters=dead,
    )
    rows = sorted(
        tuple(
            getattr(r, f) for f in type(r).__struct_fields__ if f not in {"computed_at", "run_id"}
        )
        for r in sink.rows("metrics")
    )
    return rows, dead


@pytest.mark.parametrize("encode", [encode_batch, encode_columns], ids=["rows", "columns"])
@pytest.mark.parametrize("size", [7, 100])
def test_batches_give_the_rows_of_single_events(
    tmp_path: Path, encode: Callable[[list[PredictionEvent]], bytes], size: int
) -> None:
    events = _predictions(3_000)
    single, single_dead = _run(tmp_path, "single", [encode_event(e) for e in events])
    batched, batched_dead = _run(tmp_path, "batched", _batched(events, size, encode))
    assert len(single) > 500
    assert {r for r in single if "psi" in str(r)}  # drift against the reference
    assert batched == single
    late = [d for d in single_dead.letters if d.reason == "late"]
    assert late  # the stream has late events
    assert [(d.reason, json.loads(d.raw)["event_id"]) for d in batched_dead.letters] == [
        (d.reason, json.loads(d.raw)["event_id"]) for d in single_dead.letters
    ]
    prefix = "$.events[" if encode is encode_batch else "$.columns.ts["
    assert all(d.path.startswith(prefix) for d in batched_dead.letters)


def test_bad_events_in_batches_count_as_single_bad_events_do(tmp_path: Path) -> None:
    events = _predictions(600)
    lines = [encode_event(e) for e in events]
    bad_single = {
        101: b'{"model": "fraud", "model_version": "1", "features": {"amount": 1}}',  # no ts
        102: b'{"model": "fraud", "model_version": "1", "ts": "?", "features": {}}',
        103: b'{"model": "fraud", "model_version": "1", "ts": 1767225600000, "features": {"amount": [1, "x"]}}',
    }  # fmt: skip
    for i, raw in bad_single.items():
        lines[i] = raw
    single, single_dead = _run(tmp_path, "single", lines)
    # Events 101..104 (fraud, version 1) in one batch, the first three bad as above.
    envelope = json.loads(encode_batch(events[101:105]))
    for i, raw in bad_single.items():
        row = json.loads(raw)
        del row["model"], row["model_version"]
        envelope["events"][i - 101] = row
    batched_lines = [*lines[:101], json.dumps(envelope).encode(), *lines[105:]]
    batched, batched_dead = _run(tmp_path, "batched", batched_lines)
    assert batched == single
    bad = [(d.reason, d.path, d.offset) for d in batched_dead.letters if d.reason != "late"]
    assert bad == [
        ("schema", "$.events[0].ts", 102),
        ("schema", "$.events[1].ts", 102),
        ("schema", "$.events[2].features.amount", 102),
    ]
    assert [json.loads(d.raw) for d in batched_dead.letters if d.reason != "late"] == [
        json.loads(bad_single[i]) for i in (101, 102, 103)
    ]  # each alone, with the batch's model and version
    assert [d.reason for d in single_dead.letters] == [d.reason for d in batched_dead.letters]
