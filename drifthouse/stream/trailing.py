"""Trailing baselines: a window compared with the merge of the model's earlier windows.

A model configured with ``reference: {trailing: 7d}`` (docs/configuration.md "Trailing
baselines") keeps the bins of its profile file or automatic reference, but each window is
compared with the merge of the model's **base windows** (the first window kept in the stream,
a tumbling one) lying wholly in ``[window_start - 7d, window_start)``, every version of the
model included, instead of the profile (docs/statistics.md "Trailing baselines"):

- the merge stage stores each closed base window's whole state (table ``window_states``, as for
  derived windows, :mod:`drifthouse.stream.derived`) and notes it here;
- a window's baseline is the merge of those states in ascending ``(start, model_version)``, its
  drift parts only (numeric, categorical, prediction, importance); read back from the store for
  starts this process has not noted (after a restart, a move to another merger), so a replay, a
  restarted or a scaled-out run merge the same states in the same order and write the same
  digits;
- a baseline with fewer events than ``min_events`` (the first windows: none) gives the window
  no drift rows (quality and serving rows as usual).

A base window rewritten late (a partition that was idle) changes the baseline of the windows
after it: the merge stage writes again those of its windows still open to a rewrite whose span
holds it (:meth:`TrailingBaselines.dependents`), and derived windows owed are built again.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from drifthouse.config import TrailingReference
from drifthouse.detectors.model_sketch import EVENTS, ModelSketch, ModelState
from drifthouse.errors import StoreError
from drifthouse.logs import get_logger
from drifthouse.profiles.sketches import Sketches
from drifthouse.sinks.window_states import WindowStates
from drifthouse.stream.stage import Key
from drifthouse.stream.windows import WindowSpec

__all__ = ["Baseline", "TrailingBaselines"]

log = get_logger("merge")

_NONE = -(2**63)


@dataclass(frozen=True)
class Baseline:
    """A window's trailing baseline: the merged state (``None``: fewer than ``min_events``
    events, so no comparison) and how many events it holds."""

    state: ModelState | None
    events: int


@dataclass
class _Cache:
    """One model's base states known here, by ``(start, version)``; every stored state
    starting in ``[lo, hi)`` is among them."""

    states: dict[tuple[int, str], ModelState] = field(default_factory=dict)
    lo: int = 0
    hi: int = 0
    #: Baselines computed since the states last changed, by window start.
    memo: dict[int, Baseline] = field(default_factory=dict)


@dataclass
class TrailingBaselines:
    """The trailing baselines of a merge stage's models (see the module docstring)."""

    specs: Sequence[WindowSpec]
    sketches: Sketches
    #: Where stored base states are read back (``None``: only what this process noted).
    states: WindowStates | None
    #: Makes the states written so far readable (writes those held, flushes the sink).
    flush: Callable[[], None]
    run_id: str
    _cache: dict[str, _Cache] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.base = next(k for k, s in enumerate(self.specs) if not s.derived)
        self._size = self.specs[self.base].size_ms
        self._longest = max(s.size_ms for s in self.specs)

    def settings(self, model: str) -> TrailingReference | None:
        """The model's trailing baseline, if it has one."""
        settings = self.sketches.models.get(model)
        return settings.trailing if settings is not None else None

    def stores(self, k: int, model: str) -> bool:
        """Whether a window of spec ``k`` of ``model`` is stored as a part of baselines."""
        return k == self.base and self.settings(model) is not None

    def note(self, k: int, start: int, key: Key, state: ModelState) -> None:
        """A base window of a model on a trailing baseline, just merged (or merged again)."""
        if not self.stores(k, key[0]):
            return
        cache = self._cache.get(key[0])
        if cache is None:  # what is stored before it is read back when needed
            cache = self._cache[key[0]] = _Cache(lo=start, hi=start)
        cache.states[(start, key[1])] = _drift_parts(state)
        cache.memo.clear()
        if start == cache.hi:  # contiguous: nothing stored in between by anyone else
            cache.hi = start + self._size

    def dependents(
        self, start: int, model: str, windows: Iterable[tuple[int, int, Key]]
    ) -> list[tuple[int, int, Key]]:
        """Of ``windows`` (``(spec, start, key)``), those of ``model`` whose span holds the base
        window starting at ``start``."""
        settings = self.settings(model)
        if settings is None:
            return []
        span = settings.trailing
        end = start + self._size
        return [w for w in windows if w[2][0] == model and end <= w[1] <= start + span]

    def read(self, model: str, start: int) -> tuple[bool, Baseline | None]:
        """``(True, baseline)``, or ``(False, None)`` when the store it is read from is away
        (logged ``merge.trailing_waiting``)."""
        try:
            return True, self.baseline(model, start)
        except StoreError as exc:
            log.warning("merge.trailing_waiting", model=model, start=start, reason=str(exc))
            return False, None

    def baseline(self, model: str, start: int) -> Baseline | None:
        """The baseline of ``model``'s window starting at ``start`` (``None``: the model is
        compared with its profile)."""
        settings = self.settings(model)
        if settings is None:
            return None
        lo = start - settings.trailing
        sketch = self.sketches(model)
        parts = self._parts(model, lo, start)
        memo = self._cache[model].memo
        if start in memo:  # windows of several lengths or versions starting together
            return memo[start]
        state: ModelState | None = None
        events = 0
        for (begin, _), part in sorted(parts.items()):
            if begin + self._size > start:
                continue  # not wholly before the window (one off the base grid)
            if not _same_layout(sketch, part):
                log.warning("merge.trailing_layout_changed", model=model, start=start)
                continue
            events += int(part.counters[EVENTS])
            state = part if state is None else _merge_drift(sketch, state, part)
        memo[start] = Baseline(
            None if state is None or events < settings.min_events else state, events
        )
        return memo[start]

    def _parts(self, model: str, lo: int, hi: int) -> dict[tuple[int, str], ModelState]:
        """The base states of ``model`` starting in ``[lo, hi)``: known here, else read back."""
        cache = self._cache.get(model)
        if cache is None:
            cache = self._cache[model] = _Cache(lo=lo, hi=lo)
        if lo < cache.lo:
            self._load(model, cache, lo, cache.lo)
            cache.lo = lo
        if cache.hi < hi:
            self._load(model, cache, cache.hi, hi)
            cache.hi = hi
        # Keep what windows still to come may need: the longest window's span back.
        floor = hi - (self.settings(model) or _NO_SPAN).trailing - self._longest
        if floor > cache.lo:
            cache.states = {k: v for k, v in cache.states.items() if k[0] >= floor}
            cache.lo = floor
        return {k: v for k, v in cache.states.items() if lo <= k[0] < hi}

    def _load(self, model: str, cache: _Cache, lo: int, hi: int) -> None:
        if self.states is None or lo >= hi:
            return
        self.flush()
        try:
            stored = self.states.load(
                models=[model], window=self.specs[self.base].name, run_id=self.run_id,
                lo_ms=lo, hi_ms=hi,
            )  # fmt: skip
        except StoreError:
            self._cache.pop(model, None)  # nothing is known complete any more
            raise
        for s in stored:  # a state noted here is the newest: it wins
            if (s.start, s.model_version) not in cache.states:
                cache.states[(s.start, s.model_version)] = _drift_parts(
                    ModelState.from_bytes(s.state)
                )
        cache.memo.clear()


