"""The source loop under a cooperative group, Kafka faked: partitions come and go a few at a
time; a revocation commits and parks only the partitions taken, a loss drops them without a
commit, and every other partition keeps its stage and reads on from where it was."""

from __future__ import annotations

import asyncio
from typing import Any

from drifthouse.stream.stage import Checkpoint
from tests.app.test_sticky_source import Group, _loop, _messages


def test_partitions_added_revoked_and_lost_leave_the_others_as_they_are(
    small_stream: Any,
) -> None:
    group = Group()
    loop, source = _loop(small_stream, group)
    n = 300

    async def run() -> None:
        await loop.added({0, 1, 2})
        await loop.apply_assignment()
        await loop.batch([m for p in range(3) for m in _messages(small_stream, p, 0, n)])
        held = dict(source.stages)
        await loop.added({3})
        await loop.apply_assignment()
        # The partitions held stay as they are, read on from their own next offsets.
        assert all(source.stages[p] is held[p] for p in range(3))
        assert group.positions == {0: n, 1: n, 2: n, 3: None}
        await loop.batch(_messages(small_stream, 0, n, 50))
        commits = group.commits
        await loop.revoked({2})
        # The checkpoints committed, partition 2 alone let go.
        assert group.commits == commits + 1
        assert Checkpoint.decode(group.found[0][1]).read_to == n + 50
        assert set(source.stages) == {0, 1, 3}
        assert loop.parked.keys() == {2}
        await loop.apply_assignment()
        assert source.stages[0] is held[0]
        # Partition 3 has read nothing yet: from its first offset.
        assert group.positions == {0: n + 50, 1: n, 3: 0}
        # Partition 1 lost (this worker missed its session): dropped, nothing committed.
        await loop.batch(_messages(small_stream, 1, n, 50))
        commits = group.commits
        found = dict(group.found)
        await loop.lost({1})
        await loop.apply_assignment()
        assert (group.commits, group.found) == (commits, found)
        assert set(source.stages) == {0, 3}
        assert group.positions == {0: n + 50, 3: 0}

    asyncio.run(run())
    assert source.revocations == {2: 1}
    assert source.reread == {0: 0, 1: 0, 2: 0, 3: 0}
