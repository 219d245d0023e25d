"""The merger: partials of every source partition -> rows in the store, alerts (no faust in here).

The merger reads the partials topic in order (see :mod:`drifthouse.kafka.partials`) and runs
the :class:`~drifthouse.stream.merge.MergeStage`. It commits the partials topic only after the
rows are flushed to the store, at the oldest partial of a window not yet written
(:meth:`MergeSide.checkpoint`), and with snapshots of its own state (the label join,
metric-event windows and change detectors) the commit names the snapshot it resumes from.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import msgspec

from drifthouse.app.assembly import RunParts
from drifthouse.kafka.partials import (
    PartialMessage,
    PredictionsMessage,
    RecordsMessage,
    SideEventsMessage,
    WatermarkMessage,
    decode,
    side_decoders,
)
from drifthouse.rows import Row
from drifthouse.sinks.base import Sink
from drifthouse.stream.merge import WindowKey, WindowResult

__all__ = ["LateJoinMark", "MergeSide"]


class MergeSide:
    """The merger: partials of every source partition -> rows in the store, alerts.

    Parameters
    ----------
    parts:
        The run's parts; the merge stage is built from them.
    sink:
        Where rows go.
    expected:
        The source partitions whose watermarks close a window.
    on_window:
        Called with every window written (the alert stage).
    snapshots:
        Snapshots of the merge stage are saved (the live worker): commits then move only with
        them (see :meth:`checkpoint`).
    """

    def __init__(
        self,
        parts: RunParts,
        sink: Sink,
        expected: Sequence[int],
        *,
        on_window: Sequence[Callable[[WindowResult], None]] = (),
        snapshots: bool = False,
    ) -> None:
        self.sink = sink
        self.snapshots = snapshots
        #: The next offset of the partials topic to take.
        self.next_offset = 0
        #: Below this offset the merger re-reads what an earlier one read: nothing is written.
        self.hold_until = 0
        #: Re-reading from the partials' first offset with nothing restored: windows are merged
        #: and evaluated as they close (the change detectors fed in order, memory bounded), but
        #: their rows and alerts are dropped until :attr:`hold_until`.
        self.replaying = False
        self.stage = parts.merge_stage(
            _Held(sink, self), on_window=[self._unless_held(f) for f in on_window]
        )
        self.stage.expect(expected)
        self._offsets: dict[WindowKey, int] = {}
        #: The shard's late-join schedule, as far as it went (see :class:`LateJoinMark`).
        self.late_join: LateJoinMark | None = None
        self._decoders = side_decoders(parts.config.kafka)
        # The checkpoint of the last snapshot saved, and of the one being saved.
        self._saved: tuple[int, str] = (0, msgspec.json.encode(self._state(None)).decode())
        self._saving: tuple[int, str] | None = None

    @staticmethod
    def snapshot_named(metadata: str) -> int | None:
        """The position of the snapshot the merger's commit metadata names, if any."""
        return msgspec.json.decode(metadata, type=_MergeCheckpoint).snapshot

    def restore(self, metadata: str, offset: int = 0) -> int | None:
        """Resume from the merger's commit (see :meth:`checkpoint`); return the position of
        the snapshot its metadata names, to restore with :meth:`restore_snapshot`."""
        state = msgspec.json.decode(metadata, type=_MergeCheckpoint)
        self.stage.restore_final_horizon(state.final)
        for part, wm in state.watermarks.items():
            self.stage.watermark(int(part), wm)
        for idle in state.idle:
            self.stage.mark_idle(idle)
        self.late_join = state.late_join
        self._saved = (offset, metadata)
        return state.snapshot

    def replay(self, metadata: str, offset: int) -> None:
        """Rebuild from the partials' first offset (the snapshot the commit names is missing):
        nothing is restored but the commit itself, until the next snapshot replaces it."""
        state = msgspec.json.decode(metadata, type=_MergeCheckpoint)  # a commit of this format
        self.late_join = state.late_join
        self._saved = (offset, metadata)
        self.replaying = True

    @property
    def held(self) -> bool:
        """Re-reading what an earlier merger read and wrote: nothing is written."""
        return self.next_offset < self.hold_until

    def _unless_held(
        self, callback: Callable[[WindowResult], None]
    ) -> Callable[[WindowResult], None]:
        def call(result: WindowResult) -> None:
            if not self.held:
                callback(result)

        return call

    def restore_snapshot(self, data: bytes) -> None:
        """The merge stage's own state, saved at the committed position."""
        self.stage.restore_snapshot(data)

    def snapshot(self) -> tuple[int, bytes]:
        """``(position, state)``: the merge stage's state, covering the partials before
        ``position``. Call :meth:`snapshot_saved` once it is stored."""
        self._saving = self._checkpoint(snapshot=self.next_offset)
        return self.next_offset, self.stage.snapshot()

    def snapshot_saved(self) -> None:
        """The last :meth:`snapshot` is stored: commits may move to it."""
        if self._saving is not None:
            self._saved, self._saving = self._saving, None

    def in_sequence(
        self, messages: Sequence[tuple[int, bytes]]
    ) -> tuple[list[tuple[int, bytes]], int | None]:
        """The messages that continue the merger's reading (from :attr:`next_offset`) without
        a gap, and the first missing offset if there is a gap (else ``None``). Messages read
        already are left out. The partials topic is not transactional: its offsets have no
        holes, so a gap means the consumer is ahead of where this merger must read."""
        out: list[tuple[int, bytes]] = []
        expected = self.next_offset
        for message in messages:
            if message[0] < expected:
                continue
            if message[0] > expected:
                return out, expected
            out.append(message)
            expected += 1
        return out, None

    def process(self, messages: Sequence[tuple[int, bytes]]) -> list[WindowResult]:
        """Take ``(offset, value)`` messages of the partials topic; write what became complete."""
        for offset, value in messages:
            msg = decode(value)
            if isinstance(msg, PartialMessage):
                partial = msg.to_partial()
                self.stage.add([partial])
                wkey = (partial.spec_index, partial.start, partial.key)
                self._offsets.setdefault(wkey, offset)
                if offset < self.hold_until:  # an earlier merger read it: it may have written
                    self.stage.written_before.add(wkey)  # the window (its rewrite withdraws)
            elif isinstance(msg, WatermarkMessage):
                self.stage.watermark(msg.source_partition, msg.watermark)
                self.stage.mark_idle(msg.source_partition, msg.idle)
            elif isinstance(msg, PredictionsMessage):
                self.sink.write(msg.rows)
            elif isinstance(msg, RecordsMessage):
                self.stage.add_label_records(msg.source_partition, msg.offsets, msg.records)
            elif isinstance(msg, SideEventsMessage):
                self._side_events(msg)
            self.next_offset = offset + 1
        if self.held and not self.replaying:
            # Re-reading what an earlier merger read: the restored watermarks are ahead of the
            # partials still to come, so nothing is written until the re-read is complete.
            return []
        results = self.stage.emit()
        # Offsets are kept while a window may still be written or rewritten.
        live = self.stage.pending_keys() | self.stage.emitted_keys()
        for wkey in [w for w in self._offsets if w not in live]:
            del self._offsets[wkey]
        return results

    def quiet(self) -> list[WindowResult]:
        """The inputs went quiet: write label windows still waiting to be rewritten."""
        if self.next_offset < self.hold_until:
            return []
        return self.stage.emit(quiet=True)

    def checkpoint(self) -> tuple[int, str]:
        """``(offset, metadata)`` to commit once the rows of everything before are stored.

        The offset is that of the oldest partial of a window that may still be written or
        rewritten, so a new merger re-reading from there rebuilds every such window whole.
        With :attr:`snapshots`, it is the checkpoint taken with the last snapshot saved: the
        label join, metric-event windows and change detectors a new merger restores are those
        of that moment, and it re-reads (and rewrites, identically) everything after it.
        """
        if self.snapshots:
            return self._saved
        return self._checkpoint(snapshot=None)

    def _checkpoint(self, *, snapshot: int | None) -> tuple[int, str]:
        offset = min(self._offsets.values(), default=self.next_offset)
        if snapshot is not None:
            offset = min(offset, snapshot)
        return offset, msgspec.json.encode(self._state(snapshot)).decode()

    def _state(self, snapshot: int | None) -> _MergeCheckpoint:
        return _MergeCheckpoint(
            final=self.stage.final_horizon,
            watermarks={str(p): wm for p, wm in self.stage.watermarks().items()},
            idle=sorted(self.stage.idle()),
            snapshot=snapshot,
            late_join=self.late_join,
        )

    def _side_events(self, msg: SideEventsMessage) -> None:
        keep = self.stage.fresh(f"{msg.kind}:{msg.partition}", msg.offsets)
        decoder = self._decoders.get(msg.kind)
        if not keep or decoder is None:
            return
        # Checked by the worker that forwarded them; decoded again here, where they are used.
        ok, _ = decoder.decode_batch([msg.values[i] for i in keep])
        events = [e for _, e in ok]
        if msg.kind == "labels":
            self.stage.add_labels(events)
        else:
            self.stage.add_metric_events(events, msg.partition)


class _Held:
    """The merge stage's sink: rows of a replay (see :attr:`MergeSide.replaying`) are dropped
    while the merger is held, as the earlier merger wrote them already."""

    def __init__(self, sink: Sink, side: MergeSide) -> None:
        self.sink, self.side = sink, side

    def write(self, rows: Iterable[Row]) -> None:
        if not self.side.held:
            self.sink.write(rows)

    def flush(self) -> None:
        self.sink.flush()

    def close(self) -> None:
        self.sink.close()

    @property
    def pressure(self) -> float:
        return self.sink.pressure


class LateJoinMark(msgspec.Struct, frozen=True):
    """How far the shard's scheduled late join went (:mod:`drifthouse.app.late_join`): the
    next run reads the rows stored since ``since_s`` (store clock, epoch seconds) and is due
    at ``next_ms`` (epoch ms). Committed with the merger's checkpoint, so a merger that
    restarts, on this host or another, resumes the schedule rather than start it afresh."""

    since_s: int
    next_ms: int | None


class _MergeCheckpoint(msgspec.Struct):
    final: int
    watermarks: dict[str, int]
    idle: list[int]
    snapshot: int | None = None
    late_join: LateJoinMark | None = None
