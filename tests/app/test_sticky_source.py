"""The source loop across rebalances, Kafka faked: a revocation commits every checkpoint and
parks the stages; the next assignment keeps the stage of a partition that comes back with the
commit it descends from (nothing read again), and rebuilds from the commit a partition
another worker committed meanwhile, counting what it reads again (``reread_messages``)."""

from __future__ import annotations

import asyncio
from typing import Any

from drifthouse.app.assembly import RunParts
from drifthouse.app.health import health_report
from drifthouse.app.source_loop import SourceLoop
from drifthouse.app.source_side import SourceSide
from drifthouse.stream.dead_letters import MemoryDeadLetters
from drifthouse.stream.sources import Message
from drifthouse.stream.stage import Checkpoint
from tests.app.partials import CONFIG


class Group:
    """The consumer group's commits, and a reader: what the source loop sees of Kafka."""

    def __init__(self) -> None:
        self.found: dict[int, tuple[int, str]] = {}
        self.flushes = 0
        self.commits = 0
        self.positions: dict[int, int | None] = {}
        self.high: dict[int, int] = {}

    # -- SourceKafka
    async def send(self, key: bytes, value: bytes, partition: int) -> None:
        pass

    async def flush(self) -> None:
        self.flushes += 1

    async def committed(self, partitions: list[int]) -> dict[int, tuple[int, str]]:
        return {p: c for p, c in self.found.items() if p in partitions}

    async def commit(self, checkpoints: dict[int, Checkpoint]) -> bool:
        self.commits += 1
        self.found.update({p: (cp.offset, cp.encode()) for p, cp in checkpoints.items()})
        return True

    # -- the reader
    @property
    def assigned(self) -> frozenset[int]:
        return frozenset(self.positions)

    def assign(self, positions: dict[int, int | None]) -> None:
        self.positions = dict(positions)

    def highwater(self, partition: int) -> int | None:
        return self.high.get(partition)


def _messages(small_stream: Any, partition: int, start: int, n: int) -> list[Message]:
    records = small_stream.records[start : start + n]
    return [
        Message(r.value, partition, start + i, "predictions", r.key) for i, r in enumerate(records)
    ]


def _loop(small_stream: Any, group: Group) -> tuple[SourceLoop, SourceSide]:
    source = SourceSide(RunParts.of(CONFIG, small_stream.profiles), MemoryDeadLetters())
    errors: list[BaseException] = []
    loop = SourceLoop(
        source, group, group, MemoryDeadLetters(), publish_lock=asyncio.Lock(),  # type: ignore[arg-type]
        idle_after_s=30.0, on_error=lambda part, exc: errors.append(exc),
    )  # fmt: skip
    return loop, source


def test_a_rebalance_keeps_the_partitions_that_come_back_and_rebuilds_the_others(
    small_stream: Any,
) -> None:
    group = Group()
    loop, source = _loop(small_stream, group)
    n = 600
    resumed: list[int] = []  # where partition 2 resumed, as the other worker committed it

    async def run() -> None:
        loop.assigned({0, 1, 2})
        await loop.apply_assignment()
        await loop.batch(
            _messages(small_stream, 0, 0, n)
            + _messages(small_stream, 1, 0, n)
            + _messages(small_stream, 2, 0, n)
        )
        held = dict(source.stages)
        assert all(s.windows.open_windows() > 0 for s in held.values())
        commits, flushes = group.commits, group.flushes
        await loop.revoked()
        # Committed at the revocation, after the partials were flushed; nothing held.
        assert (group.commits, group.flushes) == (commits + 1, flushes + 1)
        assert all(Checkpoint.decode(group.found[p][1]).read_to == n for p in range(3))
        assert source.stages == {}
        await loop.apply_assignment()
        assert group.positions == {}  # between the revocation and the next assignment
        # Another worker held partition 2 meanwhile and committed it further on.
        other = SourceSide(RunParts.of(CONFIG, small_stream.profiles), MemoryDeadLetters())
        other.open(2, Checkpoint.decode(group.found[2][1]))
        other.process(_messages(small_stream, 2, group.found[2][0], n + 100 - group.found[2][0]))
        cp = other.checkpoints()[2]
        group.found[2] = (cp.offset, cp.encode())
        resumed.append(cp.offset)
        loop.assigned({1, 2, 3})
        await loop.apply_assignment()
        # Partition 1 comes back as this worker committed it: the same stage, read on from
        # where it stopped, nothing read again.
        assert source.stages[1] is held[1]
        assert group.positions[1] == n
        # Partition 2 was committed by the other worker: rebuilt from its commit. Partition 0
        # went elsewhere: dropped. Partition 3 is new.
        assert source.stages[2] is not held[2]
        assert group.positions[2] == cp.offset < n + 100
        assert 0 not in source.stages
        assert group.positions[3] is None
        await loop.batch(
            _messages(small_stream, 1, n, 50)
            + _messages(small_stream, 2, cp.offset, n + 150 - cp.offset)
            + _messages(small_stream, 3, 0, 50)
        )

    asyncio.run(run())
    # What partition 2 read again, below where the other worker had read it to.
    assert source.reread == {0: 0, 1: 0, 2: n + 100 - resumed[0], 3: 0}
    report = health_report(group, source, {}, uptime=1.0)  # type: ignore[arg-type]
    assert report["partitions"]["1"]["reread_messages"] == 0
    assert report["reread_messages"]["2"] == source.reread[2] > 0


def test_a_partition_that_comes_back_to_its_worker_after_a_failed_revoke_commit_is_kept(
    small_stream: Any,
) -> None:
    """The commit at the revocation refused: the stage still descends from the last commit
    the group holds, and nobody committed since, so it is kept (reading from that commit
    would rebuild exactly it)."""
    group = Group()
    loop, source = _loop(small_stream, group)

    async def refuse(checkpoints: dict[int, Checkpoint]) -> bool:
        return False

    async def run() -> None:
        loop.assigned({0})
        await loop.apply_assignment()
        await loop.batch(_messages(small_stream, 0, 0, 300))  # committed at once
        held = source.stages[0]
        await loop.batch(_messages(small_stream, 0, 300, 100))  # not committed yet
        group.commit = refuse  # type: ignore[method-assign]
        await loop.revoked()
        loop.assigned({0})
        await loop.apply_assignment()
        assert source.stages[0] is held
        assert group.positions == {0: 400}

    asyncio.run(run())
    assert source.reread == {0: 0}


def test_a_stopping_worker_commits_where_it_has_read_to(small_stream: Any) -> None:
    """SIGTERM: the last batches' checkpoints are committed before the worker leaves, so the
    next owner knows how far it had read (and re-reads only the open panes)."""
    group = Group()
    loop, _ = _loop(small_stream, group)

    async def run() -> None:
        loop.assigned({0})
        await loop.apply_assignment()
        await loop.batch(_messages(small_stream, 0, 0, 300))  # committed at once
        await loop.batch(_messages(small_stream, 0, 300, 100))  # within COMMIT_EVERY_S: not
        assert Checkpoint.decode(group.found[0][1]).read_to == 300
        flushes = group.flushes
        await loop.stop()
        assert group.flushes == flushes + 1  # the partials first
        assert Checkpoint.decode(group.found[0][1]).read_to == 400

    asyncio.run(run())
