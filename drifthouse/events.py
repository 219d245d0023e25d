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

Example
-------
>>> dec = EventDecoder(PredictionEvent)
>>> ev = dec.decode(b'{"model": "fraud", "ts": "2024-05-01T12:00:00Z", "features": {"amount": 12}}')
>>> ev.ts_ms, ev.model_version, ev.status, ev.features
(1714564800000, 'unknown', 200, {'amount': 12.0})
>>> dec.decode(b'{"model": "fraud", "ts": 1, "features": {"amount": [1]}}')
Traceback (most recent call last):
...
drifthouse.errors.DecodeError: expected a number, string, bool or null; got array [1] - at `$.features.amount`
"""

from __future__ import annotations

import itertools
import json
import math
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any, Generic, Literal, TypeAlias, TypeVar

import msgspec

from drifthouse.categories import category_key
from drifthouse.errors import DecodeError

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_FUTURE_MS",
    "DEFAULT_MAX_SEGMENTS",
    "MIN_TS_MS",
    "Buffer",
    "Event",
    "EventDecoder",
    "EventKind",
    "FeatureValue",
    "LabelEvent",
    "MetricEvent",
    "Prediction",
    "PredictionEvent",
    "check_served_class",
    "decoder_for",
    "encode_event",
    "parse_ts",
]

DEFAULT_MAX_BYTES = 1_000_000
DEFAULT_MAX_FUTURE_MS = 3_600_000
DEFAULT_MAX_LABEL_BYTES = 1_024
# Event times before 2000-01-01 are refused by the decoders: such a time is nearly always epoch
# seconds (or a zero) sent where milliseconds are expected, and would land in 1970's windows.
MIN_TS_MS = 946_684_800_000
DEFAULT_MAX_SEGMENTS = 16

# DateTime64(3) in ClickHouse and Python's datetime both end in the year 9999.
_MAX_TS_MS = 253_402_300_799_999
_FLOAT_MAX = sys.float_info.max
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)

FeatureValue: TypeAlias = float | str | bool | None
"""A feature value after decoding: numbers are always ``float`` (JSON ``3`` becomes ``3.0``)."""

# Integers beyond 2**53 are not exact as floats: no sane class id or score needs them.
_ExactInt = Annotated[int, msgspec.Meta(ge=-(2**53), le=2**53)]

Buffer: TypeAlias = bytes | bytearray | memoryview
"""What a message value may be: Kafka clients hand out ``bytes``, some ``memoryview``."""

Prediction: TypeAlias = _ExactInt | float | str | dict[str, float]
"""A prediction: a number (regression score, class id), a class name, or class -> probability."""

_NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]
_NonNegative = Annotated[float, msgspec.Meta(ge=0.0)]
_HttpStatus = Annotated[int, msgspec.Meta(ge=100, le=599)]
_AwareDatetime = Annotated[datetime, msgspec.Meta(tz=True)]


def parse_ts(value: int | str | datetime) -> int:
    """Normalise an event time to integer epoch milliseconds (UTC).

    ``value`` is integer epoch milliseconds, an RFC 3339 string with an offset or ``Z``, or an
    aware :class:`~datetime.datetime`. Fractions of a millisecond are truncated towards the past.

    >>> parse_ts("2024-05-01T14:00:00.250+02:00")
    1714564800250
    >>> parse_ts(1714564800250)
    1714564800250

    Raises
    ------
    DecodeError
        ``schema`` at ``$.ts`` when the value is not a valid timestamp or out of range.
    """
    if type(value) is int:
        ms = value
    elif isinstance(value, str):
        try:
            # The same RFC 3339 parser the decoder uses, so both accept the same texts.
            parsed = msgspec.convert(value, _AwareDatetime)
        except msgspec.ValidationError as exc:
            if "timezone" in str(exc):
                raise DecodeError(
                    "schema",
                    "$.ts",
                    f"expected an RFC 3339 timestamp with an offset or 'Z' (a time without one is "
                    f"ambiguous); got string {_preview(value)}: append 'Z' for UTC",
                ) from None
            raise DecodeError(
                "schema",
                "$.ts",
                f"expected an RFC 3339 timestamp such as '2024-05-01T12:00:00Z' or integer epoch "
                f"milliseconds; got string {_preview(value)}",
            ) from None
        ms = (parsed - _EPOCH) // _ONE_MS
    elif isinstance(value, datetime) and value.utcoffset() is not None:
        ms = (value - _EPOCH) // _ONE_MS
    else:
        raise DecodeError(
            "schema",
            "$.ts",
            f"expected an RFC 3339 string or integer epoch milliseconds; got {_describe(value)}",
        )
    if not 0 <= ms <= _MAX_TS_MS:
        raise DecodeError(
            "schema",
            "$.ts",
            f"expected a time between 1970-01-01 and 9999-12-31 (epoch milliseconds 0..{_MAX_TS_MS}); "
            f"got {_preview(value)}{_units_hint(ms)}",
        )
    return ms


def _units_hint(ms: int) -> str:
    """What an out-of-range integer time probably is, when a change of units explains it."""
    for unit, factor in (("seconds", 1000), ("microseconds", 1 / 1000), ("nanoseconds", 1e-6)):
        if MIN_TS_MS <= ms * factor <= _MAX_TS_MS:
            fix = "multiply by 1000" if factor == 1000 else f"divide by {round(1 / factor):,}"
            return (
                f": looks like epoch {unit} ({_iso(int(ms * factor))}); send milliseconds ({fix})"
            )
    return ""


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
    features : dict[str, float | str | bool | None]
        Model inputs. Numbers decode as ``float``; non-finite values (``NaN``, ``1e999``) are
        kept here and counted as ``non_finite`` downstream, never rejected.
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
        ts_ms: int | _AwareDatetime = msgspec.field(name="ts")
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
        if type(ts) is not int or not 0 <= ts <= _MAX_TS_MS:
            self.ts_ms = parse_ts(ts)  # a datetime, a str built in Python, or out of range
        if self.predicted_class is not None:
            check_served_class(self.prediction, self.predicted_class)


def check_served_class(prediction: object, served: int | str) -> None:
    """Raise ``schema`` at ``$.predicted_class`` unless ``served`` is one of the classes.

    A :class:`DecodeError` (not a ``ValueError``) passes through msgspec's decoder unchanged,
    so both decode paths and events built in Python say the same.
    """
    if isinstance(prediction, dict) and prediction:
        if served in prediction:
            return
        key = category_key(served)
        if any(category_key(c) == key for c in prediction):
            return
        raise DecodeError(
            "schema",
            "$.predicted_class",
            f"expected one of the classes of `$.prediction` ({_preview(list(prediction))}); "
            f"got {_describe(served)}",
        )
    raise DecodeError(
        "schema",
        "$.predicted_class",
        f"expected `predicted_class` only beside a `prediction` of class -> probability; "
        f"got it beside {'no prediction' if prediction is None else _describe(prediction)}",
    )


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
        ts_ms: int | _AwareDatetime = msgspec.field(name="ts")
    label: _ExactInt | float | str

    def __post_init__(self) -> None:
        ts = self.ts_ms
        if type(ts) is not int or not 0 <= ts <= _MAX_TS_MS:
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
        ts_ms: int | _AwareDatetime = msgspec.field(name="ts")
    metrics: dict[str, float]
    model_version: str = "unknown"

    def __post_init__(self) -> None:
        ts = self.ts_ms
        if type(ts) is not int or not 0 <= ts <= _MAX_TS_MS:
            self.ts_ms = parse_ts(ts)


Event: TypeAlias = PredictionEvent | LabelEvent | MetricEvent
EventKind = Literal["prediction", "label", "metric"]
E = TypeVar("E", PredictionEvent, LabelEvent, MetricEvent)

_KINDS: dict[str, type[Event]] = {
    "prediction": PredictionEvent,
    "label": LabelEvent,
    "metric": MetricEvent,
}


@dataclass(frozen=True)
class _Spec:
    """What the slow path needs to know about a kind to explain a failure."""

    finite: tuple[str, ...]  # fields that must be finite numbers when they are numbers
    finite_maps: tuple[str, ...]  # object fields whose values must be finite numbers
    expect: dict[str, str]  # field -> what is expected, in words
    elements: dict[str, Any]  # object field -> type of its values, to find the bad key


_TS_EXPECT = "an RFC 3339 string (with offset or Z) or integer epoch milliseconds"
_SPECS: dict[type[Event], _Spec] = {
    PredictionEvent: _Spec(
        finite=("ts", "latency_ms", "prediction"),
        finite_maps=("prediction",),
        expect={
            "model": "a non-empty string (the model name)",
            "model_version": "a string",
            "ts": _TS_EXPECT,
            "event_id": "a string",
            "features": "an object of feature name -> number, string, bool or null",
            "features.*": "a number, string, bool or null",
            "prediction": "a number, a string, or an object of class -> probability",
            "prediction.*": "a finite number (a probability)",
            "predicted_class": "a class name (string) or an integer class id",
            "latency_ms": "a finite number >= 0",
            "status": "an integer HTTP status (100..599)",
            "segment": "an object of name -> string",
            "segment.*": "a string",
        },
        elements={"features": FeatureValue, "prediction": float, "segment": str},
    ),
    LabelEvent: _Spec(
        finite=("ts", "label"),
        finite_maps=(),
        expect={
            "event_id": "a string (the id of the prediction)",
            "model": "a non-empty string (the model name)",
            "ts": _TS_EXPECT,
            "label": "a finite number or a string",
        },
        elements={},
    ),
    MetricEvent: _Spec(
        finite=("ts",),
        finite_maps=("metrics",),
        expect={
            "model": "a non-empty string (the model name)",
            "model_version": "a string",
            "ts": _TS_EXPECT,
            "metrics": "an object of metric name -> number",
            "metrics.*": "a finite number",
        },
        elements={"metrics": float},
    ),
}


class EventDecoder(Generic[E]):
    """Decode raw messages of one kind into typed events; create once, reuse for every message.

    Parameters
    ----------
    kind:
        The event struct: :class:`PredictionEvent`, :class:`LabelEvent` or :class:`MetricEvent`.
    max_bytes:
        Larger messages are rejected with reason ``too_large`` before parsing.
    max_future_ms:
        With ``now_ms`` given, events whose time is more than this after ``now_ms`` are
        rejected with reason ``future_ts``.
    min_ts_ms:
        Events timed before this (default 2000-01-01, :data:`MIN_TS_MS`) are rejected with
        reason ``implausible_ts``: mostly epoch seconds where milliseconds are expected.
    max_label_bytes:
        Names that become keys in the store (model, version, event id, feature, segment and
        metric names, segment values) longer than this are rejected with reason ``too_large``:
        one message must not be able to multiply itself into megabytes of rows.
    max_segments:
        Prediction events with more ``segment`` attributes than this are rejected with reason
        ``too_many_segments``: each attribute's value gets its own rows in every window.

    Examples
    --------
    >>> dec = EventDecoder(LabelEvent)
    >>> ok, bad = dec.decode_batch([
    ...     b'{"event_id": "a1", "model": "fraud", "ts": 1714564800000, "label": 1}',
    ...     b'{"event_id": "a2", "model": "fraud", "ts": 1714564800000}',
    ... ])
    >>> ok
    [(0, LabelEvent(event_id='a1', model='fraud', ts_ms=1714564800000, label=1))]
    >>> [(i, e.reason, e.path) for i, e in bad]
    [(1, 'schema', '$.label')]
    """

    __slots__ = (
        "_decoder",
        "_spec",
        "kind",
        "max_bytes",
        "max_future_ms",
        "max_label_bytes",
        "max_segments",
        "min_ts_ms",
    )

    def __init__(
        self,
        kind: type[E],
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_future_ms: int = DEFAULT_MAX_FUTURE_MS,
        max_label_bytes: int = DEFAULT_MAX_LABEL_BYTES,
        min_ts_ms: int = MIN_TS_MS,
        max_segments: int = DEFAULT_MAX_SEGMENTS,
    ) -> None:
        if kind not in _SPECS:
            raise TypeError(
                f"kind must be PredictionEvent, LabelEvent or MetricEvent (got {kind!r})"
            )
        self.kind: type[E] = kind
        self.max_bytes = max_bytes
        self.max_future_ms = max_future_ms
        self.max_label_bytes = max_label_bytes
        self.min_ts_ms = min_ts_ms
        self.max_segments = max_segments
        self._decoder: msgspec.json.Decoder[E] = msgspec.json.Decoder(kind)
        self._spec = _SPECS[kind]

    def __repr__(self) -> str:
        return (
            f"EventDecoder({self.kind.__name__}, max_bytes={self.max_bytes}, "
            f"max_future_ms={self.max_future_ms})"
        )

    def decode(self, raw: Buffer, *, now_ms: int | None = None) -> E:
        """Decode one message.

        Parameters
        ----------
        raw:
            The message value (UTF-8 JSON).
        now_ms:
            The reference "now" for the future-timestamp guard, in epoch milliseconds; ``None``
            turns the guard off. A live worker passes the wall clock; a replay or a test passes
            an explicit clock or the largest event time seen, so results never depend on when
            they are computed.

        Raises
        ------
        DecodeError
            With ``reason`` (``too_large``, ``invalid_json``, ``schema``, ``non_finite``,
            ``future_ts``, ``implausible_ts``,
            ``too_many_segments``), ``path`` (e.g. ``$.features.amount``) and a message saying what was
            expected and what came.
        """
        if len(raw) > self.max_bytes:
            raise DecodeError(
                "too_large",
                "$",
                f"expected a message of at most {self.max_bytes} bytes; got {len(raw)} bytes",
            )
        try:
            event = self._decoder.decode(raw)
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
            event = self._slow_decode(raw, exc)
        if len(raw) > self.max_label_bytes:
            _check_labels(event, self.max_label_bytes)
        _check_segments(event, self.max_segments)
        if now_ms is not None and event.ts_ms > now_ms + self.max_future_ms:
            raise DecodeError(
                "future_ts",
                "$.ts",
                f"expected an event time at most {self.max_future_ms} ms after now "
                f"({_iso(now_ms)}); got {_iso(event.ts_ms)}, "
                f"{event.ts_ms - now_ms} ms ahead: check the producer's clock",
            )
        if event.ts_ms < self.min_ts_ms:
            raise DecodeError(
                "implausible_ts",
                "$.ts",
                f"expected an event time from {_iso(self.min_ts_ms)} on; got {_iso(event.ts_ms)}"
                + (_units_hint(event.ts_ms) or f", which is before {_iso(self.min_ts_ms)[:10]}"),
            )
        return event

    def decode_batch(
        self,
        raws: Sequence[Buffer],
        *,
        now_ms: int | None = None,
        first: Callable[[Buffer], E] | None = None,
    ) -> tuple[list[tuple[int, E]], list[tuple[int, DecodeError]]]:
        """Decode many messages; a bad one never stops the batch.

        ``first``, when given, is tried before the general decoder on each message: a
        narrower decoder (see :mod:`drifthouse.detectors.typed_decode`) that raises for anything
        it does not take and decodes what it takes to the same values.

        Returns
        -------
        (ok, bad)
            ``ok`` holds ``(index, event)`` and ``bad`` holds ``(index, DecodeError)``, both in
            input order; every index appears in exactly one of them.
        """
        ok: list[tuple[int, E]] = []
        bad: list[tuple[int, DecodeError]] = []
        decode = self._decoder.decode
        # A name can only be longer than the bound in a message longer than it: most messages
        # take this fast path, which needs neither the size nor the name check.
        max_label = min(self.max_label_bytes, self.max_bytes)
        limit = None if now_ms is None else now_ms + self.max_future_ms
        floor = self.min_ts_ms
        max_segments = self.max_segments if self.kind is PredictionEvent else None
        for i, raw in enumerate(raws):
            # The common case inline; everything unusual goes through decode() for its error.
            if len(raw) <= max_label:
                event = None
                if first is not None:
                    try:
                        event = first(raw)
                    except Exception:  # not the fast decoder's: the general one decides
                        event = None
                if event is None:
                    try:
                        event = decode(raw)
                    except Exception:  # decode() below says what is wrong
                        event = None
                if (
                    event is not None
                    and event.ts_ms >= floor
                    and (limit is None or event.ts_ms <= limit)
                    and (max_segments is None or len(event.segment) <= max_segments)
                ):
                    ok.append((i, event))
                    continue
            try:
                ok.append((i, self.decode(raw, now_ms=now_ms)))
            except DecodeError as err:
                bad.append((i, err))
        return ok, bad

    # -- the slow path: work out exactly what is wrong ---------------------------------------

    def _slow_decode(self, raw: Buffer, fast_error: BaseException) -> E:
        """Re-parse a message msgspec refused; accept it or raise a precise DecodeError.

        msgspec refuses NaN/Infinity literals and numbers that overflow a float (``1e999``).
        Those are welcome as feature values (counted as ``non_finite`` downstream) and rejected
        with reason ``non_finite`` everywhere else, so they need a second, lenient parse.
        """
        if isinstance(fast_error, RecursionError):
            raise DecodeError(
                "invalid_json", "$", "expected JSON nested at most a few hundred levels deep"
            )
        try:
            # A str is not a message value, but a caller's mistake should not crash a batch.
            text = raw if isinstance(raw, str) else bytes(raw).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DecodeError(
                "invalid_json",
                "$",
                f"expected UTF-8 JSON; got byte {exc.object[exc.start]:#04x} at position "
                f"{exc.start} that is not UTF-8",
            ) from exc
        try:
            obj = json.loads(text)
            # Lone surrogates (``"\ud800"``) pass the stdlib parser but cannot be stored.
            json.dumps(obj, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError as exc:
            raise DecodeError(
                "invalid_json",
                "$",
                "expected valid Unicode strings; got a lone surrogate escape such as \\ud800",
            ) from exc
        except RecursionError as exc:
            raise DecodeError(
                "invalid_json", "$", "expected JSON nested at most a few hundred levels deep"
            ) from exc
        except ValueError as exc:
            # msgspec's wording ("invalid character (byte 17)") beats the stdlib's when it has one.
            detail = str(exc)
            if isinstance(fast_error, msgspec.DecodeError) and not isinstance(
                fast_error, msgspec.ValidationError
            ):
                detail = str(fast_error)
            raise DecodeError(
                "invalid_json", "$", f"expected a JSON object; {_lower(detail)}"
            ) from exc
        if not isinstance(obj, dict):
            raise DecodeError("schema", "$", f"expected a JSON object; got {_describe(obj)}")
        self._check_finite(obj)
        features = obj.get("features")
        if self.kind is PredictionEvent and isinstance(features, dict):
            # Integers too large for a float are infinite feature values, like 1e999.
            for key, value in features.items():
                if _overflows(value):
                    features[key] = math.inf if value > 0 else -math.inf
        try:
            return msgspec.convert(obj, self.kind)
        except msgspec.ValidationError as exc:
            raise self._translate(str(exc), obj) from exc

    def _check_finite(self, obj: dict[str, Any]) -> None:
        spec = self._spec
        for name in spec.finite:
            value = obj.get(name)
            if (isinstance(value, float) and not math.isfinite(value)) or _overflows(value):
                raise DecodeError(
                    "non_finite",
                    f"$.{name}",
                    f"expected {spec.expect[name]}; got non-finite {_preview(value)}",
                )
        for name in spec.finite_maps:
            mapping = obj.get(name)
            if isinstance(mapping, dict):
                for key, value in mapping.items():
                    if (isinstance(value, float) and not math.isfinite(value)) or _overflows(value):
                        raise DecodeError(
                            "non_finite",
                            f"$.{name}{_key_path(key)}",
                            f"expected {spec.expect[name + '.*']}; got non-finite {_preview(value)}",
                        )

    def _translate(self, message: str, obj: dict[str, Any]) -> DecodeError:
        """Turn msgspec's ``"Expected `int`, got `str` - at `$.status`"`` into our error."""
        match = _MSGSPEC_ERROR.match(message)
        text, path = message, "$"
        if match:
            text, path = match.group(1), match.group(2) or "$"
        missing = _MISSING.match(text)
        if missing:
            field = missing.group(1)
            path = f"{path}.{field}" if path != "$" else f"$.{field}"
            wanted = self._spec.expect.get(field, "a value")
            return DecodeError(
                "schema", path, f"expected {wanted}; got nothing (required field missing)"
            )
        parts = _split_path(path)
        if len(parts) == 2 and parts[1] == "[...]":
            # msgspec does not name the key of a bad object member: find it.
            located = self._locate(parts[0], obj)
            if located is not None:
                return located
        value, found = _lookup(obj, parts)
        if parts == ["ts"] and found and isinstance(value, str):
            try:
                parse_ts(value)  # says precisely what is wrong with the text
            except DecodeError as error:
                return error
        got = _describe(value) if found else _GOT.sub(r"\1", text.partition(", got ")[2]) or "?"
        expect: str | None = self._spec.expect.get(parts[0]) if len(parts) == 1 else None
        if expect is None and _EXPECTED.match(text):
            expect = _EXPECTED.sub("", text.partition(", got ")[0])
        if expect is None:
            return DecodeError(
                "schema", path, f"{_lower(text)}; got {got}" if found else _lower(text)
            )
        return DecodeError("schema", path, f"expected {expect}; got {got}")

    def _locate(self, field: str, obj: dict[str, Any]) -> DecodeError | None:
        element = self._spec.elements.get(field)
        mapping = obj.get(field)
        if element is None or not isinstance(mapping, dict):
            return None
        for key, value in mapping.items():
            try:
                msgspec.convert(value, element)
            except msgspec.ValidationError:
                expect = self._spec.expect.get(f"{field}.*", "a valid value")
                return DecodeError(
                    "schema",
                    f"$.{field}{_key_path(key)}",
                    f"expected {expect}; got {_describe(value)}",
                )
        return None


