"""Batches in rows decoded straight into columns (docs/events.md, "Batched messages").

:func:`decode_rows` decodes ``{"model": ..., "model_version": ..., "events": [{...}, ...]}`` in
one msgspec call into plain rows (each field typed as the same field of a single
:class:`~drifthouse.events.PredictionEvent`, without its ``__post_init__``), then turns them
into the columns of a :class:`~drifthouse.events.batch_columns.ColumnBatch`, checking times and
served classes column by column: no :class:`~drifthouse.events.PredictionEvent` is built. A
batch the columns cannot hold exactly (events naming other features or segment attributes, or
in another order; an event of another model or version; anything invalid) returns ``None``:
the caller then decodes it event by event, which refuses a bad event alone and says why.

:func:`all_blocks` does this for a chunk of batches, in rows and in columns alike.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Annotated, Any

import msgspec
from msgspec.structs import astuple

from drifthouse.events.batch_columns import ColumnBatch, decode_columns, passes, valid_times
from drifthouse.events.decoder import EventDecoder
from drifthouse.events.structs import Buffer, FeatureValue, Prediction

if TYPE_CHECKING:
    _Ts = int
else:
    from drifthouse.events.timestamps import AwareDatetime

    _Ts = int | AwareDatetime

__all__ = ["Row", "all_blocks", "decode_rows"]

_ExactInt = Annotated[int, msgspec.Meta(ge=-(2**53), le=2**53)]
_NonNegative = Annotated[float, msgspec.Meta(ge=0.0)]
_HttpStatus = Annotated[int, msgspec.Meta(ge=100, le=599)]
_Unset = msgspec.UnsetType


class Row(msgspec.Struct, gc=False):
    """An event of a batch in rows, as :class:`~drifthouse.events.PredictionEvent` takes it
    (``model`` and ``model_version`` are the envelope's unless it repeats them). A model's
    typed decoder (:meth:`drifthouse.detectors.typed_decode.TypedDecoders.plain_rows`) makes
    ``features`` a struct of its features."""

    ts: _Ts
    features: dict[str, FeatureValue]
    model: str | _Unset = msgspec.UNSET
    model_version: str | _Unset = msgspec.UNSET
    event_id: str | None = None
    prediction: Prediction | None = None
    predicted_class: _ExactInt | str | None = None
    latency_ms: _NonNegative | None = None
    status: _HttpStatus = 200
    segment: dict[str, str] = {}


class _Rows(msgspec.Struct):
    model: str
    events: list[Row]
    model_version: str = "unknown"


_DECODE = msgspec.json.Decoder(_Rows).decode
_OPTIONAL = ("event_id", "prediction", "predicted_class", "latency_ms")


def decode_rows(raw: Buffer, typed: Callable[[Buffer], Any] | None = None) -> ColumnBatch | None:
    """The :class:`ColumnBatch` of a valid batch in rows, else ``None`` (module docstring).

    ``typed`` is tried first: a narrower decoder of one model's batches whose rows' features
    are a struct (:class:`~drifthouse.detectors.typed_decode.TypedFeatures`), raising for
    anything it does not take and decoding what it takes to the same values."""
    batch: Any = None
    if typed is not None:
        try:
            batch = typed(raw)
        except Exception:  # not the typed decoder's: the general one decides
            batch = None
    if batch is None:
        try:
            batch = _DECODE(raw)
        except Exception:  # anything unusual: the event-by-event path says what is wrong
            return None
    rows, model, version = batch.events, batch.model, batch.model_version
    n, unset = len(rows), msgspec.UNSET
    if not n:
        return None
    # All fields of all rows transposed in two C-level passes, not one pass per field.
    fields = type(rows[0]).__struct_fields__
    cols = dict(zip(fields, map(list, zip(*map(astuple, rows), strict=True)), strict=True))
    if not set(cols["model"]) <= {unset, model} or not set(cols["model_version"]) <= {
        unset,
        version,
    }:
        return None
    feats = cols["features"]
    if type(feats[0]) is dict:
        features = _same_names(feats, n, fill=False)
    else:  # a typed decoder's struct: every row holds its features, in its order
        names: tuple[str, ...] = type(feats[0]).names
        columns = zip(*map(astuple, feats), strict=True)
        features = dict(zip(names, map(list, columns), strict=True)) if names else {}
    segment = _same_names(cols["segment"], n, fill=True)
    if features is None or segment is None:
        return None
    event_id, prediction, predicted_class, latency_ms = (
        None if (c := cols[name]).count(None) == n else c for name in _OPTIONAL
    )
    statuses: list[int | None] = cols["status"]
    ts = valid_times(cols["ts"], prediction, predicted_class)
    if ts is None:
        return None
    return ColumnBatch(
        model,
        version,
        ts,
        features,
        event_id,
        prediction,
        predicted_class,
        latency_ms,
        None if statuses.count(200) == n else statuses,
        segment,
        rows=True,
    )


def _same_names(maps: list[dict[str, Any]], n: int, *, fill: bool) -> dict[str, list[Any]] | None:
    """The columns of ``maps`` when each names the same keys in the same order (``fill``: or
    none, a segment left out, ``None`` in each column); else ``None``."""
    present = [m for m in maps if m] if fill else maps
    if not present:
        return {}
    names = tuple(present[0])
    if not all(map(names.__eq__, map(tuple, present))):
        return None
    if len(present) == n:
        return dict(zip(names, map(list, zip(*map(dict.values, maps), strict=True)), strict=True))
    return {k: [m.get(k) for m in maps] for k in names}


def all_blocks(
    decoder: EventDecoder[Any],
    raws: Sequence[Buffer],
    now_ms: int | None,
    typed: Callable[[Buffer], Any] | None = None,
) -> list[tuple[int, ColumnBatch]] | None:
    """``(position, batch)`` of a chunk of valid batches only (in rows or in columns), else
    ``None``; ``typed``: see :func:`decode_rows`."""
    out = []
    for pos, raw in enumerate(raws):
        if len(raw) > decoder.max_bytes:
            return None
        # Rows first, as the event-by-event path takes a batch (events.batches._mixed).
        block = decode_rows(raw, typed) if b'"events"' in raw else None
        if block is None and b'"columns"' in raw:
            block = decode_columns(raw)
        if block is None or not passes(block, decoder, now_ms):
            return None
        out.append((pos, block))
    return out
