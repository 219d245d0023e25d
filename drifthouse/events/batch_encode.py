"""Batched prediction messages written (docs/events.md, "Batched messages"): one message
holding events of one model and version, in rows (:func:`encode_batch`) or in columns
(:func:`encode_columns`); :mod:`drifthouse.events.batches` decodes them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from drifthouse.events.structs import PredictionEvent

__all__ = ["encode_batch", "encode_columns"]

_ENCODE = msgspec.json.Encoder()
_OPTIONAL = ("event_id", "prediction", "predicted_class", "latency_ms", "status")


def _group(events: Sequence[PredictionEvent]) -> tuple[str, str]:
    if not events:
        raise ValueError("a batch needs at least one event")
    key = (events[0].model, events[0].model_version)
    for e in events:
        if (e.model, e.model_version) != key:
            raise ValueError(
                f"a batch holds events of one model and version; got {key} and "
                f"{(e.model, e.model_version)}"
            )
    return key


def _rows(events: Sequence[PredictionEvent]) -> list[dict[str, Any]]:
    rows = []
    for e in events:
        row: dict[str, Any] = msgspec.to_builtins(e)
        row.pop("model", None)
        row.pop("model_version", None)
        rows.append(row)
    return rows


def encode_batch(events: Sequence[PredictionEvent]) -> bytes:
    """One message holding ``events`` (one model and version) in rows.

    >>> ev = PredictionEvent(model="fraud", ts_ms=1714564800000, features={"amount": 9.5})
    >>> encode_batch([ev, ev])
    b'{"model":"fraud","model_version":"unknown","events":[{"ts":1714564800000,"features":{"amount":9.5}},{"ts":1714564800000,"features":{"amount":9.5}}]}'
    """
    model, version = _group(events)
    return _ENCODE.encode({"model": model, "model_version": version, "events": _rows(events)})


def encode_columns(events: Sequence[PredictionEvent]) -> bytes:
    """One message holding ``events`` (one model and version, the same feature and segment
    names in each) in columns.

    >>> ev = PredictionEvent(model="fraud", ts_ms=1714564800000, features={"amount": 9.5})
    >>> encode_columns([ev, ev])
    b'{"model":"fraud","model_version":"unknown","columns":{"ts":[1714564800000,1714564800000],"features":{"amount":[9.5,9.5]}}}'
    """
    model, version = _group(events)
    rows = _rows(events)
    columns: dict[str, Any] = {"ts": [r["ts"] for r in rows]}
    for name in _OPTIONAL:
        if any(name in r for r in rows):
            columns[name] = [r.get(name) for r in rows]
    for group in ("features", "segment"):
        names = list(rows[0].get(group, {}))
        if any(list(r.get(group, {})) != names for r in rows):
            raise ValueError(
                f"encode_columns needs the same {group} names in every event; "
                "encode_batch takes any"
            )
        if names:
            columns[group] = {k: [r[group][k] for r in rows] for k in names}
    return _ENCODE.encode({"model": model, "model_version": version, "columns": columns})
