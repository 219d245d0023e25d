"""The live merger's snapshots, in table ``merger_state`` (migration ``0002``).

The merge stage keeps state that the partials it re-reads after a restart cannot rebuild: the
label join and label windows (a week of predictions waiting for their labels), the windows of
metric events and the change detectors. The merger saves a snapshot of it with the position of
the partials topic it covers, then commits that position; a new merger reads the snapshot the
committed position names.

Each merge shard (a partition of the partials topic) keeps its own snapshots, under the consumer
group's name for shard 0 (the one merger of an unsharded deployment) and ``<group>/shard-<n>``
for the others, in the same ``group`` column. Two slots per group and shard: a snapshot goes to the slot that does *not* hold the snapshot of
the last successful commit, so a snapshot whose commit failed never replaces the one a restart
needs. Snapshots are LZ4-framed (a tenth of the size: the join's ids and names repeat), then
base64 text in a ``String`` column; snapshots saved before compression are read as they are.

Examples
--------
>>> from drifthouse.sinks.store import open_store            # doctest: +SKIP
>>> states = MergerStateStore(open_store("chdb:///tmp/s"), "drifthouse", "drifthouse")  # doctest: +SKIP
>>> slot = states.save(1_234, b"...")                         # doctest: +SKIP
>>> states.committed(slot)                                    # doctest: +SKIP
>>> states.load(1_234)                                        # doctest: +SKIP
b'...'
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

import lz4.frame

from drifthouse.sinks.store import call

__all__ = ["MergerStateStore"]

_LZ4_FRAME = b"\x04\x22\x4d\x18"  # the magic number every LZ4 frame starts with


class MergerStateStore:
    """Save and load merge-stage snapshots of one consumer group's merge shard (see the module
    docstring)."""

    def __init__(self, client: Any, database: str, group: str, *, shard: int = 0) -> None:
        self.client = client
        self.table = f"`{database}`.merger_state"
        self.group = group if shard == 0 else f"{group}/shard-{shard}"
        self._committed_slot: int | None = None

    def save(self, position: int, state: bytes) -> int:
        """Store a snapshot covering the partials before ``position``; return its slot."""
        slot = 1 if self._committed_slot == 0 else 0
        text = base64.b64encode(lz4.frame.compress(state)).decode()
        row = [self.group, slot, position, datetime.now(UTC), text]
        call(
            "saving the merger's snapshot",
            self.client.insert,
            self.table,
            [row],
            column_names=["group", "slot", "position", "saved_at", "state"],
        )
        return slot

    def committed(self, slot: int) -> None:
        """The commit naming the snapshot in ``slot`` went through."""
        self._committed_slot = slot

    def load(self, position: int) -> bytes | None:
        """The snapshot saved at ``position`` (``None`` if there is none: a first start)."""
        result = call(
            "reading the merger's snapshot",
            self.client.query,
            f"SELECT slot, state FROM {self.table} FINAL "
            "WHERE group = {group:String} AND position = {position:UInt64} "
            "ORDER BY saved_at DESC LIMIT 1",
            parameters={"group": self.group, "position": position},
        )
        if not result.result_rows:
            return None
        slot, text = result.result_rows[0]
        self._committed_slot = int(slot)
        data = base64.b64decode(text)
        return lz4.frame.decompress(data) if data.startswith(_LZ4_FRAME) else data
