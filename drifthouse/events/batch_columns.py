"""Batches in columns decoded in one call (docs/events.md, "Batched messages").

:func:`decode_columns` decodes ``{"model": ..., "columns": {...}}`` with typed column arrays,
each value typed as the same field of a single :class:`~drifthouse.events.PredictionEvent`
(so each takes exactly what a single event's field takes), into a :class:`ColumnBatch`: the
columns as decoded, times in epoch milliseconds, served classes checked, and no object per
event (:meth:`ColumnBatch.event` builds one when one is needed, e.g. for a dead letter).
Anything unusual (columns of unequal length, a value of the wrong type, a served class that is
not one of the prediction's classes) returns ``None``: the caller then decodes the batch event
by event, which refuses a bad event alone and says why.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence, Sized
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import msgspec

from drifthouse.events.decoder import EventDecoder
from drifthouse.events.served_class import check_served_class
from drifthouse.events.structs import Buffer, FeatureValue, Prediction, PredictionEvent
from drifthouse.events.timestamps import MAX_TS_MS, parse_ts

if TYPE_CHECKING:
    _Ts = int
else:
    from drifthouse.events.timestamps import AwareDatetime

    _Ts = int | AwareDatetime

__all__ = [
    "ColumnBatch",
    "columns_events",
    "decode_columns",
    "joined",
    "passes",
    "row_of",
    "valid_times",
]

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


@dataclass(frozen=True, slots=True)
class ColumnBatch:
    """A valid batch of one model and version in columns, rows in message order.

    ``ts`` holds epoch milliseconds; an optional column left out of the message is ``None``
    (every event takes the field's default); ``None`` in a segment column leaves the
    attribute out of that event."""

    model: str
    model_version: str
    ts: list[int]
    features: dict[str, list[Any]]
    event_id: list[str | None] | None
    prediction: list[Any] | None
    predicted_class: list[int | str | None] | None
    latency_ms: list[float | None] | None
    status: list[int | None] | None
    segment: dict[str, list[str | None]]
    #: Decoded from a batch in rows (:mod:`drifthouse.events.batch_rows`): paths in its
    #: message are ``$.events[i]...``, not ``$.columns...[i]``.
    rows: bool = False

    def __len__(self) -> int:
        return len(self.ts)

    def column(self, name: str) -> list[Any]:
        """An optional column, ``None`` per event when the message leaves it out."""
        found: list[Any] | None = getattr(self, name)
        return [None] * len(self.ts) if found is None else found

    def segment_of(self, i: int) -> dict[str, str]:
        """The segment of event ``i``."""
        return {k: v for k, c in self.segment.items() if (v := c[i]) is not None}

    def event(self, i: int) -> PredictionEvent:
        """Event ``i`` as the single-event decoder gives it."""
        status = None if self.status is None else self.status[i]
        return PredictionEvent(
            model=self.model,
            model_version=self.model_version,
            ts_ms=self.ts[i],
            features={k: c[i] for k, c in self.features.items()},
            event_id=None if self.event_id is None else self.event_id[i],
            prediction=None if self.prediction is None else self.prediction[i],
            predicted_class=None if self.predicted_class is None else self.predicted_class[i],
            latency_ms=None if self.latency_ms is None else self.latency_ms[i],
            status=200 if status is None else status,
            segment=self.segment_of(i),
        )

    def events(self) -> list[PredictionEvent]:
        return [self.event(i) for i in range(len(self.ts))]


def decode_columns(raw: Buffer) -> ColumnBatch | None:
    """The :class:`ColumnBatch` of a valid batch in columns, else ``None``."""
    try:
        batch = _DECODE(raw)
    except Exception:  # anything unusual: the event-by-event path says what is wrong
        return None
    cols = batch.columns
    n = len(cols.ts)
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
    ts = valid_times(cols.ts, cols.prediction, cols.predicted_class)
    if ts is None:
        return None
    return ColumnBatch(
        batch.model,
        batch.model_version,
        ts,
        cols.features,
        cols.event_id,
        cols.prediction,
        cols.predicted_class,
        cols.latency_ms,
        cols.status,
        cols.segment,
    )


def valid_times(
    ts: list[Any], prediction: list[Any] | None, predicted_class: list[Any] | None
) -> list[int] | None:
    """The times in epoch milliseconds, when :class:`PredictionEvent` takes every time and
    served class of these columns; else ``None``."""
    try:
        if ts and (set(map(type, ts)) != {int} or min(ts) < 0 or max(ts) > MAX_TS_MS):
            ts = [parse_ts(t) for t in ts]  # what PredictionEvent does with a time
        if predicted_class is not None:
            predicted = prediction if prediction is not None else [None] * len(ts)
            for p, c in zip(predicted, predicted_class, strict=True):
                if c is not None:
                    check_served_class(p, c)
    except Exception:  # a served class or a time PredictionEvent refuses
        return None
    return ts


def columns_events(raw: Buffer) -> tuple[str, str, list[PredictionEvent]] | None:
    """``(model, model_version, events)`` of a valid batch in columns, else ``None``."""
    found = decode_columns(raw)
    if found is None:
        return None
    return found.model, found.model_version, found.events()


def passes(block: ColumnBatch, decoder: EventDecoder[Any], now_ms: int | None) -> bool:
    """Whether every event of ``block`` passes the decoder's checks (the checks
    :meth:`EventDecoder.decode_batch` makes of a single event; ``False`` sends the batch down
    the event-by-event path, which says what is wrong)."""
    # A name that may be too long (check_labels) takes the event-by-event path, which says.
    quarter = min(decoder.max_label_bytes, decoder.max_bytes) // 4
    model, version = block.model, block.model_version
    if not model or len(model) > quarter or len(version) > quarter or not block.ts:
        return False
    if min(block.ts) < decoder.min_ts_ms:
        return False
    if now_ms is not None and max(block.ts) > now_ms + decoder.max_future_ms:
        return False
    if block.features and max(map(len, block.features)) > quarter:
        return False
    ids = block.event_id
    if ids is not None:
        present = [e for e in ids if e is not None]
        if present and max(map(len, present)) > quarter:
            return False
    for name, column in block.segment.items():
        values = [v for v in column if v is not None]
        if values and max(len(name), *map(len, values)) > quarter:
            return False
    if len(block.segment) > decoder.max_segments:
        per_event = [
            sum(c[i] is not None for c in block.segment.values()) for i in range(len(block))
        ]
        if max(per_event) > decoder.max_segments:
            return False
    return True


def row_of(blocks: Sequence[tuple[int, ColumnBatch]], i: int) -> tuple[ColumnBatch, int]:
    """The batch holding row ``i`` of the concatenation of ``blocks``, and its row there."""
    for _, block in blocks:
        if i < len(block):
            return block, i
        i -= len(block)
    raise IndexError(i)


def joined(blocks: Sequence[ColumnBatch]) -> ColumnBatch | None:
    """One batch holding the rows of ``blocks`` (one model and version), one after another,
    when they name the same features and segment attributes in the same order; else ``None``
    (their segments' order could differ from that of the rows taken one by one)."""
    first = blocks[0]
    if len(blocks) == 1:
        return first
    fnames, snames = list(first.features), list(first.segment)
    if any(list(b.features) != fnames or list(b.segment) != snames for b in blocks):
        return None

    def cat(name: str) -> list[Any] | None:
        if all(getattr(b, name) is None for b in blocks):
            return None
        return _chained(b.column(name) for b in blocks)

    return ColumnBatch(
        first.model,
        first.model_version,
        _chained(b.ts for b in blocks),
        {k: _chained(b.features[k] for b in blocks) for k in fnames},
        cat("event_id"),
        cat("prediction"),
        cat("predicted_class"),
        cat("latency_ms"),
        cat("status"),
        {k: _chained(b.segment[k] for b in blocks) for k in snames},
        first.rows,
    )


def _chained(lists: Iterable[list[Any]]) -> list[Any]:
    """The lists one after another (extending a list copies in C: 6x chain's speed)."""
    out: list[Any] = []
    for values in lists:
        out += values
    return out
