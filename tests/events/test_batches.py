"""Batched prediction messages (docs/events.md, "Batched messages"): encoders, decoding, and
bad events refused alone with their index."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drifthouse.events import (
    EventDecoder,
    PredictionEvent,
    decode_messages,
    encode_batch,
    encode_columns,
    encode_event,
)

T0 = 1_767_225_600_000
DEC = EventDecoder(PredictionEvent)


def _events(n: int = 7) -> list[PredictionEvent]:
    return [
        PredictionEvent(
            model="fraud",
            model_version="1.4",
            ts_ms=T0 + 1000 * i,
            features={"amount": float(i) if i % 3 else None, "country": ["DE", "FR"][i % 2]},
            event_id=f"e{i}",
            prediction={"fraud": 0.25 * (i % 4), "ok": 1 - 0.25 * (i % 4)},
            latency_ms=1.5 * i if i % 2 else None,
            status=500 if i == 3 else 200,
            segment={"channel": "web" if i % 2 else "app"},
        )
        for i in range(n)
    ]


@pytest.mark.parametrize("encode", [encode_batch, encode_columns], ids=["rows", "columns"])
def test_a_batch_decodes_to_the_events_of_single_messages(
    encode: Callable[[list[PredictionEvent]], bytes],
) -> None:
    events = _events()
    singles = decode_messages(DEC, [encode_event(e) for e in events])
    batched = decode_messages(DEC, [encode(events[:4]), encode(events[4:])])
    as_dicts = msgspec.structs.asdict
    assert [as_dicts(e) for _, e in batched.ok] == [as_dicts(e) for e in events]
    assert [e for _, e in singles.ok] == events
    assert [p for p, _ in batched.ok] == [0, 0, 0, 0, 1, 1, 1]
    assert batched.refused == singles.refused == []


def test_single_events_and_batches_mix_in_one_micro_batch() -> None:
    events = _events(5)
    raws = [encode_event(events[0]), encode_batch(events[1:3]), encode_columns(events[3:])]
    got = decode_messages(DEC, raws)
    assert [msgspec.structs.asdict(e) for _, e in got.ok] == [
        msgspec.structs.asdict(e) for e in events
    ]
    assert [p for p, _ in got.ok] == [0, 1, 1, 2, 2]


def _rows_with(bad: dict[int, dict[str, object]]) -> bytes:
    rows = [json.loads(encode_event(e)) for e in _events(5)]
    for row in rows:
        del row["model"], row["model_version"]
    for i, change in bad.items():
        rows[i].update(change)
        if change == {"ts": None}:
            del rows[i]["ts"]
    return json.dumps({"model": "fraud", "model_version": "1.4", "events": rows}).encode()


@pytest.mark.parametrize(
    ("change", "reason", "path"),
    [
        pytest.param({"ts": None}, "schema", "$.events[2].ts", id="missing-ts"),
        pytest.param({"features": {"amount": [1, "x"]}}, "schema", "$.events[2].features.amount", id="array-of-strings-feature"),
        pytest.param({"status": "?"}, "schema", "$.events[2].status", id="question-mark"),
        pytest.param({"ts": 1_714_564_800}, "implausible_ts", "$.events[2].ts", id="epoch-seconds"),
        pytest.param({"model": "churn"}, "schema", "$.events[2].model", id="another-model"),
        pytest.param({"model_version": "2"}, "schema", "$.events[2].model_version", id="another-version"),
    ],
)  # fmt: skip
def test_a_bad_event_in_a_batch_is_refused_alone_with_its_index(
    change: dict[str, object], reason: str, path: str
) -> None:
    got = decode_messages(DEC, [encode_event(_events(1)[0]), _rows_with({2: change})])
    assert [(p, e.event_id) for p, e in got.ok] == [
        (0, "e0"),
        (1, "e0"),
        (1, "e1"),
        (1, "e3"),
        (1, "e4"),
    ]
    [refused] = got.refused
    assert (refused.position, refused.error.reason, refused.error.path) == (1, reason, path)
    assert refused.prior == 3  # valid events before it
    assert refused.raw is not None  # the event alone
    assert json.loads(refused.raw)["event_id"] == "e2"


def test_a_bad_value_in_a_column_is_refused_alone_with_its_index() -> None:
    msg = json.loads(encode_columns(_events(4)))
    msg["columns"]["features"]["amount"][1] = {"x": 1}
    msg["columns"]["ts"][3] = "yesterday"
    got = decode_messages(DEC, [json.dumps(msg).encode()])
    assert [e.event_id for _, e in got.ok] == ["e0", "e2"]
    assert [(r.error.path, r.prior) for r in got.refused] == [
        ("$.columns.features.amount[1]", 1),
        ("$.columns.ts[3]", 2),
    ]


@pytest.mark.parametrize(
    ("raw", "path"),
    [
        pytest.param(b'{"model": "fraud", "events": 3}', "$.events", id="events-not-a-list"),
        pytest.param(b'{"model": 1, "events": []}', "$.model", id="model-not-a-string"),
        pytest.param(b'{"events": [{"ts": 1}]}', "$.model", id="no-model"),
        pytest.param(
            b'{"model": "fraud", "columns": {"ts": [1, 2], "features": {"x": [1]}}}',
            "$.columns.features.x",
            id="columns-of-unequal-length",
        ),
    ],
)
def test_a_malformed_batch_is_refused_whole(raw: bytes, path: str) -> None:
    got = decode_messages(DEC, [raw, encode_event(_events(1)[0])])
    assert [(p, e.event_id) for p, e in got.ok] == [(1, "e0")]
    [refused] = got.refused
    assert (refused.position, refused.error.reason, refused.error.path, refused.raw) == (
        0,
        "schema",
        path,
        None,
    )
    assert "expected" in str(refused.error).lower() or "Expected" in str(refused.error)


def test_the_size_bound_holds_for_the_whole_batch() -> None:
    raw = encode_batch(_events(50))
    got = decode_messages(EventDecoder(PredictionEvent, max_bytes=len(raw) - 1), [raw])
    assert got.ok == []
    assert [(r.error.reason, r.error.path) for r in got.refused] == [("too_large", "$")]


def test_future_events_of_a_batch_are_refused_alone() -> None:
    events = _events(3)
    got = decode_messages(DEC, [encode_batch(events)], now_ms=T0 - DEC.max_future_ms + 1500)
    assert [e.event_id for _, e in got.ok] == ["e0", "e1"]
    assert [(r.error.reason, r.error.path) for r in got.refused] == [
        ("future_ts", "$.events[2].ts")
    ]


def test_a_single_event_naming_events_is_still_a_single_event() -> None:
    raw = b'{"model": "m", "ts": 1767225600000, "features": {"events": 3, "columns": "a"}}'
    got = decode_messages(DEC, [raw])
    assert [e.features for _, e in got.ok] == [{"events": 3.0, "columns": "a"}]


def test_encoders_refuse_mixed_models() -> None:
    a, b = _events(2)
    with pytest.raises(ValueError, match="one model and version"):
        encode_batch([a, PredictionEvent(model="x", ts_ms=T0, features={})])
    b.features = {"other": 1.0}
    with pytest.raises(ValueError, match="same features names"):
        encode_columns([a, b])


def test_the_batch_examples_in_the_docs_decode() -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "events.md").read_text()
    section = text[text.index("## Batched messages") : text.index("## Label events")]
    blocks = re.findall(r"```text\n(.*?)```", section, re.DOTALL)
    assert len(blocks) == 2
    got = decode_messages(DEC, [b.encode() for b in blocks])
    assert got.refused == []
    as_dicts = msgspec.structs.asdict
    assert [as_dicts(e) for p, e in got.ok if p == 0] == [as_dicts(e) for p, e in got.ok if p == 1]
    assert [(p, e.model, e.model_version, e.event_id) for p, e in got.ok] == [
        (p, "fraud", "1.4.2", f"req-{i}") for p in (0, 1) for i in (1, 2)
    ]


def test_the_name_bounds_hold_for_each_event_of_a_batch() -> None:
    events = _events(3)
    events[1].features = {"x" * 2_000: 1.0}
    got = decode_messages(DEC, [encode_batch(events)])
    assert [e.event_id for _, e in got.ok] == ["e0", "e2"]
    assert [(r.error.reason, r.error.path) for r in got.refused] == [
        ("too_large", "$.events[1].features")
    ]


def test_a_models_fast_decoder_takes_its_batches_in_rows_to_the_same_values() -> None:
    from drifthouse.detectors.layout import FeatureLayout
    from drifthouse.detectors.typed_decode import TypedDecoders, TypedFeatures

    layout = FeatureLayout(("amount",), ("country",), ({"DE": 0, "FR": 1},), (2,))
    decoders = TypedDecoders(lambda model: layout if model == "fraud" else None)
    events = _events(6)
    raws = [encode_batch(events[:3]), encode_batch(events[3:])]
    fast = decode_messages(DEC, raws, first_rows=decoders.rows("fraud"))
    general = decode_messages(DEC, raws)
    assert all(isinstance(e.features, TypedFeatures) for _, e in fast.ok)
    assert [e.features.as_dict() for _, e in fast.ok] == [e.features for _, e in general.ok]
    for (_, a), (_, b) in zip(fast.ok, general.ok, strict=True):
        assert (a.model, a.model_version, a.ts_ms, a.event_id, a.segment, a.prediction) == (
            b.model, b.model_version, b.ts_ms, b.event_id, b.segment, b.prediction
        )  # fmt: skip
    # Another model's batch, or an event with a feature the layout lacks: the general path.
    other = events[1]
    other.features = {**other.features, "extra": 1.0}
    mixed = decode_messages(
        DEC, [encode_batch([events[0], other])], first_rows=decoders.rows("fraud")
    )
    assert [type(e.features) for _, e in mixed.ok] == [dict, dict]


def test_a_valid_batch_in_columns_decodes_in_one_call_to_the_same_values() -> None:
    from drifthouse.events.batch_columns import columns_events

    events = _events(7)
    found = columns_events(encode_columns(events))
    assert found is not None
    model, version, got = found
    assert (model, version) == ("fraud", "1.4")
    assert got == events
    bad = json.loads(encode_columns(events))
    bad["columns"]["status"][2] = 42  # not an HTTP status: the event-by-event path refuses it
    assert columns_events(json.dumps(bad).encode()) is None
    bad["columns"]["status"][2] = 200
    bad["columns"]["latency_ms"].pop()  # unequal lengths: refused whole, with its path
    assert columns_events(json.dumps(bad).encode()) is None


_NUMBERS_AND_NAMES = st.one_of(
    st.floats(-1e9, 1e9, allow_nan=False), st.integers(-(2**40), 2**40), st.none(),
    st.just(math.nan), st.text(max_size=3), st.booleans(),
)  # fmt: skip


@st.composite
def _column_batches(draw: st.DrawFn) -> list[PredictionEvent]:
    """Events of one batch in columns: features typed as numbers and strings, NaN (sent as
    null), optional fields present or left out."""
    n = draw(st.integers(1, 8))
    with_segment = draw(st.booleans())
    return [
        PredictionEvent(
            model="fraud",
            model_version="1.4",
            ts_ms=T0 + draw(st.integers(0, 10**6)),
            features={"x": draw(_NUMBERS_AND_NAMES), "c": draw(_NUMBERS_AND_NAMES)},
            event_id=draw(st.one_of(st.none(), st.text(min_size=1, max_size=4))),
            prediction=draw(st.one_of(st.none(), st.floats(0, 1), st.just({"a": 0.5, "b": 0.5}))),
            latency_ms=draw(st.one_of(st.none(), st.floats(0, 10))),
            status=draw(st.sampled_from([200, 404])),
            segment={"s": draw(st.sampled_from(["a", "b"]))} if with_segment else {},
        )
        for _ in range(n)
    ]


@settings(max_examples=60, deadline=None)
@given(st.lists(_column_batches(), min_size=1, max_size=4), st.data())
def test_batches_kept_in_columns_are_the_events_decoded_one_by_one(
    batches: list[list[PredictionEvent]], data: st.DataObject
) -> None:
    raws = [encode_columns(b) for b in batches]
    kept = decode_messages(DEC, raws, columns=True)
    assert kept.ok == []
    assert kept.refused == []
    assert [p for p, _ in kept.blocks] == list(range(len(batches)))
    one_by_one = decode_messages(DEC, [encode_event(e) for b in batches for e in b])
    events = [e for _, e in one_by_one.ok]
    assert [e for _, e in kept.materialized().ok] == events
    assert [kept.event(i) for i in range(len(events))] == events
    # A bad event in one of the batches: nothing is kept in columns, the bad one refused alone.
    k = data.draw(st.integers(0, len(batches) - 1))
    j = data.draw(st.integers(0, len(batches[k]) - 1))
    bad = json.loads(raws[k])
    bad["columns"]["ts"][j] = "?"
    raws[k] = json.dumps(bad).encode()
    mixed = decode_messages(DEC, raws, columns=True)
    assert mixed.blocks == []
    assert [(r.position, r.error.path) for r in mixed.refused] == [(k, f"$.columns.ts[{j}]")]
    assert len(mixed.ok) == len(events) - 1


@settings(max_examples=60, deadline=None)
@given(st.lists(_column_batches(), min_size=1, max_size=4), st.data())
def test_batches_in_rows_kept_in_columns_are_the_events_decoded_one_by_one(
    batches: list[list[PredictionEvent]], data: st.DataObject
) -> None:
    from drifthouse.detectors.layout import FeatureLayout
    from drifthouse.detectors.typed_decode import TypedDecoders

    raws = [encode_batch(b) for b in batches]
    one_by_one = decode_messages(DEC, [encode_event(e) for b in batches for e in b])
    events = [e for _, e in one_by_one.ok]
    layout = FeatureLayout(("x",), ("c",), ({"a": 0},), (1,))
    typed = TypedDecoders(lambda model: layout).plain_rows("fraud")
    for plain in (None, typed):  # features typed where they fit, else as a dict
        kept = decode_messages(DEC, raws, columns=True, plain_rows=plain)
        assert (kept.ok, kept.refused) == ([], [])
        assert [p for p, _ in kept.blocks] == list(range(len(batches)))
        assert all(b.rows for _, b in kept.blocks)
        assert [e for _, e in kept.materialized().ok] == events
        assert [kept.event(i) for i in range(len(events))] == events
    # A bad event in one of the batches: nothing is kept in columns, the bad one refused alone.
    k = data.draw(st.integers(0, len(batches) - 1))
    j = data.draw(st.integers(0, len(batches[k]) - 1))
    bad = json.loads(raws[k])
    bad["events"][j]["ts"] = "?"
    raws[k] = json.dumps(bad).encode()
    mixed = decode_messages(DEC, raws, columns=True, plain_rows=typed)
    assert mixed.blocks == []
    assert [(r.position, r.error.path) for r in mixed.refused] == [(k, f"$.events[{j}].ts")]
    assert len(mixed.ok) == len(events) - 1


def test_a_batch_in_rows_whose_events_name_other_features_is_decoded_event_by_event() -> None:
    from drifthouse.events.batch_rows import decode_rows

    events = _events(4)
    assert decode_rows(encode_batch(events)) is not None
    other = [*events[:2], msgspec.structs.replace(events[2], features={"other": 1.0})]
    assert decode_rows(encode_batch(other)) is None  # the columns could not hold it exactly
    kept = decode_messages(DEC, [encode_batch(other)], columns=True)
    assert kept.blocks == []
    assert [encode_event(e) for _, e in kept.ok] == [encode_event(e) for e in other]
