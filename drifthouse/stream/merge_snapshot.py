"""The merge stage's snapshot: what a restarted :class:`~drifthouse.stream.merge.MergeStage`
needs beside the partials it reads again (docs/architecture.md)."""

from __future__ import annotations

import msgspec

from drifthouse.errors import SketchError

__all__ = ["MergeSnapshot", "decode_snapshot", "encode_snapshot"]


class MergeSnapshot(msgspec.Struct, array_like=True):
    labels: bytes | None
    metric_events: bytes | None
    changes: bytes | None
    frontier: list[tuple[str, int]]
    # What derived windows owe (drifthouse.stream.derived).
    derived: bytes | None = None
    # Automatic references: (model, span start, span end, profile JSON or None).
    auto: list[tuple[str, int, int, bytes | None]] | None = None
    shadows: bytes | None = None  # drifthouse.stream.shadow


encode_snapshot = msgspec.msgpack.Encoder().encode
_DECODE = msgspec.msgpack.Decoder(MergeSnapshot).decode


def decode_snapshot(data: bytes) -> MergeSnapshot:
    """Read back :func:`encode_snapshot`'s bytes (raise :class:`SketchError` otherwise)."""
    try:
        return _DECODE(data)
    except msgspec.DecodeError as exc:
        raise SketchError(f"not a merge-stage snapshot: {exc}") from exc
