"""Input events (docs/events.md): typed structs and one reusable decoder per kind.

Three kinds of event arrive as one JSON object per Kafka message:

- :class:`PredictionEvent` (topic ``predictions``): a model's inputs and output,
- :class:`LabelEvent` (topic ``labels``): the ground truth of an earlier prediction,
- :class:`MetricEvent` (topic ``metrics``): numbers such as resource utilisation.

An :class:`EventDecoder` is created once per kind and reused. Valid JSON runs through msgspec's
typed decoder in C; only messages that fail take a slow path that works out the precise reason,
field path and offending value for the dead-letter header. A bad message raises
:class:`~drifthouse.errors.DecodeError` (``decode``) or is returned beside the good ones
(``decode_batch``): it never stops a batch.

Reasons: ``too_large``, ``invalid_json``, ``schema``, ``non_finite``, ``future_ts``,
``implausible_ts``, ``too_many_segments``.

The package's modules, in the order they build on each other:

- :mod:`~drifthouse.events.describe`: how messages show a value,
- :mod:`~drifthouse.events.timestamps`: event times (:func:`parse_ts`),
- :mod:`~drifthouse.events.served_class`: the served class of a prediction,
- :mod:`~drifthouse.events.structs`: the three event structs and :func:`encode_event`,
- :mod:`~drifthouse.events.explain`: the slow path that explains a refused message,
- :mod:`~drifthouse.events.decoder`: :class:`EventDecoder` and :func:`decoder_for`,
- :mod:`~drifthouse.events.batches`: batched messages (:func:`decode_messages`),
  :mod:`~drifthouse.events.batch_columns` those in columns kept in columns,
  :mod:`~drifthouse.events.batch_encode` their encoders (:func:`encode_batch`,
  :func:`encode_columns`).

Example
-------
>>> dec = EventDecoder(PredictionEvent)
>>> ev = dec.decode(b'{"model": "fraud", "ts": "2024-05-01T12:00:00Z", "features": {"amount": 12}}')
>>> ev.ts_ms, ev.model_version, ev.status, ev.features
(1714564800000, 'unknown', 200, {'amount': 12.0})
>>> dec.decode(b'{"model": "fraud", "ts": 1714564800000, "features": {"amount": {"a": 1}}}')
Traceback (most recent call last):
...
drifthouse.errors.DecodeError: expected a number, string, bool, array of numbers (an embedding) or null; got object {"a": 1} - at `$.features.amount`
"""

from __future__ import annotations

from drifthouse.events.batch_encode import encode_batch, encode_columns
from drifthouse.events.batches import Decoded, Refused, decode_messages
from drifthouse.events.decoder import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_FUTURE_MS,
    DEFAULT_MAX_LABEL_BYTES,
    DEFAULT_MAX_SEGMENTS,
    EventDecoder,
    decoder_for,
)
from drifthouse.events.served_class import check_served_class
from drifthouse.events.structs import (
    Buffer,
    Event,
    EventKind,
    FeatureValue,
    LabelEvent,
    MetricEvent,
    Prediction,
    PredictionEvent,
    encode_event,
)
from drifthouse.events.timestamps import MIN_TS_MS, parse_ts

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_FUTURE_MS",
    "DEFAULT_MAX_LABEL_BYTES",
    "DEFAULT_MAX_SEGMENTS",
    "MIN_TS_MS",
    "Buffer",
    "Decoded",
    "Event",
    "EventDecoder",
    "EventKind",
    "FeatureValue",
    "LabelEvent",
    "MetricEvent",
    "Prediction",
    "PredictionEvent",
    "Refused",
    "check_served_class",
    "decode_messages",
    "decoder_for",
    "encode_batch",
    "encode_columns",
    "encode_event",
    "parse_ts",
]
