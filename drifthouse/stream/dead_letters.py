"""Dead letters: bad or late input, kept with the reason, never dropped (docs/events.md).

A file source writes its dead letters beside it, to ``PATH.dlq`` (JSON Lines: the raw input and
the error). A Kafka source writes them to ``<topic>.dlq`` with the error in headers (see
:mod:`drifthouse.kafka`). Both implement :class:`DeadLetters`.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Protocol

import msgspec

from drifthouse.errors import DecodeError
from drifthouse.files import open_private
from drifthouse.stream.sources import Message

__all__ = ["DeadLetter", "DeadLetters", "FileDeadLetters", "MemoryDeadLetters"]


class DeadLetter(msgspec.Struct, frozen=True):
    """One dead-lettered message: where it came from, the raw input and why it was refused."""

    topic: str
    partition: int
    offset: int
    reason: str
    path: str
    error: str
    raw: str

    @classmethod
    def of(cls, message: Message, error: DecodeError) -> DeadLetter:
        return cls(
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            reason=error.reason,
            path=error.path,
            error=str(error),
            raw=message.value.decode("utf-8", errors="replace"),
        )


class DeadLetters(Protocol):
    """Where refused messages go. ``flush`` returns once they are durable."""

    def send(self, message: Message, error: DecodeError) -> None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


@dataclass
class MemoryDeadLetters:
    """Keeps dead letters in a list: for tests and the demo."""

    letters: list[DeadLetter] = field(default_factory=list)

    def send(self, message: Message, error: DecodeError) -> None:
        self.letters.append(DeadLetter.of(message, error))

    def flush(self) -> None:
        return None

    def close(self) -> None:
        return None

    def reasons(self) -> Counter[str]:
        return Counter(d.reason for d in self.letters)


@dataclass
class FileDeadLetters:
    """Appends dead letters as JSON Lines to a file (``PATH.dlq`` beside a file source).

    The file is created on the first dead letter only, and truncated when the writer opens it,
    so a rerun over the same input leaves exactly its own dead letters.
    """

    path: Path
    count: int = 0
    _fh: IO[bytes] | None = field(default=None, repr=False)
    _encoder: msgspec.json.Encoder = field(default_factory=msgspec.json.Encoder, repr=False)

    def __post_init__(self) -> None:
        if self.path.exists():
            self.path.unlink()

    def send(self, message: Message, error: DecodeError) -> None:
        if self._fh is None:
            self._fh = open_private(self.path, "ab")
        self._fh.write(self._encoder.encode(DeadLetter.of(message, error)) + b"\n")
        self.count += 1

    def flush(self) -> None:
        if self._fh is not None:
            self._fh.flush()
            os.fsync(self._fh.fileno())

    def close(self) -> None:
        if self._fh is not None:
            self.flush()
            self._fh.close()
            self._fh = None
