"""Delayed labels: join them to their predictions, and keep the label metrics of each window.

Labels (topic ``labels``: ``{"event_id", "model", "ts", "label"}``) arrive minutes to days
after their prediction, before it now and then, and in any order. Label metrics belong to the
window of the **prediction's** event time, so they are kept apart from the prediction windows:

- :class:`LabelJoin` holds, per model, the predictions of the last ``horizon`` (7 days by
  default, ``metrics.label_horizon``) by ``event_id``, and labels that came before their
  prediction. A label meeting its prediction (whichever came first) becomes a
  :class:`JoinedPair`. Entries older than ``horizon`` before the model's clock (the largest
  event time seen, of predictions and labels; never the wall clock) are evicted. Labels that
  find no prediction within the horizon are counted as ``unmatched``; labels too old to be held
  (their time already beyond the horizon) as ``expired``; a second label for one prediction, or
  a second early label for one id, as ``duplicate`` (the first label wins). The join is
  snapshotted with :meth:`LabelJoin.to_bytes` so a restart resumes it.
- :class:`LabelWindows` folds joined pairs into per-pane
  :class:`~drifthouse.detectors.label_sketch.LabelState`s, per (model, model version, segment),
  counts the predictions of each pane (for ``labels_coverage``), and hands out the windows that
  changed since they were last written (:meth:`LabelWindows.flush`): a late label rewrites its
  window, under the same key, so the store keeps the newest row.

Determinism: the same predictions and labels in the same order give the same pairs and the same
states. The pairs do not depend on how the two streams interleave unless an entry is near the
horizon; count-based metrics do not depend on the order of pairs, float sums (regression) only
to rounding.
"""

from __future__ import annotations

import heapq
import math
import zlib
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import msgspec
import numpy as np

from drifthouse.detectors.base import Result
from drifthouse.detectors.fairness import fairness_results
from drifthouse.detectors.label_sketch import LabelSketch, LabelState, LabelValue
from drifthouse.detectors.reference import Profile, prediction_score
from drifthouse.errors import SketchError
from drifthouse.events import LabelEvent, PredictionEvent
from drifthouse.rows import MetricRow
from drifthouse.stream.windows import WindowSpec

__all__ = [
    "DroppedLabel",
    "JoinStats",
    "JoinedPair",
    "LabelJoin",
    "LabelWindow",
    "LabelWindows",
    "PredictionRecord",
    "decode_records",
    "encode_records",
    "sketch_for_model",
]

