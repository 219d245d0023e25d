"""The partition stage takes batched messages (docs/events.md, "Batched messages") straight into
columns: the same predictions one per message, in rows and in columns give the same pane
states, prediction-log rows, label records and dead letters, and a clean batch in columns is
never turned into one Python object per event."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drifthouse.app.assembly import RunParts
from drifthouse.config import Config
from drifthouse.detectors.typed_decode import TypedDecoders
from drifthouse.events import (
    EventDecoder,
    PredictionEvent,
    batch_columns,
    encode_batch,
    encode_columns,
    encode_event,
)
from drifthouse.events import batches as batches_module
from drifthouse.pii import PII_KEY_ENV
from drifthouse.profiles.build import profile_from_events
from drifthouse.sinks.predictions import PredictionLog
from drifthouse.stream.dead_letters import MemoryDeadLetters
from drifthouse.stream.sources import Message
from drifthouse.stream.stage import PartitionStage

T0 = 1_767_225_600_000
MINUTE = 60_000


def _config(*, pii: bool = False) -> Config:
    """``pii``: segment attribute ``channel`` and ``event_id`` are PII for every model, and
    feature ``amount`` for ``spam`` and ``churn``."""
    models: dict[str, Any] = {
        "fraud": {"task": "classification", "sample_rate": 0.3},
        "churn": {"sample_rate": 0.5},
    }
    if pii:
        models["spam"] = {"pii": ["amount"]}
        models["churn"]["pii"] = ["amount"]
    return Config.model_validate(
        {
            "windows": [{"size": "1h"}],
            "models": models,
            "metrics": {"allowed_lateness": "10m"},
            "pii": ["channel", "event_id"] if pii else [],
        }
    )


def _reference(model: str) -> list[dict[str, Any]]:
    return [
        {
            "model": model,
            "ts": T0 - 3_600_000 + i,
            "features": {"amount": float(i % 50), "country": ["DE", "FR", "1"][i % 3]},
            "prediction": (i % 10) / 10,
        }
        for i in range(300)
    ]


_PROFILES = {
    model: profile_from_events(
        _reference(model),
        model=model,
        model_version="1",
        created_at="2026-01-01T00:00:00Z",
        source_digest="test",
        task="classification",
    )
    for model in ("fraud", "spam")  # with a reference; "churn" has none yet
}
_PARTS = RunParts.of(_config(), _PROFILES)
_PII_PARTS = RunParts.of(_config(pii=True), _PROFILES)
_PII_KEY = "k" * 32

amounts = st.one_of(
    st.floats(-1e6, 1e6, allow_nan=False),
    st.integers(-1000, 1000),
    st.none(),
    st.just(math.nan),  # sent as null
    st.just("n/a"),  # a type error, counted
    st.booleans(),
)
countries = st.sampled_from(["DE", "FR", 1, 1.0, "1", None, "XX", 2])
predictions = st.one_of(
    st.floats(0, 1), st.none(), st.integers(0, 1), st.just({"fraud": 0.75, "ok": 0.25})
)


@st.composite
def _batch(draw: st.DrawFn, model: str, start: int) -> list[PredictionEvent]:
    """Events of one model and version (the same feature and segment names in each)."""
    n = draw(st.integers(1, 12))
    with_id = draw(st.sampled_from(["all", "none", "some"]))
    segment = draw(st.booleans())
    out = []
    for i in range(n):
        ts = start + draw(st.integers(-20 * MINUTE, 5 * MINUTE))
        out.append(
            PredictionEvent(
                model=model,
                model_version="1",
                ts_ms=ts,
                features={"amount": draw(amounts), "country": draw(countries)},
                event_id=(
                    f"{model}-{start}-{i}"
                    if with_id == "all" or (with_id == "some" and draw(st.booleans()))
                    else None
                ),
                prediction=draw(predictions),
                latency_ms=draw(st.one_of(st.none(), st.floats(0, 100))),
                status=draw(st.sampled_from([200, 200, 503])),
                segment={"channel": draw(st.sampled_from(["web", "app"]))} if segment else {},
            )
        )
    return out


@st.composite
def _stream(draw: st.DrawFn) -> list[list[PredictionEvent]]:
    batches = []
    for k in range(draw(st.integers(1, 6))):
        model = draw(st.sampled_from(["fraud", "fraud", "spam", "churn"]))
        batches.append(draw(_batch(model, T0 + k * 10 * MINUTE)))
    return batches


def _stage(parts: RunParts = _PARTS) -> tuple[PartitionStage, MemoryDeadLetters]:
    dead = MemoryDeadLetters()
    log = PredictionLog.for_config(parts.config, profiles=parts.profiles)
    return parts.partition_stage(0, dead, prediction_log=log, collect_labels=True), dead


def _run(
    chunks: Sequence[Sequence[bytes]], columnar: int = 0, parts: RunParts = _PARTS
) -> tuple[Any, ...]:
    """What the stage gives for ``chunks``; ``columnar``: how many events must take the path
    of batches in columns."""
    stage, dead = _stage(parts)
    partials = []
    offset = 0
    for chunk in chunks:
        msgs = [Message(raw, 0, offset + i) for i, raw in enumerate(chunk)]
        offset += len(chunk)
        partials += stage.process(msgs)
    partials += stage.finish()
    states = sorted(
        (p.spec_index, p.start, p.end, p.key, p.state.to_bytes().hex()) for p in partials
    )
    rows = sorted(
        tuple(getattr(r, f) for f in type(r).__struct_fields__)
        for r in stage.take_prediction_rows()
    )
    _, records = stage.take_label_records()
    letters = [(d.reason, json.loads(d.raw)) for d in dead.letters]
    assert stage.stats.columnar == columnar
    return states, rows, [repr(r) for r in records], letters


def _singles(batches: list[list[PredictionEvent]]) -> list[list[bytes]]:
    return [[encode_event(e) for e in b] for b in batches]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_stream())
def test_batches_in_rows_and_columns_give_what_single_events_give(
    batches: list[list[PredictionEvent]],
) -> None:
    want = _run(_singles(batches))
    # Batches stay in columns, in rows as in columns, those of the model whose automatic
    # reference is being built too.
    n = sum(map(len, batches))
    assert _run([[encode_batch(b) for b in batches]], n) == want
    assert _run([[encode_batch(b)] for b in batches], n) == want  # one message a micro-batch
    assert _run([[encode_columns(b) for b in batches]], n) == want
    assert _run([[encode_columns(b)] for b in batches], n) == want
    # Rows and columns mixed in one micro-batch.
    mixed = [encode_batch(b) if k % 2 else encode_columns(b) for k, b in enumerate(batches)]
    assert _run([mixed], n) == want


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_stream())
def test_batches_of_models_with_pii_give_what_single_events_give(
    batches: list[list[PredictionEvent]],
) -> None:
    n = sum(map(len, batches))
    with pytest.MonkeyPatch.context() as env:
        env.setenv(PII_KEY_ENV, _PII_KEY)
        want = _run(_singles(batches), parts=_PII_PARTS)
        assert _run([[encode_batch(b) for b in batches]], n, _PII_PARTS) == want
        assert _run([[encode_columns(b)] for b in batches], n, _PII_PARTS) == want
        mixed = [encode_batch(b) if k % 2 else encode_columns(b) for k, b in enumerate(batches)]
        assert _run([mixed], n, _PII_PARTS) == want
    # The event ids in the label join's records are hashed.
    assert all("hmac-sha256:" in r for r in want[2])


_BAD: list[tuple[str, Callable[[int], object]]] = [
    ("latency_ms", lambda i: -1.0),
    ("status", lambda i: 42),
    ("ts", lambda i: "?"),
    ("event_id", lambda i: 7),
]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_stream(), st.data())
def test_a_bad_event_in_a_batch_is_refused_alone(
    batches: list[list[PredictionEvent]], data: st.DataObject
) -> None:
    k = data.draw(st.integers(0, len(batches) - 1))
    j = data.draw(st.integers(0, len(batches[k]) - 1))
    field, bad = data.draw(st.sampled_from(_BAD))
    single = json.loads(encode_event(batches[k][j]))
    single["ts" if field == "ts" else field] = bad(j)
    singles = _singles(batches)
    singles[k][j] = json.dumps(single).encode()
    in_rows = data.draw(st.booleans())
    columns = [(encode_batch if in_rows else encode_columns)(b) for b in batches]
    envelope = json.loads(columns[k])
    if in_rows:
        envelope["events"][j][field] = bad(j)
    else:
        envelope["columns"].setdefault(field, [None] * len(batches[k]))[j] = bad(j)
    columns[k] = json.dumps(envelope).encode()
    # One micro-batch each: a micro-batch dead-letters its late events, then its refused ones.
    states, rows, records, letters = _run([[raw for b in singles for raw in b]])
    got = _run([columns])
    assert got[:3] == (states, rows, records)
    strip = [
        (r, {k: v for k, v in d.items() if k not in ("model", "model_version")}) for r, d in letters
    ]
    assert got[3] == letters or not in_rows  # an event of a batch in rows keeps the model
    assert [
        (r, {k: v for k, v in d.items() if k not in ("model", "model_version")}) for r, d in got[3]
    ] == strip


def _clean_batches() -> list[list[PredictionEvent]]:
    return [
        [
            PredictionEvent(
                model="fraud",
                model_version="1",
                ts_ms=T0 + k * MINUTE + i,
                features={"amount": float(i), "country": ["DE", 1, None][i % 3]},
                event_id=f"e{k}-{i}" if i % 2 else None,
                prediction=i / 100,
                latency_ms=1.0,
                segment={"channel": "web"},
            )
            for i in range(100)
        ]
        for k in range(5)
    ]


def _count_built(monkeypatch: Any) -> list[int]:
    """The events built from columns, from now on."""
    built: list[int] = []
    real = batch_columns.ColumnBatch.event

    def counted(self: batch_columns.ColumnBatch, i: int) -> PredictionEvent:
        built.append(i)
        return real(self, i)

    monkeypatch.setattr(batch_columns.ColumnBatch, "event", counted)
    return built


def _no_event_decoding(monkeypatch: Any) -> None:
    """Fail on any use of the decoders that build an object per event."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("an event-by-event decoder was used")

    monkeypatch.setattr(EventDecoder, "decode_batch", refuse)
    monkeypatch.setattr(batches_module, "_fast_rows", refuse)


