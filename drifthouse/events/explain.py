"""The decoders' slow path: work out exactly what is wrong with a message msgspec refused.

Valid JSON runs through msgspec's typed decoder in C. A message it refuses comes here: it is
parsed again leniently, accepted when only a non-finite feature value tripped the fast path
(``NaN``, ``1e999``: counted as ``non_finite`` downstream), and otherwise refused with the
reason, the field path and the offending value (docs/events.md, "Invalid events").
"""

from __future__ import annotations

import json
import math
import re
import sys
from dataclasses import dataclass
from typing import Any

import msgspec

from drifthouse.errors import DecodeError
from drifthouse.events.describe import describe, key_path, lower_first, preview
from drifthouse.events.structs import (
    Buffer,
    E,
    Event,
    FeatureValue,
    LabelEvent,
    MetricEvent,
    PredictionEvent,
)
from drifthouse.events.timestamps import parse_ts

__all__ = ["SPECS", "KindSpec", "overflows", "slow_decode"]

_FLOAT_MAX = sys.float_info.max


@dataclass(frozen=True)
class KindSpec:
    """What the slow path needs to know about a kind to explain a failure."""

    finite: tuple[str, ...]  # fields that must be finite numbers when they are numbers
    finite_maps: tuple[str, ...]  # object fields whose values must be finite numbers
    expect: dict[str, str]  # field -> what is expected, in words
    elements: dict[str, Any]  # object field -> type of its values, to find the bad key


_TS_EXPECT = "an RFC 3339 string (with offset or Z) or integer epoch milliseconds"
SPECS: dict[type[Event], KindSpec] = {
    PredictionEvent: KindSpec(
        finite=("ts", "latency_ms", "prediction"),
        finite_maps=("prediction",),
        expect={
            "model": "a non-empty string (the model name)",
            "model_version": "a string",
            "ts": _TS_EXPECT,
            "event_id": "a string",
            "features": "an object of feature name -> number, string, bool, array of numbers or null",
            "features.*": "a number, string, bool, array of numbers (an embedding) or null",
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
    LabelEvent: KindSpec(
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
    MetricEvent: KindSpec(
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


def slow_decode(kind: type[E], raw: Buffer, fast_error: BaseException) -> E:
    """Re-parse a message msgspec refused; accept it or raise a precise DecodeError.

    msgspec refuses NaN/Infinity literals and numbers that overflow a float (``1e999``).
    Those are welcome as feature values (counted as ``non_finite`` downstream) and rejected
    with reason ``non_finite`` everywhere else, so they need a second, lenient parse.
    """
    obj = _parse(raw, fast_error)
    if not isinstance(obj, dict):
        raise DecodeError("schema", "$", f"expected a JSON object; got {describe(obj)}")
    spec = SPECS[kind]
    _check_finite(spec, obj)
    features = obj.get("features")
    if kind is PredictionEvent and isinstance(features, dict):
        # Integers too large for a float are infinite feature values, like 1e999.
        for key, value in features.items():
            if overflows(value):
                features[key] = math.inf if value > 0 else -math.inf
            elif type(value) is list and any(map(overflows, value)):  # inside an embedding
                features[key] = [
                    (math.inf if v > 0 else -math.inf) if overflows(v) else v for v in value
                ]
    try:
        return msgspec.convert(obj, kind)
    except msgspec.ValidationError as exc:
        raise _translate(spec, str(exc), obj) from exc


def _parse(raw: Buffer | str, fast_error: BaseException) -> Any:
    """The message as Python objects (non-finite numbers allowed), or ``invalid_json``."""
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
            "invalid_json", "$", f"expected a JSON object; {lower_first(detail)}"
        ) from exc
    return obj


def _check_finite(spec: KindSpec, obj: dict[str, Any]) -> None:
    for name in spec.finite:
        value = obj.get(name)
        if (isinstance(value, float) and not math.isfinite(value)) or overflows(value):
            raise DecodeError(
                "non_finite",
                f"$.{name}",
                f"expected {spec.expect[name]}; got non-finite {preview(value)}",
            )
    for name in spec.finite_maps:
        mapping = obj.get(name)
        if isinstance(mapping, dict):
            for key, value in mapping.items():
                if (isinstance(value, float) and not math.isfinite(value)) or overflows(value):
                    raise DecodeError(
                        "non_finite",
                        f"$.{name}{key_path(key)}",
                        f"expected {spec.expect[name + '.*']}; got non-finite {preview(value)}",
                    )


def _translate(spec: KindSpec, message: str, obj: dict[str, Any]) -> DecodeError:
    """Turn msgspec's ``"Expected `int`, got `str` - at `$.status`"`` into our error."""
    match = _MSGSPEC_ERROR.match(message)
    text, path = message, "$"
    if match:
        text, path = match.group(1), match.group(2) or "$"
    missing = _MISSING.match(text)
    if missing:
        field = missing.group(1)
        path = f"{path}.{field}" if path != "$" else f"$.{field}"
        wanted = spec.expect.get(field, "a value")
        return DecodeError(
            "schema", path, f"expected {wanted}; got nothing (required field missing)"
        )
    parts = _split_path(path)
    if len(parts) >= 2 and parts[1] == "[...]":
        # msgspec does not name the key of a bad object member (nor of an embedding holding a
        # bad element, ``$.features[...][1]``): find it.
        located = _locate(spec, parts[0], obj)
        if located is not None:
            return located
    value, found = _lookup(obj, parts)
    if parts == ["ts"] and found and isinstance(value, str):
        try:
            parse_ts(value)  # says precisely what is wrong with the text
        except DecodeError as error:
            return error
    got = describe(value) if found else _GOT.sub(r"\1", text.partition(", got ")[2]) or "?"
    expect: str | None = spec.expect.get(parts[0]) if len(parts) == 1 else None
    if expect is None and _EXPECTED.match(text):
        expect = _EXPECTED.sub("", text.partition(", got ")[0])
    if expect is None:
        return DecodeError(
            "schema", path, f"{lower_first(text)}; got {got}" if found else lower_first(text)
        )
    return DecodeError("schema", path, f"expected {expect}; got {got}")


def _locate(spec: KindSpec, field: str, obj: dict[str, Any]) -> DecodeError | None:
    element = spec.elements.get(field)
    mapping = obj.get(field)
    if element is None or not isinstance(mapping, dict):
        return None
    for key, value in mapping.items():
        try:
            msgspec.convert(value, element)
        except msgspec.ValidationError:
            expect = spec.expect.get(f"{field}.*", "a valid value")
            return DecodeError(
                "schema",
                f"$.{field}{key_path(key)}",
                f"expected {expect}; got {describe(value)}",
            )
    return None


_MSGSPEC_ERROR = re.compile(r"^(.*?)(?: - at `(\$[^`]*)`)?$", re.DOTALL)
_MISSING = re.compile(r"^Object missing required field `([^`]*)`$")
_EXPECTED = re.compile(r"^Expected ")
_GOT = re.compile(r"`([^`]*)`")
_PATH_PART = re.compile(r"\.([^.\[]+)|(\[[^\]]*\])")


def overflows(value: Any) -> bool:
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
