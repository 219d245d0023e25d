"""A bounded on-disk spool for batches the store could not take.

Each spooled batch is one segment file ``<seq>.<table>.spool`` holding the msgpack-encoded rows of
one table. A segment is written to a temporary name, fsync'd, renamed into place and the folder
fsync'd, so after a crash a segment is either whole or absent. Segments are replayed in ``seq``
order and deleted only after the store confirmed their insert; a crash between the two replays a
batch twice, which the tables' idempotent keys absorb.

Rows the store refuses for good (a broken constraint, a type, a missing table) are not spooled:
:meth:`Spool.set_aside` writes them, the same way, to ``<seq>.<table>.rejected``, which is never
replayed and does not count against ``max_bytes``; an operator decides what to do with them.

Example
-------
>>> import tempfile
>>> from drifthouse.rows import MetricRow
>>> spool = Spool(tempfile.mkdtemp(), max_bytes=1_000_000)
>>> row = MetricRow(window_start=0, window_end=1, window="1h", model="m", model_version="1",
...                 feature="", segment="", metric="events", value=1.0, n=1, run_id="live")
>>> spool.append("metrics", [row])
>>> [(b.table, len(b.rows)) for b in spool.batches()]
[('metrics', 1)]
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from drifthouse.errors import SpoolFull, StoreError
from drifthouse.files import open_private, private_dir
from drifthouse.sinks.tables import spec_for

__all__ = ["Spool", "SpoolBatch"]

_NAME = re.compile(r"^(\d{16})\.(\w+)\.spool$")
_encoder = msgspec.msgpack.Encoder()


@dataclass(frozen=True)
class SpoolBatch:
    """One spooled batch: its order, table, rows and file."""

    seq: int
    table: str
    rows: list[Any]
    path: Path
    size: int


class Spool:
    """Append-only segment files of batches, at most ``max_bytes`` in all, replayed in order."""

    def __init__(
        self, directory: str | os.PathLike[str], max_bytes: int = 256 * 1024 * 1024
    ) -> None:
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        try:
            private_dir(self.directory)
        except OSError as exc:
            raise StoreError(
                f"cannot create spool folder {self.directory}: {exc.strerror}; set store.spool_dir to a writable folder"
            ) from exc
        for stale in self.directory.glob("*.tmp"):  # a write cut short by a crash
            stale.unlink()
        self._segments: dict[int, tuple[str, Path, int]] = {}
        for path in self.directory.iterdir():
            match = _NAME.match(path.name)
            if match:
                self._segments[int(match.group(1))] = (match.group(2), path, path.stat().st_size)
        # Numbers of set-aside files are not reused either: a restart must not overwrite one.
        taken = [
            int(p.name[:16]) for p in self.directory.glob("*.rejected") if p.name[:16].isdigit()
        ]
        self._next = max([*self._segments, *taken], default=0) + 1
        self._bytes = sum(size for _, _, size in self._segments.values())

    @property
    def bytes(self) -> int:
        """Bytes spooled now."""
        return self._bytes

    @property
    def fill(self) -> float:
        """Share of the room in use, 0.0 to 1.0."""
        return min(1.0, self._bytes / self.max_bytes)

    def __len__(self) -> int:
        return len(self._segments)

    def append(self, table: str, rows: list[Any]) -> None:
        """Store one batch durably, or raise :class:`SpoolFull` and store nothing."""
        spec_for(table)
        payload = _encoder.encode(rows)
        if self._bytes + len(payload) > self.max_bytes:
            raise SpoolFull(
                f"the spool at {self.directory} is full ({self._bytes} of {self.max_bytes} bytes, "
                f"{len(rows)} more {table} rows do not fit) while ClickHouse is unreachable; "
                "pause consuming until the store is back, or raise store.spool_max_bytes"
            )
        seq = self._next
        self._next += 1
        final = self.directory / f"{seq:016d}.{table}.spool"
        self._write(final, payload)
        self._segments[seq] = (table, final, len(payload))
        self._bytes += len(payload)

    def batches(self) -> Iterator[SpoolBatch]:
        """Spooled batches, oldest first."""
        for seq in sorted(self._segments):
            if seq not in self._segments:
                continue
            table, path, size = self._segments[seq]
            row_list: Any = list.__class_getitem__(spec_for(table).row_type)
            rows = msgspec.msgpack.decode(path.read_bytes(), type=row_list)
            yield SpoolBatch(seq, table, rows, path, size)

    def set_aside(self, table: str, rows: list[Any]) -> Path:
        """Store rows the store refused for good in a ``.rejected`` file; return its path."""
        spec_for(table)
        seq = self._next
        self._next += 1
        path = self.directory / f"{seq:016d}.{table}.rejected"
        self._write(path, _encoder.encode(rows))
        return path

    def shrink(self, batch: SpoolBatch, rows: list[Any]) -> SpoolBatch:
        """Keep only ``rows`` of a spooled batch (the others were stored or set aside)."""
        payload = _encoder.encode(rows)
        self._write(batch.path, payload)
        self._segments[batch.seq] = (batch.table, batch.path, len(payload))
        self._bytes += len(payload) - batch.size
        return SpoolBatch(batch.seq, batch.table, rows, batch.path, len(payload))

    def rows(self) -> int:
        """Rows spooled now (reads every segment)."""
        return sum(len(batch.rows) for batch in self.batches())

    def _write(self, final: Path, payload: Any) -> None:
        """Write ``payload`` (bytes) to ``final`` whole or not at all, durably."""
        tmp = final.with_suffix(".tmp")
        with open_private(tmp, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, final)
        self._fsync_dir()

    def remove(self, batch: SpoolBatch) -> None:
        """Forget a batch the store has confirmed."""
        if self._segments.pop(batch.seq, None) is None:
            return
        batch.path.unlink(missing_ok=True)
        self._fsync_dir()
        self._bytes -= batch.size

    def _fsync_dir(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