def test_a_clean_batch_in_columns_builds_no_event_objects(monkeypatch: Any) -> None:
    batches = _clean_batches()
    want = _run(_singles(batches))
    built = _count_built(monkeypatch)
    stage, _ = _stage()
    msgs = [Message(encode_columns(b), 0, k) for k, b in enumerate(batches)]
    stage.process(msgs)
    assert stage.stats.columnar == 500  # every event took the columnar path
    assert stage.stats.events == 500
    # Only the prediction log's kept rows are built as events (sampled at 30 %).
    assert 0 < len(built) < 250
    assert _run([[encode_columns(b) for b in batches]], 500) == want


def test_a_clean_batch_in_rows_builds_no_event_objects(monkeypatch: Any) -> None:
    batches = _clean_batches()
    want = _run(_singles(batches))
    built = _count_built(monkeypatch)
    stage, _ = _stage()
    msgs = [Message(encode_batch(b), 0, k) for k, b in enumerate(batches)]
    with monkeypatch.context() as m:
        _no_event_decoding(m)
        stage.process(msgs)
    assert stage.stats.columnar == 500  # every event took the columnar path
    assert stage.stats.events == 500
    # Only the prediction log's kept rows are built as events (sampled at 30 %).
    assert 0 < len(built) < 250
    assert _run([[encode_batch(b) for b in batches]], 500) == want


