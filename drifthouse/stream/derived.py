"""Long windows built from stored base windows (``windows: [{size: 1d, from: 1h}]``).

A derived window (:attr:`~drifthouse.stream.windows.WindowSpec.derived`) holds no pane in a
source stage nor partials in the merge stage, so no stream state lives longer than its base
window, and a restarted or moved partition re-reads at most one base window. Instead:

1. when a base window of a model closes, the merge stage writes its whole merged state to the
   store (table ``window_states``, :mod:`drifthouse.sinks.window_states`) and
   :class:`DerivedWindows` notes that the derived window holding it owes that start;
2. once the watermark passes a derived window's end, the merge stage reads the stored states of
   its span back, merges them in ascending start and evaluates the result as any window: the
   same metrics, sketch rows, change detectors and rules.

What each derived window owes (its key and the base starts written) is small and travels in the
merger's snapshot. A stored state that is missing when the window is due (a store that lost
rows) holds the window back, logged as ``merge.derived_window_incomplete``, and counted
(:attr:`DerivedWindows.incomplete`, the health endpoint's ``incomplete_windows``); at the end
of a bounded run it is an error: a derived window is never written partial.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import msgspec

from drifthouse.config import TrailingReference
from drifthouse.detectors.change import ChangeDetectors
from drifthouse.detectors.model_sketch import EVENTS, ModelState
from drifthouse.errors import SketchError, StoreError
from drifthouse.logs import get_logger
from drifthouse.profiles.sketches import Sketches
from drifthouse.rows import Row, WindowStateRow
from drifthouse.sinks.base import Sink
from drifthouse.sinks.window_states import StoredState, WindowStates, encode_state
from drifthouse.stream.compare import compare_windows
from drifthouse.stream.results import WindowResult, evaluate_window
from drifthouse.stream.stage import Key
from drifthouse.stream.trailing import Baseline
from drifthouse.stream.windows import NO_TIME, WindowSpec

if TYPE_CHECKING:
    from drifthouse.stream.labels.stage import LabelStage

__all__ = ["DerivedWindows", "Owed", "window_state_row"]

log = get_logger("merge")

DerivedKey = tuple[int, int, Key]  # (derived spec index, start, (model, version))


@dataclass
class Owed:
    """A derived window that has base windows written: their starts, and whether one was
    written (or rewritten) since the derived window was last written."""

    bases: set[int] = field(default_factory=set)
    dirty: bool = True
    written: bool = False
    reported: bool = False
    #: Held back: tried again once the watermark reaches this (a base window later).
    retry_at: int = NO_TIME


class _OwedRow(msgspec.Struct, array_like=True):
    spec_index: int
    start: int
    model: str
    model_version: str
    bases: list[int]
    dirty: bool
    written: bool


_ENCODE = msgspec.msgpack.Encoder().encode
_DECODE = msgspec.msgpack.Decoder(list[_OwedRow]).decode


_NEVER = 2**63 - 1

#: Stored states one read of the store fetches at most, counted as whole windows' worth: 50
#: models' days of hourly states, or 7 models' weeks (always at least one model).
LOAD_STATES = 1_200


def _batches(due: Sequence[DerivedKey], specs: Sequence[WindowSpec]) -> list[list[DerivedKey]]:
    """``due`` (in order) cut into runs sharing spec and start, each of as many models as
    LOAD_STATES base states allow."""
    out: list[list[DerivedKey]] = []
    models: set[str] = set()
    for dk in due:
        spec = specs[dk[0]]
        room = max(1, LOAD_STATES // (spec.size_ms // spec.base_ms))
        if out and out[-1][0][:2] == dk[:2] and len(models | {dk[2][0]}) <= room:
            out[-1].append(dk)
        else:
            out.append([dk])
            models = set()
        models.add(dk[2][0])
    return out


def window_state_row(
    spec: WindowSpec, start: int, key: Key, state: ModelState, *, run_id: str, computed_at: int
) -> WindowStateRow:
    """The ``window_states`` row of a window just written: its whole state."""
    return WindowStateRow(
        window_start=start,
        window_end=start + spec.size_ms,
        window=spec.name,
        model=key[0],
        model_version=key[1],
        state=encode_state(state.to_bytes()),
        n=int(state.counters[EVENTS]),
        run_id=run_id,
        computed_at=computed_at,
    )


def _utc(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M")


@dataclass
class DerivedWindows:
    """Which derived windows are owed, and their base states' rows (see the module docstring)."""

    specs: Sequence[WindowSpec]
    #: Where the base states are read back (``None``: a sink that keeps nothing readable).
    states: WindowStates | None = None
    #: Times a due derived window was held back for a missing stored base state.
    incomplete: int = 0
    _owed: dict[DerivedKey, Owed] = field(default_factory=dict)
    # Held-back windows of a final emit: an error once the rest is written.
    _failures: list[str] = field(default_factory=list)
    # No owed window is due before this watermark (NO_TIME: not known, look): most batches
    # then cost no look at what is owed.
    _earliest: int = NO_TIME

    def __post_init__(self) -> None:
        # Per base spec index: the derived spec indices built from it.
        self.built_from: dict[int, list[int]] = {}
        for d, spec in enumerate(self.specs):
            if not spec.derived:
                continue
            base = next(
                (
                    k
                    for k, s in enumerate(self.specs)
                    if not s.derived and s.hop_ms == s.size_ms == spec.base_ms
                ),
                None,
            )
            if base is None:
                raise SketchError(
                    f"window {spec.name} is built from {spec.base_ms} ms windows, "
                    "and no tumbling window of that size is configured"
                )
            self.built_from.setdefault(base, []).append(d)

    def __bool__(self) -> bool:
        return bool(self.built_from)

    def state_row(
        self,
        k: int,
        start: int,
        key: Key,
        state: ModelState,
        *,
        run_id: str,
        computed_at: int,
        keep: bool = False,
    ) -> WindowStateRow | None:
        """The ``window_states`` row of a base window just written (``None`` for a window no
        derived window is built from, unless ``keep``); the derived windows holding it now owe
        its start."""
        derived = self.built_from.get(k, [])
        if not derived and not keep:
            return None
        for d in derived:
            size, hop = self.specs[d].size_ms, self.specs[d].hop_ms
            last = (start // hop) * hop  # the last window holding the base window starts here
            for first in range(last - size + hop, last + hop, hop):
                owed = self._owed.setdefault((d, first, key), Owed())
                owed.bases.add(start)
                owed.dirty = True
                self._earliest = min(self._earliest, first + size)
        return window_state_row(
            self.specs[k], start, key, state, run_id=run_id, computed_at=computed_at
        )

    def touch(self, model: str, start: int, trailing: TrailingReference | None) -> None:
        """A base window of ``model`` starting at ``start`` was rewritten: the derived windows
        owed whose trailing span holds it are built again (docs/statistics.md "Trailing
        baselines")."""
        if trailing is None:
            return
        for dk, owed in self._owed.items():
            if dk[2][0] == model and start < dk[1] <= start + trailing.trailing and owed.written:
                owed.dirty = True
                self._earliest = NO_TIME

    def emit(
        self,
        ready: int | None,
        rows: list[Row],
        *,
        sink: Sink,
        sketches: Sketches,
        changes: ChangeDetectors | None,
        run_id: str,
        computed_at: Callable[[], int],
        baselines: Callable[[str, int], Baseline | None] = lambda _m, _s: None,
        labels: LabelStage | None = None,
    ) -> tuple[list[WindowResult], int]:
        """The derived windows now due, built from their stored base states, and how many
        rows were written: ``rows`` (holding the base states just closed) are written and the
        sink flushed first, so that they are read back. A window whose stored states are
        missing is held back (:meth:`held_back`; at a final emit, :meth:`raise_incomplete`).
        Each window's ``estimated_*`` go to ``labels`` (:meth:`LabelStage.note_estimates`),
        as a window kept in the stream's do, for its label window's ``estimation_error_*``;
        a label window written before it has them written with it."""
        due = self.due(ready)
        waiting = {dk for dk in due if sketches(dk[2][0]).collects_raw}
        if waiting:  # not yet on their reference: looked at again at the next batch
            self._earliest = NO_TIME
            due = [dk for dk in due if dk not in waiting]
        if not due:
            return [], 0
        if self.states is None:
            raise SketchError(
                "windows configured with 'from' are built from states kept in the store; "
                "this run's sink keeps none (use a ClickHouse store or a MemorySink)"
            )
        sink.write(rows)
        written = len(rows)
        rows.clear()
        out: list[WindowResult] = []
        merged: dict[DerivedKey, ModelState] = {}  # for the versions' comparisons
        try:
            sink.flush()
            for batch in _batches(due, self.specs):
                loaded = self.load(batch, self.states, run_id)
                for dk in batch:
                    result = self._build(
                        dk, loaded, ready, sketches, changes, run_id, computed_at, merged,
                        baselines,
                    )  # fmt: skip
                    if result is not None:
                        out.append(result)
                        if labels is not None:  # the errors of a label window written first
                            result.metrics.extend(labels.note_estimates(result.metrics))
                due = due[len(batch) :]
        except StoreError as exc:  # the store is away: the windows left stay due
            log.warning("merge.derived_waiting", windows=len(due), reason=str(exc))
            for dk in due:
                self._later(dk, ready)
        out += compare_windows(
            out, merged, {}, specs=self.specs, sketches=sketches, run_id=run_id,
            computed_at=computed_at(),
        )  # fmt: skip
        return out, written

    def _build(
        self,
        dk: DerivedKey,
        loaded: dict[DerivedKey, list[StoredState]],
        ready: int | None,
        sketches: Sketches,
        changes: ChangeDetectors | None,
        run_id: str,
        computed_at: Callable[[], int],
        merged: dict[DerivedKey, ModelState],
        baselines: Callable[[str, int], Baseline | None],
    ) -> WindowResult | None:
        """One derived window from its stored base states (its merged state put in
        ``merged``); ``None`` when some are missing."""
        stored = loaded.get(dk, [])
        missing = sorted(self._owed[dk].bases - {s.start for s in stored})
        if missing or not stored:
            self._later(dk, ready)
            message = self.held_back(dk, missing)
            if ready is None:
                self._failures.append(message)
            return None
        k, start, key = dk
        sketch = sketches(key[0])
        state: ModelState | None = None
        for s in stored:  # ascending start: a fixed merge order
            part = ModelState.from_bytes(s.state)
            state = part if state is None else sketch.merge(state, part)
        assert state is not None
        rewrite = self._owed[dk].written
        self.written(dk)
        state = merged[dk] = sketch.resolve(state)
        return evaluate_window(
            self.specs[k],
            start,
            key,
            state,
            sketches,
            changes=changes,
            rewrite=rewrite,
            run_id=run_id,
            computed_at=computed_at(),
            baseline=baselines(key[0], start),
        )

    def _later(self, dk: DerivedKey, ready: int | None) -> None:
        """Try a held-back window again one base window of event time later, not at every
        batch: reading the store again costs a query each time."""
        if ready is not None:
            retry_at = ready + self.specs[self._base_of(dk[0])].size_ms
            self._owed[dk].retry_at = retry_at
            self._earliest = min(self._earliest, retry_at)

    def raise_incomplete(self) -> None:
        """After a final emit: the derived windows held back, as one error."""
        if self._failures:
            messages, self._failures = self._failures, []
            raise SketchError("; ".join(messages))

    def due(self, ready: int | None) -> list[DerivedKey]:
        """Derived windows to write now: those with a base written since they were last
        written, whose end ``ready`` has reached (all when ``None``), in the order they end."""
        if ready is not None and ready < self._earliest:
            return []
        out: list[DerivedKey] = []
        later = _NEVER
        for dk, owed in self._owed.items():
            if not owed.dirty:
                continue
            when = max(dk[1] + self.specs[dk[0]].size_ms, owed.retry_at)
            if ready is None or when <= ready:
                out.append(dk)
            else:
                later = min(later, when)
        self._earliest = later
        return sorted(out, key=lambda dk: (dk[1] + self.specs[dk[0]].size_ms, dk[0], dk[2]))

    def load(
        self, batch: Sequence[DerivedKey], states: WindowStates, run_id: str
    ) -> dict[DerivedKey, list[StoredState]]:
        """The stored base states of derived windows sharing their spec and start (one read
        of the store), ascending by start per window."""
        d, start = batch[0][0], batch[0][1]
        spec, base = self.specs[d], self.specs[self._base_of(d)]
        models = sorted({key[0] for _, _, key in batch})
        out: dict[DerivedKey, list[StoredState]] = {}
        for s in states.load(
            models=models, window=base.name, run_id=run_id, lo_ms=start, hi_ms=start + spec.size_ms
        ):
            out.setdefault((d, start, (s.model, s.model_version)), []).append(s)
        return out

    def written(self, dk: DerivedKey) -> None:
        owed = self._owed[dk]
        owed.dirty, owed.written, owed.reported, owed.retry_at = False, True, False, NO_TIME

    def held_back(self, dk: DerivedKey, missing: Sequence[int]) -> str:
        """Say that a due derived window misses stored base states; return the message."""
        d, start, (model, version) = dk
        spec, base = self.specs[d], self.specs[self._base_of(d)]
        message = (
            f"{spec.name} window of model {model!r} (version {version!r}) starting "
            f"{_utc(start)} is not written: the stored state of its {base.name} window(s) "
            f"starting {', '.join(_utc(m) for m in missing[:5])}"
            f"{f' and {len(missing) - 5} more' if len(missing) > 5 else ''} "
            "is missing from table window_states (rows lost, or not stored yet); "
            "rebuild it with a replay of that span"
        )
        owed = self._owed[dk]
        if not owed.reported:
            owed.reported = True
            self.incomplete += 1
            log.error(
                "merge.derived_window_incomplete", model=model, model_version=version,
                window=spec.name, start=start, missing=[_utc(m) for m in missing[:5]],
                count=len(missing),
            )  # fmt: skip
        return message

    def forget(self, is_final: Callable[[int, int], bool]) -> None:
        """Forget the windows that are final (``is_final(spec, start)``): written, or held
        back (said so) a whole window length."""
        for dk in [
            dk
            for dk, owed in self._owed.items()
            if (not owed.dirty or owed.reported) and is_final(dk[0], dk[1])
        ]:
            del self._owed[dk]

    def _base_of(self, d: int) -> int:
        return next(b for b, ds in self.built_from.items() if d in ds)

    def to_bytes(self) -> bytes:
        return _ENCODE(
            [
                _OwedRow(d, start, key[0], key[1], sorted(o.bases), o.dirty, o.written)
                for (d, start, key), o in sorted(self._owed.items())
            ]
        )

    def restore(self, data: bytes) -> None:
        self._earliest = NO_TIME
        self._owed = {
            (r.spec_index, r.start, (r.model, r.model_version)): Owed(
                set(r.bases), r.dirty, r.written
            )
            for r in _DECODE(data)
        }
