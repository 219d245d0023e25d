"""A rebalance takes merge shards away while the merge agent still hands out their partials:
no merger of a shard being closed opens again behind the close (it would stay open, a second
merger of a shard another worker now holds)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from drifthouse.app.assembly import RunParts
from drifthouse.app.merge_loop import MergeLoop, MergeShards
from drifthouse.sinks.base import MemorySink
from tests.app.partials import CONFIG, PARTITIONS, partials_log
from tests.app.test_worker_loops import FakePartials


@pytest.fixture(scope="module")
def log(small_stream: Any) -> list[bytes]:
    return partials_log(small_stream)


def test_partials_of_a_shard_being_revoked_open_no_merger_behind_the_close(
    small_stream: Any, log: list[bytes]
) -> None:
    def make(shard: int) -> MergeLoop:
        return MergeLoop(
            RunParts.of(CONFIG, small_stream.profiles), range(PARTITIONS), FakePartials(),
            open_sink=MemorySink, on_error=lambda part, exc: None, shard=shard,
        )  # fmt: skip

    shards = MergeShards(make)

    async def run() -> None:
        await shards.take(0, lambda: [(o, log[o]) for o in range(0, 50)])
        assert set(shards.mergers) == {0}
        # The revocation closes shard 0 (it takes a while: the store's last flush); meanwhile
        # the agent hands out partials it fetched before the rebalance, still assigned until
        # the revocation is over.
        closing = asyncio.create_task(shards.close([0]))
        await asyncio.sleep(0)
        await shards.take(0, lambda: [(o, log[o]) for o in range(50, 100)])
        await closing
        assert shards.mergers == {}
        assert shards.loops == {}

    asyncio.run(run())
