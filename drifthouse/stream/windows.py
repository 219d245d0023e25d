"""Event-time windows built from panes (docs/architecture.md).

A tumbling window of size ``S`` is one pane of length ``S``; a sliding window of size ``S`` and
hop ``H`` is the merge of its ``S / H`` panes of length ``H``. Panes are aligned to the Unix
epoch in UTC, so every worker and every replay cuts the same windows (a ``7d`` window starts on
a Thursday, 1970-01-01 being one).

Lateness follows the watermark: ``watermark = max event time seen - allowed_lateness``. A pane
``[a, b)`` closes when the watermark reaches ``b``; an event whose pane is already closed is
*late* for that window spec. Every decision depends only on the events and their order within
one source partition, never on wall-clock time or on how the input was cut into micro-batches:
the watermark before event ``i`` is a running maximum over the events before it.

Example
-------
>>> import numpy as np
>>> spec = WindowSpec.tumbling(60_000)
>>> w = EventTimeWindows([spec], allowed_lateness_ms=0, empty=lambda key: 0,
...                      merge=lambda key, a, b: a + b)
>>> ts = np.array([1_000, 2_000, 61_000, 3_000], dtype=np.int64)
>>> (routed,) = w.route(ts)
>>> routed.late.tolist()          # the last event's minute closed at 61_000
[False, False, False, True]
>>> for pane, idx in routed.groups():
...     w.update(0, pane, "m", lambda s, n=len(idx): s + n)
>>> [(c.start, c.end, c.state) for c in w.close()]
[(0, 60000, 2)]
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Final, Generic, TypeVar

import numpy as np
import numpy.typing as npt

from drifthouse.config import WindowConfig, format_duration
from drifthouse.errors import SketchError

__all__ = [
    "NO_TIME",
    "ClosedWindow",
    "EventTimeWindows",
    "Origin",
    "Routed",
    "WindowSpec",
    "WindowsCheckpoint",
]

S = TypeVar("S")
K = TypeVar("K", bound=Hashable)

#: No event time yet: the smallest int64, below every time (clocks, watermarks, ``max_ts``).
NO_TIME: Final = -(2**63)

# Where a pane's data begins in its source partition: (first offset, largest event time seen
# before that offset, the watermark then, and each clock then). A restarted worker that
# re-reads from the smallest origin of the panes it held, with that state restored, rebuilds
# exactly the same panes.
Clocks = tuple[tuple[str, int], ...]
Origin = tuple[int, int, int, Clocks]
_BIG = np.iinfo(np.int64).max


def _earlier(a: Origin | None, b: Origin | None) -> Origin | None:
    if a is None:
        return b
    if b is None:
        return a
    return a if a[0] <= b[0] else b


@dataclass(frozen=True)
class WindowSpec:
    """One configured window: ``size_ms`` long, a new one every ``hop_ms`` (``== size_ms`` when tumbling).

    ``base_ms`` (the window's ``from``): the window is *derived*, built by the merger from the
    stored states of the tumbling windows of that size (:mod:`drifthouse.stream.derived`); it
    holds no pane here, so no stream state outlives its base window.
    """

    size_ms: int
    hop_ms: int
    base_ms: int = 0

    def __post_init__(self) -> None:
        if self.size_ms <= 0 or self.hop_ms <= 0 or self.size_ms % self.hop_ms:
            raise SketchError(
                f"window size must be a positive whole number of hops (got size {self.size_ms} ms, hop {self.hop_ms} ms)"
            )
        if self.base_ms and (self.base_ms >= self.size_ms or self.hop_ms % self.base_ms):
            raise SketchError(
                f"a derived window's size (> 1) and hop are whole numbers of its base windows "
                f"(got size {self.size_ms} ms, hop {self.hop_ms} ms, from {self.base_ms} ms)"
            )

    @classmethod
    def tumbling(cls, size_ms: int) -> WindowSpec:
        return cls(size_ms, size_ms)

    @classmethod
    def from_config(cls, cfg: WindowConfig) -> WindowSpec:
        return cls(cfg.size, cfg.hop if cfg.hop is not None else cfg.size, cfg.base or 0)

    @property
    def derived(self) -> bool:
        """Built from stored base windows by the merger, never from panes."""
        return self.base_ms != 0

    @property
    def name(self) -> str:
        """The ``window`` column: ``'1h'`` or ``'15m/1m'``."""
        if self.hop_ms == self.size_ms:
            return format_duration(self.size_ms)
        return f"{format_duration(self.size_ms)}/{format_duration(self.hop_ms)}"

    @property
    def pane_ms(self) -> int:
        return self.hop_ms

    @property
    def panes_per_window(self) -> int:
        return self.size_ms // self.hop_ms

    def pane_start(self, ts_ms: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """Start of the pane holding each time (floor division aligns to the epoch, also before 1970)."""
        return (ts_ms // self.pane_ms) * self.pane_ms


@dataclass(frozen=True)
class ClosedWindow(Generic[K, S]):
    """A window whose end the watermark has passed, with the merge of its panes for one key."""

    spec: WindowSpec
    start: int
    end: int
    key: K
    state: S
    origin: Origin | None = None


@dataclass(frozen=True)
class WindowsCheckpoint:
    """What a restart needs besides re-reading the input: see :meth:`EventTimeWindows.checkpoint`."""

    origin: Origin | None
    emitted_until: tuple[int, ...]


@dataclass
class Routed:
    """Where a micro-batch's events go under one window spec.

    ``pane[i]`` is the start of event ``i``'s pane and ``late[i]`` tells whether that pane had
    already closed when the event arrived.
    """

    pane: npt.NDArray[np.int64]
    late: npt.NDArray[np.bool_]

    def groups(
        self, mask: npt.NDArray[np.bool_] | None = None
    ) -> Iterator[tuple[int, npt.NDArray[np.intp]]]:
        """``(pane_start, event indices)`` for the on-time events, panes ascending, indices in arrival order."""
        keep = ~self.late if mask is None else (~self.late & mask)
        idx = np.flatnonzero(keep)
        if idx.size == 0:
            return
        panes = self.pane[idx]
        first = panes[0]
        if np.all(panes == first):  # the common case: a whole batch in one pane
            yield int(first), idx
            return
        order = np.argsort(panes, kind="stable")  # stable keeps arrival order inside a pane
        sorted_panes = panes[order]
        cuts = np.flatnonzero(np.diff(sorted_panes)) + 1
        for chunk in np.split(order, cuts):
            yield int(panes[chunk[0]]), idx[chunk]


@dataclass
class EventTimeWindows(Generic[K, S]):
    """Pane states of one source partition for several window specs, with an event-time watermark.

    The manager is generic over the sketch state ``S`` (it only needs ``empty`` and an
    associative ``merge``, both told the key) and over the key ``K`` (e.g.
    ``(model, model_version)``); all keys share the partition's watermark. Callers
    route a batch of event times, update the pane states of the on-time events with their own
    sketches, and then collect the windows that closed.

    Parameters
    ----------
    specs:
        The window specs; results carry ``spec.name`` in the ``window`` column.
    allowed_lateness_ms:
        How far behind the largest event time seen an event may be and still count.
    empty, merge:
        The sketch protocol's identity and merge; panes are merged oldest first. ``merge`` must
        not modify its arguments: a pane takes part in several sliding windows.
    """

    specs: Sequence[WindowSpec]
    allowed_lateness_ms: int
    empty: Callable[[K], S]
    merge: Callable[[K, S, S], S]
    max_ts: int = NO_TIME
    clock_spread_ms: int = 0
    #: Per clock (a model): the largest event time seen of it (with ``clock_spread_ms``).
    clocks: dict[str, int] = field(default_factory=dict)
    _frontier: int = NO_TIME
    # The last routed batch, for origins: max before, watermark before, clock names and the
    # clocks before each event.
    _batch: tuple[np.ndarray, np.ndarray, list[str], np.ndarray | None] | None = field(
        default=None, repr=False
    )
    _panes: list[dict[int, dict[K, S]]] = field(default_factory=list, repr=False)
    _emitted_until: list[int] = field(default_factory=list, repr=False)
    _origins: list[dict[int, Origin]] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        if self.allowed_lateness_ms < 0:
            raise SketchError(f"allowed lateness must be >= 0 ms (got {self.allowed_lateness_ms})")
        self._panes = [{} for _ in self.specs]
        self._origins = [{} for _ in self.specs]
        # Per spec: windows ending at or before this time have been emitted (or were empty).
        self._emitted_until = [NO_TIME for _ in self.specs]

    @property
    def watermark(self) -> int:
        """Where panes close (int64 minimum before any event); it only moves forward.

        With one clock (``clock_spread_ms == 0``): the largest event time seen minus the allowed
        lateness. With a clock per model: the smallest clock among those within
        ``clock_spread_ms`` of the largest time seen, minus the allowed lateness, so one
        model's events stamped ahead do not make the others' late; a model whose clock falls
        further behind (it went quiet) no longer holds the watermark back.
        """
        return self._frontier

    def route(
        self, ts_ms: npt.NDArray[np.int64], clocks: Sequence[str] | None = None
    ) -> list[Routed]:
        """Assign a batch of event times (in arrival order) to panes and advance the watermark;
        ``clocks`` names each event's clock (its model) when there is a clock per model.

        Event ``i`` is judged against the watermark made by the events before it, so the result
        does not depend on where batches are cut.
        """
        ts = np.asarray(ts_ms, dtype=np.int64)
        n = ts.size
        if n == 0:
            self._batch = None
            return [Routed(np.empty(0, np.int64), np.empty(0, np.bool_)) for _ in self.specs]
        running = np.maximum.accumulate(ts)
        before = np.empty_like(running)
        before[0] = self.max_ts
        before[1:] = np.maximum(running[:-1], self.max_ts)
        seen = np.maximum(running, self.max_ts)  # the largest time after each event
        names: list[str] = []
        clocks_before: np.ndarray | None = None
        if self.clock_spread_ms and clocks is not None:
            names = sorted(set(self.clocks).union(clocks))
            index = {c: j for j, c in enumerate(names)}
            ids = np.fromiter((index[c] for c in clocks), np.intp, n)
            start = np.array([self.clocks.get(c, NO_TIME) for c in names], np.int64)
            own = np.full((len(names), n), NO_TIME, np.int64)
            own[ids, np.arange(n)] = ts
            own[:, 0] = np.maximum(own[:, 0], start)
            after = np.maximum.accumulate(own, axis=1)  # each clock after each event
            active = (after != NO_TIME) & (after >= seen - self.clock_spread_ms)
            made = np.where(active, after, _BIG).min(axis=0) - self.allowed_lateness_ms
            clocks_before = np.concatenate([start[:, None], after[:, :-1]], axis=1)
            # A clock that fell behind the spread never holds the watermark again (a newer
            # event of its model resets it past the old value), so it is forgotten: what a
            # checkpoint carries stays bounded by the models active on the partition.
            keep = after[:, -1] >= seen[-1] - self.clock_spread_ms
            self.clocks = {c: int(after[j, -1]) for j, c in enumerate(names) if keep[j]}
        else:
            made = seen - self.allowed_lateness_ms
        mark_after = np.maximum.accumulate(np.maximum(made, self._frontier))
        mark_before = np.empty_like(mark_after)
        mark_before[0] = self._frontier
        mark_before[1:] = mark_after[:-1]
        out = []
        for spec in self.specs:
            if spec.derived:  # no pane: one run, never late, and update() keeps nothing
                out.append(Routed(np.zeros(n, np.int64), np.zeros(n, np.bool_)))
                continue
            pane = spec.pane_start(ts)
            late = (before != NO_TIME) & (pane + spec.pane_ms <= mark_before)
            out.append(Routed(pane, late))
        self.max_ts = int(seen[-1])
        self._frontier = int(mark_after[-1])
        self._batch = (before, mark_before, names, clocks_before)
        return out

    def origin(self, offset: int, i: int | None = None) -> Origin:
        """The origin of data at ``offset``: the state before event ``i`` of the last routed
        batch (after the batch when ``i`` is ``None`` or past its end)."""
        batch = self._batch
        if batch is None or i is None or i >= len(batch[0]):
            clocks = tuple(sorted(self.clocks.items())) if self.clock_spread_ms else ()
            return (offset, self.max_ts, self._frontier, clocks)
        before, mark, names, clocks_before = batch
        held: Clocks = ()
        if clocks_before is not None:
            floor = int(before[i]) - self.clock_spread_ms
            held = tuple(
                (c, int(clocks_before[j, i]))
                for j, c in enumerate(names)
                if clocks_before[j, i] != NO_TIME and clocks_before[j, i] >= floor
            )
        return (offset, int(before[i]), int(mark[i]), held)

    def update(
        self,
        spec_index: int,
        pane_start: int,
        key: K,
        fn: Callable[[S], S],
        origin: Origin | None = None,
    ) -> None:
        """Replace the state of ``(spec, pane, key)`` by ``fn(state)`` (``empty(key)`` when new).

        ``origin`` is where the data comes from (its first offset, and the largest event time
        seen before it); the pane remembers the earliest. A derived spec keeps nothing.
        """
        if self.specs[spec_index].derived:
            return
        by_key = self._panes[spec_index].setdefault(pane_start, {})
        state = by_key.get(key)
        by_key[key] = fn(self.empty(key) if state is None else state)
        if origin is not None:
            origins = self._origins[spec_index]
            origins[pane_start] = _earlier(origins.get(pane_start), origin)  # type: ignore[assignment]

    def checkpoint(self) -> WindowsCheckpoint:
        """The earliest origin of any pane still held, and per spec the end up to which
        windows were emitted. Re-reading from ``origin`` after :meth:`restore` rebuilds every
        held pane exactly and emits no window twice."""
        origin: Origin | None = None
        for origins in self._origins:
            for o in origins.values():
                origin = _earlier(origin, o)
        return WindowsCheckpoint(origin, tuple(self._emitted_until))

    def restore(
        self,
        *,
        max_ts: int,
        emitted_until: Sequence[int],
        watermark: int | None = None,
        clocks: Clocks = (),
    ) -> None:
        """Start again from a checkpoint: the largest event time seen before its origin, the
        watermark and clocks then (the watermark defaults to the one ``max_ts`` makes), and
        the emitted frontier per spec (windows ending at or before it are not emitted again)."""
        if self.max_ts != NO_TIME or any(self._panes):
            raise SketchError("restore() needs fresh windows")
        if len(emitted_until) != len(self.specs):
            raise SketchError(
                f"checkpoint has {len(emitted_until)} window specs, this run has {len(self.specs)}"
            )
        self.max_ts = max_ts
        if watermark is None:
            watermark = NO_TIME if max_ts == NO_TIME else max_ts - self.allowed_lateness_ms
        self._frontier = watermark
        self.clocks = dict(clocks)
        self._emitted_until = list(emitted_until)

    def open_windows(self) -> int:
        """Number of panes held, over all specs and keys (a health figure)."""
        return sum(len(keys) for panes in self._panes for keys in panes.values())

    def close(self, *, final: bool = False) -> list[ClosedWindow[K, S]]:
        """Emit every window whose end the watermark has reached (all of them when ``final``).

        Windows come oldest first per spec; each window's state is the merge of its panes,
        oldest pane first, so the result is the same however the panes were filled.
        """
        out: list[ClosedWindow[K, S]] = []
        wm = self.watermark
        for i, spec in enumerate(self.specs):
            panes = self._panes[i]
            if not panes:
                continue
            pane_ms, size = spec.pane_ms, spec.size_ms
            last_pane = max(panes)
            # Window ends are multiples of the hop; a window covers panes [end - size, end).
            limit = last_pane + size if final else min(wm, last_pane + size)
            limit = (limit // pane_ms) * pane_ms
            done = self._emitted_until[i]
            # Only windows that hold at least one pane: gaps in the data cost nothing.
            ends = sorted(
                {p + k * pane_ms for p in panes for k in range(1, spec.panes_per_window + 1)}
            )
            for end in ends:
                if end <= done or end > limit:
                    continue
                start = end - size
                merged: dict[K, S] = {}
                origin: Origin | None = None
                for p in range(start, end, pane_ms):
                    for key, state in panes.get(p, {}).items():
                        prev = merged.get(key)
                        merged[key] = state if prev is None else self.merge(key, prev, state)
                    origin = _earlier(origin, self._origins[i].get(p))
                for key, state in merged.items():
                    out.append(ClosedWindow(spec, start, end, key, state, origin))
            start_end = done + pane_ms if done != NO_TIME else min(panes) + pane_ms
            if limit >= start_end:
                self._emitted_until[i] = max(self._emitted_until[i], limit)
            # A pane is needed until the last window holding it (ending at pane + size) is out.
            for p in [p for p in panes if p + size <= self._emitted_until[i]]:
                del panes[p]
                self._origins[i].pop(p, None)
        return out
