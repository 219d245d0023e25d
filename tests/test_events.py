"""Input events: the decoder takes every valid event and explains every invalid one."""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drifthouse.errors import DecodeError, DrifthouseError
from drifthouse.events import (
    EventDecoder,
    LabelEvent,
    MetricEvent,
    PredictionEvent,
    decoder_for,
    encode_event,
    parse_ts,
)
from tests import strategies as ev_st

FIELDS = {
    "model",
    "model_version",
    "ts",
    "event_id",
    "features",
    "prediction",
    "latency_ms",
    "status",
    "segment",
}
REASONS = {
    "too_large",
    "invalid_json",
    "schema",
    "non_finite",
    "future_ts",
    "implausible_ts",
    "too_many_segments",
}
NOW = 1_714_564_800_000  # 2024-05-01T12:00:00Z
PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

PREDICTIONS = EventDecoder(PredictionEvent)
LABELS = EventDecoder(LabelEvent)
METRICS = EventDecoder(MetricEvent)


def prediction(**fields: Any) -> bytes:
    """A valid prediction event as JSON, with ``fields`` replaced (``...`` removes a field)."""
    obj: dict[str, Any] = {
        "model": "fraud",
        "ts": NOW,
        "features": {"amount": 12.5, "country": "DE", "new": True, "age": None},
    }
    obj.update(fields)
    return json.dumps({k: v for k, v in obj.items() if v is not ...}).encode()


def raw_prediction(fragment: str) -> bytes:
    """A prediction event whose JSON text ends with ``fragment`` (literals json.dumps can't write)."""
    return f'{{"model": "fraud", "ts": {NOW}, {fragment}}}'.encode()


# -- valid events ------------------------------------------------------------------------------


def test_minimal_prediction_gets_the_defaults() -> None:
    event = PREDICTIONS.decode(prediction())
    assert event == PredictionEvent(
        model="fraud",
        ts_ms=NOW,
        features={"amount": 12.5, "country": "DE", "new": True, "age": None},
    )
    assert (event.model_version, event.status, event.segment, event.prediction) == (
        "unknown",
        200,
        {},
        None,
    )


def test_full_prediction() -> None:
    event = PREDICTIONS.decode(
        prediction(
            model_version="1.4.2",
            event_id="req-1",
            prediction={"fraud": 0.8, "ok": 0.2},
            latency_ms=13,
            status=503,
            segment={"country": "DE"},
            extra_field_from_a_newer_producer=[1, 2],
        )
    )
    assert event.model_version == "1.4.2"
    assert event.event_id == "req-1"
    assert event.prediction == {"fraud": 0.8, "ok": 0.2}
    assert event.latency_ms == 13.0
    assert event.status == 503
    assert event.segment == {"country": "DE"}


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


def test_numbers_in_features_are_floats_and_strings_stay_strings() -> None:
    event = PREDICTIONS.decode(prediction(features={"n": 3, "s": "3", "b": False}))
    assert event.features == {"n": 3.0, "s": "3", "b": False}
    assert type(event.features["n"]) is float
    assert type(event.features["b"]) is bool


@pytest.mark.parametrize(
    "fragment",
    [
        pytest.param('"features": {"x": NaN}', id="nan-literal"),
        pytest.param('"features": {"x": Infinity}', id="infinity-literal"),
        pytest.param('"features": {"x": -Infinity}', id="minus-infinity-literal"),
        pytest.param('"features": {"x": 1e999}', id="float-overflow"),
        pytest.param('"features": {"x": -1' + "0" * 400 + "}", id="integer-overflow"),
    ],
)
def test_non_finite_features_are_kept_for_quality_counts(fragment: str) -> None:
    event = PREDICTIONS.decode(raw_prediction(fragment))
    value = event.features["x"]
    assert isinstance(value, float)
    assert not math.isfinite(value)


def test_prediction_kinds() -> None:
    assert PREDICTIONS.decode(prediction(prediction=1)).prediction == 1
    assert type(PREDICTIONS.decode(prediction(prediction=1)).prediction) is int
    assert PREDICTIONS.decode(prediction(prediction=0.7)).prediction == 0.7
    assert PREDICTIONS.decode(prediction(prediction="spam")).prediction == "spam"


