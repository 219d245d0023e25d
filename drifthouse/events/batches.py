"""Batched prediction messages (docs/events.md, "Batched messages").

One message (a Kafka record or a JSONL line) may carry many predictions of one model, in rows::

    {"model": "fraud", "model_version": "1.4", "events": [{"ts": ..., "features": {...}}, ...]}

or in columns::

    {"model": "fraud", "columns": {"ts": [...], "features": {"amount": [...]}, ...}}

:func:`decode_messages` decodes a micro-batch holding single events and batches alike into the
same :class:`~drifthouse.events.PredictionEvent` objects the single events would give: the
envelope is parsed once (its events kept as raw JSON slices), each event gets the envelope's
model and version, and all events go through :meth:`EventDecoder.decode_batch` together, so
every check and every fast path is the one single events take. A bad event is refused alone,
its path saying where it sits (``$.events[3].ts``, ``$.columns.ts[3]``); a malformed envelope
refuses the whole message. :mod:`drifthouse.events.batch_encode` writes batches.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from drifthouse.errors import DecodeError
from drifthouse.events.batch_columns import ColumnBatch, decode_columns, passes, row_of
from drifthouse.events.batch_rows import all_blocks
from drifthouse.events.decoder import EventDecoder
from drifthouse.events.describe import preview
from drifthouse.events.structs import Buffer, PredictionEvent, encode_event

__all__ = ["Decoded", "Refused", "decode_messages"]

_Raws = list[msgspec.Raw]


class _Columns(msgspec.Struct):
    ts: _Raws
    features: dict[str, _Raws] = {}
    event_id: _Raws | None = None
    prediction: _Raws | None = None
    predicted_class: _Raws | None = None
    latency_ms: _Raws | None = None
    status: _Raws | None = None
    segment: dict[str, _Raws] = {}


class _Envelope(msgspec.Struct):
    model: str
    model_version: str = "unknown"
    events: _Raws | None = None
    columns: _Columns | None = None


class _Shape(msgspec.Struct):
    """Enough of a message to tell an envelope (it has ``events`` or ``columns``)."""

    events: msgspec.Raw = msgspec.Raw(b"")
    columns: msgspec.Raw = msgspec.Raw(b"")


class _Row(PredictionEvent, kw_only=True, omit_defaults=True, gc=False):
    """An event of a batch in rows: ``model`` and ``model_version`` are the envelope's
    unless it repeats them."""

    model: str | msgspec.UnsetType = msgspec.UNSET  # type: ignore[assignment]
    model_version: str | msgspec.UnsetType = msgspec.UNSET  # type: ignore[assignment]


class _Rows(msgspec.Struct):
    """The common case of a batch in rows, decoded in one call."""

    model: str
    events: list[_Row]
    model_version: str = "unknown"


_ENVELOPE = msgspec.json.Decoder(_Envelope)
_IN_ROWS = _Envelope("", events=[])
_IN_COLUMNS = _Envelope("", columns=_Columns(ts=[]))
_ROWS = msgspec.json.Decoder(_Rows)
_SHAPE = msgspec.json.Decoder(_Shape)
_ENCODE = msgspec.json.Encoder()
_AT = re.compile(r" - at `(\$[^`]*)`$")
_ENVELOPE_ERROR = (
    'expected a batch envelope, {"model": ..., "events": [...]} or {"model": ..., '
    '"columns": {"ts": [...], ...}} (docs/events.md, "Batched messages"); got: '
)
_MISSING = re.compile(r"missing required field `([^`]+)`")
_HEAD = re.compile(r"^(\.(?:features|segment)(?:\.[^.\[]+|\[[^\]]*\])|\.[^.\[]+)")
_OPTIONAL = ("event_id", "prediction", "predicted_class", "latency_ms", "status")


@dataclass(frozen=True, slots=True)
class Refused:
    """A refused event or message: its message's position, the error, the event alone
    (``None`` when the whole message is refused) and how many valid events precede it."""

    position: int
    error: DecodeError
    raw: bytes | None
    prior: int


@dataclass(frozen=True, slots=True)
class Decoded:
    """The result of :func:`decode_messages`.

    ``ok`` holds ``(message position, event)`` in input order (a batch gives several events
    at one position); ``refused`` the refused events and messages in input order.
    :meth:`alone` gives a valid event of a batch as a message of its own (for a late event's
    dead letter). ``blocks`` (only with ``decode_messages(..., columns=True)``, then ``ok``
    and ``refused`` are empty) holds ``(message position, batch)`` of a chunk of valid batches
    (in rows or in columns), kept in columns: valid event ``i`` is row ``i`` of their
    concatenation.
    """

    ok: list[tuple[int, PredictionEvent]]
    refused: list[Refused]
    blocks: list[tuple[int, ColumnBatch]] = field(default_factory=list)
    _rows: dict[int, tuple[_Envelope, int]] = field(default_factory=dict)  # ok index -> where
    # Batches decoded at once: the ok index of their first event, their form, their length.
    _starts: list[int] = field(default_factory=list)
    _spans: list[tuple[_Envelope, int]] = field(default_factory=list)

    def alone(self, i: int, path: str) -> tuple[bytes, str] | None:
        """Valid event ``i`` of a batch alone (as decoded), and ``path`` (in the event) in its
        message; ``None`` for a single event."""
        found = self._rows.get(i)
        if self.blocks:
            block, j = row_of(self.blocks, i)
            form = _IN_ROWS if block.rows else _IN_COLUMNS
            return encode_event(block.event(j)), _path_in(form, j, path)
        if found is None:
            s = bisect.bisect_right(self._starts, i) - 1
            if s < 0 or i >= self._starts[s] + self._spans[s][1]:
                return None
            found = (self._spans[s][0], i - self._starts[s])
        env, j = found
        return encode_event(self.ok[i][1]), _path_in(env, j, path)

    def event(self, i: int) -> PredictionEvent:
        """Valid event ``i`` (built from its columns for ``blocks``)."""
        if not self.blocks:
            return self.ok[i][1]
        block, j = row_of(self.blocks, i)
        return block.event(j)

    def materialized(self) -> Decoded:
        """The same, ``blocks`` as events in ``ok`` (what ``columns=False`` gives)."""
        if not self.blocks:
            return self
        out = Decoded([], [])
        for pos, block in self.blocks:
            out._starts.append(len(out.ok))
            out._spans.append((_IN_ROWS if block.rows else _IN_COLUMNS, len(block)))
            out.ok.extend([(pos, e) for e in block.events()])
        return out


def decode_messages(
    decoder: EventDecoder[PredictionEvent],
    raws: Sequence[Buffer],
    *,
    now_ms: int | None = None,
    first: Callable[[Buffer], PredictionEvent] | None = None,
    first_rows: Callable[[Buffer], Any] | None = None,
    columns: bool = False,
    plain_rows: Callable[[Buffer], Any] | None = None,
) -> Decoded:
    """Decode messages holding single prediction events or batches of them (module docstring).

    ``first`` is tried first on single events (see :meth:`EventDecoder.decode_batch`),
    ``first_rows`` on batches in rows: narrower decoders that raise for anything they do not
    take and decode what they take to the same values. ``columns``: a chunk of valid batches
    only, in rows or in columns, is kept in columns (:attr:`Decoded.blocks`), its batches in
    rows tried first with ``plain_rows`` (see :func:`~drifthouse.events.batch_rows.decode_rows`)."""
    head = raws[0] if raws else b""
    batch = b'"columns"' in head or b'"events"' in head
    blocks = all_blocks(decoder, raws, now_ms, plain_rows) if columns and batch else None
    if blocks is not None:
        return Decoded([], [], blocks)
    # A chunk that starts with a batch is not tried as single events first (a failed decode
    # explains itself with a JSON parse in Python).
    if batch:
        return _mixed(decoder, raws, now_ms, first, first_rows)
    singles = _singles(decoder, raws, now_ms, first)
    return singles if singles is not None else _mixed(decoder, raws, now_ms, first, first_rows)


def _mixed(
    decoder: EventDecoder[PredictionEvent],
    raws: Sequence[Buffer],
    now_ms: int | None,
    first: Callable[[Buffer], PredictionEvent] | None,
    first_rows: Callable[[Buffer], Any] | None,
) -> Decoded:
    """:func:`decode_messages` of a chunk that may hold batch envelopes."""
    rows: list[Buffer] = []
    slots: list[tuple[int, int, _Envelope | None]] = []  # per row: position, index, envelope
    whole: dict[int, DecodeError] = {}  # row index -> error of a whole refused message
    # row index -> the events of a batch decoded at once, and its form (for paths)
    ready: dict[int, tuple[list[PredictionEvent], _Envelope]] = {}
    for pos, raw in enumerate(raws):
        if b'"events"' not in raw and b'"columns"' not in raw:
            rows.append(raw)
            slots.append((pos, -1, None))
            continue
        fast, form = _fast_rows(raw, decoder, now_ms, first_rows), _IN_ROWS
        if fast is None and b'"columns"' in raw and len(raw) <= decoder.max_bytes:
            block = decode_columns(raw)
            if block is not None and passes(block, decoder, now_ms):
                fast, form = block.events(), _IN_COLUMNS
        if fast is not None:
            ready[len(rows)] = (fast, form)
            rows.append(b"")
            slots.append((pos, -1, None))
            continue
        try:
            found = _envelope(raw, decoder.max_bytes)
        except DecodeError as refused:
            whole[len(rows)] = refused
            rows.append(b"")
            slots.append((pos, -1, None))
            continue
        if found is None:  # a single event that mentions "events"
            rows.append(raw)
            slots.append((pos, -1, None))
            continue
        envelope, items = found
        for j, item in enumerate(items):
            rows.append(item)
            slots.append((pos, j, envelope))
    skip = whole.keys() | ready.keys()
    keep = [k for k in range(len(rows)) if k not in skip] if skip else range(len(rows))
    ok_rows, bad_rows = decoder.decode_batch(
        [rows[k] for k in keep] if skip else rows, now_ms=now_ms, first=first
    )
    bad: dict[int, DecodeError] = dict(whole)
    bad.update((keep[i], err) for i, err in bad_rows)
    good: dict[int, PredictionEvent] = {keep[i]: e for i, e in ok_rows}
    decoded = Decoded([], [])
    for k, (pos, j, env) in enumerate(slots):
        if k in ready:
            events, form = ready[k]
            decoded._starts.append(len(decoded.ok))
            decoded._spans.append((form, len(events)))
            decoded.ok.extend([(pos, e) for e in events])
            continue
        event = good.get(k)
        if env is not None and event is not None:
            wrong = _other_model(env, event)
            if wrong is not None:
                bad[k], event = wrong, None
        if event is not None:
            if env is not None:
                decoded._rows[len(decoded.ok)] = (env, j)
            decoded.ok.append((pos, event))
            continue
        error = bad[k]
        if env is not None:
            error = type(error)(error.reason, _path_in(env, j, error.path), error.detail)
        alone = None if env is None else bytes(rows[k])
        decoded.refused.append(Refused(pos, error, alone, len(decoded.ok)))
    return decoded


def _singles(
    decoder: EventDecoder[PredictionEvent],
    raws: Sequence[Buffer],
    now_ms: int | None,
    first: Callable[[Buffer], PredictionEvent] | None,
) -> Decoded | None:
    """A chunk of single events (the usual case), or ``None`` when a message may be a batch
    envelope. Positions are the decoder's own indices, and a refused message has as many
    valid events before it as messages before it, less the refused ones."""
    ok, bad = decoder.decode_batch(raws, now_ms=now_ms, first=first)
    # An event of a model's typed decoder (drifthouse.detectors.typed_decode) is no envelope:
    # that decoder refuses `events` and `columns`. The others are searched, a chunk at once.
    if first is None:
        suspects: Sequence[Buffer] = raws
    else:
        suspects = [raws[i] for i, e in ok if type(e) is PredictionEvent]
        suspects += [raws[i] for i, _ in bad]
    if suspects:
        joined = b"\n".join(suspects)  # no key spans a newline
        if b'"events"' in joined or b'"columns"' in joined:
            return None
    return Decoded(ok, [Refused(i, err, None, i - k) for k, (i, err) in enumerate(bad)])


def _fast_rows(
    raw: Buffer,
    decoder: EventDecoder[PredictionEvent],
    now_ms: int | None,
    typed: Callable[[Buffer], Any] | None,
) -> list[PredictionEvent] | None:
    """The events of a batch in rows, decoded in one call (``typed`` first, when given: a
    narrower decoder of one model's batches, see :mod:`drifthouse.detectors.typed_decode`),
    when every one of them is valid and passes the decoder's checks; ``None`` sends the
    message down the event-by-event path that refuses its bad events alone."""
    if len(raw) > decoder.max_bytes:
        return None
    batch: Any = None
    if typed is not None:
        try:
            batch = typed(raw)
        except Exception:  # not the fast decoder's: the general one decides
            batch = None
    if batch is None:
        try:
            batch = _ROWS.decode(raw)
        except Exception:  # anything unusual: the event-by-event path says what is wrong
            return None
    return _checked(batch.model, batch.model_version, batch.events, decoder, now_ms)


def _checked(
    model: str,
    version: str,
    events: list[Any],
    decoder: EventDecoder[PredictionEvent],
    now_ms: int | None,
) -> list[PredictionEvent] | None:
    """``events`` with the envelope's model and version where they leave them out, when all
    pass the decoder's checks; else ``None``."""
    limit = None if now_ms is None else now_ms + decoder.max_future_ms
    floor, max_segments = decoder.min_ts_ms, decoder.max_segments
    # A name that may be too long (check_labels) takes the event-by-event path, which says.
    quarter = min(decoder.max_label_bytes, decoder.max_bytes) // 4
    if not model or len(model) > quarter or len(version) > quarter:
        return None
    unset, typed = msgspec.UNSET, set[type]()
    for e in events:
        if e.model is unset:
            e.model = model
        if e.model_version is unset:
            e.model_version = version
        kind = type(e.features)
        names = e.features if kind is dict else () if kind in typed else kind.names
        typed.add(kind)  # a typed decoder's struct: its names are checked once per batch
        if (
            e.model != model
            or e.model_version != version
            or e.ts_ms < floor
            or (limit is not None and e.ts_ms > limit)
            or len(e.segment) > max_segments
            or (e.event_id is not None and len(e.event_id) > quarter)
            or (names and max(map(len, names)) > quarter)
            or (e.segment and max(map(len, (*e.segment, *e.segment.values()))) > quarter)
        ):
            return None
    return events


def _envelope(raw: Buffer, max_bytes: int) -> tuple[_Envelope, list[bytes]] | None:
    """The envelope and its events as single-event JSON; ``None`` for a message that is no
    envelope; :class:`DecodeError` for a malformed one."""
    if len(raw) > max_bytes:
        raise DecodeError(
            "too_large",
            "$",
            f"expected a message of at most {max_bytes} bytes; got {len(raw)} bytes "
            "(kafka.max_message_bytes bounds a whole batch)",
        )
    try:
        env = _ENVELOPE.decode(raw)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
        try:
            shape = _SHAPE.decode(raw)
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
            shape = None
        if shape is None or not (bytes(shape.events) or bytes(shape.columns)):
            return None  # not an envelope: the single-event decoder explains
        found, missing = _AT.search(str(exc)), _MISSING.search(str(exc))
        path = (found.group(1) if found else "$") + (f".{missing.group(1)}" if missing else "")
        raise DecodeError("schema", path, _ENVELOPE_ERROR + _AT.sub("", str(exc))) from None
    if env.events is not None and env.columns is not None:
        raise DecodeError("schema", "$", "expected `events` or `columns`; got both")
    if not env.model:
        raise DecodeError("schema", "$.model", "expected a non-empty model name; got ''")
    head = _ENCODE.encode({"model": env.model, "model_version": env.model_version})[:-1]
    if env.events is not None:
        return env, [_with_model(head, bytes(e)) for e in env.events]
    if env.columns is not None:
        return env, [_with_model(head, r) for r in _transpose(env.columns)]
    return None


def _with_model(head: bytes, event: bytes) -> bytes:
    """The event with the envelope's model and version first (its own, if any, win)."""
    if not event.startswith(b"{"):
        return event  # not an object: the decoder says so
    rest = event[1:].lstrip()
    return head + (b"}" if rest.startswith(b"}") else b"," + rest)


def _transpose(cols: _Columns) -> list[bytes]:
    """Columns as one JSON object per event; ``null`` in a column other than a feature's
    leaves the field out."""
    n = len(cols.ts)
    named: list[tuple[str, _Raws]] = [("ts", cols.ts)]
    named += [(f, c) for f in _OPTIONAL if (c := getattr(cols, f)) is not None]
    groups = [("features", cols.features), ("segment", cols.segment)]
    for name, column in [*named, *((f"{g}.{k}", c) for g, m in groups for k, c in m.items())]:
        if len(column) != n:
            raise DecodeError(
                "schema",
                f"$.columns.{name}",
                f"expected {n} values, one per event as in `$.columns.ts`; got {len(column)}",
            )
    keys = {name: _ENCODE.encode(name) + b":" for name, _ in named}
    fkeys = [(_ENCODE.encode(k) + b":", c) for k, c in cols.features.items()]
    skeys = [(_ENCODE.encode(k) + b":", c) for k, c in cols.segment.items()]
    out = []
    for i in range(n):
        parts = [keys[name] + bytes(c[i]) for name, c in named if bytes(c[i]) != b"null"]
        parts.append(b'"features":{' + b",".join(k + bytes(c[i]) for k, c in fkeys) + b"}")
        seg = [k + bytes(c[i]) for k, c in skeys if bytes(c[i]) != b"null"]
        if seg:
            parts.append(b'"segment":{' + b",".join(seg) + b"}")
        out.append(b"{" + b",".join(parts) + b"}")
    return out


def _path_in(env: _Envelope, j: int, path: str) -> str:
    """``path`` of event ``j`` as a path in its batch message."""
    rest = path[1:]
    if env.events is not None:
        return f"$.events[{j}]{rest}"
    head = _HEAD.match(rest)
    return f"$.columns{head.group(1)}[{j}]{rest[head.end() :]}" if head else f"$.columns[{j}]"


def _other_model(env: _Envelope, event: PredictionEvent) -> DecodeError | None:
    for name in ("model", "model_version"):
        want, got = getattr(env, name), getattr(event, name)
        if want != got:
            return DecodeError(
                "schema",
                f"$.{name}",
                f"expected the batch's {name} {preview(want)} (one model and version per "
                f"batch message); got {preview(got)}",
            )
    return None
