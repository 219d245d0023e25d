"""The merge loop with a window built from stored base windows (``{size: 3h, from: 1h}``) on
the embedded store, the partials log handed to it as the worker's consumer would: a merger that
stops half-way and is replaced, resuming from its snapshot or rebuilding without it (the
snapshot deleted), stores the rows of a merger that never stopped, derived windows included
(docs/configuration.md "Long windows: `from`")."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from drifthouse.config import Config
from drifthouse.sinks.schema import migrate
from tests.app import partials as partials_module
from tests.app import test_snapshot_missing as snapshot_missing
from tests.app.test_worker_loops import FakePartials

DERIVED = Config.model_validate(
    {
        "windows": [{"size": "1h"}, {"size": "3h", "from": "1h"}],
        "metrics": {"label_rewrite_every": "1ms"},
    }
)


@pytest.fixture
def derived_log(small_stream: Any, monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The partials of the small stream's two partitions, with windows 1h and 3h from 1h (the
    mergers of test_snapshot_missing's loops save a snapshot with every batch)."""
    monkeypatch.setattr(partials_module, "CONFIG", DERIVED)
    monkeypatch.setattr(snapshot_missing, "CONFIG", DERIVED)
    return partials_module.partials_log(small_stream)


@pytest.fixture
def databases(ch_client: Any) -> Iterator[list[str]]:
    names = [f"t_{uuid.uuid4().hex[:12]}" for _ in range(2)]
    for name in names:
        ch_client.command(f"CREATE DATABASE `{name}`")
        migrate(ch_client, name)
    yield names
    for name in names:
        ch_client.command(f"DROP DATABASE IF EXISTS `{name}` SYNC")


def _resumed(small_stream: Any, log: list[bytes], client: Any, database: str) -> None:
    """A merger reads half the log and stops; a new one resumes from its commit and snapshot."""
    half = len(log) // 2

    async def run() -> None:
        before = FakePartials()
        earlier = snapshot_missing._loop(small_stream, client, database, before)
        await snapshot_missing._read(earlier, before, log, 0, half)
        await earlier.close()
        commit = before.commits[-1]
        after = FakePartials(end=len(log), commit=commit)
        loop = snapshot_missing._loop(small_stream, client, database, after)
        await snapshot_missing._read(loop, after, log, commit[0], len(log))
        assert loop.merger is not None
        assert loop.merger.side.stage.derived.incomplete == 0
        await loop.quiet(idle_after_s=0.0)
        await loop.close()

    asyncio.run(run())


@pytest.mark.parametrize("snapshot", ["resumed", "deleted"])
def test_a_replaced_merger_writes_the_derived_windows_of_one_that_never_stopped(
    small_stream: Any, derived_log: list[bytes], ch_client: Any, databases: list[str],
    snapshot: str,
) -> None:  # fmt: skip
    snapshot_missing._undisturbed(small_stream, derived_log, ch_client, databases[0])
    if snapshot == "resumed":
        _resumed(small_stream, derived_log, ch_client, databases[1])
    else:
        merger, _, _, _ = snapshot_missing._restarted(
            small_stream, derived_log, ch_client, databases[1], first=0
        )
        assert (merger.rebuilt_from, merger.state_lost) == (0, False)
        assert merger.side.stage.derived.incomplete == 0
    expected = snapshot_missing._metrics(ch_client, databases[0])
    assert {r[0] for r in expected if r[2] == "3h"}  # derived windows were written
    assert {r[7] for r in expected if r[2] == "3h"} >= {"events", "psi", "labels"}
    assert snapshot_missing._metrics(ch_client, databases[1]) == expected
