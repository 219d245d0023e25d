"""decode -> window -> sketch for one source partition.

A :class:`PartitionStage` owns one partition's windows and watermark. It turns micro-batches of
raw messages into pane states and hands out :class:`Partial` windows as they close; the merge
stage (:mod:`drifthouse.stream.merge`) combines the partials of every partition. The stage also
knows where a restarted worker must resume (:meth:`PartitionStage.checkpoint`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial

import msgspec
import numpy as np

from drifthouse.config import Config
from drifthouse.detectors.columns import Columns, extract
from drifthouse.detectors.model_sketch import INVALID, LATE, ModelBatch, ModelState
from drifthouse.detectors.raw_panes import encode_events
from drifthouse.detectors.typed_decode import TypedDecoders
from drifthouse.errors import LateEventError
from drifthouse.events import Decoded, EventDecoder, PredictionEvent, Refused, decode_messages
from drifthouse.pii import PiiFields
from drifthouse.profiles.sketches import Sketches
from drifthouse.rows import PredictionRow
from drifthouse.sinks.predictions import PredictionLog
from drifthouse.stream import stage_columns
from drifthouse.stream.dead_letters import DeadLetters
from drifthouse.stream.labels.join import PredictionRecord
from drifthouse.stream.sources import Message
from drifthouse.stream.windows import NO_TIME, EventTimeWindows, Origin, Routed, WindowSpec

__all__ = ["Checkpoint", "Key", "Partial", "PartitionStage", "StageStats"]

Key = tuple[str, str]  # (model, model_version)


class _ModelOnly(msgspec.Struct):
    """Just enough of a refused event to know whose it was."""

    model: str = ""
    model_version: str = "unknown"


_PEEK = msgspec.json.Decoder(_ModelOnly)


def _peek_model(raw: bytes, key: bytes | None) -> Key:
    try:
        found = _PEEK.decode(raw)
        if found.model:
            return found.model, found.model_version
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        pass
    if key:
        return key.decode("utf-8", errors="replace"), "unknown"
    return "", "unknown"


@dataclass
class StageStats:
    """Running totals, for progress bars, logs and the health endpoint."""

    messages: int = 0
    events: int = 0
    invalid: int = 0
    late: int = 0
    windows: int = 0
    rows: int = 0
    #: Events that went from batches in columns to the sketches without an object per event.
    columnar: int = 0

    def add(self, other: StageStats) -> None:
        for name in ("messages", "events", "invalid", "late", "windows", "rows", "columnar"):
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass(frozen=True)
class Partial:
    """One partition's share of one closed window of one model."""

    spec_index: int
    start: int
    end: int
    key: Key
    partition: int
    state: ModelState
    origin: Origin | None = None


class Checkpoint(msgspec.Struct, frozen=True, array_like=True):
    """Where a partition resumes: re-read from ``offset`` with the largest event time seen
    before it set to ``max_ts``, the watermark and each model's clock as they were then, and
    windows ending at or before ``emitted_until`` (per spec) not emitted again. Stored as Kafka
    commit metadata by the worker (a checkpoint without ``watermark`` and ``clocks``, from a
    version with one clock per partition, resumes with the watermark ``max_ts`` makes).
    ``read_to`` is where the worker that committed it had read to: the next owner counts the
    messages it reads again below it (``None``: not recorded)."""

    offset: int
    max_ts: int
    emitted_until: list[int]
    specs: list[str]
    watermark: int | None = None
    clocks: list[tuple[str, int]] = []
    read_to: int | None = None

    def encode(self) -> str:
        return msgspec.json.encode(self).decode()

    @classmethod
    def decode(cls, text: str) -> Checkpoint:
        return msgspec.json.decode(text, type=cls)


