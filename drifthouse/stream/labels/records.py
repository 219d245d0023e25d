"""What the label join takes, gives and hands on: prediction records, pairs, dropped and late
labels, its totals, and what a held entry costs in memory.

:mod:`drifthouse.stream.labels.join` holds them; :mod:`drifthouse.stream.labels.late` joins the
late ones in the store.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import msgspec

from drifthouse.categories import category_key
from drifthouse.detectors.label_sketch import LabelValue
from drifthouse.detectors.reference import prediction_score
from drifthouse.errors import SketchError
from drifthouse.events import PredictionEvent

__all__ = [
    "DAY_MS",
    "DEFAULT_MAX_BYTES",
    "FINAL",
    "DroppedLabel",
    "JoinStats",
    "JoinedPair",
    "LateLabel",
    "PredictionRecord",
    "SpilledPane",
    "decode_records",
    "early_bytes",
    "encode_records",
    "plain_bytes",
    "record_bytes",
]

DAY_MS = 86_400_000
DEFAULT_MAX_BYTES = 512 * 1024 * 1024


class PredictionRecord(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """What the join keeps of a prediction (compact; ``array_like`` on the wire).

    ``score`` is the numeric prediction or positive-class probability (NaN if none);
    ``pred_class`` the predicted class name for class predictions; ``segment`` sorted pairs.
    """

    event_id: str | None
    model: str
    model_version: str
    ts_ms: int
    score: float
    pred_class: str | None
    segment: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_event(cls, e: PredictionEvent) -> PredictionRecord:
        """The record of a decoded prediction event (``prediction_score`` as profiled)."""
        return cls.of(
            e.event_id, e.model, e.model_version, e.ts_ms, e.prediction, e.predicted_class,
            e.segment,
        )  # fmt: skip

    @classmethod
    def from_events(cls, events: Sequence[PredictionEvent]) -> list[PredictionRecord]:
        """:meth:`from_event` of each event; a plain number without a segment (the usual
        case) goes straight into the record."""
        from_event = cls.from_event
        return [
            cls(e.event_id, e.model, e.model_version, e.ts_ms, float(p), None)
            if (type(p := e.prediction) is float or type(p) is int) and not e.segment
            else from_event(e)
            for e in events
        ]

    @classmethod
    def of(
        cls,
        event_id: str | None,
        model: str,
        model_version: str,
        ts_ms: int,
        prediction: object,
        predicted_class: object,
        segment: dict[str, str],
    ) -> PredictionRecord:
        """The record of a prediction given field by field (e.g. from a batch in columns)."""
        p: object = prediction
        score, cls_name = math.nan, None
        kind = type(p)
        if kind is not float and kind is not int:  # a plain number needs no rule (the usual case)
            p = prediction_score(p, predicted_class)
        if isinstance(p, bool):
            cls_name = "true" if p else "false"
        elif isinstance(p, int | float):
            score = float(p)
        elif isinstance(p, str):
            cls_name = category_key(p)
        return cls(
            event_id,
            model,
            model_version,
            ts_ms,
            score,
            cls_name,
            tuple(sorted(segment.items())) if segment else (),
        )


_RECORDS = msgspec.msgpack.Encoder()
_RECORDS_DECODER = msgspec.msgpack.Decoder(list[PredictionRecord])


def encode_records(records: Sequence[PredictionRecord]) -> bytes:
    """Records as one message (e.g. beside a partition's partials)."""
    return _RECORDS.encode(list(records))


def decode_records(data: bytes) -> list[PredictionRecord]:
    try:
        return _RECORDS_DECODER.decode(data)
    except msgspec.DecodeError as exc:
        raise SketchError(f"not serialised prediction records: {exc}") from exc


class JoinedPair(msgspec.Struct, frozen=True, gc=False):
    """A prediction and its label; windowed by ``prediction.ts_ms``. (A struct, not a
    dataclass: one is built per label, and a frozen dataclass costs six times as much.)"""

    prediction: PredictionRecord
    label: LabelValue
    label_ts_ms: int


@dataclass(frozen=True, slots=True)
class DroppedLabel:
    """A label that joined nothing: ``reason`` ``unmatched``, ``expired`` or ``duplicate``;
    counted in the window of ``ts_ms`` (the label's time)."""

    model: str
    model_version: str
    ts_ms: int
    event_id: str
    reason: str


@dataclass
class JoinStats:
    """Running totals of a join (for logs and the health endpoint)."""

    predictions: int = 0
    labels: int = 0
    joined: int = 0
    early: int = 0
    unmatched: int = 0
    expired: int = 0
    duplicate: int = 0
    no_event_id: int = 0
    predictions_expired: int = 0
    predictions_duplicate: int = 0
    evicted_predictions: int = 0
    over_cap: int = 0
    over_bytes: int = 0


class LateLabel(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """A label the join could not join and handed on to the late join in the store
    (:mod:`drifthouse.stream.labels.late`): ``reason`` ``unmatched`` (held early, its
    prediction never came within the horizon or the bounds) or ``expired`` (already beyond the
    horizon when it came); ``seq`` is its place in the model's arrivals (first label wins)."""

    model: str
    event_id: str
    ts_ms: int
    label: LabelValue
    seq: int
    reason: str


# -- sizes ---------------------------------------------------------------------------------------

# What a held entry costs in CPython 3.11-3.13 (64-bit), measured with tracemalloc and rounded
# up (tests/stream/labels/test_join_bytes.py checks the estimate against the measure): the
# record struct, its float and int, the `_Pred` and its int, the dict slot and the heap tuple.
_PRED_FIXED = 376
_EARLY_FIXED = 248
_PAIR_FIXED = 72  # a (name, value) tuple of a segment
_TUPLE_FIXED = 56  # the segment's outer tuple (plus 8 bytes a pair)


def _str_bytes(s: str) -> int:
    """A str object: 49 bytes of header and its characters, 8-byte aligned (ASCII; a wider
    string takes up to 4 bytes a character, counted as 4)."""
    n = 49 + len(s) if s.isascii() else 80 + 4 * len(s)
    return (n + 7) & ~7


def record_bytes(r: PredictionRecord) -> int:
    """Memory a held prediction costs, an upper bound within about a quarter: the record and
    its strings (event id, model, version, class, segment), and the join's indexes."""
    n = _PRED_FIXED + _str_bytes(r.event_id or "") + _str_bytes(r.model)
    n += _str_bytes(r.model_version)
    if r.pred_class is not None:
        n += _str_bytes(r.pred_class)
    if r.segment:
        n += _TUPLE_FIXED + 8 * len(r.segment)
        for name, value in r.segment:
            n += _PAIR_FIXED + _str_bytes(name) + _str_bytes(value)
    return n


def plain_bytes(r: PredictionRecord, base: dict[tuple[str, str], int]) -> int:
    """:func:`record_bytes`, the same number, with the model's and version's part kept in
    ``base`` (the join's hot path: one call a prediction instead of four)."""
    eid = r.event_id or ""
    if r.segment or r.pred_class is not None or not eid.isascii():
        return record_bytes(r)
    key = (r.model, r.model_version)
    fixed = base.get(key)
    if fixed is None:
        fixed = base[key] = _PRED_FIXED + _str_bytes(r.model) + _str_bytes(r.model_version)
    return fixed + ((56 + len(eid)) & ~7)


def early_bytes(event_id: str, label: LabelValue) -> int:
    """Memory a held early label costs (as :func:`record_bytes`): its entry, id and value."""
    n = _EARLY_FIXED + _str_bytes(event_id)
    if isinstance(label, str):
        return n + _str_bytes(label)
    return n + 24 if isinstance(label, float) else n


#: ``final_until`` of panes handed on at the end of a bounded input: every window is final.
FINAL = 2**63 - 1


@dataclass(frozen=True)
class SpilledPane:
    """A pane the windows are done with (forgotten past the horizon, or the end of a bounded
    input), for the late join: its key, segment, compressed state (``None``: no labels),
    counters, and ``final_until``: the windows whose panes all end (pane start + window size)
    before it will not change in the stream again."""

    key: tuple[str, str, int, int]  # (model, version, spec index, pane start)
    segment: str
    blob: bytes | None
    counters: list[int]
    final_until: int
