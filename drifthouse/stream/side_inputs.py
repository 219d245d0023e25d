"""Side inputs of a bounded run: labels and metric events released as event time reaches them.

A live worker reads the labels and metrics topics beside the predictions, so a label stamped
``t`` reaches the label join once the predictions have reached about ``t`` (wall-clock and event
time go together live). A replay reads the three inputs whole; :class:`HeldSide` gives it the
same interleaving: each message waits until the predictions' event time has passed its own,
then goes to the pipeline, right before the first prediction past it. The result then does not
depend on the span replayed, nor on how the input is cut into micro-batches: a label two hours
after its prediction joins it whether the file holds one day or four months.

Each partition of a side topic keeps its own order: a message waits behind an earlier one of
its partition even when its time has been passed (as a live consumer reads them). A message
without a readable time is released at once, to be dead-lettered with its error.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import msgspec

from drifthouse.events import parse_ts
from drifthouse.stream.sources import Message
from drifthouse.stream.windows import NO_TIME

__all__ = ["HeldSide", "event_time"]

T = TypeVar("T")


class _Ts(msgspec.Struct):
    ts: int | str | None = None


_TS = msgspec.json.Decoder(_Ts)


def event_time(message: Message) -> int:
    """The message's ``ts`` in epoch ms (the smallest int64 when it has none readable)."""
    try:
        ts = _TS.decode(message.value).ts
        if ts is None:
            return NO_TIME
        return ts if isinstance(ts, int) else parse_ts(ts)
    except Exception:
        return NO_TIME


@dataclass
class HeldSide(Generic[T]):
    """Items of one side topic (messages, or events decoded from them), per partition in its
    order, each with its event time."""

    partitions: dict[int, list[tuple[int, T]]] = field(default_factory=dict)
    _next: dict[int, int] = field(default_factory=dict)

    @classmethod
    def of(cls, items: Iterable[tuple[int, int, T]]) -> HeldSide[T]:
        """Hold ``(partition, event time, item)`` triples (in their partitions' order)."""
        held: HeldSide[T] = cls()
        for partition, ts, item in items:
            held.partitions.setdefault(partition, []).append((ts, item))
        return held

    @classmethod
    def of_messages(cls, messages: Iterable[Message]) -> HeldSide[Message]:
        """Hold raw messages, each at the time its ``ts`` says."""
        return HeldSide.of((m.partition, event_time(m), m) for m in messages)

    def next_time(self) -> int | None:
        """The smallest event time at the head of a partition (``None`` when all are out)."""
        heads = [
            items[self._next.get(p, 0)][0]
            for p, items in self.partitions.items()
            if self._next.get(p, 0) < len(items)
        ]
        return min(heads) if heads else None

    def release(self, before: int | None) -> list[T]:
        """Each partition's items up to its first one at or after ``before`` (all when
        ``None``), partitions in ascending order."""
        out: list[T] = []
        for p, items in sorted(self.partitions.items()):
            i = self._next.get(p, 0)
            while i < len(items) and (before is None or items[i][0] < before):
                out.append(items[i][1])
                i += 1
            self._next[p] = i
        return out