@dataclass(frozen=True)
class _Batch:
    """A micro-batch being folded in: its messages, its valid events and where they stand.

    A batched message (docs/events.md, "Batched messages") holds several events: they share
    its position, and their origin is the state before the message's first valid event (a
    resumed partition re-reads the whole message). ``events`` is ``None`` for a micro-batch
    kept in columns (``decoded.blocks``); ``blocks`` are then those with PII hashed."""

    msgs: Sequence[Message]
    events: list[PredictionEvent] | None
    positions: np.ndarray  # per valid event: the index of its message in ``msgs``
    offsets: list[int]  # per message
    ts: np.ndarray  # per valid event: its event time
    seen: np.ndarray  # [i]: the largest event time seen before valid event i (i <= len(events))
    head: np.ndarray  # per valid event: the first valid event of its message
    decoded: Decoded
    blocks: stage_columns.Blocks = ()

    @classmethod
    def of(
        cls,
        msgs: Sequence[Message],
        events: list[PredictionEvent] | None,
        decoded: Decoded,
        max_before: int,
        index: tuple[np.ndarray, np.ndarray] | None = None,
        blocks: stage_columns.Blocks = (),
    ) -> _Batch:
        """``max_before``: the largest event time seen before the batch; ``index`` and
        ``blocks``: the events' times, positions and columns when ``events`` is ``None``."""
        if events is None and index is not None:
            ts, positions = index
        else:
            ts = np.array([e.ts_ms for e in events or ()], dtype=np.int64)
            positions = np.array([p for p, _ in decoded.ok], dtype=np.int64)
        seen = np.empty(ts.size + 1, dtype=np.int64)
        seen[0] = max_before
        seen[1:] = np.maximum.accumulate(np.maximum(ts, max_before))
        offsets = [m.offset for m in msgs]
        head = np.searchsorted(positions, positions, side="left")
        return cls(msgs, events, positions, offsets, ts, seen, head, decoded, blocks)

    def seen_before(self, i: int) -> int:
        """The largest event time seen before valid event ``i`` (before the batch when 0)."""
        return int(self.seen[i])