@pytest.mark.parametrize(
    ("probabilities", "served"),
    [
        pytest.param({"a": 0.4, "b": 0.4, "c": 0.2}, "b", id="class-name"),
        pytest.param({"0": 0.2, "1": 0.2, "2": 0.6}, 1, id="integer-class-id"),
        pytest.param({"1": 0.2, "2": 0.8}, "1.0", id="class-spelled-as-a-number"),
    ],
)
def test_the_served_class_comes_beside_the_probabilities(
    probabilities: dict[str, float], served: object
) -> None:
    event = PREDICTIONS.decode(prediction(prediction=probabilities, predicted_class=served))
    assert event.predicted_class == served
    assert b'"predicted_class"' in encode_event(event)


def test_label_and_metric_events() -> None:
    label = LABELS.decode(
        b'{"event_id": "r1", "model": "m", "ts": "2024-05-01T12:00:00Z", "label": 1}'
    )
    assert label == LabelEvent(event_id="r1", model="m", ts_ms=NOW, label=1)
    metric = METRICS.decode(
        b'{"model": "m", "ts": 1714564800000, "metrics": {"cpu_util": 0.83, "rss": 12}}'
    )
    assert metric == MetricEvent(model="m", ts_ms=NOW, metrics={"cpu_util": 0.83, "rss": 12.0})
    assert metric.model_version == "unknown"


def test_decoder_for_names_kinds() -> None:
    assert decoder_for("label").kind is LabelEvent
    assert decoder_for("metric", max_bytes=10).max_bytes == 10
    with pytest.raises(ValueError, match="kind must be one of"):
        decoder_for("nope")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        EventDecoder(dict)  # type: ignore[type-var]


def test_encode_event_writes_ts_as_epoch_ms_and_leaves_out_defaults() -> None:
    event = PredictionEvent(model="m", ts_ms=parse_ts("2024-05-01T12:00:00Z"), features={"a": 1.0})
    assert json.loads(encode_event(event)) == {"model": "m", "ts": NOW, "features": {"a": 1.0}}


def test_constructing_an_event_in_python_normalises_and_checks_ts() -> None:
    text: Any = "1970-01-01T00:00:01Z"  # typed code passes parse_ts(text); the struct takes both
    assert LabelEvent(event_id="a", model="m", ts_ms=text, label=0).ts_ms == 1000
    instant: Any = datetime(1970, 1, 1, 0, 0, 2, 999_999, tzinfo=UTC)
    assert MetricEvent(model="m", ts_ms=instant, metrics={}).ts_ms == 2999
    with pytest.raises(DecodeError) as info:
        MetricEvent(model="m", ts_ms=-1, metrics={})
    assert info.value.path == "$.ts"


# -- bad input: reason, path and message ---------------------------------------------------------

