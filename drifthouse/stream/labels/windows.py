"""Label windows: the label metrics of each window of the predictions' event time.

Label metrics belong to the window of the **prediction's** event time, so they are kept apart
from the prediction windows. :class:`LabelWindows` folds joined pairs
(:mod:`drifthouse.stream.labels.join`) into per-pane
:class:`~drifthouse.detectors.label_sketch.LabelState`s, per (model, model version, segment),
counts the predictions of each pane (for ``labels_coverage``) and the labels that joined
nothing, and hands out the windows that changed since they were last written
(:meth:`LabelWindows.flush`): a late label rewrites its window, under the same key, so the
store keeps the newest row (docs/model-performance.md).

Determinism: count-based metrics do not depend on the order of pairs, float sums (regression)
only to rounding; segment values are admitted in the order of the predictions.
"""

from __future__ import annotations

import math
import zlib
from collections import Counter, OrderedDict, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import msgspec
import numpy as np

from drifthouse.detectors.base import Context, Result
from drifthouse.detectors.fairness import fairness_results
from drifthouse.detectors.label_sketch import LabelBatch, LabelSketch, LabelState
from drifthouse.detectors.model_sketch import OTHER_VALUE
from drifthouse.errors import SketchError
from drifthouse.rows import MetricRow
from drifthouse.stream.labels.records import (
    DAY_MS,
    FINAL,
    DroppedLabel,
    JoinedPair,
    PredictionRecord,
    SpilledPane,
)
from drifthouse.stream.windows import NO_TIME, WindowSpec

__all__ = ["FINAL", "LabelWindow", "LabelWindows", "SpilledPane", "WindowId"]


