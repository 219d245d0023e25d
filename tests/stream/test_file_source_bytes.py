"""A file source's micro-batches are bounded in bytes as well as lines: a line may hold a
batched message of many events (docs/events.md, "Batched messages")."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from drifthouse.errors import UsageError
from drifthouse.stream.sources import FileSource


def test_micro_batches_are_bounded_in_bytes(tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl"
    path.write_bytes(b"".join(b"x" * 999 + b"\n" for _ in range(10)))
    sizes = [len(b) for b, _ in FileSource(path, batch_size=100, batch_bytes=2_500).batches()]
    assert sizes == [3, 3, 3, 1]  # the line that crosses the bound closes its batch
    offsets = [m.offset for b, _ in FileSource(path, batch_bytes=2_500).batches() for m in b]
    assert offsets == list(range(1, 11))


def test_a_byte_order_mark_before_the_first_event_is_not_part_of_it(tmp_path: Path) -> None:
    """Editors on Windows save UTF-8 with a byte-order mark; the first event was refused as
    "invalid character (byte 0)" and the replay lost it. The mark is not part of the event."""
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"a": 1}\n{"b": 2}\n')
    values = [m.value for b, _ in FileSource(path).batches() for m in b]
    assert values == [b'{"a": 1}', b'{"b": 2}']
    gz = tmp_path / "bom.jsonl.gz"
    gz.write_bytes(gzip.compress(b'\xef\xbb\xbf{"a": 1}\n'))
    assert [m.value for b, _ in FileSource(gz).batches() for m in b] == [b'{"a": 1}']
    # A file that is not there is the command line's mistake (exit code 2), named so.
    with pytest.raises(UsageError, match=r"file:.*nope.jsonl: no such file; check the path"):
        FileSource(tmp_path / "nope.jsonl")