# fmt: off
BAD_PREDICTIONS = [
    # invalid JSON
    pytest.param(b"", "invalid_json", "$", "truncated", id="empty"),
    pytest.param(b"{", "invalid_json", "$", "truncated", id="truncated"),
    pytest.param(b'{"model": "m",}', "invalid_json", "$", "trailing comma", id="trailing-comma"),
    pytest.param(b"\xff\xfe{}", "invalid_json", "$", "not UTF-8", id="not-utf8"),
    pytest.param(b'{"model": "\xc3"}', "invalid_json", "$", "not UTF-8", id="broken-utf8-in-string"),
    pytest.param(b'{"model": "\\ud800"}', "invalid_json", "$", "lone surrogate", id="lone-surrogate"),
    pytest.param(b"[" * 3000 + b"]" * 3000, "invalid_json", "$", "nested", id="deeply-nested"),
    pytest.param(b"model=fraud", "invalid_json", "$", "malformed", id="not-json"),
    pytest.param(b'{"model": "m"} {}', "invalid_json", "$", "extra data", id="two-objects"),
    # the shape of the whole message
    pytest.param(b"[]", "schema", "$", "expected a JSON object; got array", id="array"),
    pytest.param(b'"event"', "schema", "$", "got string", id="string"),
    pytest.param(b"null", "schema", "$", "got null", id="null"),
    # model
    pytest.param(prediction(model=...), "schema", "$.model", "required field missing", id="model-missing"),
    pytest.param(prediction(model=""), "schema", "$.model", 'non-empty string (the model name); got string ""', id="model-empty"),
    pytest.param(prediction(model=7), "schema", "$.model", "got integer 7", id="model-number"),
    pytest.param(prediction(model_version=1.2), "schema", "$.model_version", "got number 1.2", id="model-version-number"),
    # ts
    pytest.param(prediction(ts=...), "schema", "$.ts", "required field missing", id="ts-missing"),
    pytest.param(prediction(ts=None), "schema", "$.ts", "got null", id="ts-null"),
    pytest.param(prediction(ts=1.7e12), "schema", "$.ts", "integer epoch milliseconds; got number", id="ts-float"),
    pytest.param(prediction(ts=True), "schema", "$.ts", "got bool true", id="ts-bool"),
    pytest.param(prediction(ts="yesterday"), "schema", "$.ts", 'got string "yesterday"', id="ts-not-a-time"),
    pytest.param(prediction(ts="2024-05-01T12:00:00"), "schema", "$.ts", "offset or 'Z'", id="ts-no-offset"),
    pytest.param(prediction(ts="2024-05-01"), "schema", "$.ts", "such as '2024-05-01T12:00:00Z'", id="ts-date-only"),
    pytest.param(prediction(ts="2024-02-30T00:00:00Z"), "schema", "$.ts", "2024-02-30", id="ts-no-such-day"),
    pytest.param(prediction(ts=-1), "schema", "$.ts", "between 1970-01-01 and 9999-12-31", id="ts-negative"),
    pytest.param(prediction(ts=10**20), "schema", "$.ts", "between 1970-01-01 and 9999-12-31", id="ts-year-3-billion"),
    pytest.param(raw_prediction('"features": {}, "ts": 1e999'), "non_finite", "$.ts", "non-finite Infinity", id="ts-overflow"),
    pytest.param(raw_prediction('"features": {}, "ts": NaN'), "non_finite", "$.ts", "non-finite NaN", id="ts-nan"),
    # features
    pytest.param(prediction(features=...), "schema", "$.features", "required field missing", id="features-missing"),
    pytest.param(prediction(features=[1, 2]), "schema", "$.features", "got array", id="features-array"),
    pytest.param(prediction(features={"amount": {"v": 1}}), "schema", "$.features.amount", 'got object {"v": 1}', id="feature-object"),
    pytest.param(prediction(features={"a": 1, "amount": [1]}), "schema", "$.features.amount", "got array [1]", id="feature-array"),
    pytest.param(prediction(features={"unit price": []}), "schema", '$.features["unit price"]', "got array", id="feature-odd-name"),
    # prediction
    pytest.param(prediction(prediction=[0.1, 0.9]), "schema", "$.prediction", "class -> probability; got array", id="prediction-array"),
    pytest.param(prediction(prediction=False), "schema", "$.prediction", "got bool false", id="prediction-bool"),
    pytest.param(prediction(prediction={"a": "high"}), "schema", "$.prediction.a", 'probability); got string "high"', id="probability-string"),
    pytest.param(prediction(prediction=2**60), "schema", "$.prediction", "got integer", id="prediction-int-beyond-2-53"),
    pytest.param(raw_prediction('"features": {}, "prediction": NaN'), "non_finite", "$.prediction", "non-finite NaN", id="prediction-nan"),
    pytest.param(raw_prediction('"features": {}, "prediction": {"a": 1e999}'), "non_finite", "$.prediction.a", "non-finite Infinity", id="probability-overflow"),
    pytest.param(raw_prediction('"features": {}, "prediction": {"a": -Infinity}'), "non_finite", "$.prediction.a", "non-finite -Infinity", id="probability-infinity"),
    # latency_ms
    pytest.param(prediction(latency_ms=-0.5), "schema", "$.latency_ms", "finite number >= 0; got number -0.5", id="latency-negative"),
    pytest.param(prediction(latency_ms="12ms"), "schema", "$.latency_ms", 'got string "12ms"', id="latency-string"),
    pytest.param(raw_prediction('"features": {}, "latency_ms": 1e999'), "non_finite", "$.latency_ms", "non-finite Infinity", id="latency-overflow"),
    pytest.param(raw_prediction('"features": {}, "latency_ms": NaN'), "non_finite", "$.latency_ms", "non-finite NaN", id="latency-nan"),
    pytest.param(raw_prediction('"features": {}, "latency_ms": 1' + "0" * 400), "non_finite", "$.latency_ms", "non-finite", id="latency-huge-integer"),
    # status
    pytest.param(prediction(status="200"), "schema", "$.status", 'HTTP status (100..599); got string "200"', id="status-string"),
    pytest.param(prediction(status=200.0), "schema", "$.status", "got number 200.0", id="status-float"),
    pytest.param(prediction(status=42), "schema", "$.status", "got integer 42", id="status-out-of-range"),
    # segment and event_id
    pytest.param(prediction(segment={"country": 49}), "schema", "$.segment.country", "expected a string; got integer 49", id="segment-number"),
    pytest.param(prediction(segment="DE"), "schema", "$.segment", 'got string "DE"', id="segment-string"),
    pytest.param(prediction(event_id=17), "schema", "$.event_id", "expected a string; got integer 17", id="event-id-number"),
    # predicted_class
    pytest.param(prediction(prediction={"a": 0.5, "b": 0.5}, predicted_class="c"), "schema", "$.predicted_class", 'one of the classes of `$.prediction` (["a", "b"]); got string "c"', id="served-class-unknown"),
    pytest.param(prediction(prediction=0.7, predicted_class="a"), "schema", "$.predicted_class", "beside number 0.7", id="served-class-beside-a-score"),
    pytest.param(prediction(predicted_class="a"), "schema", "$.predicted_class", "beside no prediction", id="served-class-without-prediction"),
    pytest.param(prediction(prediction={"a": 1.0}, predicted_class=["a"]), "schema", "$.predicted_class", 'got array ["a"]', id="served-class-array"),
    pytest.param(prediction(prediction={"1": 1.0}, predicted_class=1.5), "schema", "$.predicted_class", "got number 1.5", id="served-class-float"),
]
# fmt: on


