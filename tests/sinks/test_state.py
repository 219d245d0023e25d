"""The merger's snapshots in ``merger_state``: two slots, compressed, old snapshots still read."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

from drifthouse.sinks.schema import migrate
from drifthouse.sinks.state import MergerStateStore
from drifthouse.stream.labels import LabelJoin, PredictionRecord


def _join_snapshot(n: int) -> bytes:
    join = LabelJoin(max_entries=n)
    join.add_predictions(
        PredictionRecord(f"evt-{i:08d}", "fraud", "2.3.0", 1_700_000_000_000 + i, 0.25, None)
        for i in range(n)
    )
    return join.to_bytes()


def test_a_snapshot_reads_back_and_is_stored_compressed(ch_database: tuple[Any, str]) -> None:
    client, database = ch_database
    migrate(client, database)
    states = MergerStateStore(client, database, "g")
    blob = _join_snapshot(50_000)
    slot = states.save(1_000, blob)
    states.committed(slot)
    assert MergerStateStore(client, database, "g").load(1_000) == blob
    stored = client.query(f"SELECT length(state) FROM `{database}`.merger_state").result_rows[0][0]
    assert stored < len(blob) / 2, (stored, len(blob))  # base64 of LZ4: well under the raw size


def test_the_next_snapshot_goes_to_the_other_slot(ch_database: tuple[Any, str]) -> None:
    client, database = ch_database
    migrate(client, database)
    states = MergerStateStore(client, database, "g")
    first = states.save(10, b"\x92\x01\x02")
    states.committed(first)
    second = states.save(20, b"\x92\x03\x04")  # its commit never happens
    assert second != first
    again = MergerStateStore(client, database, "g")
    assert again.load(10) == b"\x92\x01\x02"  # what a restart after the failed commit needs
    assert again.load(20) == b"\x92\x03\x04"
    assert again.load(30) is None


def test_a_snapshot_saved_uncompressed_still_loads(ch_database: tuple[Any, str]) -> None:
    client, database = ch_database
    migrate(client, database)
    blob = _join_snapshot(100)
    row = ["g", 0, 5, datetime.now(UTC), base64.b64encode(blob).decode()]
    client.insert(
        f"`{database}`.merger_state", [row],
        column_names=["group", "slot", "position", "saved_at", "state"],
    )  # fmt: skip
    assert MergerStateStore(client, database, "g").load(5) == blob
    assert LabelJoin.from_bytes(blob).held("fraud") == 100


def test_each_merge_shard_keeps_its_own_snapshots(ch_database: tuple[Any, str]) -> None:
    client, database = ch_database
    migrate(client, database)
    shards = [MergerStateStore(client, database, "g", shard=s) for s in range(3)]
    for s, states in enumerate(shards):
        states.committed(states.save(100, f"shard {s}".encode()))
    # The same position on every shard: each reads back its own snapshot.
    assert [MergerStateStore(client, database, "g", shard=s).load(100) for s in range(3)] == [
        b"shard 0",
        b"shard 1",
        b"shard 2",
    ]
    # Shard 0 is the one merger of an unsharded deployment: its snapshots are the group's.
    assert MergerStateStore(client, database, "g").load(100) == b"shard 0"
