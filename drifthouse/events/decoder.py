"""One reusable decoder per kind of event (docs/events.md, "Invalid events").

An :class:`EventDecoder` is created once per kind and reused. Valid JSON runs through msgspec's
typed decoder in C; only messages that fail take the slow path of :mod:`drifthouse.events.explain`,
which works out the precise reason, field path and offending value for the dead-letter header.
A bad message raises :class:`~drifthouse.errors.DecodeError` (``decode``) or is returned beside
the good ones (``decode_batch``): it never stops a batch.

Reasons: ``too_large``, ``invalid_json``, ``schema``, ``non_finite``, ``future_ts``,
``implausible_ts``, ``too_many_segments``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any, Generic

import msgspec

from drifthouse.errors import DecodeError
from drifthouse.events.describe import key_path, preview
from drifthouse.events.explain import SPECS, slow_decode
from drifthouse.events.structs import (
    Buffer,
    E,
    Event,
    EventKind,
    LabelEvent,
    MetricEvent,
    PredictionEvent,
)
from drifthouse.events.timestamps import MIN_TS_MS, iso, units_hint

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_FUTURE_MS",
    "DEFAULT_MAX_LABEL_BYTES",
    "DEFAULT_MAX_SEGMENTS",
    "EventDecoder",
    "check_labels",
    "decoder_for",
]

DEFAULT_MAX_BYTES = 1_000_000
DEFAULT_MAX_FUTURE_MS = 3_600_000
DEFAULT_MAX_LABEL_BYTES = 1_024
DEFAULT_MAX_SEGMENTS = 16

_KINDS: dict[str, type[Event]] = {
    "prediction": PredictionEvent,
    "label": LabelEvent,
    "metric": MetricEvent,
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
        if kind not in SPECS:
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
            event = slow_decode(self.kind, raw, exc)
        if len(raw) > self.max_label_bytes:
            check_labels(event, self.max_label_bytes)
        _check_segments(event, self.max_segments)
        if now_ms is not None and event.ts_ms > now_ms + self.max_future_ms:
            raise DecodeError(
                "future_ts",
                "$.ts",
                f"expected an event time at most {self.max_future_ms} ms after now "
                f"({iso(now_ms)}); got {iso(event.ts_ms)}, "
                f"{event.ts_ms - now_ms} ms ahead: check the producer's clock",
            )
        if event.ts_ms < self.min_ts_ms:
            raise DecodeError(
                "implausible_ts",
                "$.ts",
                f"expected an event time from {iso(self.min_ts_ms)} on; got {iso(event.ts_ms)}"
                + (units_hint(event.ts_ms) or f", which is before {iso(self.min_ts_ms)[:10]}"),
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


def decoder_for(kind: EventKind, **options: int) -> EventDecoder[Any]:
    """The decoder for a kind named in words: ``"prediction"``, ``"label"`` or ``"metric"``."""
    try:
        return EventDecoder(_KINDS[kind], **options)
    except KeyError:
        raise ValueError(f"kind must be one of {sorted(_KINDS)} (got {kind!r})") from None


def check_labels(event: Any, limit: int) -> None:
    """Raise ``too_large`` for a name or segment value longer than ``limit`` bytes (UTF-8)."""

    def check(value: object, path: str) -> None:
        if isinstance(value, str) and len(value) * 4 > limit and len(value.encode("utf-8")) > limit:
            raise DecodeError(
                "too_large",
                path,
                f"expected at most {limit} bytes; got {len(value.encode('utf-8'))} bytes "
                f"({preview(value)}): names and segment values become keys in the store",
            )

    for name in ("model", "model_version", "event_id"):
        check(getattr(event, name, None), f"$.{name}")
    for field in ("features", "metrics"):
        for key in getattr(event, field, None) or ():
            check(key, f"$.{field}")
    for key, value in (getattr(event, "segment", None) or {}).items():
        check(key, "$.segment")
        check(value, f"$.segment{key_path(key) if len(key) <= limit else '.<key>'}")


def _check_segments(event: Any, limit: int) -> None:
    """Raise ``too_many_segments`` for a prediction with more than ``limit`` segment attributes."""
    segment = getattr(event, "segment", None)
    if segment and len(segment) > limit:
        raise DecodeError(
            "too_many_segments",
            "$.segment",
            f"expected at most {limit} segment attributes; got {len(segment)} (the first: "
            f"{preview(list(itertools.islice(segment, 3)))}): each attribute's value gets its "
            "own rows in every window (metrics.max_segment_attributes)",
        )
