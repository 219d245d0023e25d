"""The three kinds of input event (docs/events.md) as typed msgspec structs, and their JSON.

- :class:`PredictionEvent` (topic ``predictions``): a model's inputs and output,
- :class:`LabelEvent` (topic ``labels``): the ground truth of an earlier prediction,
- :class:`MetricEvent` (topic ``metrics``): numbers such as resource utilisation.

:mod:`drifthouse.events.decoder` decodes raw messages into them; :func:`encode_event` writes
them back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal, TypeAlias, TypeVar

import msgspec

from drifthouse.events.served_class import check_served_class
from drifthouse.events.timestamps import MAX_TS_MS, AwareDatetime, parse_ts

__all__ = [
    "Buffer",
    "E",
    "Event",
    "EventKind",
    "FeatureValue",
    "LabelEvent",
    "MetricEvent",
    "Prediction",
    "PredictionEvent",
    "encode_event",
]

FeatureValue: TypeAlias = float | str | bool | list[float | None] | None
"""A feature value after decoding: numbers are always ``float`` (JSON ``3`` becomes ``3.0``);
an array of numbers is an embedding (docs/events.md, "Embedding features"), its elements
``float`` too (``null`` inside one is kept and counted as ``non_finite``)."""

# Integers beyond 2**53 are not exact as floats: no sane class id or score needs them.
_ExactInt = Annotated[int, msgspec.Meta(ge=-(2**53), le=2**53)]

Buffer: TypeAlias = bytes | bytearray | memoryview
"""What a message value may be: Kafka clients hand out ``bytes``, some ``memoryview``."""

Prediction: TypeAlias = _ExactInt | float | str | dict[str, float]
"""A prediction: a number (regression score, class id), a class name, or class -> probability."""

_NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]
_NonNegative = Annotated[float, msgspec.Meta(ge=0.0)]
_HttpStatus = Annotated[int, msgspec.Meta(ge=100, le=599)]


# The struct attribute is ``ts_ms`` (always int epoch ms once constructed) while the JSON key
# is ``ts`` (an int or an RFC 3339 string). msgspec must accept both forms when decoding, so at
# run time the field is declared ``int | datetime`` (msgspec parses RFC 3339 in C, faster than
# datetime.fromisoformat) and ``__post_init__`` normalises it; type checkers see the ``int``.
# Built in Python, an event also takes a string or an aware datetime, but typed code should
# pass ``parse_ts(value)``.
class PredictionEvent(msgspec.Struct, kw_only=True, omit_defaults=True, gc=False):
    """One served prediction: a model's inputs and output (topic ``predictions``).

    Attributes
    ----------
    model : str
        Model name (non-empty).
    ts_ms : int
        Event time in epoch milliseconds (JSON key ``ts``: RFC 3339 string or integer ms).
    features : dict[str, float | str | bool | list[float | None] | None]
        Model inputs. Numbers decode as ``float``; non-finite values (``NaN``, ``1e999``) are
        kept here and counted as ``non_finite`` downstream, never rejected. An array of numbers
        is an embedding: the profile declares such a feature with its dimension.
    model_version : str
        Defaults to ``"unknown"``.
    event_id : str or None
        Unique id of the request; needed to join labels.
    prediction : int, float, str, dict[str, float] or None
        Model output: a number, a class name, or class -> probability (finite).
    predicted_class : int, str or None
        With ``prediction`` as class -> probability, the class the model served; one of its
        classes (compared as categories: ``2`` names class ``"2"``). Without it, the most
        probable class is taken, ties broken by name.
    latency_ms : float or None
        Serving latency, finite and non-negative.
    status : int
        HTTP status of the serving request (100..599), default 200.
    segment : dict[str, str]
        Groups for segment and fairness metrics, e.g. ``{"country": "DE"}``.

    Examples
    --------
    >>> ev = PredictionEvent(model="fraud", ts_ms=parse_ts("2024-05-01T12:00:00Z"), features={"amount": 9.5})
    >>> ev.ts_ms
    1714564800000
    >>> encode_event(ev)
    b'{"model":"fraud","ts":1714564800000,"features":{"amount":9.5}}'
    """

    model: _NonEmpty
    if TYPE_CHECKING:
        ts_ms: int
    else:
        ts_ms: int | AwareDatetime = msgspec.field(name="ts")
    features: dict[str, FeatureValue]
    model_version: str = "unknown"
    event_id: str | None = None
    prediction: Prediction | None = None
    predicted_class: _ExactInt | str | None = None
    latency_ms: _NonNegative | None = None
    status: _HttpStatus = 200
    segment: dict[str, str] = {}

    def __post_init__(self) -> None:
        ts = self.ts_ms
        if type(ts) is not int or not 0 <= ts <= MAX_TS_MS:
            self.ts_ms = parse_ts(ts)  # a datetime, a str built in Python, or out of range
        if self.predicted_class is not None:
            check_served_class(self.prediction, self.predicted_class)


class LabelEvent(msgspec.Struct, kw_only=True, omit_defaults=True, gc=False):
    """The ground truth of an earlier prediction, joined on ``event_id`` (topic ``labels``).

    Attributes
    ----------
    event_id : str
        Id of the prediction this label belongs to.
    model : str
        Model name (non-empty).
    ts_ms : int
        Time of the label in epoch milliseconds (JSON key ``ts``).
    label : int, float or str
        The true value: a finite number or a class name.
    """

    event_id: str
    model: _NonEmpty
    if TYPE_CHECKING:
        ts_ms: int
    else:
        ts_ms: int | AwareDatetime = msgspec.field(name="ts")
    label: _ExactInt | float | str

    def __post_init__(self) -> None:
        ts = self.ts_ms
        if type(ts) is not int or not 0 <= ts <= MAX_TS_MS:
            self.ts_ms = parse_ts(ts)


class MetricEvent(msgspec.Struct, kw_only=True, omit_defaults=True, gc=False):
    """Numbers about a model's serving, e.g. ``{"cpu_util": 0.83}`` (topic ``metrics``).

    Attributes
    ----------
    model : str
        Model name (non-empty).
    ts_ms : int
        Event time in epoch milliseconds (JSON key ``ts``).
    metrics : dict[str, float]
        Metric name -> finite number; rules may refer to these names.
    model_version : str
        Defaults to ``"unknown"``.
    """

    model: _NonEmpty
    if TYPE_CHECKING:
        ts_ms: int
    else:
        ts_ms: int | AwareDatetime = msgspec.field(name="ts")
    metrics: dict[str, float]
    model_version: str = "unknown"

    def __post_init__(self) -> None:
        ts = self.ts_ms
        if type(ts) is not int or not 0 <= ts <= MAX_TS_MS:
            self.ts_ms = parse_ts(ts)


Event: TypeAlias = PredictionEvent | LabelEvent | MetricEvent
EventKind = Literal["prediction", "label", "metric"]
E = TypeVar("E", PredictionEvent, LabelEvent, MetricEvent)

_ENCODER = msgspec.json.Encoder()


def encode_event(event: Event) -> bytes:
    """Encode an event as the JSON its topic expects (``ts`` as integer epoch milliseconds).

    Defaults are left out. Non-finite floats are written as ``null``, as JSON has no spelling
    for them; use :func:`json.dumps` to send ``NaN`` literals on purpose.

    >>> encode_event(LabelEvent(event_id="a1", model="fraud", ts_ms=5, label="spam"))
    b'{"event_id":"a1","model":"fraud","ts":5,"label":"spam"}'
    """
    return _ENCODER.encode(event)