DAY_MS = 86_400_000
OTHER_VALUE = "__other__"


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
        p = prediction_score(e.prediction)
        score, cls_name = math.nan, None
        if isinstance(p, bool):
            cls_name = "true" if p else "false"
        elif isinstance(p, int | float):
            score = float(p)
        elif isinstance(p, str):
            cls_name = p
        return cls(
            e.event_id,
            e.model,
            e.model_version,
            e.ts_ms,
            score,
            cls_name,
            tuple(sorted(e.segment.items())),
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


@dataclass(frozen=True, slots=True)
class JoinedPair:
    """A prediction and its label; windowed by ``prediction.ts_ms``."""

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


_NO_TIME = -(2**63)


@dataclass
class _ModelJoin:
    clock: int = _NO_TIME
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

    def take_dropped(self) -> list[DroppedLabel]:
        """Labels that joined nothing since the last call (for the windows' counters)."""
        out, self._dropped = self._dropped, []
        return out

    def add_predictions(self, records: Iterable[PredictionRecord]) -> list[JoinedPair]:
        """Hold predictions (in order); return pairs with labels that came first."""
        out: list[JoinedPair] = []
        for r in records:
            self.stats.predictions += 1
            if not r.event_id:
                self.stats.no_event_id += 1
                continue
            m = self._model(r.model)
            m.clock = max(m.clock, r.ts_ms)
            eid = r.event_id
            if eid in m.preds:
                self.stats.predictions_duplicate += 1
                continue
            early = m.early.pop(eid, None)
            if early is not None:
                out.append(JoinedPair(r, early.label, early.ts_ms))
                self.stats.joined += 1
            elif r.ts_ms < m.clock - self.horizon_ms:
                self.stats.predictions_expired += 1
                continue
            m.seq += 1
            m.preds[eid] = _Pred(m.seq, r, labelled=early is not None)
            heapq.heappush(m.heap, (r.ts_ms, m.seq, False, eid))
            self._evict(r.model, m)
        return out

    def add_labels(self, labels: Iterable[LabelEvent]) -> list[JoinedPair]:
        """Join labels (in order) to held predictions; hold the others until theirs come."""
        out: list[JoinedPair] = []
        for lab in labels:
            self.stats.labels += 1
            m = self._model(lab.model)
            m.clock = max(m.clock, lab.ts_ms)
            eid = lab.event_id
            pred = m.preds.get(eid) if eid else None
            if pred is not None:
                if pred.labelled:
                    self._drop(lab, pred.record.model_version, "duplicate")
                else:
                    pred.labelled = True
                    out.append(JoinedPair(pred.record, lab.label, lab.ts_ms))
                    self.stats.joined += 1
            elif not eid:
                self._drop(lab, "unknown", "unmatched")
            elif lab.ts_ms < m.clock - self.horizon_ms:
                self._drop(lab, "unknown", "expired")
            elif eid in m.early:
                self._drop(lab, "unknown", "duplicate")
            else:
                m.seq += 1
                m.early[eid] = _Early(m.seq, lab.label, lab.ts_ms)
                heapq.heappush(m.heap, (lab.ts_ms, m.seq, True, eid))
                self.stats.early += 1
            self._evict(lab.model, m)
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


# -- windows -----------------------------------------------------------------------------------

WindowId = tuple[str, str, int, int]  # (model, model_version, spec index, window start)
# Pane counters: predictions, unmatched, expired, duplicate.
_PREDICTIONS, _UNMATCHED, _EXPIRED, _DUPLICATE = 0, 1, 2, 3
_REASON_SLOT = {"unmatched": _UNMATCHED, "expired": _EXPIRED, "duplicate": _DUPLICATE}


@dataclass
class _Pane:
    """A pane of one (model, version, segment): its counters and its label state, either
    decoded (``state``, while in the cache of recently used panes) or compressed (``blob``:
    a binary sketch is mostly zeros, 16 KB raw and a few hundred bytes compressed)."""

    blob: bytes | None = None
    counters: np.ndarray = field(default_factory=lambda: np.zeros(4, dtype=np.int64))
    state: LabelState | None = None

    def packed(self) -> bytes | None:
        if self.state is not None:
            return zlib.compress(self.state.to_bytes(), 1)
        return self.blob


@dataclass(frozen=True)
class LabelWindow:
    """A window whose label metrics changed: its merged state per segment (``''`` for all)."""

    spec_index: int
    start: int
    end: int
    model: str
    model_version: str
    states: dict[str, LabelState]
    counters: dict[str, np.ndarray]  # per segment: predictions, unmatched, expired, duplicate
    rewrite: bool

    def predictions(self, segment: str = "") -> int:
        c = self.counters.get(segment)
        return int(c[_PREDICTIONS]) if c is not None else 0


class _WindowsWire(msgspec.Struct, array_like=True):
    panes: list[tuple[str, str, str, int, int, bytes | None, list[int]]]
    dirty: list[tuple[str, str, int, int]]
    written: list[tuple[tuple[str, str, int, int], int]]
    clock: int
    segment_values: dict[str, list[str]]


class LabelWindows:
    """Label-sketch states per (model, version, segment, window spec, pane); see the module
    docstring.

    Parameters
    ----------
    specs
        The deployment's window specs (the same as the prediction windows').
    sketch_for
        The :class:`LabelSketch` of a model (task, threshold, classes from its config and profile).
    horizon_ms
        Panes older than this before the largest event time seen are dropped once written.
    max_segment_values
        Per model and segment attribute, the most values kept apart; later values are pooled
        as ``name=__other__``.
    cache_size
        Pane states kept decoded (16 KB each with 1,000 AUC bins); the others are compressed.
    rewrite_every_ms
        Event time between two writes of one window (see :meth:`flush`).
    """

    def __init__(
        self,
        specs: Sequence[WindowSpec],
        sketch_for: Callable[[str], LabelSketch],
        *,
        horizon_ms: int = 7 * DAY_MS,
        max_segment_values: int = 100,
        cache_size: int = 4_096,
        rewrite_every_ms: int = 600_000,
    ) -> None:
        self.specs = tuple(specs)
        self.sketch_for = sketch_for
        self.horizon_ms = horizon_ms
        self.max_segment_values = max_segment_values
        # (model, version, spec index, pane start) -> segment -> pane
        self._panes: dict[WindowId, dict[str, _Pane]] = {}
        self._forgotten_until = _NO_TIME
        self.cache_size = cache_size
        self._cache: OrderedDict[int, _Pane] = OrderedDict()  # id(pane) -> pane, LRU order
        self._dirty: set[WindowId] = set()
        # Windows written, and the clock when they were last written.
        self._written: dict[WindowId, int] = {}
        self.rewrite_every_ms = rewrite_every_ms
        self._clock = _NO_TIME
        self._segment_values: dict[str, set[str]] = defaultdict(set)

    # -- input -----------------------------------------------------------------------------

    def _segments(self, model: str, segment: Iterable[tuple[str, str]]) -> list[str]:
        out = [""]
        for name, value in segment:
            key = f"{model}\x00{name}"
            seen = self._segment_values[key]
            if value not in seen:
                if len(seen) >= self.max_segment_values:
                    value = OTHER_VALUE
                seen.add(value)
            out.append(f"{name}={value}")
        return out

    def _pane_keys(self, model: str, version: str, ts: int) -> list[WindowId]:
        return [
            (model, version, k, (ts // spec.pane_ms) * spec.pane_ms)
            for k, spec in enumerate(self.specs)
        ]

    def _pane(self, key: WindowId, segment: str) -> _Pane:
        segs = self._panes.get(key)
        if segs is None:
            segs = self._panes[key] = {}
        pane = segs.get(segment)
        if pane is None:
            pane = segs[segment] = _Pane()
        return pane

    def _touch(self, model: str, version: str, k: int, pane: int) -> None:
        spec = self.specs[k]
        for j in range(spec.panes_per_window):
            self._dirty.add((model, version, k, pane - j * spec.hop_ms))

    def add_predictions(self, records: Iterable[PredictionRecord]) -> None:
        """Count on-time predictions (with or without ``event_id``) in their panes."""
        touched: set[WindowId] = set()
        for r in records:
            self._clock = max(self._clock, r.ts_ms)
            segments = self._segments(r.model, r.segment)
            for key in self._pane_keys(r.model, r.model_version, r.ts_ms):
                for seg in segments:
                    self._pane(key, seg).counters[_PREDICTIONS] += 1
                touched.add(key)
        for key in touched:
            self._touch(*key)

    def add_dropped(self, dropped: Iterable[DroppedLabel]) -> None:
        """Count labels that joined nothing in the panes of their own time."""
        for d in dropped:
            for key in self._pane_keys(d.model, d.model_version, d.ts_ms):
                self._pane(key, "").counters[_REASON_SLOT[d.reason]] += 1
                self._touch(*key)

    def add_pairs(self, pairs: Sequence[JoinedPair]) -> None:
        """Fold joined pairs (in order) into the panes of their predictions' times."""
        grouped: dict[tuple[WindowId, str], list[JoinedPair]] = defaultdict(list)
        for p in pairs:
            r = p.prediction
            self._clock = max(self._clock, p.label_ts_ms)
            segments = self._segments(r.model, r.segment)
            for key in self._pane_keys(r.model, r.model_version, r.ts_ms):
                for seg in segments:
                    grouped[(key, seg)].append(p)
        for (key, seg), members in grouped.items():
            sketch = self.sketch_for(key[0])
            pane = self._pane(key, seg)
            state = self._load(sketch, pane)
            pane.blob = None  # the decoded state is the truth now
            sketch.update(
                state,
                [m.label for m in members],
                np.asarray([m.prediction.score for m in members], dtype=np.float64),
                [m.prediction.pred_class for m in members],
            )
            self._touch(*key)

    def _load(self, sketch: LabelSketch, pane: _Pane) -> LabelState:
        """The pane's decoded state, kept in the cache (least recently used panes packed)."""
        cache = self._cache
        if pane.state is not None:
            cache.move_to_end(id(pane))
            return pane.state
        if pane.blob is None:
            pane.state = sketch.empty()
        else:
            pane.state = LabelState.from_bytes(zlib.decompress(pane.blob))
        cache[id(pane)] = pane
        while len(cache) > self.cache_size:
            _, old = cache.popitem(last=False)
            old.blob, old.state = old.packed(), None
        return pane.state

    # -- output ----------------------------------------------------------------------------

    def flush(self, ready_until: int | None = None) -> list[LabelWindow]:
        """Windows changed since last written whose end is at or before ``ready_until`` (all
        when ``None``), in (start, spec, model, version) order; ``rewrite`` marks windows
        written before. Then drops panes beyond the horizon.

        A window already written is written again at most once per ``rewrite_every_ms`` of
        event time (labels trickle in for days; each rewrite merges every pane of the window),
        and always at the final flush (``ready_until=None``).
        """
        written, clock, every = self._written, self._clock, self.rewrite_every_ms
        ready = [
            w
            for w in self._dirty
            if ready_until is None
            or (
                w[3] + self.specs[w[2]].size_ms <= ready_until
                and (w not in written or clock - written[w] >= every)
            )
        ]
        ready.sort(key=lambda w: (w[3], w[2], w[0], w[1]))
        out = []
        for w in ready:
            model, version, k, start = w
            spec = self.specs[k]
            sketch = self.sketch_for(model)
            states: dict[str, LabelState] = {}
            counters: dict[str, np.ndarray] = {}
            # Panes in time order, segments sorted: a fixed merge order.
            for pane_start in range(start, start + spec.size_ms, spec.hop_ms):
                segs = self._panes.get((model, version, k, pane_start), {})
                for seg in sorted(segs):
                    pane = segs[seg]
                    acc = states.get(seg)
                    if acc is None:  # a fresh accumulator: the panes' states keep changing
                        acc = states[seg] = sketch.empty()
                    if pane.state is not None or pane.blob is not None:  # else no labels yet
                        sketch.merge_into(acc, self._load(sketch, pane))
                    counters[seg] = counters.get(seg, np.zeros(4, dtype=np.int64)) + pane.counters
            out.append(
                LabelWindow(
                    k,
                    start,
                    start + spec.size_ms,
                    model,
                    version,
                    states,
                    counters,
                    w in self._written,
                )
            )
            self._dirty.discard(w)
            self._written[w] = self._clock
        self._forget()
        return out

    def _forget(self) -> None:
        if self._clock == _NO_TIME:
            return
        limit = self._clock - self.horizon_ms
        if limit - self._forgotten_until < min(s.pane_ms for s in self.specs):
            return  # nothing can have aged out since the last sweep
        self._forgotten_until = limit
        for key in [key for key in self._panes if key[3] + self.specs[key[2]].size_ms < limit]:
            for pane in self._panes.pop(key).values():
                self._cache.pop(id(pane), None)
        self._written = {
            w: at for w, at in self._written.items() if w[3] + self.specs[w[2]].size_ms >= limit
        }

    def evaluate(self, window: LabelWindow) -> list[tuple[str, Result]]:
        """``(segment, result)`` of a window: label metrics per segment, the label counters
        (model level) and, per segment attribute with binary metrics, the fairness gaps (segment
        column = the attribute's name)."""
        sketch = self.sketch_for(window.model)
        out: list[tuple[str, Result]] = []
        confusion: dict[str, dict[str, np.ndarray]] = defaultdict(dict)
        for seg in sorted(set(window.states) | set(window.counters)):
            predictions = window.predictions(seg)
            state = window.states.get(seg)
            if state is not None:
                out += [(seg, r) for r in sketch.evaluate(state, predictions=predictions)]
                if seg and sketch.binary.count(state.binary):
                    name, value = seg.split("=", 1)
                    confusion[name][value] = state.binary.confusion
            elif predictions:
                out.append((seg, Result("", "labels_coverage", 0.0, None, 0, predictions)))
        c = window.counters.get("", np.zeros(4, dtype=np.int64))
        n = int(c[_PREDICTIONS])
        for slot, metric in (
            (_UNMATCHED, "labels_unmatched"),
            (_EXPIRED, "labels_expired"),
            (_DUPLICATE, "labels_duplicate"),
        ):
            if c[slot]:
                out.append(("", Result("", metric, float(c[slot]), None, 0, n)))
        for name in sorted(confusion):
            out += [(name, r) for r in fairness_results(confusion=confusion[name])]
        return out

    def rows(self, window: LabelWindow, *, run_id: str, computed_at: int) -> list[MetricRow]:
        """The ``metrics`` rows of a window (``n``: the predictions of the row's segment, or of
        the whole window for fairness gaps and label counters); same keys on every rewrite."""
        spec = self.specs[window.spec_index]
        return [
            MetricRow(
                window_start=window.start,
                window_end=window.end,
                window=spec.name,
                model=window.model,
                model_version=window.model_version,
                feature=r.feature,
                segment=seg,
                metric=r.metric,
                value=r.value,
                n=window.predictions(seg if seg in window.counters else ""),
                run_id=run_id,
                computed_at=computed_at,
            )
            for seg, r in self.evaluate(window)
        ]

    # -- snapshot --------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        wire = _WindowsWire(
            [
                (key[0], key[1], seg, key[2], key[3], p.packed(), [int(x) for x in p.counters])
                for key, segs in self._panes.items()
                for seg, p in segs.items()
            ],
            sorted(self._dirty),
            sorted(self._written.items()),
            self._clock,
            {k: sorted(v) for k, v in self._segment_values.items()},
        )
        return msgspec.msgpack.encode(wire)

    def restore(self, data: bytes) -> None:
        """Load a snapshot written by :meth:`to_bytes` (into a fresh instance)."""
        try:
            wire = msgspec.msgpack.decode(data, type=_WindowsWire)
        except msgspec.DecodeError as exc:
            raise SketchError(f"not serialised label windows: {exc}") from exc
        self._panes = {}
        self._cache.clear()
        for m, v, seg, k, p, blob, c in wire.panes:
            self._panes.setdefault((m, v, k, p), {})[seg] = _Pane(blob, np.asarray(c, np.int64))
        self._dirty = {tuple(w) for w in wire.dirty}  # type: ignore[misc]
        self._written = {tuple(w): at for w, at in wire.written}  # type: ignore[misc]
        self._clock = wire.clock
        self._segment_values = defaultdict(set, {k: set(v) for k, v in wire.segment_values.items()})


def sketch_for_model(
    profile: Profile | None,
    *,
    task: Literal["auto", "classification", "regression"] = "auto",
    threshold: float = 0.5,
    bins: int = 1_000,
) -> LabelSketch:
    """A model's :class:`LabelSketch` from its settings: ``task`` and ``threshold`` from
    ``ModelConfig``; with ``task: auto`` the profile's baseline task decides when it has one;
    the classes are the profile's prediction categories when its prediction is categorical."""
    classes: Sequence[str] = ()
    if profile is not None:
        if task == "auto" and profile.baselines.task is not None:
            task = profile.baselines.task
        if profile.prediction is not None and profile.prediction.kind == "categorical":
            classes = profile.prediction.categories
    return LabelSketch(task=task, threshold=threshold, classes=classes, bins=bins)