_NO_SPAN = TrailingReference.model_construct(trailing=0)


def _same_layout(sketch: ModelSketch, state: ModelState) -> bool:
    """Whether a stored state has the bins of the sketch (a profile replaced since: not)."""
    ok = (
        state.numeric.layout == sketch.numeric.layout
        and state.categorical.layout == sketch.categorical.layout
    )
    if sketch.prediction is not None:
        ok = (
            ok
            and state.prediction is not None
            and state.prediction.layout == sketch.prediction.layout
        )
    return ok


def _drift_parts(state: ModelState) -> ModelState:
    """What a baseline is made of (the rest is left behind: it is kept a whole span)."""
    return dataclasses.replace(state, segments={}, raw=None, cbpe=None)


def _merge_drift(sketch: ModelSketch, a: ModelState, b: ModelState) -> ModelState:
    """``a`` and ``b`` merged in the parts windows are compared with (the rest is ``a``'s)."""
    importance = None
    if sketch.importance is not None and a.importance is not None and b.importance is not None:
        importance = sketch.importance.merge(a.importance, b.importance)
    return dataclasses.replace(
        a,
        numeric=sketch.numeric.merge(a.numeric, b.numeric),
        categorical=sketch.categorical.merge(a.categorical, b.categorical),
        prediction=sketch.segment.merge_prediction(a.prediction, b.prediction),
        importance=importance,
        counters=a.counters + b.counters,
        segments={},
    )
