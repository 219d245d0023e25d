"""Hypothesis strategies for input events (docs/events.md), shared by every test package.

Valid events
    :func:`prediction_events`, :func:`label_events`, :func:`metric_events` build typed events
    whose values survive ``encode_event`` -> ``EventDecoder.decode`` unchanged (finite numbers,
    integer ``ts_ms``). :func:`rfc3339_times` gives ``(text, epoch_ms)`` pairs.
Hostile input
    :func:`json_values` is arbitrary JSON (nested, huge integers, NaN and Infinity, long
    strings); :func:`json_texts` serialises it the way careless producers do (``NaN`` literals
    included); :func:`mutated_predictions` takes a valid prediction and replaces, removes or adds
    one field with arbitrary JSON.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import strategies as st

from drifthouse.events import MIN_TS_MS, LabelEvent, MetricEvent, PredictionEvent, encode_event

__all__ = [
    "MAX_TS_MS",
    "corrupted_events",
    "epoch_ms",
    "feature_values",
    "json_texts",
    "json_values",
    "label_events",
    "metric_events",
    "mutated_predictions",
    "names",
    "prediction_events",
    "predictions",
    "rfc3339_times",
]

MAX_TS_MS = 253_402_300_799_999
"""The last millisecond of 9999-12-31 UTC, the largest event time the decoder takes."""

finite_floats = st.floats(allow_nan=False, allow_infinity=False)
exact_ints = st.integers(min_value=-(2**53), max_value=2**53)
names = st.text(min_size=1, max_size=12)
"""Feature, class, segment and model names: any non-empty text (no surrogates)."""

# The decoders refuse times before 2000-01-01 (MIN_TS_MS) as implausible.
epoch_ms = st.integers(min_value=MIN_TS_MS, max_value=MAX_TS_MS)
"""Valid event times as integer epoch milliseconds."""

feature_values: st.SearchStrategy[float | str | bool | None] = st.one_of(
    finite_floats, st.text(max_size=20), st.booleans(), st.none()
)
"""Decoded feature values: numbers are floats after decoding, so only floats are generated."""

predictions: st.SearchStrategy[Any] = st.one_of(
    exact_ints,
    finite_floats,
    st.text(max_size=10),
    st.dictionaries(names, st.floats(min_value=0.0, max_value=1.0), max_size=4),
    st.none(),
)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DAY_MS = 86_400_000


@st.composite
def rfc3339_times(draw: st.DrawFn) -> tuple[str, int]:
    """``("2024-05-01T14:00:00.250+02:00", 1714564800250)``: an RFC 3339 text and its epoch ms.

    Offsets from -23:59 to +23:59, ``Z`` or ``z`` for UTC, with or without milliseconds.
    """
    ms = draw(st.integers(min_value=MIN_TS_MS + _DAY_MS, max_value=MAX_TS_MS - _DAY_MS))
    zone = timezone(timedelta(minutes=draw(st.integers(min_value=-1439, max_value=1439))))
    local = (_EPOCH + timedelta(milliseconds=ms)).astimezone(zone)
    timespec = draw(st.sampled_from(["seconds", "milliseconds", "microseconds"]))
    text = local.isoformat(timespec=timespec)
    if text.endswith("+00:00") and draw(st.booleans()):
        text = text[:-6] + draw(st.sampled_from(["Z", "z"]))
    if draw(st.booleans()):
        text = text.replace("T", "t")
    return text, ms if timespec != "seconds" else ms - ms % 1000


@st.composite
def prediction_events(draw: st.DrawFn, *, max_features: int = 8) -> PredictionEvent:
    """Valid prediction events with every optional field sometimes present."""
    prediction = draw(predictions)
    served = None
    if isinstance(prediction, dict) and prediction and draw(st.booleans()):
        served = draw(st.sampled_from(sorted(prediction)))
    return PredictionEvent(
        model=draw(names),
        ts_ms=draw(epoch_ms),
        features=draw(st.dictionaries(names, feature_values, max_size=max_features)),
        model_version=draw(st.one_of(st.just("unknown"), st.text(max_size=8))),
        event_id=draw(st.one_of(st.none(), st.text(max_size=16))),
        prediction=prediction,
        predicted_class=served,
        latency_ms=draw(st.one_of(st.none(), st.floats(min_value=0.0, allow_infinity=False))),
        status=draw(st.integers(min_value=100, max_value=599)),
        segment=draw(st.dictionaries(names, st.text(max_size=8), max_size=3)),
    )


@st.composite
def label_events(draw: st.DrawFn) -> LabelEvent:
    """Valid label events: numeric or string labels."""
    return LabelEvent(
        event_id=draw(st.text(max_size=16)),
        model=draw(names),
        ts_ms=draw(epoch_ms),
        label=draw(st.one_of(exact_ints, finite_floats, st.text(max_size=10))),
    )


@st.composite
def metric_events(draw: st.DrawFn) -> MetricEvent:
    """Valid metric events with finite values."""
    return MetricEvent(
        model=draw(names),
        ts_ms=draw(epoch_ms),
        metrics=draw(st.dictionaries(names, finite_floats, max_size=5)),
        model_version=draw(st.one_of(st.just("unknown"), st.text(max_size=8))),
    )


_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(),  # NaN and the infinities included
    st.text(max_size=30),
)

json_values: st.SearchStrategy[Any] = st.recursive(
    _scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5), st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=25,
)
"""Arbitrary JSON-able values, nested, with huge integers, NaN and infinities."""

json_texts = json_values.map(lambda value: json.dumps(value).encode())
"""``json_values`` as bytes the way Python's ``json.dumps`` writes them (``NaN``, ``Infinity``)."""

_PREDICTION_FIELDS = [
    "model",
    "model_version",
    "ts",
    "event_id",
    "features",
    "prediction",
    "latency_ms",
    "status",
    "segment",
]


@st.composite
def mutated_predictions(draw: st.DrawFn) -> bytes:
    """A valid prediction event with one field replaced by, or gaining, arbitrary JSON, or dropped."""
    event = draw(prediction_events(max_features=4))
    obj = json.loads(encode_event(event))
    field = draw(st.sampled_from([*_PREDICTION_FIELDS, "features.*", "segment.*", "prediction.*"]))
    action = draw(st.sampled_from(["replace", "drop"]))
    if field.endswith(".*"):
        parent = field[:-2]
        container = obj.setdefault(parent, {})
        if not isinstance(container, dict):
            container = obj[parent] = {}
        container[draw(names)] = draw(json_values)
    elif action == "drop":
        obj.pop(field, None)
    else:
        obj[field] = draw(json_values)
    return json.dumps(obj).encode()


@st.composite
def corrupted_events(draw: st.DrawFn) -> bytes:
    """A valid encoded prediction with a few bytes flipped, inserted or deleted."""
    raw = bytearray(encode_event(draw(prediction_events(max_features=4))))
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        at = draw(st.integers(min_value=0, max_value=len(raw) - 1))
        action = draw(st.sampled_from(["flip", "insert", "delete"]))
        if action == "flip":
            raw[at] = draw(st.integers(min_value=0, max_value=255))
        elif action == "insert":
            raw[at:at] = draw(
                st.sampled_from([b"[", b"{", b'"', b",", b"NaN", b"1e999", b"\\u", b"\xff"])
            )
        elif len(raw) > 1:
            del raw[at]
    return bytes(raw)
