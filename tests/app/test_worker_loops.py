"""The worker's loops, each alone, with Kafka faked: the merge loop opens the merger on its first
batch, writes and commits after the rows are flushed, reads in sequence, writes waiting label
windows once quiet and closes; the source loop resumes partitions from their commits, publishes
partials and watermarks in order, commits at most every COMMIT_EVERY_S and drops everything when
the partitions are revoked; the side forwarder dead-letters what does not decode and commits
past what it forwarded; the sink wrapper keeps rows while the store is away."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from drifthouse.app import backpressure, source_loop
from drifthouse.app.assembly import RunParts
from drifthouse.app.backpressure import WritesWait, flush_when_possible
from drifthouse.app.health import health_report
from drifthouse.app.merge_loop import MergeLoop
from drifthouse.app.side_forwarder import SideForwarder
from drifthouse.app.source_loop import SourceLoop
from drifthouse.app.source_side import SourceSide
from drifthouse.errors import StoreUnavailable
from drifthouse.kafka.partials import (
    SideEventsMessage,
    WatermarkMessage,
    decode,
    side_decoders,
)
from drifthouse.sinks.base import MemorySink
from drifthouse.stream.dead_letters import MemoryDeadLetters
from drifthouse.stream.sources import Message
from drifthouse.stream.stage import Checkpoint
from tests.app.partials import CONFIG, PARTITIONS, partials_log


@pytest.fixture(scope="module")
def log(small_stream: Any) -> list[bytes]:
    return partials_log(small_stream)


class FakePartials:
    """The partials topic: a commit, the broker's first and end offsets, seeks."""

    def __init__(self, *, first: int = 0, end: int = 0, commit: tuple[int, str] | None = None):
        self.first, self.end_offset, self.commit_found = first, end, commit
        self.commits: list[tuple[int, str]] = []
        self.seeks: list[int] = []

    async def committed(self) -> tuple[int, str] | None:
        return self.commit_found

    async def beginning(self) -> int:
        return self.first

    async def end(self) -> int:
        return self.end_offset

    async def seek(self, offset: int) -> None:
        self.seeks.append(offset)

    async def commit(self, offset: int, metadata: str) -> bool:
        self.commits.append((offset, metadata))
        return True


def _errors() -> tuple[list[tuple[str, BaseException]], Any]:
    seen: list[tuple[str, BaseException]] = []
    return seen, lambda part, exc: seen.append((part, exc))


def _merge_loop(small_stream: Any, partials: FakePartials, sink: MemorySink) -> MergeLoop:
    _, on_error = _errors()
    return MergeLoop(
        RunParts.of(CONFIG, small_stream.profiles),
        range(PARTITIONS),
        partials,
        open_sink=lambda: sink,
        on_error=on_error,
    )