@pytest.mark.parametrize(("raw", "reason", "path", "message"), BAD_PREDICTIONS)
def test_bad_predictions_are_explained(raw: bytes, reason: str, path: str, message: str) -> None:
    with pytest.raises(DecodeError) as info:
        PREDICTIONS.decode(raw)
    error = info.value
    assert (error.reason, error.path) == (reason, path), str(error)
    assert message in error.detail
    assert error.detail.startswith("expected"), error.detail
    assert str(error).endswith(f"at `{path}`")


# fmt: off
BAD_OTHERS = [
    pytest.param(LABELS, b'{"model": "m", "ts": 1, "label": 1}', "schema", "$.event_id", "required field missing", id="label-event-id-missing"),
    pytest.param(LABELS, b'{"event_id": "a", "model": "m", "ts": 1}', "schema", "$.label", "required field missing", id="label-missing"),
    pytest.param(LABELS, b'{"event_id": "a", "model": "m", "ts": 1, "label": [1]}', "schema", "$.label", "got array [1]", id="label-array"),
    pytest.param(LABELS, b'{"event_id": "a", "model": "m", "ts": 1, "label": NaN}', "non_finite", "$.label", "non-finite NaN", id="label-nan"),
    pytest.param(METRICS, b'{"model": "m", "ts": 1}', "schema", "$.metrics", "required field missing", id="metrics-missing"),
    pytest.param(METRICS, b'{"model": "m", "ts": 1, "metrics": {"cpu": "high"}}', "schema", "$.metrics.cpu", 'got string "high"', id="metric-string"),
    pytest.param(METRICS, b'{"model": "m", "ts": 1, "metrics": {"cpu": 1e999}}', "non_finite", "$.metrics.cpu", "non-finite Infinity", id="metric-overflow"),
]
# fmt: on


@pytest.mark.parametrize(("decoder", "raw", "reason", "path", "message"), BAD_OTHERS)
def test_bad_labels_and_metrics_are_explained(
    decoder: EventDecoder[Any], raw: bytes, reason: str, path: str, message: str
) -> None:
    with pytest.raises(DecodeError) as info:
        decoder.decode(raw)
    assert (info.value.reason, info.value.path) == (reason, path), str(info.value)
    assert message in info.value.detail


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
        prediction(event_id="c", features={"x": [1]}),
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