def test_a_late_event_of_a_batch_in_rows_is_dead_lettered_with_its_path_in_the_batch() -> None:
    early, late = _clean_batches()[:2]
    late[7] = msgspec.structs.replace(late[7], ts_ms=T0 - 2 * 3_600_000)
    for encode, path in ((encode_batch, "$.events[7].ts"), (encode_columns, "$.columns.ts[7]")):
        stage, dead = _stage()
        stage.process([Message(encode(early), 0, 0), Message(encode(late), 0, 1)])
        assert stage.stats.columnar == 200
        assert [(d.reason, d.path, d.offset) for d in dead.letters] == [("late", path, 1)]
        assert json.loads(dead.letters[0].raw) == json.loads(encode_event(late[7]))


def test_the_first_micro_batch_takes_its_models_typed_decoder(monkeypatch: Any) -> None:
    asked: list[str] = []
    real = TypedDecoders.plain_rows

    def counted(self: TypedDecoders, model: str) -> Any:
        asked.append(model)
        return real(self, model)

    monkeypatch.setattr(TypedDecoders, "plain_rows", counted)
    stage, _ = _stage()
    stage.process([Message(encode_batch(b), 0, k) for k, b in enumerate(_clean_batches())])
    assert asked == ["fraud"]  # named by its first message, not only from the next one on