WindowId = tuple[str, str, int, int]  # (model, model_version, spec index, window start)
_Place = tuple[WindowId, str]  # a pane and a segment ("" for the whole model)
# (model, model_version, segment, ts_ms // grain): what decides a prediction's places.
_Where = tuple[str, str, tuple[tuple[str, str], ...], int]
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
    max_segment_attributes
        Per model, the most segment attributes kept; later attributes are left out (the
        prediction windows write as many, see :mod:`drifthouse.detectors.model_sketch`).
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
        max_segment_attributes: int = 16,
        cache_size: int = 4_096,
        rewrite_every_ms: int = 600_000,
    ) -> None:
        self.specs = tuple(specs)
        self.sketch_for = sketch_for
        self.horizon_ms = horizon_ms
        self.max_segment_values = max_segment_values
        self.max_segment_attributes = max_segment_attributes
        # (model, version, spec index, pane start) -> segment -> pane
        self._panes: dict[WindowId, dict[str, _Pane]] = {}
        self._forgotten_until = NO_TIME
        self.cache_size = cache_size
        self._cache: OrderedDict[int, _Pane] = OrderedDict()  # id(pane) -> pane, LRU order
        self._dirty: set[WindowId] = set()
        # Windows written, and the clock when they were last written.
        self._written: dict[WindowId, int] = {}
        self.rewrite_every_ms = rewrite_every_ms
        self._clock = NO_TIME
        self._segment_values: dict[str, set[str]] = defaultdict(set)
        self._attributes: Counter[str] = Counter()  # model -> attributes admitted
        self._grain = math.gcd(*(spec.pane_ms for spec in self.specs)) if self.specs else 1
        #: Hand forgotten panes on to the late join (:meth:`take_spilled`).
        self.spill = False
        self._spilled: list[SpilledPane] = []
        self._diverted: list[JoinedPair] = []

    # -- input -----------------------------------------------------------------------------

    def _segments(self, model: str, segment: Iterable[tuple[str, str]]) -> list[str]:
        out = [""]
        for name, value in segment:
            key = f"{model}\x00{name}"
            if key not in self._segment_values:
                if self._attributes[model] >= self.max_segment_attributes:
                    continue  # the model has all the attributes it may keep
                self._attributes[model] += 1
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

    def _places(self, where: _Where) -> list[_Place]:
        """The panes and segments a prediction counts in, from its model, version, segment
        and grain of time (``ts_ms // grain``: every pane is a whole number of grains).
        Segment values are admitted here, so callers go through predictions in order."""
        model, version, segment, g = where
        segments = self._segments(model, segment)
        return [
            (key, seg)
            for key in self._pane_keys(model, version, g * self._grain)
            for seg in segments
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

    def add_predictions(self, records: Sequence[PredictionRecord]) -> None:
        """Count on-time predictions (with or without ``event_id``) in their panes."""
        # Count first, by model, version, segment and the finest pane grain (the gcd of the
        # panes: every pane is a whole number of grains), then add each count once. Keys come
        # in the order of their first record, so segment values are admitted (up to
        # ``max_segment_values``) in the same order as one record at a time.
        grain = self._grain
        counts: Counter[_Where] = Counter(
            (r.model, r.model_version, r.segment, r.ts_ms // grain) for r in records
        )
        if not counts:
            return
        touched: set[WindowId] = set()
        for where, n in counts.items():
            for key, seg in self._places(where):
                self._pane(key, seg).counters[_PREDICTIONS] += n
                touched.add(key)
        self._clock = max(self._clock, max(r.ts_ms for r in records))
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
        # The panes and segments of a prediction depend only on its model, version, segment
        # and grain of time: worked out once per distinct one (in order of first appearance,
        # which is the order segment values are admitted in), not once per pair.
        grain = self._grain
        places: dict[_Where, list[_Place]] = {}
        grouped: dict[_Place, list[JoinedPair]] = {}
        stale = self.spill and self._forgotten_until != NO_TIME
        for p in pairs:
            r = p.prediction
            where = (r.model, r.model_version, r.segment, r.ts_ms // grain)
            targets = places.get(where)
            if targets is None:
                targets = places[where] = self._places(where)
            if stale and any(self._forgotten(key) for key, _ in targets):
                self._diverted.append(p)  # its pane is stored: the late join takes it
                continue
            for target in targets:
                members = grouped.get(target)
                if members is None:
                    grouped[target] = [p]
                else:
                    members.append(p)
        if pairs:
            self._clock = max(self._clock, max(p.label_ts_ms for p in pairs))
        for (key, seg), members in grouped.items():
            sketch = self.sketch_for(key[0])
            pane = self._pane(key, seg)
            state = self._load(sketch, pane)
            pane.blob = None  # the decoded state is the truth now
            sketch.update(
                state,
                LabelBatch(
                    [m.label for m in members],
                    np.fromiter((m.prediction.score for m in members), np.float64, len(members)),
                    [m.prediction.pred_class for m in members],
                ),
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

    def waiting(self, ready_until: int) -> int:
        """Windows ending by ``ready_until`` whose label metrics changed since last written."""
        return sum(1 for w in self._dirty if w[3] + self.specs[w[2]].size_ms <= ready_until)

    def flush(self, ready_until: int | None = None, *, force: bool = False) -> list[LabelWindow]:
        """Windows changed since last written whose end is at or before ``ready_until`` (all
        when ``None``), in (start, spec, model, version) order; ``rewrite`` marks windows
        written before. Then drops panes beyond the horizon.

        A window already written is written again at most once per ``rewrite_every_ms`` of
        event time (labels trickle in for days; each rewrite merges every pane of the window),
        and always at the final flush (``ready_until=None``) or when ``force`` is set (a merger
        whose inputs have gone quiet: the label clock may not move again for a while).
        """
        written, clock, every = self._written, self._clock, self.rewrite_every_ms
        ready = [
            w
            for w in self._dirty
            if ready_until is None
            or (
                w[3] + self.specs[w[2]].size_ms <= ready_until
                and (force or w not in written or clock - written[w] >= every)
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
        if self._clock == NO_TIME:
            return
        limit = self._clock - self.horizon_ms
        if limit - self._forgotten_until < min(s.pane_ms for s in self.specs):
            return  # nothing can have aged out since the last sweep
        self._forgotten_until = limit
        for key in [key for key in self._panes if key[3] + self.specs[key[2]].size_ms < limit]:
            segs = self._panes.pop(key)
            if self.spill:
                self._spill(key, segs, limit)
            for pane in segs.values():
                self._cache.pop(id(pane), None)
        self._written = {
            w: at for w, at in self._written.items() if w[3] + self.specs[w[2]].size_ms >= limit
        }

    # -- late join -------------------------------------------------------------------------

    def _spill(self, key: WindowId, segs: dict[str, _Pane], final_until: int) -> None:
        for seg in sorted(segs):
            pane = segs[seg]
            counters = [int(x) for x in pane.counters]
            self._spilled.append(SpilledPane(key, seg, pane.packed(), counters, final_until))

    def spill_all(self) -> None:
        """Hand every pane on (the end of a bounded input: nothing held survives it)."""
        if self.spill:
            for key in sorted(self._panes):
                self._spill(key, self._panes[key], FINAL)

    def _forgotten(self, key: WindowId) -> bool:
        return key[3] + self.specs[key[2]].size_ms < self._forgotten_until

    def take_spilled(self) -> tuple[list[SpilledPane], list[JoinedPair]]:
        """Panes handed on since the last call, and pairs whose pane was (the windows forget
        by every model's clock, the join by each model's own)."""
        out, self._spilled, self._diverted = (self._spilled, self._diverted), [], []
        return out

    def load_panes(self, panes: Iterable[SpilledPane]) -> None:
        """Take panes back (the late join, into a fresh instance): their states and counters,
        and their segment values as admitted, so a late pair lands where the stream's did."""
        for p in panes:
            self._panes.setdefault(p.key, {})[p.segment] = _Pane(
                p.blob, np.asarray(p.counters, np.int64)
            )
            if p.segment and "=" in p.segment:
                name, value = p.segment.split("=", 1)
                key = f"{p.key[0]}\x00{name}"
                if key not in self._segment_values:
                    self._attributes[p.key[0]] += 1
                self._segment_values[key].add(value)

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
                out += [(seg, r) for r in sketch.evaluate(state, Context(predictions=predictions))]
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
        """The ``metrics`` rows of a window (``n``: the count the value rests on: the labelled
        predictions for label metrics, the predictions for ``labels_coverage`` and the label
        counters); same keys on every rewrite."""
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
                n=r.n_cur,
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
        self._attributes = Counter(k.split("\x00", 1)[0] for k in self._segment_values)