def test_decode_error_is_a_drifthouse_error_chained_to_its_cause() -> None:
    with pytest.raises(DrifthouseError) as info:
        PREDICTIONS.decode(prediction(status="x"))
    assert isinstance(info.value.__cause__, msgspec.ValidationError)


def test_parse_ts() -> None:
    assert parse_ts("1970-01-01T00:00:00.001Z") == 1
    assert parse_ts("1970-01-01T01:00:00+01:00") == 0
    with pytest.raises(DecodeError, match="offset"):
        parse_ts("1970-01-01T00:00:00")


# -- properties --------------------------------------------------------------------------------


def _check_outcome(decoder: EventDecoder[Any], raw: bytes) -> None:
    """The decoder returns an event or raises DecodeError with a known reason, never anything else."""
    try:
        event = decoder.decode(raw, now_ms=NOW)
    except DecodeError as exc:
        error = exc
    else:
        assert isinstance(event, decoder.kind)
        assert type(event.ts_ms) is int
        assert 0 <= event.ts_ms <= NOW + decoder.max_future_ms
        return
    assert error.reason in REASONS
    assert error.path.startswith("$")
    assert error.detail.startswith("expected "), str(error)


@PROPERTY
@given(st.binary(max_size=300))
def test_random_bytes_only_ever_raise_decode_error(raw: bytes) -> None:
    for decoder in (PREDICTIONS, LABELS, METRICS):
        _check_outcome(decoder, raw)


@PROPERTY
@given(ev_st.json_texts)
def test_random_json_only_ever_raises_decode_error(raw: bytes) -> None:
    for decoder in (PREDICTIONS, LABELS, METRICS):
        _check_outcome(decoder, raw)


@PROPERTY
@given(ev_st.corrupted_events())
def test_corrupted_events_only_ever_raise_decode_error(raw: bytes) -> None:
    _check_outcome(PREDICTIONS, raw)


@PROPERTY
@given(ev_st.mutated_predictions())
def test_mutated_predictions_are_accepted_valid_or_rejected_with_a_path(raw: bytes) -> None:
    try:
        event = PREDICTIONS.decode(raw)
    except DecodeError as exc:
        assert exc.reason in {"schema", "non_finite"}, str(exc)  # noqa: PT017
        assert exc.detail.startswith("expected "), str(exc)  # noqa: PT017
        assert exc.path.split(".")[1].split("[")[0] in FIELDS, str(exc)  # noqa: PT017
        return
    assert event.latency_ms is None or (math.isfinite(event.latency_ms) and event.latency_ms >= 0)
    assert 100 <= event.status <= 599
    assert all(isinstance(v, (float, str, bool)) or v is None for v in event.features.values())
    assert all(isinstance(v, str) for v in event.segment.values())
    if isinstance(event.prediction, dict):
        assert all(math.isfinite(p) for p in event.prediction.values())
    elif isinstance(event.prediction, float):
        assert math.isfinite(event.prediction)


@PROPERTY
@given(ev_st.prediction_events())
def test_valid_predictions_round_trip(event: PredictionEvent) -> None:
    assert PREDICTIONS.decode(encode_event(event)) == event


@PROPERTY
@given(st.one_of(ev_st.label_events(), ev_st.metric_events()))
def test_valid_labels_and_metrics_round_trip(event: LabelEvent | MetricEvent) -> None:
    decoder = LABELS if isinstance(event, LabelEvent) else METRICS
    assert decoder.decode(encode_event(event)) == event


@PROPERTY
@given(ev_st.rfc3339_times())
def test_rfc3339_times_decode_to_their_instant(time: tuple[str, int]) -> None:
    text, ms = time
    assert PREDICTIONS.decode(prediction(ts=text)).ts_ms == ms


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


def test_the_examples_in_the_docs_decode() -> None:
    text = (Path(__file__).resolve().parents[1] / "docs" / "events.md").read_text()
    blocks = re.findall(r"```json\n(.*?)```", text, re.DOTALL)
    assert len(blocks) == 3
    decoders: list[EventDecoder[Any]] = [PREDICTIONS, LABELS, METRICS]
    for decoder, block in zip(decoders, blocks, strict=True):
        decoder.decode(block.encode())


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


# -- segment attributes are bounded ----------------------------------------------------------------


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
