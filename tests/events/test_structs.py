"""The event structs: what a valid event decodes to, how it is built in Python and encoded."""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drifthouse.errors import DecodeError
from drifthouse.events import (
    EventDecoder,
    LabelEvent,
    MetricEvent,
    PredictionEvent,
    encode_event,
    parse_ts,
)
from tests import strategies as ev_st
from tests.events.samples import (
    LABELS,
    METRICS,
    NOW,
    PREDICTIONS,
    PROPERTY,
    prediction,
    raw_prediction,
)


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


@PROPERTY
@given(ev_st.prediction_events())
def test_valid_predictions_round_trip(event: PredictionEvent) -> None:
    assert PREDICTIONS.decode(encode_event(event)) == event


@PROPERTY
@given(st.one_of(ev_st.label_events(), ev_st.metric_events()))
def test_valid_labels_and_metrics_round_trip(event: LabelEvent | MetricEvent) -> None:
    decoder = LABELS if isinstance(event, LabelEvent) else METRICS
    assert decoder.decode(encode_event(event)) == event


def test_the_examples_in_the_docs_decode() -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "events.md").read_text()
    blocks = re.findall(r"```json\n(.*?)```", text, re.DOTALL)
    assert len(blocks) == 4
    # A prediction, one with an embedding feature, a label, a metric event.
    decoders: list[EventDecoder[Any]] = [PREDICTIONS, PREDICTIONS, LABELS, METRICS]
    for decoder, block in zip(decoders, blocks, strict=True):
        decoder.decode(block.encode())
