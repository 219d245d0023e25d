"""Event times: RFC 3339 or epoch milliseconds, and a hint about units when out of range."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given

from drifthouse.errors import DecodeError
from drifthouse.events import EventDecoder, LabelEvent, MetricEvent, PredictionEvent, parse_ts
from tests import strategies as ev_st
from tests.events.samples import NOW, PREDICTIONS, PROPERTY, prediction


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        pytest.param(NOW, NOW, id="epoch-ms"),
        pytest.param(946_684_800_000, 946_684_800_000, id="2000-01-01-the-earliest"),
        pytest.param("2024-05-01T12:00:00Z", NOW, id="rfc3339-z"),
        pytest.param("2024-05-01t12:00:00z", NOW, id="rfc3339-lowercase"),
        pytest.param("2024-05-01T14:00:00.250+02:00", NOW + 250, id="rfc3339-offset-millis"),
        pytest.param("2024-05-01T12:00:00.999999Z", NOW + 999, id="rfc3339-micros-truncated"),
        pytest.param("2024-05-01 12:00:00+00:00", NOW, id="rfc3339-space"),
    ],
)
def test_timestamps_normalise_to_epoch_ms(ts: Any, expected: int) -> None:
    assert PREDICTIONS.decode(prediction(ts=ts)).ts_ms == expected


def test_parse_ts() -> None:
    assert parse_ts("1970-01-01T00:00:00.001Z") == 1
    assert parse_ts("1970-01-01T01:00:00+01:00") == 0
    with pytest.raises(DecodeError, match="offset"):
        parse_ts("1970-01-01T00:00:00")


@PROPERTY
@given(ev_st.rfc3339_times())
def test_rfc3339_times_decode_to_their_instant(time: tuple[str, int]) -> None:
    text, ms = time
    assert PREDICTIONS.decode(prediction(ts=text)).ts_ms == ms


@pytest.mark.parametrize(
    ("ts", "hint"),
    [
        pytest.param(
            NOW // 1000, "looks like epoch seconds (2024-05-01T12:00:00.000Z)", id="seconds"
        ),
        pytest.param(
            0, "got 1970-01-01T00:00:00.000Z, which is before 2000-01-01", id="epoch-zero"
        ),
        pytest.param(946_684_799_999, "before 2000-01-01", id="just-before-2000"),
        pytest.param("1999-12-31T23:59:59Z", "before 2000-01-01", id="rfc3339-1999"),
    ],
)
@pytest.mark.parametrize("kind", [PredictionEvent, LabelEvent, MetricEvent])
def test_implausible_timestamps_are_refused_with_a_hint_about_units(
    ts: Any, hint: str, kind: Any
) -> None:
    raw = {
        PredictionEvent: prediction(ts=ts),
        LabelEvent: json.dumps({"event_id": "a", "model": "m", "ts": ts, "label": 1}).encode(),
        MetricEvent: json.dumps({"model": "m", "ts": ts, "metrics": {"cpu": 1.0}}).encode(),
    }[kind]
    decoder = EventDecoder(kind)
    with pytest.raises(DecodeError) as info:
        decoder.decode(raw)
    assert (info.value.reason, info.value.path) == ("implausible_ts", "$.ts")
    assert hint in info.value.detail
    assert ("send milliseconds (multiply by 1000)" in info.value.detail) == ("seconds" in hint)
    # A batch refuses it too, beside a good event, whichever decoder path takes it.
    ok, bad = decoder.decode_batch([raw, raw.replace(json.dumps(ts).encode(), str(NOW).encode())])
    assert [i for i, _ in ok] == [1]
    assert [(i, e.reason) for i, e in bad] == [(0, "implausible_ts")]


def test_microseconds_get_a_hint_about_units() -> None:
    with pytest.raises(DecodeError) as info:
        PREDICTIONS.decode(prediction(ts=NOW * 1000))
    assert "looks like epoch microseconds" in info.value.detail


def test_an_integer_time_too_large_for_a_float_is_refused_not_crashed() -> None:
    # Found by tests/events/test_chunks.py: the units hint multiplied it by a float.
    from drifthouse.errors import DecodeError
    from tests.events.samples import PREDICTIONS, prediction

    with pytest.raises(DecodeError) as caught:
        PREDICTIONS.decode(prediction(ts=10**400))
    assert (caught.value.reason, caught.value.path) == ("schema", "$.ts")
