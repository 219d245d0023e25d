"""Delayed labels meet their predictions: the join by ``event_id`` within an event-time horizon.

:class:`LabelJoin` holds, per model, the predictions of the last ``horizon`` (7 days by
default, ``metrics.label_horizon``) by ``event_id``, and labels that came before their
prediction. A label meeting its prediction (whichever came first) becomes a
:class:`JoinedPair`. Entries older than ``horizon`` before the model's clock (the largest event
time seen, of predictions and labels; never the wall clock) are evicted. Labels that find no
prediction within the horizon are counted as ``unmatched``; labels too old to be held (their
time already beyond the horizon) as ``expired``; a second label for one prediction, or a
second early label for one id, as ``duplicate`` (the first label wins). The join is
snapshotted with :meth:`LabelJoin.to_bytes` so a restart resumes it.

:mod:`drifthouse.stream.labels.windows` turns the pairs into per-window label metrics.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import msgspec

from drifthouse.categories import category_key
from drifthouse.detectors.label_sketch import LabelValue
from drifthouse.detectors.reference import prediction_score
from drifthouse.errors import SketchError
from drifthouse.events import LabelEvent, PredictionEvent
from drifthouse.stream.windows import NO_TIME

__all__ = [
    "DAY_MS",
    "DroppedLabel",
    "JoinStats",
    "JoinedPair",
    "LabelJoin",
    "PredictionRecord",
    "decode_records",
    "encode_records",
]

DAY_MS = 86_400_000


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
        p: object = e.prediction
        score, cls_name = math.nan, None
        kind = type(p)
        if kind is not float and kind is not int:  # a plain number needs no rule (the usual case)
            p = prediction_score(p, e.predicted_class)
        if isinstance(p, bool):
            cls_name = "true" if p else "false"
        elif isinstance(p, int | float):
            score = float(p)
        elif isinstance(p, str):
            cls_name = category_key(p)
        return cls(
            e.event_id,
            e.model,
            e.model_version,
            e.ts_ms,
            score,
            cls_name,
            tuple(sorted(e.segment.items())) if e.segment else (),
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


# -- join --------------------------------------------------------------------------------------


class _Pred(msgspec.Struct, array_like=True):
    seq: int
    record: PredictionRecord
    labelled: bool = False


class _Early(msgspec.Struct, array_like=True):
    seq: int
    label: int | float | str
    ts_ms: int


class _ModelWire(msgspec.Struct, array_like=True):
    clock: int
    seq: int
    preds: list[_Pred]
    early: list[tuple[str, str, _Early]]  # (event_id, model, entry)


class _JoinWire(msgspec.Struct, array_like=True):
    horizon_ms: int
    max_entries: int
    models: dict[str, _ModelWire]
    stats: dict[str, int]


@dataclass
class _ModelJoin:
    clock: int = NO_TIME
    seq: int = 0
    preds: dict[str, _Pred] = field(default_factory=dict)
    early: dict[str, _Early] = field(default_factory=dict)
    # (ts, seq, is_label, event_id): eviction order; stale entries are skipped when popped.
    heap: list[tuple[int, int, bool, str]] = field(default_factory=list)


class LabelJoin:
    """Join labels to predictions by ``event_id`` within a horizon (see the module docstring).

    Parameters
    ----------
    horizon_ms
        How long predictions and early labels are held, in event time.
    max_entries
        Per model, the most predictions plus early labels held; past it the oldest go first
        (counted in ``stats.over_cap``), so memory stays bounded whatever the rate.

    Examples
    --------
    >>> join = LabelJoin(horizon_ms=3_600_000)
    >>> rec = PredictionRecord("e1", "fraud", "1.0", 1_000, 0.9, None)
    >>> join.add_labels([LabelEvent(event_id="e1", model="fraud", ts_ms=2_000, label=1)])
    []
    >>> [(p.prediction.event_id, p.label) for p in join.add_predictions([rec])]
    [('e1', 1)]
    """

    def __init__(self, *, horizon_ms: int = 7 * DAY_MS, max_entries: int = 5_000_000) -> None:
        if horizon_ms <= 0 or max_entries <= 0:
            raise SketchError("horizon_ms and max_entries must be positive")
        self.horizon_ms = horizon_ms
        self.max_entries = max_entries
        self.stats = JoinStats()
        self._models: dict[str, _ModelJoin] = {}
        self._dropped: list[DroppedLabel] = []

    def _model(self, model: str) -> _ModelJoin:
        m = self._models.get(model)
        if m is None:
            m = self._models[model] = _ModelJoin()
        return m

    def held(self, model: str) -> int:
        """Predictions plus early labels held for ``model``."""
        m = self._models.get(model)
        return len(m.preds) + len(m.early) if m is not None else 0

    @property
    def entries(self) -> int:
        """Predictions plus early labels held, over every model (what the join's memory is)."""
        return sum(len(m.preds) + len(m.early) for m in self._models.values())

    @property
    def waiting(self) -> int:
        """Labels held for a prediction not seen yet, over every model."""
        return sum(len(m.early) for m in self._models.values())

    def take_dropped(self) -> list[DroppedLabel]:
        """Labels that joined nothing since the last call (for the windows' counters)."""
        out, self._dropped = self._dropped, []
        return out

    def add_predictions(self, records: Iterable[PredictionRecord]) -> list[JoinedPair]:
        """Hold predictions (in order); return pairs with labels that came first."""
        # One pass per prediction on the worker's hot path: locals, counters summed at the end,
        # and eviction only when something is due (the oldest entry fell out of the horizon,
        # the cap is passed, or stale heap entries pile up).
        out: list[JoinedPair] = []
        horizon, cap = self.horizon_ms, self.max_entries
        heappush = heapq.heappush
        seen = no_id = duplicate = joined = expired = 0
        name: str | None = None
        m = _ModelJoin()
        for r in records:
            seen += 1
            eid = r.event_id
            if not eid:
                no_id += 1
                continue
            if r.model != name:
                name = r.model
                m = self._model(name)
            ts = r.ts_ms
            if ts > m.clock:
                m.clock = ts
            preds = m.preds
            if eid in preds:
                duplicate += 1
                continue
            early = m.early.pop(eid, None) if m.early else None
            if early is not None:
                out.append(JoinedPair(r, early.label, early.ts_ms))
                joined += 1
            elif ts < m.clock - horizon:
                expired += 1
                continue
            m.seq += 1
            preds[eid] = _Pred(m.seq, r, early is not None)
            heap = m.heap
            heappush(heap, (ts, m.seq, False, eid))
            held = len(preds) + len(m.early)
            if heap[0][0] < m.clock - horizon or held > cap or len(heap) > 2 * held + 1024:
                self._evict(name, m)
        stats = self.stats
        stats.predictions += seen
        stats.no_event_id += no_id
        stats.predictions_duplicate += duplicate
        stats.joined += joined
        stats.predictions_expired += expired
        return out

    def add_labels(self, labels: Iterable[LabelEvent]) -> list[JoinedPair]:
        """Join labels (in order) to held predictions; hold the others until theirs come."""
        # The same shape as add_predictions: locals, counters summed at the end, and eviction
        # only when something is due (what `_evict` would do after each label, nothing else).
        out: list[JoinedPair] = []
        horizon, cap = self.horizon_ms, self.max_entries
        heappush = heapq.heappush
        seen = joined = early_n = 0
        name: str | None = None
        m = _ModelJoin()
        for lab in labels:
            seen += 1
            if lab.model != name:
                name = lab.model
                m = self._model(name)
            ts = lab.ts_ms
            if ts > m.clock:
                m.clock = ts
            eid = lab.event_id
            pred = m.preds.get(eid) if eid else None
            if pred is not None:
                if pred.labelled:
                    self._drop(lab, pred.record.model_version, "duplicate")
                else:
                    pred.labelled = True
                    out.append(JoinedPair(pred.record, lab.label, ts))
                    joined += 1
            elif not eid:
                self._drop(lab, "unknown", "unmatched")
            elif ts < m.clock - horizon:
                self._drop(lab, "unknown", "expired")
            elif eid in m.early:
                self._drop(lab, "unknown", "duplicate")
            else:
                m.seq += 1
                m.early[eid] = _Early(m.seq, lab.label, ts)
                heappush(m.heap, (ts, m.seq, True, eid))
                early_n += 1
            heap = m.heap
            if heap:
                held = len(m.preds) + len(m.early)
                if heap[0][0] < m.clock - horizon or held > cap or len(heap) > 2 * held + 1024:
                    self._evict(name, m)
        stats = self.stats
        stats.labels += seen
        stats.joined += joined
        stats.early += early_n
        return out

    def _drop(self, lab: LabelEvent, version: str, reason: str) -> None:
        setattr(self.stats, reason, getattr(self.stats, reason) + 1)
        self._dropped.append(DroppedLabel(lab.model, version, lab.ts_ms, lab.event_id, reason))

    def _evict(self, model: str, m: _ModelJoin) -> None:
        limit = m.clock - self.horizon_ms
        heap = m.heap
        while heap and (heap[0][0] < limit or len(m.preds) + len(m.early) > self.max_entries):
            ts, seq, is_label, eid = heapq.heappop(heap)
            forced = ts >= limit
            if is_label:
                e = m.early.get(eid)
                if e is None or e.seq != seq:
                    continue
                del m.early[eid]
                self.stats.unmatched += 1
                self._dropped.append(DroppedLabel(model, "unknown", ts, eid, "unmatched"))
            else:
                p = m.preds.get(eid)
                if p is None or p.seq != seq:
                    continue
                del m.preds[eid]
                self.stats.evicted_predictions += 1
            if forced:
                self.stats.over_cap += 1
        # Lazy deletion leaves stale entries behind; rebuild when they dominate.
        if len(heap) > 2 * (len(m.preds) + len(m.early)) + 1024:
            m.heap = [(p.record.ts_ms, p.seq, False, k) for k, p in m.preds.items()]
            m.heap += [(e.ts_ms, e.seq, True, k) for k, e in m.early.items()]
            heapq.heapify(m.heap)

    def to_bytes(self) -> bytes:
        """Snapshot every model's held entries, clocks and the totals."""
        models = {
            name: _ModelWire(
                m.clock,
                m.seq,
                list(m.preds.values()),
                [(k, name, e) for k, e in m.early.items()],
            )
            for name, m in self._models.items()
        }
        stats = {k: int(v) for k, v in vars(self.stats).items()}
        return msgspec.msgpack.encode(_JoinWire(self.horizon_ms, self.max_entries, models, stats))

    @classmethod
    def from_bytes(cls, data: bytes) -> LabelJoin:
        """Restore a snapshot written by :meth:`to_bytes`."""
        try:
            wire = msgspec.msgpack.decode(data, type=_JoinWire)
        except msgspec.DecodeError as exc:
            raise SketchError(f"not a serialised label join: {exc}") from exc
        out = cls(horizon_ms=wire.horizon_ms, max_entries=wire.max_entries)
        out.stats = JoinStats(**wire.stats)
        for name, mw in wire.models.items():
            m = _ModelJoin(clock=mw.clock, seq=mw.seq)
            for p in mw.preds:
                assert p.record.event_id is not None
                m.preds[p.record.event_id] = p
            for eid, _model, e in mw.early:
                m.early[eid] = e
            m.heap = [(p.record.ts_ms, p.seq, False, k) for k, p in m.preds.items()]
            m.heap += [(e.ts_ms, e.seq, True, k) for k, e in m.early.items()]
            heapq.heapify(m.heap)
            out._models[name] = m
        return out
