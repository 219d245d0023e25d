"""A file source's micro-batches are bounded in bytes as well as lines: a line may hold a
batched message of many events (docs/events.md, "Batched messages")."""

from __future__ import annotations

from pathlib import Path

from drifthouse.stream.sources import FileSource


def test_micro_batches_are_bounded_in_bytes(tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl"
    path.write_bytes(b"".join(b"x" * 999 + b"\n" for _ in range(10)))
    sizes = [len(b) for b, _ in FileSource(path, batch_size=100, batch_bytes=2_500).batches()]
    assert sizes == [3, 3, 3, 1]  # the line that crosses the bound closes its batch
    offsets = [m.offset for b, _ in FileSource(path, batch_bytes=2_500).batches() for m in b]
    assert offsets == list(range(1, 11))