def test_the_merge_loop_opens_the_merger_writes_and_commits_after_the_flush(
    small_stream: Any, log: list[bytes]
) -> None:
    sink, partials = MemorySink(), FakePartials()
    loop = _merge_loop(small_stream, partials, sink)

    async def run() -> None:
        assert loop.merger is None
        for lo in range(0, len(log), 256):
            await loop.take(lambda lo=lo: [(o, log[o]) for o in range(lo, min(lo + 256, len(log)))])
        merger = loop.merger
        assert merger is not None
        assert merger.side.next_offset == len(log)
        assert not merger.quiet_done  # a batch came: the label windows wait for quiet
        await loop.quiet(idle_after_s=0.0)
        assert merger.quiet_done
        assert merger.side.stage.stats.windows > 0
        await loop.close()
        assert loop.merger is None

    asyncio.run(run())
    assert sink.closed
    metrics = sink.rows("metrics")
    assert metrics
    assert any(r.metric == "accuracy" for r in metrics)
    # One commit per batch, never past what was read; the last one at the oldest window open.
    assert len(partials.commits) == -(-len(log) // 256)
    assert all(offset <= len(log) for offset, _ in partials.commits)
    assert json.loads(partials.commits[-1][1])["watermarks"]


def test_the_merge_loop_reads_in_sequence_from_its_commit(
    small_stream: Any, log: list[bytes]
) -> None:
    """The consumer ahead of the merger's commit: sent back once to the first missing offset;
    partials the broker deleted already are skipped to the first one it still holds."""
    partials = FakePartials()
    loop = _merge_loop(small_stream, partials, MemorySink())
    deleted = FakePartials()
    after_retention = _merge_loop(small_stream, deleted, MemorySink())

    async def run() -> None:
        await loop.take(lambda: [(o, log[o]) for o in range(0, 10)])
        await loop.take(lambda: [(o, log[o]) for o in range(20, 30)])  # a gap at 10
        await loop.take(lambda: [(o, log[o]) for o in range(21, 31)])  # the old position's
        assert partials.seeks == [10]
        assert loop.merger is not None
        assert loop.merger.side.next_offset == 10
        await after_retention.take(lambda: [(o, log[o]) for o in range(0, 10)])
        deleted.first = 40  # retention took 10..39
        await after_retention.take(lambda: [(o, log[o]) for o in range(40, 50)])
        assert deleted.seeks == []
        assert after_retention.merger is not None
        assert after_retention.merger.side.next_offset == 50

    asyncio.run(run())


def test_a_merge_loop_resumes_from_the_commit_and_holds_until_the_end(
    small_stream: Any, log: list[bytes]
) -> None:
    first = _merge_loop(small_stream, FakePartials(), MemorySink())

    async def commit_of_first() -> tuple[int, str]:
        return await first.batch([(o, log[o]) for o in range(len(log) // 2)])

    offset, metadata = asyncio.run(commit_of_first())
    partials = FakePartials(commit=(offset, metadata), end=len(log) // 2)
    loop = _merge_loop(small_stream, partials, MemorySink())

    async def run() -> None:
        await loop.take(lambda: [(o, log[o]) for o in range(offset, offset + 5)])
        assert loop.merger is not None
        assert loop.merger.side.hold_until == len(log) // 2
        assert loop.merger.side.next_offset == offset + 5

    asyncio.run(run())


class FakeReader:
    """The assigned reader: batches handed out in turn, end offsets per partition."""

    def __init__(self) -> None:
        self.positions: dict[int, int | None] = {}
        self.high: dict[int, int] = {}

    @property
    def assigned(self) -> frozenset[int]:
        return frozenset(self.positions)

    def assign(self, positions: dict[int, int | None]) -> None:
        self.positions = dict(positions)

    def highwater(self, partition: int) -> int | None:
        return self.high.get(partition)


class FakeKafka:
    def __init__(self, commits: dict[int, tuple[int, str]]) -> None:
        self.found = commits
        self.sent: list[tuple[bytes, bytes]] = []
        self.flushes = 0
        self.commits: list[dict[int, Checkpoint]] = []

    async def send(self, key: bytes, value: bytes, partition: int) -> None:
        assert partition == 0  # one merge shard
        self.sent.append((key, value))

    async def flush(self) -> None:
        self.flushes += 1

    async def committed(self, partitions: list[int]) -> dict[int, tuple[int, str]]:
        return {p: c for p, c in self.found.items() if p in partitions}

    async def commit(self, checkpoints: dict[int, Checkpoint]) -> bool:
        self.commits.append(checkpoints)
        return True


def _messages(small_stream: Any, partition: int, start: int, n: int) -> list[Message]:
    records = small_stream.records[start : start + n]
    return [
        Message(r.value, partition, start + i, "predictions", r.key) for i, r in enumerate(records)
    ]


def test_the_source_loop_resumes_publishes_commits_and_drops(
    small_stream: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    parts = RunParts.of(CONFIG, small_stream.profiles)
    # Partition 1 resumes from a checkpoint of an earlier worker that read half the stream.
    half = len(small_stream.records) // 2
    earlier = SourceSide(parts, MemoryDeadLetters())
    earlier.open(1, None)
    earlier.process(_messages(small_stream, 1, 0, half))
    checkpoint = earlier.checkpoints()[1]
    assert 0 < checkpoint.offset < half
    kafka = FakeKafka({1: (checkpoint.offset, checkpoint.encode())})
    reader = FakeReader()
    source = SourceSide(parts, MemoryDeadLetters())
    seen, on_error = _errors()
    loop = SourceLoop(
        source, reader, kafka, MemoryDeadLetters(), publish_lock=asyncio.Lock(),  # type: ignore[arg-type]
        idle_after_s=0.0, on_error=on_error,
    )  # fmt: skip

    async def run() -> None:
        loop.assigned({0, 1})
        assert await loop.apply_assignment() == loop.assignment.epoch
        assert reader.positions == {0: None, 1: checkpoint.offset}
        # Re-read from the oldest open pane, with the watermark it had.
        assert source.stages[1].next_offset == checkpoint.offset
        assert source.stages[1].watermark == checkpoint.watermark
        again = _messages(small_stream, 1, checkpoint.offset, half + 50 - checkpoint.offset)
        await loop.batch(_messages(small_stream, 0, 0, 50) + again)
        kinds = [type(decode(v)) for _, v in kafka.sent]
        assert kinds[-1] is WatermarkMessage  # after each partition's partials, its watermark
        assert kinds.count(WatermarkMessage) == 2
        assert len(kafka.commits) == 1  # the first batch commits at once
        more = _messages(small_stream, 1, half + 50, 10)
        await loop.batch(more)
        assert len(kafka.commits) == 1  # then at most every COMMIT_EVERY_S
        monkeypatch.setattr(source_loop, "COMMIT_EVERY_S", 0.0)
        await loop.batch([])  # the stream paused: the last batch's checkpoints
        assert len(kafka.commits) == 2
        assert kafka.flushes == 2  # each after the partials it covers are in Kafka
        assert set(kafka.commits[-1]) == {0, 1}
        assert checkpoint.offset <= kafka.commits[-1][1].offset <= half + 60
        # Every partition caught up and quiet: its watermark again, marked idle, once.
        reader.high = {0: 50, 1: half + 60}
        sent = len(kafka.sent)
        await loop.tick()
        await loop.tick()
        idle = [decode(v) for _, v in kafka.sent[sent:]]
        assert sorted(m.source_partition for m in idle if isinstance(m, WatermarkMessage)) == [0, 1]
        assert all(isinstance(m, WatermarkMessage) and m.idle for m in idle)
        await loop.revoked()
        assert source.stages == {}
        assert loop.assignment.wanted == set()

    asyncio.run(run())
    assert not seen


def test_the_side_forwarder_dead_letters_refusals_and_commits_past_them() -> None:
    dead = MemoryDeadLetters()
    sent: list[bytes] = []
    commits: list[dict[tuple[str, int], int]] = []

    async def send(key: bytes, value: bytes, partition: int) -> None:
        sent.append(value)

    async def flush() -> None:
        pass

    async def commit(offsets: dict[tuple[str, int], int]) -> bool:
        commits.append(offsets)
        return True

    forwarder = SideForwarder(
        {"labels": "labels", "metrics": "metrics"}, side_decoders(CONFIG.kafka),
        {"labels": dead}, send=send, flush=flush, commit=commit, publish_lock=asyncio.Lock(),
    )  # fmt: skip
    good = json.dumps(
        {"event_id": "e1", "model": "fraud", "label": 1, "ts": 1_700_000_000_000}
    ).encode()
    msgs = [Message(good, 0, 7, "labels"), Message(b"{not json", 0, 5, "labels")]
    asyncio.run(forwarder.forward({("labels", 0): msgs}))
    forwarded = decode(sent[0])
    assert isinstance(forwarded, SideEventsMessage)
    assert forwarded.offsets == [7]
    assert len(dead.letters) == 1
    assert dead.letters[0].offset == 5
    assert commits == [{("labels", 0): 8}]


class AwayStore(MemorySink):
    """A sink whose store is away for the first ``away`` flushes."""

    def __init__(self, away: int) -> None:
        super().__init__()
        self.away = away

    def flush(self) -> None:
        if self.away:
            self.away -= 1
            raise StoreUnavailable("the store is away")
        super().flush()


def test_rows_wait_while_the_store_is_away(monkeypatch: pytest.MonkeyPatch) -> None:
    sink = AwayStore(away=3)
    writes = WritesWait(sink)
    writes.drain()  # the store away: nothing raised, the rows stay
    assert sink.away == 2
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr(backpressure.asyncio, "sleep", sleep)
    asyncio.run(flush_when_possible(writes))
    assert slept == [0.5, 1.0]
    assert sink.away == 0


def test_the_health_report_names_partitions_and_the_merger(small_stream: Any) -> None:
    source = SourceSide(RunParts.of(CONFIG, small_stream.profiles), MemoryDeadLetters())
    source.open(3, None)
    source.process(_messages(small_stream, 3, 0, 20))
    report = health_report(FakeReader(), source, {}, uptime=2.0)  # type: ignore[arg-type]
    assert report["events"] == 20
    assert report["events_per_second"] == 10.0
    assert report["partitions"]["3"]["position"] == 20
    assert report["merger"] is None
    assert set(report["source_seconds"]) == {"fetching", "processing", "publishing", "committing"}