def decoder_for(kind: EventKind, **options: int) -> EventDecoder[Any]:
    """The decoder for a kind named in words: ``"prediction"``, ``"label"`` or ``"metric"``."""
    try:
        return EventDecoder(_KINDS[kind], **options)
    except KeyError:
        raise ValueError(f"kind must be one of {sorted(_KINDS)} (got {kind!r})") from None


_ENCODER = msgspec.json.Encoder()


def _check_labels(event: Any, limit: int) -> None:
    """Raise ``too_large`` for a name or segment value longer than ``limit`` bytes (UTF-8)."""

    def check(value: object, path: str) -> None:
        if isinstance(value, str) and len(value) * 4 > limit and len(value.encode("utf-8")) > limit:
            raise DecodeError(
                "too_large",
                path,
                f"expected at most {limit} bytes; got {len(value.encode('utf-8'))} bytes "
                f"({_preview(value)}): names and segment values become keys in the store",
            )

    for name in ("model", "model_version", "event_id"):
        check(getattr(event, name, None), f"$.{name}")
    for field in ("features", "metrics"):
        for key in getattr(event, field, None) or ():
            check(key, f"$.{field}")
    for key, value in (getattr(event, "segment", None) or {}).items():
        check(key, "$.segment")
        check(value, f"$.segment{_key_path(key) if len(key) <= limit else '.<key>'}")


