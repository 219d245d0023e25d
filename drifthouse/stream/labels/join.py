"""Delayed labels meet their predictions: the join by ``event_id`` within an event-time horizon.

:class:`LabelJoin` holds, per model, the predictions of the last ``horizon`` (7 days by
default, ``metrics.label_horizon``) by ``event_id``, and labels that came before their
prediction. A label meeting its prediction (whichever came first) becomes a
:class:`JoinedPair`. Entries older than ``horizon`` before the model's clock (the largest event
time seen, of predictions and labels; never the wall clock) are evicted, and so are the oldest
when a model holds more than ``max_entries`` or ``max_bytes`` (an estimate per entry,
:func:`~drifthouse.stream.labels.records.record_bytes`). Labels that find no
prediction within the horizon are counted as ``unmatched``; labels too old to be held (their
time already beyond the horizon) as ``expired``; a second label for one prediction, or a
second early label for one id, as ``duplicate`` (the first label wins). The join is
snapshotted with :meth:`LabelJoin.to_bytes` so a restart resumes it. With ``spill`` on, what
leaves it unjoined is handed on to the late join in the store (:meth:`LabelJoin.take_spilled`).

:mod:`drifthouse.stream.labels.windows` turns the pairs into per-window label metrics.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass, field

import msgspec

from drifthouse.errors import SketchError
from drifthouse.events import LabelEvent
from drifthouse.logs import get_logger
from drifthouse.stream.labels.records import (
    DAY_MS,
    DEFAULT_MAX_BYTES,
    DroppedLabel,
    JoinedPair,
    JoinStats,
    LateLabel,
    PredictionRecord,
    early_bytes,
    plain_bytes,
    record_bytes,
)
from drifthouse.stream.windows import NO_TIME

# The record types are defined in `records`; importers of this module's names keep working.
__all__ = [
    "DAY_MS",
    "DroppedLabel",
    "JoinStats",
    "JoinedPair",
    "LabelJoin",
    "LateLabel",
    "PredictionRecord",
]

log = get_logger("labels")


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
    max_bytes: int = DEFAULT_MAX_BYTES
    spill: bool = False


@dataclass
class _ModelJoin:
    clock: int = NO_TIME
    seq: int = 0
    preds: dict[str, _Pred] = field(default_factory=dict)
    early: dict[str, _Early] = field(default_factory=dict)
    bytes: int = 0  # what preds and early cost (record_bytes, _early_bytes)
    forced: int = 0  # entries evicted by a bound, not by the horizon
    logged: int = 0  # `forced` when last logged
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
    max_bytes
        Per model, the most memory held (:func:`record_bytes`: records, their strings and the
        indexes); past it the oldest go first (counted in ``stats.over_bytes`` and
        ``stats.over_cap``, logged as ``labels.join_over_bound``), whatever the ids' length.
    spill
        Keep what leaves the join unjoined for the late join in the store
        (:meth:`take_spilled`): predictions evicted without a label, labels that found none.

    Examples
    --------
    >>> join = LabelJoin(horizon_ms=3_600_000)
    >>> rec = PredictionRecord("e1", "fraud", "1.0", 1_000, 0.9, None)
    >>> join.add_labels([LabelEvent(event_id="e1", model="fraud", ts_ms=2_000, label=1)])
    []
    >>> [(p.prediction.event_id, p.label) for p in join.add_predictions([rec])]
    [('e1', 1)]
    """

    def __init__(
        self,
        *,
        horizon_ms: int = 7 * DAY_MS,
        max_entries: int = 5_000_000,
        max_bytes: int = DEFAULT_MAX_BYTES,
        spill: bool = False,
    ) -> None:
        if horizon_ms <= 0 or max_entries <= 0 or max_bytes <= 0:
            raise SketchError(
                "horizon_ms, max_entries and max_bytes must be positive "
                f"(got {horizon_ms}, {max_entries}, {max_bytes})"
            )
        self.horizon_ms = horizon_ms
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.spill = spill
        self.stats = JoinStats()
        self._models: dict[str, _ModelJoin] = {}
        self._dropped: list[DroppedLabel] = []
        self._spilled_predictions: list[PredictionRecord] = []
        self._spilled_labels: list[LateLabel] = []
        self._sizes: dict[tuple[str, str], int] = {}  # (model, version) -> their part of a size

    def _model(self, model: str) -> _ModelJoin:
        m = self._models.get(model)
        if m is None:
            m = self._models[model] = _ModelJoin()
        return m

    def held(self, model: str) -> int:
        """Predictions plus early labels held for ``model``."""
        m = self._models.get(model)
        return len(m.preds) + len(m.early) if m is not None else 0

    def held_bytes(self, model: str | None = None) -> int:
        """Memory held for ``model`` (every model when ``None``), as :func:`record_bytes` counts."""
        if model is None:
            return sum(m.bytes for m in self._models.values())
        m = self._models.get(model)
        return m.bytes if m is not None else 0

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

    def take_spilled(self) -> tuple[list[PredictionRecord], list[LateLabel]]:
        """What left the join unjoined since the last call (with ``spill``): predictions
        evicted without a label (or too old to be held), and labels that found no prediction
        (with an ``event_id``), for the late join in the store."""
        out = (self._spilled_predictions, self._spilled_labels)
        self._spilled_predictions, self._spilled_labels = [], []
        return out

    def add_predictions(self, records: Iterable[PredictionRecord]) -> list[JoinedPair]:
        """Hold predictions (in order); return pairs with labels that came first."""
        # One pass per prediction on the worker's hot path: locals, counters summed at the end,
        # and eviction only when something is due (the oldest entry fell out of the horizon,
        # a bound is passed, or stale heap entries pile up).
        out: list[JoinedPair] = []
        horizon, cap, max_bytes = self.horizon_ms, self.max_entries, self.max_bytes
        heappush, sizes = heapq.heappush, self._sizes
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
                m.bytes -= early_bytes(eid, early.label)
                joined += 1
            elif ts < m.clock - horizon:
                expired += 1
                if self.spill:
                    self._spilled_predictions.append(r)
                continue
            m.seq += 1
            preds[eid] = _Pred(m.seq, r, early is not None)
            m.bytes += plain_bytes(r, sizes)
            heap = m.heap
            heappush(heap, (ts, m.seq, False, eid))
            held = len(preds) + len(m.early)
            if (
                heap[0][0] < m.clock - horizon
                or held > cap
                or m.bytes > max_bytes
                or len(heap) > 2 * held + 1024
            ):
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
        horizon, cap, max_bytes = self.horizon_ms, self.max_entries, self.max_bytes
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
            m.seq += 1  # every label takes a place in the model's arrivals (first label wins)
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
                if self.spill:
                    self._spilled_labels.append(
                        LateLabel(lab.model, eid, ts, lab.label, m.seq, "expired")
                    )
            elif eid in m.early:
                self._drop(lab, "unknown", "duplicate")
            else:
                m.early[eid] = _Early(m.seq, lab.label, ts)
                m.bytes += early_bytes(eid, lab.label)
                heappush(m.heap, (ts, m.seq, True, eid))
                early_n += 1
            heap = m.heap
            if heap:
                held = len(m.preds) + len(m.early)
                if (
                    heap[0][0] < m.clock - horizon
                    or held > cap
                    or m.bytes > max_bytes
                    or len(heap) > 2 * held + 1024
                ):
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
        heap, stats, cap, max_bytes = m.heap, self.stats, self.max_entries, self.max_bytes
        preds, early = m.preds, m.early
        while heap and (heap[0][0] < limit or len(preds) + len(early) > cap or m.bytes > max_bytes):
            ts, seq, is_label, eid = heapq.heappop(heap)
            forced = ts >= limit
            by_bytes = forced and m.bytes > max_bytes
            if is_label:
                e = m.early.get(eid)
                if e is None or e.seq != seq:
                    continue
                del m.early[eid]
                m.bytes -= early_bytes(eid, e.label)
                stats.unmatched += 1
                self._dropped.append(DroppedLabel(model, "unknown", ts, eid, "unmatched"))
                if self.spill:
                    self._spilled_labels.append(
                        LateLabel(model, eid, ts, e.label, seq, "unmatched")
                    )
            else:
                p = m.preds.get(eid)
                if p is None or p.seq != seq:
                    continue
                del m.preds[eid]
                m.bytes -= plain_bytes(p.record, self._sizes)
                stats.evicted_predictions += 1
                if self.spill and not p.labelled:
                    self._spilled_predictions.append(p.record)
            if forced:
                m.forced += 1
                stats.over_cap += 1
                stats.over_bytes += by_bytes
        if m.forced > 2 * m.logged:
            # Entries leave before their labels can come: the bounds are too tight for this
            # model's rate (logged when the count doubles, not once per eviction).
            m.logged = m.forced
            log.warning(
                "labels.join_over_bound", model=model, held=len(m.preds) + len(m.early),
                bytes=m.bytes, max_entries=self.max_entries, max_bytes=self.max_bytes,
                evicted=m.forced,
            )  # fmt: skip
        # Lazy deletion leaves stale entries behind; rebuild when they dominate.
        if len(heap) > 2 * (len(m.preds) + len(m.early)) + 1024:
            m.heap = _heap_of(m)

    def spill_all(self) -> None:
        """Hand every unjoined entry to the late join (the end of a bounded input: nothing
        held survives it): unlabelled predictions, early labels (as ``unmatched``)."""
        if not self.spill:
            return
        for name, m in self._models.items():
            self._spilled_predictions += [p.record for p in m.preds.values() if not p.labelled]
            self._spilled_labels += [
                LateLabel(name, eid, e.ts_ms, e.label, e.seq, "unmatched")
                for eid, e in m.early.items()
            ]

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
        wire = _JoinWire(
            self.horizon_ms, self.max_entries, models, stats, self.max_bytes, self.spill
        )
        return msgspec.msgpack.encode(wire)

    @classmethod
    def from_bytes(cls, data: bytes) -> LabelJoin:
        """Restore a snapshot written by :meth:`to_bytes`."""
        try:
            wire = msgspec.msgpack.decode(data, type=_JoinWire)
        except msgspec.DecodeError as exc:
            raise SketchError(f"not a serialised label join: {exc}") from exc
        out = cls(
            horizon_ms=wire.horizon_ms,
            max_entries=wire.max_entries,
            max_bytes=wire.max_bytes,
            spill=wire.spill,
        )
        out.stats = JoinStats(**wire.stats)
        for name, mw in wire.models.items():
            m = _ModelJoin(clock=mw.clock, seq=mw.seq)
            for p in mw.preds:
                assert p.record.event_id is not None
                m.preds[p.record.event_id] = p
                m.bytes += record_bytes(p.record)
            for eid, _model, e in mw.early:
                m.early[eid] = e
                m.bytes += early_bytes(eid, e.label)
            m.heap = _heap_of(m)
            out._models[name] = m
        return out


def _heap_of(m: _ModelJoin) -> list[tuple[int, int, bool, str]]:
    heap = [(p.record.ts_ms, p.seq, False, k) for k, p in m.preds.items()]
    heap += [(e.ts_ms, e.seq, True, k) for k, e in m.early.items()]
    heapq.heapify(heap)
    return heap