@dataclass
class PartitionStage:
    """decode -> window -> sketch for one source partition (see the module docstring)."""

    partition: int
    config: Config
    specs: Sequence[WindowSpec]
    sketches: Sketches
    dead_letters: DeadLetters
    now_ms: Callable[[], int] | None = None
    stats: StageStats = field(default_factory=StageStats)
    next_offset: int = 0
    prediction_log: PredictionLog | None = None
    #: Keep what the label join needs of each on-time prediction (:meth:`take_label_records`).
    collect_labels: bool = False

    def __post_init__(self) -> None:
        self.decoder = EventDecoder(
            PredictionEvent,
            max_bytes=self.config.kafka.max_message_bytes,
            max_future_ms=self.config.metrics.max_future,
            max_label_bytes=self.config.kafka.max_label_bytes,
            max_segments=self.config.metrics.max_segment_attributes,
        )
        self.windows: EventTimeWindows[Key, ModelState] = EventTimeWindows(
            self.specs,
            allowed_lateness_ms=self.config.metrics.allowed_lateness,
            # A clock per model: its events stamped ahead (up to max_future, what a live worker
            # lets in) do not make another model's late.
            clock_spread_ms=self.config.metrics.max_future,
            empty=lambda key: self.sketches(key[0]).empty(),
            merge=lambda key, a, b: self.sketches(key[0]).merge(a, b),
        )
        # Refused messages seen before the partition's first valid event: (key, offset).
        self._orphans: list[tuple[Key, int]] = []
        self._prediction_rows: list[PredictionRow] = []
        self._label_offsets: list[int] = []
        self._label_records: list[PredictionRecord] = []
        self._pii = PiiFields(self.config)
        # Models with a PII feature take the general decoder; PII names that are segment
        # attributes or `event_id` (a global `pii` list names them for every model) do not.
        pii = {
            n
            for n, profile in self.sketches.profiles.items()
            if set(self._pii.of(n)) & {f.name for f in profile.features}
        }
        self._typed = TypedDecoders(
            lambda model: (
                self.sketches(model).layout
                if model in self.sketches.profiles and model not in pii
                else None
            )
        )
        self._model_hint = ""
        self._unlabelled = frozenset(n for n, mc in self.config.models.items() if not mc.labels)

    @property
    def watermark(self) -> int:
        return self.windows.watermark

    def process(self, msgs: Sequence[Message]) -> list[Partial]:
        """Fold one micro-batch of this partition (in offset order) in; return closed windows."""
        if not msgs:
            return []
        now = self.now_ms() if self.now_ms is not None else None
        if not self._model_hint:  # the first micro-batch: its first message names the model
            first = msgs[0]  # one over the size limit is never parsed, not even to peek
            fits = len(first.value) <= self.config.kafka.max_message_bytes
            self._model_hint = _peek_model(first.value if fits else b"", first.key)[0]
        decoded = decode_messages(
            self.decoder,
            [m.value for m in msgs],
            now_ms=now,
            first=self._typed.decoder(self._model_hint),
            first_rows=self._typed.rows(self._model_hint),
            columns=True,
            plain_rows=self._typed.plain_rows(self._model_hint),
        )
        if decoded.blocks:
            batch, models = self._columns_batch(msgs, decoded)
        else:
            batch, models = self._events_batch(msgs, decoded)
        routed = self.windows.route(batch.ts, models)
        late = np.zeros(batch.ts.size, dtype=np.bool_)
        for r in routed:
            late |= r.late
        self._refuse_late(batch, late)
        self._refuse_invalid(batch, decoded.refused)
        on_time: list[bool] = (~late).tolist()
        if self.collect_labels:
            self._keep_label_records(batch, on_time)
        self._fold(batch, routed, on_time)
        self.stats.messages += len(msgs)
        self.stats.events += batch.ts.size
        self.next_offset = batch.offsets[-1] + 1
        return self._closed(final=False)

    def _events_batch(self, msgs: Sequence[Message], decoded: Decoded) -> tuple[_Batch, list[str]]:
        ok = decoded.ok
        if ok:
            # The next batch tries the fast decoder of this batch's last model first.
            self._model_hint = ok[-1][1].model
        events = [e for _, e in ok]
        if self.prediction_log is not None:
            # The sampled prediction log (deterministic per event, so restarts write the same rows).
            self._prediction_rows.extend(self.prediction_log.rows(events))
        # PII segment values and event ids are hashed before they become keys of windows,
        # metrics and the label join (the prediction log above hashes its own copy).
        events = self._pii.protect_events(events)
        return _Batch.of(msgs, events, decoded, self.windows.max_ts), [e.model for e in events]

    def _columns_batch(self, msgs: Sequence[Message], decoded: Decoded) -> tuple[_Batch, list[str]]:
        """A micro-batch of batches, kept in columns."""
        blocks = decoded.blocks
        self._model_hint = blocks[-1][1].model
        if self.prediction_log is not None:
            for _, block in blocks:
                self._prediction_rows.extend(self.prediction_log.block_rows(block))
        ts, positions, models = stage_columns.index(blocks)
        self.stats.columnar += ts.size
        # PII segment values and event ids are hashed, as _events_batch does to events.
        if self._pii.any:
            blocks = [(p, self._pii.protect_block(b)) for p, b in blocks]
        index = (ts, positions)
        return _Batch.of(msgs, None, decoded, self.windows.max_ts, index, blocks), models

    # Late and refused events are counted in the pane holding the largest event time seen
    # before them: that pane is open, and the choice does not depend on batch cuts.

    def _refuse_late(self, batch: _Batch, late: np.ndarray) -> None:
        """Count late events in their models' open panes and dead-letter them."""
        for li in np.flatnonzero(late).tolist():
            pos = int(batch.positions[li])
            e = batch.decoded.event(li) if batch.events is None else batch.events[li]
            origin = self.windows.origin(batch.offsets[pos], int(batch.head[li]))
            self._count((e.model, e.model_version), batch.seen_before(li), LATE, origin)
            msg, path = batch.msgs[pos], "$.ts"
            alone = batch.decoded.alone(li, path)
            if alone is not None:  # an event of a batch: dead-lettered alone
                msg, path = replace(msg, value=alone[0]), alone[1]
            late_at = self.windows.origin(batch.offsets[pos], li)[2]
            error = LateEventError("late", path, self._late_message(e.ts_ms, late_at))
            self.dead_letters.send(msg, error)
            self.stats.late += 1

    def _refuse_invalid(self, batch: _Batch, bad: Sequence[Refused]) -> None:
        """Count refused events in their models' open panes and dead-letter them; those
        before the partition's first valid event wait for it (orphans). A refused event of a
        batch is dead-lettered alone."""
        windows, msgs, offsets = self.windows, batch.msgs, batch.offsets
        for refused in bad:
            pos, err = refused.position, refused.error
            msg = msgs[pos] if refused.raw is None else replace(msgs[pos], value=refused.raw)
            # An over-size message is never parsed, not even to find its model: its key says.
            key = _peek_model(b"" if err.reason == "too_large" else msg.value, msg.key)
            head = int(np.searchsorted(batch.positions, pos))  # valid events before the message
            where = batch.seen_before(refused.prior)
            if where == NO_TIME:
                self._orphans.append((key, offsets[pos]))
            else:
                self._count(key, where, INVALID, windows.origin(offsets[pos], head))
            self.dead_letters.send(msg, err)
            self.stats.invalid += 1
        if self._orphans and windows.max_ts != NO_TIME:
            first = int(batch.ts[0]) if batch.ts.size else windows.max_ts
            for key, offset in self._orphans:
                self._count(key, first, INVALID, (offset, NO_TIME, NO_TIME, ()))
            self._orphans.clear()

    def _keep_label_records(self, batch: _Batch, on_time: list[bool]) -> None:
        """Keep what the label join needs of the on-time predictions with an ``event_id``."""
        # Models configured without labels hold none of their predictions.
        unlabelled = self._unlabelled
        if batch.events is None:
            positions, records = stage_columns.records(batch.blocks, on_time, unlabelled)
            self._label_offsets.extend(batch.offsets[p] for p in positions)
            self._label_records.extend(records)
            return
        chosen = [
            i
            for i, e in enumerate(batch.events)
            if on_time[i] and e.event_id and e.model not in unlabelled
        ]
        if chosen:
            self._label_offsets.extend(batch.offsets[p] for p in batch.positions[chosen].tolist())
            events = batch.events
            self._label_records += PredictionRecord.from_events([events[i] for i in chosen])

    def _fold(self, batch: _Batch, routed: Sequence[Routed], on_time: list[bool]) -> None:
        """Update the panes of the on-time events, per model and version, a column batch each."""
        events = batch.events
        if events is None:
            mask = np.array(on_time, dtype=np.bool_)
            layout = lambda model: self.sketches(model).layout  # noqa: E731
            for key, members, cols in stage_columns.groups(batch.blocks, mask, layout):
                # A model whose automatic reference is not built yet: its panes keep the events.
                raw = self.sketches(key[0]).collects_raw
                kept = encode_events(stage_columns.events(batch.blocks, members)) if raw else None
                self._update(batch, routed, key, members, cols, kept)
            return
        # Group the on-time events by model and version, keep arrival order inside each group.
        groups: dict[Key, list[int]] = defaultdict(list)
        for i, e in enumerate(events):
            if on_time[i]:
                groups[(e.model, e.model_version)].append(i)
        for key, members in groups.items():
            sketch = self.sketches(key[0])
            cols = extract([events[i] for i in members], sketch.layout)
            # A model whose automatic reference is not built yet: its panes keep the events.
            kept = encode_events([events[i] for i in members]) if sketch.collects_raw else None
            self._update(batch, routed, key, members, cols, kept)

    def _update(
        self,
        batch: _Batch,
        routed: Sequence[Routed],
        key: Key,
        members: list[int],
        cols: Columns,
        kept: list[bytes] | None,
    ) -> None:
        """Update the panes of one model's on-time events ``members`` (their columns)."""
        windows, sketch = self.windows, self.sketches(key[0])
        idx = np.asarray(members, dtype=np.intp)
        for k, r in enumerate(routed):
            for pane_start, local in _runs(r.pane[idx]):
                first = members[0] if local is None else members[int(local[0])]
                head = int(batch.head[first])
                origin = windows.origin(batch.offsets[int(batch.positions[first])], head)
                part_cols = cols if local is None else cols.take(local)
                part_raw = kept if kept is None or local is None else [kept[j] for j in local]
                windows.update(
                    k,
                    pane_start,
                    key,
                    partial(sketch.update, batch=ModelBatch(part_cols, part_raw)),
                    origin,
                )

    def take_prediction_rows(self) -> list[PredictionRow]:
        """The prediction-log rows of the batches processed since the last call."""
        rows, self._prediction_rows = self._prediction_rows, []
        return rows

    def take_label_records(self) -> tuple[list[int], list[PredictionRecord]]:
        """The on-time predictions with an ``event_id`` since the last call, with their
        offsets (the label join's input; the offsets let a resumed merge skip repeats)."""
        out = (self._label_offsets, self._label_records)
        self._label_offsets, self._label_records = [], []
        return out

    def finish(self) -> list[Partial]:
        """End of a bounded input: every open window, closed."""
        return self._closed(final=True)

    def checkpoint(self, unwritten: Sequence[Partial] = ()) -> Checkpoint:
        """Where to resume so that every window not yet written is rebuilt exactly.

        ``unwritten`` are this partition's partials that left the stage but are not safely
        stored yet (held by an in-process merge stage); a worker that publishes its partials
        to Kafka passes none.
        """
        cp = self.windows.checkpoint()
        origin = cp.origin
        emitted = list(cp.emitted_until)
        for p in unwritten:
            if p.origin is not None and (origin is None or p.origin[0] < origin[0]):
                origin = p.origin
            hop = self.specs[p.spec_index].hop_ms
            emitted[p.spec_index] = min(emitted[p.spec_index], p.end - hop)
        if origin is None:
            origin = self.windows.origin(self.next_offset)
        offset, max_ts, watermark, clocks = origin
        names = [s.name for s in self.specs]
        return Checkpoint(offset, max_ts, emitted, names, watermark, list(clocks))

    def restore(self, cp: Checkpoint) -> None:
        """Resume from a checkpoint (before any message is processed)."""
        names = [s.name for s in self.specs]
        if cp.specs != names:
            from drifthouse.errors import SourceError

            raise SourceError(
                f"partition {self.partition} was checkpointed with windows {cp.specs}, this run has {names}; "
                "a change of windows needs a new consumer group (kafka.group) or a replay"
            )
        self.windows.restore(
            max_ts=cp.max_ts,
            emitted_until=cp.emitted_until,
            watermark=cp.watermark,
            clocks=tuple(cp.clocks),
        )
        self.next_offset = cp.offset

    def _count(self, key: Key, at_ms: int, slot: int, origin: Origin) -> None:
        sketch = self.sketches(key[0])
        for k, spec in enumerate(self.specs):
            pane = (at_ms // spec.pane_ms) * spec.pane_ms
            self.windows.update(k, pane, key, partial(sketch.count, slot=slot, n=1), origin)

    def _late_message(self, ts_ms: int, watermark: int) -> str:
        lateness = self.config.metrics.allowed_lateness
        return (
            f"expected an event time in a window still open: after the partition's watermark "
            f"({watermark}: the slowest model's clock minus the allowed lateness of {lateness} ms); "
            f"got {ts_ms}, {watermark - ts_ms} ms behind it, after its window closed"
        )

    def _closed(self, *, final: bool) -> list[Partial]:
        out = []
        for c in self.windows.close(final=final):
            k = self.specs.index(c.spec)
            out.append(Partial(k, c.start, c.end, c.key, self.partition, c.state, c.origin))
        return out


def _runs(pane: np.ndarray) -> list[tuple[int, np.ndarray | None]]:
    """``(pane, indices)`` groups of a model's events; ``None`` when all share one pane."""
    if pane.size == 0:
        return []
    first = int(pane[0])
    if np.all(pane == first):
        return [(first, None)]
    order = np.argsort(pane, kind="stable")  # stable: arrival order inside each pane
    cuts = np.flatnonzero(np.diff(pane[order])) + 1
    return [(int(pane[chunk[0]]), chunk) for chunk in np.split(order, cuts)]
