"""Batches in columns decoded in one call (docs/events.md, "Batched messages").

:func:`columns_events` decodes ``{"model": ..., "columns": {...}}`` with typed column arrays,
each value typed as the same field of a single :class:`~drifthouse.events.PredictionEvent`
(so each takes exactly what a single event's field takes), then builds one event per row.
Anything unusual (columns of unequal length, a value of the wrong type, a served class that is
not one of the prediction's classes) returns ``None``: the caller then decodes the batch event
by event, which refuses a bad event alone and says why.
"""

from __future__ import annotations

from collections.abc import Sized
from typing import TYPE_CHECKING, Annotated

import msgspec

from drifthouse.events.structs import Buffer, FeatureValue, Prediction, PredictionEvent

if TYPE_CHECKING:
    _Ts = int
else:
    from drifthouse.events.timestamps import AwareDatetime

    _Ts = int | AwareDatetime

__all__ = ["columns_events"]

_ExactInt = Annotated[int, msgspec.Meta(ge=-(2**53), le=2**53)]
_NonNegative = Annotated[float, msgspec.Meta(ge=0.0)]
_HttpStatus = Annotated[int, msgspec.Meta(ge=100, le=599)]


class _Typed(msgspec.Struct):
    ts: list[_Ts]
    features: dict[str, list[FeatureValue]] = {}
    event_id: list[str | None] | None = None
    prediction: list[Prediction | None] | None = None
    predicted_class: list[_ExactInt | str | None] | None = None
    latency_ms: list[_NonNegative | None] | None = None
    status: list[_HttpStatus | None] | None = None
    segment: dict[str, list[str | None]] = {}


class _Batch(msgspec.Struct):
    model: str
    columns: _Typed
    model_version: str = "unknown"


_DECODE = msgspec.json.Decoder(_Batch).decode


def columns_events(raw: Buffer) -> tuple[str, str, list[PredictionEvent]] | None:
    """``(model, model_version, events)`` of a valid batch in columns, else ``None``."""
    try:
        batch = _DECODE(raw)
    except Exception:  # anything unusual: the event-by-event path says what is wrong
        return None
    cols, model, version = batch.columns, batch.model, batch.model_version
    n = len(cols.ts)
    none: list[None] = [None] * n
    optional: list[Sized | None] = [
        cols.event_id,
        cols.prediction,
        cols.predicted_class,
        cols.latency_ms,
        cols.status,
    ]
    if any(c is not None and len(c) != n for c in optional) or any(
        len(c) != n for group in (cols.features, cols.segment) for c in group.values()
    ):
        return None
    event_id = cols.event_id if cols.event_id is not None else none
    prediction = cols.prediction if cols.prediction is not None else none
    served = cols.predicted_class if cols.predicted_class is not None else none
    latency = cols.latency_ms if cols.latency_ms is not None else none
    status = cols.status if cols.status is not None else none
    fnames, fcols = list(cols.features), list(cols.features.values())
    snames, scols = list(cols.segment), list(cols.segment.values())
    events: list[PredictionEvent] = []
    try:
        for i in range(n):
            segment = {k: v for k, c in zip(snames, scols, strict=True) if (v := c[i]) is not None}
            events.append(
                PredictionEvent(
                    model=model,
                    model_version=version,
                    ts_ms=cols.ts[i],
                    features={k: c[i] for k, c in zip(fnames, fcols, strict=True)},
                    event_id=event_id[i],
                    prediction=prediction[i],
                    predicted_class=served[i],
                    latency_ms=latency[i],
                    status=200 if (code := status[i]) is None else code,
                    segment=segment,
                )
            )
    except Exception:  # a served class or a time PredictionEvent refuses
        return None
    return model, version, events
