"""The decoder: size, future and segment bounds, and batches that never stop on a bad message."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from drifthouse.errors import DecodeError
from drifthouse.events import EventDecoder, LabelEvent, PredictionEvent, decoder_for, encode_event
from tests import strategies as ev_st
from tests.events.samples import NOW, PREDICTIONS, PROPERTY, prediction


def test_decoder_for_names_kinds() -> None:
    assert decoder_for("label").kind is LabelEvent
    assert decoder_for("metric", max_bytes=10).max_bytes == 10
    with pytest.raises(ValueError, match="kind must be one of"):
        decoder_for("nope")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        EventDecoder(dict)  # type: ignore[type-var]


def test_oversize_messages_are_rejected_before_parsing() -> None:
    decoder = EventDecoder(PredictionEvent, max_bytes=100)
    raw = prediction(event_id="x" * 200)
    with pytest.raises(DecodeError) as info:
        decoder.decode(raw)
    assert (info.value.reason, info.value.path) == ("too_large", "$")
    assert f"at most 100 bytes; got {len(raw)} bytes" in info.value.detail
    assert EventDecoder(PredictionEvent).decode(raw).event_id == "x" * 200


@pytest.mark.parametrize(
    ("ahead_ms", "rejected"),
    [
        pytest.param(3_600_000, False, id="exactly-max-future"),
        pytest.param(3_600_001, True, id="just-past-max-future"),
        pytest.param(-86_400_000, False, id="a-day-old"),
    ],
)
def test_future_timestamps_are_judged_against_an_explicit_now(
    ahead_ms: int, rejected: bool
) -> None:
    raw = prediction(ts=NOW + ahead_ms)
    if rejected:
        with pytest.raises(DecodeError) as info:
            PREDICTIONS.decode(raw, now_ms=NOW)
        assert (info.value.reason, info.value.path) == ("future_ts", "$.ts")
        assert "2024-05-01T13:00:00.001Z" in info.value.detail
        assert "producer's clock" in info.value.detail
    else:
        assert PREDICTIONS.decode(raw, now_ms=NOW).ts_ms == NOW + ahead_ms
    # Without a reference "now" the guard is off: results never depend on the wall clock.
    assert PREDICTIONS.decode(raw).ts_ms == NOW + ahead_ms


def test_max_future_is_configurable() -> None:
    decoder = EventDecoder(PredictionEvent, max_future_ms=0)
    with pytest.raises(DecodeError, match="at most 0 ms after now"):
        decoder.decode(prediction(ts=NOW + 1), now_ms=NOW)


def test_decode_batch_never_stops_on_a_bad_message() -> None:
    raws = [
        prediction(event_id="a"),
        b"not json",
        prediction(event_id="b", ts=NOW + 7_200_000),
        prediction(event_id="c", features={"x": {"y": 1}}),
        prediction(event_id="d"),
        b"{" * 2,
    ]
    ok, bad = PREDICTIONS.decode_batch(raws, now_ms=NOW)
    assert [(i, e.event_id) for i, e in ok] == [(0, "a"), (4, "d")]
    assert [(i, e.reason, e.path) for i, e in bad] == [
        (1, "invalid_json", "$"),
        (2, "future_ts", "$.ts"),
        (3, "schema", "$.features.x"),
        (5, "invalid_json", "$"),
    ]


def test_decode_batch_takes_memoryviews_and_checks_size() -> None:
    decoder = EventDecoder(PredictionEvent, max_bytes=200)
    ok, bad = decoder.decode_batch([memoryview(prediction()), prediction(event_id="x" * 300)])
    assert [i for i, _ in ok] == [0]
    assert [(i, e.reason) for i, e in bad] == [(1, "too_large")]


@PROPERTY
@given(
    st.lists(st.one_of(ev_st.prediction_events().map(encode_event), ev_st.json_texts), max_size=10)
)
def test_decode_batch_agrees_with_decode(raws: list[bytes]) -> None:
    ok, bad = PREDICTIONS.decode_batch(raws, now_ms=NOW)
    assert sorted([i for i, _ in ok] + [i for i, _ in bad]) == list(range(len(raws)))
    for i, event in ok:
        assert PREDICTIONS.decode(raws[i], now_ms=NOW) == event
    for i, error in bad:
        with pytest.raises(DecodeError) as info:
            PREDICTIONS.decode(raws[i], now_ms=NOW)
        assert (info.value.reason, info.value.path) == (error.reason, error.path)


def _segments(n: int, value: str = "v") -> dict[str, str]:
    return {f"s{k}": value for k in range(n)}


@pytest.mark.parametrize(
    ("segment", "limit", "refused"),
    [
        pytest.param({}, 16, False, id="none"),
        pytest.param(_segments(16), 16, False, id="at-the-limit"),
        pytest.param(_segments(17), 16, True, id="one-over-small-message"),  # the fast path
        pytest.param(_segments(17, "v" * 100), 16, True, id="one-over-large-message"),
        pytest.param(_segments(20_000), 16, True, id="20000-attributes"),
        pytest.param(_segments(3), 2, True, id="configured-limit"),
        pytest.param(_segments(2), 2, False, id="configured-limit-kept"),
    ],
)
def test_segment_attributes_per_event_are_bounded(
    segment: dict[str, str], limit: int, refused: bool
) -> None:
    decoder = EventDecoder(PredictionEvent, max_segments=limit)
    raw = prediction(segment=segment)
    # with and without a narrower decoder tried first (the partition stage's typed decoders)
    fast = msgspec.json.Decoder(PredictionEvent).decode
    ok, bad = decoder.decode_batch([raw, prediction()], now_ms=NOW)
    ok_fast, bad_fast = decoder.decode_batch([raw, prediction()], now_ms=NOW, first=fast)
    assert ok_fast == ok
    assert [(i, e.reason, str(e)) for i, e in bad_fast] == [(i, e.reason, str(e)) for i, e in bad]
    assert [i for i, _ in ok] == ([1] if refused else [0, 1])
    if not refused:
        assert ok[0][1].segment == segment
        return
    ((index, error),) = bad
    assert (index, error.reason, error.path) == (0, "too_many_segments", "$.segment")
    assert f"expected at most {limit} segment attributes; got {len(segment)}" in str(error)
    assert '["s0", "s1", "s2"]' in str(error)  # the first few, not all of them
    assert len(str(error)) < 400
    with pytest.raises(DecodeError) as info:
        decoder.decode(raw)
    assert info.value.reason == "too_many_segments"


def test_segment_bound_leaves_labels_and_metric_events_alone() -> None:
    label = b'{"event_id": "a", "model": "fraud", "ts": 1714564800000, "label": 1}'
    assert EventDecoder(LabelEvent, max_segments=1).decode(label).label == 1