def _check_segments(event: Any, limit: int) -> None:
    """Raise ``too_many_segments`` for a prediction with more than ``limit`` segment attributes."""
    segment = getattr(event, "segment", None)
    if segment and len(segment) > limit:
        raise DecodeError(
            "too_many_segments",
            "$.segment",
            f"expected at most {limit} segment attributes; got {len(segment)} (the first: "
            f"{_preview(list(itertools.islice(segment, 3)))}): each attribute's value gets its "
            "own rows in every window (metrics.max_segment_attributes)",
        )


def encode_event(event: Event) -> bytes:
    """Encode an event as the JSON its topic expects (``ts`` as integer epoch milliseconds).

    Defaults are left out. Non-finite floats are written as ``null``, as JSON has no spelling
    for them; use :func:`json.dumps` to send ``NaN`` literals on purpose.

    >>> encode_event(LabelEvent(event_id="a1", model="fraud", ts_ms=5, label="spam"))
    b'{"event_id":"a1","model":"fraud","ts":5,"label":"spam"}'
    """
    return _ENCODER.encode(event)


# -- helpers for messages ----------------------------------------------------------------------

_MSGSPEC_ERROR = re.compile(r"^(.*?)(?: - at `(\$[^`]*)`)?$", re.DOTALL)
_MISSING = re.compile(r"^Object missing required field `([^`]*)`$")
_EXPECTED = re.compile(r"^Expected ")
_GOT = re.compile(r"`([^`]*)`")
_PATH_PART = re.compile(r"\.([^.\[]+)|(\[[^\]]*\])")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")


