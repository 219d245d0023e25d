"""Sources of raw messages: bounded files now, Kafka topics in :mod:`drifthouse.kafka`.

A source yields micro-batches of :class:`Message` in the order of their partition, which is the
order results are computed in. Files are one partition (``0``) whose offsets are line numbers.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from drifthouse.errors import SourceError, UsageError

__all__ = ["FileSource", "Message", "parse_source"]


@dataclass(frozen=True, slots=True)
class Message:
    """One raw input message and where it came from."""

    value: bytes
    partition: int
    offset: int
    topic: str = ""
    key: bytes | None = None


@dataclass(frozen=True)
class FileSource:
    """JSON Lines (optionally gzip-compressed), one event per line, read in micro-batches.

    Blank lines are skipped; every other line is a message whose offset is its 1-based line
    number, so dead letters can point back at it. A micro-batch holds at most ``batch_size``
    lines and, past its first line, at most ``batch_bytes`` bytes: lines holding batched
    messages (docs/events.md, "Batched messages") make micro-batches of a bounded number of
    events too.
    """

    path: Path
    batch_size: int = 4_096
    batch_bytes: int = 4 << 20

    def __post_init__(self) -> None:
        if not self.path.exists():
            # The path given on the command line (--source, --labels, --metric-events): a usage
            # mistake, exit code 2 (docs/cli.md).
            raise UsageError(
                f"file:{self.path}: no such file; check the path given to --source, --labels "
                "or --metric-events (relative paths start from the current directory)"
            )
        if not self.path.is_file():
            raise SourceError(f"input file {self.path} is not a file (a directory?)")

    def total_bytes(self) -> int:
        return self.path.stat().st_size

    def _open(self) -> IO[bytes]:
        if self.path.suffix == ".gz":
            return gzip.open(self.path, "rb")  # type: ignore[return-value]
        return self.path.open("rb", buffering=1 << 20)

    def batches(self) -> Iterator[tuple[list[Message], int]]:
        """Yield ``(messages, bytes read so far)``; the byte count drives progress bars."""
        topic = f"file:{self.path}"
        batch: list[Message] = []
        done = held = 0
        with self._open() as fh:
            for lineno, line in enumerate(fh, start=1):
                done += len(line)
                if lineno == 1 and line.startswith(_BOM):
                    line = line[len(_BOM) :]  # a UTF-8 byte-order mark: not part of the event
                stripped = line.strip()
                if not stripped:
                    continue
                batch.append(Message(stripped, 0, lineno, topic))
                held += len(line)
                if len(batch) >= self.batch_size or held >= self.batch_bytes:
                    yield batch, done
                    batch, held = [], 0
        if batch:
            yield batch, done


#: The UTF-8 byte-order mark some editors write at the start of a file.
_BOM = b"\xef\xbb\xbf"


def parse_source(spec: str) -> tuple[str, str]:
    """Split ``kafka:TOPIC`` or ``file:PATH`` into ``(kind, target)``."""
    kind, sep, target = spec.partition(":")
    if not sep or kind not in {"kafka", "file"} or not target:
        raise UsageError(
            f"--source must be 'kafka:TOPIC' or 'file:PATH' (got {spec!r}); e.g. --source file:events.jsonl"
        )
    return kind, target
