"""Bad input: every refused message is explained with a reason, a path and what came."""

from __future__ import annotations

import math
from typing import Any

import msgspec
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from drifthouse.errors import DecodeError, DrifthouseError
from drifthouse.events import EventDecoder
from tests import strategies as ev_st
from tests.events.samples import (
    FIELDS,
    LABELS,
    METRICS,
    NOW,
    PREDICTIONS,
    PROPERTY,
    REASONS,
    prediction,
    raw_prediction,
)

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
    pytest.param(prediction(features={"a": 1, "amount": [1, "x"]}), "schema", "$.features.amount", 'array of numbers (an embedding) or null; got array [1, "x"]', id="feature-array-of-strings"),
    pytest.param(prediction(features={"unit price": [[1]]}), "schema", '$.features["unit price"]', "got array", id="feature-odd-name"),
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


def test_decode_error_is_a_drifthouse_error_chained_to_its_cause() -> None:
    with pytest.raises(DrifthouseError) as info:
        PREDICTIONS.decode(prediction(status="x"))
    assert isinstance(info.value.__cause__, msgspec.ValidationError)


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
@example(b'{"model": "0", "ts": 0, "features": {}}')  # found by Hypothesis: an implausible time
def test_mutated_predictions_are_accepted_valid_or_rejected_with_a_path(raw: bytes) -> None:
    try:
        event = PREDICTIONS.decode(raw)
    except DecodeError as exc:
        # An event time mutated to before 2000-01-01 (e.g. ``"ts": 0``) is refused as
        # implausible, at its path (docs/events.md, "Prediction events").
        assert exc.reason in {"schema", "non_finite", "implausible_ts"}, str(exc)  # noqa: PT017
        assert exc.detail.startswith("expected "), str(exc)  # noqa: PT017
        assert exc.path.split(".")[1].split("[")[0] in FIELDS, str(exc)  # noqa: PT017
        if exc.reason == "implausible_ts":
            assert exc.path == "$.ts", str(exc)  # noqa: PT017
        return
    assert event.latency_ms is None or (math.isfinite(event.latency_ms) and event.latency_ms >= 0)
    assert 100 <= event.status <= 599
    assert all(
        isinstance(v, (float, str, bool))
        or v is None
        # an embedding (docs/events.md): an array of numbers, null where an element is
        or (isinstance(v, list) and all(isinstance(x, float) or x is None for x in v))
        for v in event.features.values()
    )
    assert all(isinstance(v, str) for v in event.segment.values())
    if isinstance(event.prediction, dict):
        assert all(math.isfinite(p) for p in event.prediction.values())
    elif isinstance(event.prediction, float):
        assert math.isfinite(event.prediction)