def _overflows(value: Any) -> bool:
    """An integer too large to be a float (``10**400``): as non-finite as ``1e999``."""
    return type(value) is int and abs(value) > _FLOAT_MAX


def _split_path(path: str) -> list[str]:
    """``'$.features[...]'`` -> ``['features', '[...]']``."""
    return [m.group(1) or m.group(2) for m in _PATH_PART.finditer(path[1:])]


def _lookup(obj: Any, parts: list[str]) -> tuple[Any, bool]:
    for part in parts:
        if isinstance(obj, dict) and not part.startswith("[") and part in obj:
            obj = obj[part]
        elif isinstance(obj, list) and part.startswith("[") and part[1:-1].isdigit():
            index = int(part[1:-1])
            if index >= len(obj):
                return None, False
            obj = obj[index]
        else:
            return None, False
    return obj, True


def _key_path(key: str) -> str:
    return f".{key}" if _IDENT.match(key) else f"[{json.dumps(key, ensure_ascii=False)}]"


def _describe(value: Any) -> str:
    """``'string "abc"'``, ``'array [1, 2]'``: the JSON type and a short preview of a value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"bool {'true' if value else 'false'}"
    if isinstance(value, int):
        return f"integer {_preview(value)}"
    if isinstance(value, float):
        return f"number {_preview(value)}"
    if isinstance(value, str):
        return f"string {_preview(value)}"
    if isinstance(value, list):
        return f"array {_preview(value)}"
    if isinstance(value, dict):
        return f"object {_preview(value)}"
    return f"{type(value).__name__} {_preview(value)}"


def _preview(value: Any, limit: int = 60) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _lower(text: str) -> str:
    """Lower-case the first letter of a sentence, but not of an acronym (``JSON is ...``)."""
    return text if text[1:2].isupper() else text[:1].lower() + text[1:]


def _iso(ms: int) -> str:
    try:
        return (_EPOCH + ms * _ONE_MS).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    except OverflowError:
        return f"{ms} ms"
