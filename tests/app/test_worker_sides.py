"""The worker's two sides without Kafka: what the source side publishes, the merger takes; a
merger that restarts from its snapshot and commit re-reads the partials log and ends with the
rows of an uninterrupted one; callbacks given to the merger (the alert stage) are called;
labels forwarded again or out of order count once."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from drifthouse.app.assembly import RunParts
from drifthouse.app.merger import MergeSide
from drifthouse.app.side_forwarder import ascending
from drifthouse.kafka.partials import SideEventsMessage, decode, encode_side_events
from drifthouse.sinks.base import MemorySink
from drifthouse.stream.sources import Message
from tests.app.partials import CONFIG, PARTITIONS, partials_log


@pytest.fixture(scope="module")
def log(small_stream: Any) -> list[bytes]:
    return partials_log(small_stream)


def _merger(
    small_stream: Any, sink: MemorySink, on_window: Sequence[Callable[[Any], None]] = ()
) -> MergeSide:
    parts = RunParts.of(CONFIG, small_stream.profiles)
    return MergeSide(parts, sink, list(range(PARTITIONS)), on_window=on_window, snapshots=True)


def _final(sink: MemorySink) -> dict[tuple[Any, ...], tuple[float, int]]:
    sink.flush()
    return {r.key()[:-1]: (r.value, r.n) for r in sink.rows("metrics")}  # without the run id


def test_callbacks_given_to_the_merger_are_called(small_stream: Any, log: list[bytes]) -> None:
    seen: list[Any] = []
    merger = _merger(small_stream, MemorySink(), on_window=[seen.append])
    merger.process(list(enumerate(log)))
    assert seen, "the alert stage is called with every window written"
    assert any(m.metric == "accuracy" for r in seen for m in r.metrics)


def test_a_merger_restarted_from_its_snapshot_writes_the_rows_of_an_uninterrupted_one(
    small_stream: Any, log: list[bytes]
) -> None:
    want_sink = MemorySink()
    whole = _merger(small_stream, want_sink)
    whole.process(list(enumerate(log)))
    whole.stage.emit(quiet=True)
    want = _final(want_sink)
    assert any(k[-1] == "labels_coverage" for k in want)

    sink = MemorySink()  # the store: what was flushed before a crash stays
    rng = random.Random(5)
    crashes = sorted(rng.sample(range(1, len(log)), 4))
    merger = _merger(small_stream, sink)
    position = 0
    saved: tuple[int, bytes] | None = None
    commit: tuple[int, str] | None = None
    for crash in [*crashes, len(log)]:
        merger.process([(i, log[i]) for i in range(position, crash)])
        sink.flush()
        if rng.random() < 0.7:  # a snapshot, then a commit that names it
            saved = merger.snapshot()
            merger.snapshot_saved()
        commit = merger.checkpoint()
        if crash == len(log):
            break
        # Crash: a new merger resumes from the commit and the snapshot it names.
        merger = _merger(small_stream, sink)
        assert commit is not None
        named = merger.restore(commit[1], commit[0])
        if named is not None:
            assert saved is not None
            assert saved[0] == named
            merger.restore_snapshot(saved[1])
        position = commit[0]
        merger.hold_until = crash
    merger.stage.emit(quiet=True)
    got = _final(sink)
    assert got.keys() == want.keys()
    differ = [k for k in want if got[k] != want[k] and k[-1] not in {"mae", "rmse", "r2", "mape"}]
    assert not differ, [(k, got[k], want[k]) for k in differ[:5]]
    # Every label counted once: a snapshot and the offsets keep re-read labels out.
    labels = {k: v for k, v in got.items() if k[-1] == "labels"}
    assert labels == {k: v for k, v in want.items() if k[-1] == "labels"}
    assert sum(v for (v, _) in labels.values()) > 0


def test_a_merger_reads_the_partials_in_sequence_from_its_position(
    small_stream: Any, log: list[bytes]
) -> None:
    """A merger whose consumer is ahead of its commit (the partials partition came back to the
    same worker in a rebalance) must not skip what lies between: it reports the gap, to be
    read again, and takes nothing past it; what it has read comes again harmlessly."""
    merger = _merger(small_stream, MemorySink())
    merger.next_offset = 100
    messages = [(o, log[o]) for o in range(100, 110)]
    assert merger.in_sequence(messages) == (messages, None)
    merger.process(messages)
    assert merger.next_offset == 110
    # Read already, then the next ones: only the new ones, in order.
    again = [(o, log[o]) for o in range(105, 115)]
    assert merger.in_sequence(again) == (again[5:], None)
    # Ahead of the position: nothing is taken, the first missing offset is named.
    ahead = [(o, log[o]) for o in range(120, 130)]
    assert merger.in_sequence(ahead) == ([], 110)
    # A gap inside a batch: the messages before it, then the gap.
    broken = [(o, log[o]) for o in (110, 111, 115, 116)]
    assert merger.in_sequence(broken) == (broken[:2], 112)


def test_labels_forwarded_twice_and_out_of_order_count_once(
    small_stream: Any, log: list[bytes]
) -> None:
    """After a rebalance a worker can forward labels the merger has taken already, and a
    batch can hold some of them twice or out of order: every label offset counts once, and
    the frontier of what was taken never moves back."""
    want_sink = MemorySink()
    _merger(small_stream, want_sink).process(list(enumerate(log)))
    want = _final(want_sink)
    messy: list[bytes] = []
    earlier: SideEventsMessage | None = None
    for value in log:
        msg = decode(value)
        if not isinstance(msg, SideEventsMessage):
            messy.append(value)
            continue
        half = len(msg.offsets) // 2
        # This batch with its first half again; then the batch before, in reverse.
        offsets, values = msg.offsets + msg.offsets[:half], msg.values + msg.values[:half]
        messy.append(encode_side_events(msg.kind, msg.partition, offsets, values))
        if earlier is not None:
            messy.append(
                encode_side_events(
                    earlier.kind, earlier.partition, earlier.offsets[::-1], earlier.values[::-1]
                )
            )
        earlier = msg
    sink = MemorySink()
    _merger(small_stream, sink).process(list(enumerate(messy)))
    got = _final(sink)
    assert not any(k[-1] == "labels_duplicate" for k in got)
    assert got == want


def test_side_events_are_forwarded_in_offset_order_each_once() -> None:
    msgs = [Message(b"%d" % o, 0, o, "labels") for o in (5, 6, 7)]
    assert ascending(msgs) is msgs
    mixed = [Message(b"%d" % o, 0, o, "labels") for o in (7, 8, 5, 6, 7, 9)]
    assert [m.offset for m in ascending(mixed)] == [5, 6, 7, 8, 9]
    assert [m.value for m in ascending(mixed)] == [b"5", b"6", b"7", b"8", b"9"]
