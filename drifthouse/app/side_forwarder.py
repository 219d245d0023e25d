"""The worker's side inputs: labels and metric events, checked, forwarded to the merger.

Labels and metric events are read from their own topics (by faust's consumer), checked with
the configured decoders, and forwarded through the partials topic with their offsets, so that
the merger's whole input is one ordered log (see :mod:`drifthouse.kafka.partials`): each event
to the merge shard of its model (:func:`~drifthouse.kafka.shards.shard_of`). Their
offsets are committed once the partials topic has them; refused messages go to the topic's
dead letters.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from itertools import pairwise
from typing import Any

from drifthouse.events import EventDecoder
from drifthouse.kafka.partials import encode_side_events
from drifthouse.kafka.shards import shard_of
from drifthouse.logs import get_logger
from drifthouse.stream.dead_letters import DeadLetters
from drifthouse.stream.sources import Message

__all__ = ["SideForwarder", "ascending"]

log = get_logger("worker")

#: ``(topic, partition) -> offset to commit``
Commit = Callable[[dict[tuple[str, int], int]], Awaitable[bool]]


def ascending(msgs: list[Message]) -> list[Message]:
    """One partition's messages in offset order, each offset once (the merger takes side
    events by offset, and the commit goes past the last one)."""
    if all(a.offset < b.offset for a, b in pairwise(msgs)):
        return msgs
    unique = {m.offset: m for m in msgs}
    return [unique[o] for o in sorted(unique)]


class SideForwarder:
    """Check and forward batches of the labels and metrics topics (see the module docstring).

    ``kinds`` maps each topic to ``'labels'`` or ``'metrics'``; ``decoders`` maps those to
    their decoders; ``dead_letters`` maps a topic to where its refused messages go (without
    one they are counted and logged only); ``send(key, value, partition)`` publishes to a
    partition of the partials topic, one of ``shards``.
    """

    def __init__(
        self,
        kinds: Mapping[str, str],
        decoders: Mapping[str, EventDecoder[Any]],
        dead_letters: Mapping[str, DeadLetters],
        *,
        send: Callable[[bytes, bytes, int], Awaitable[None]],
        flush: Callable[[], Awaitable[None]],
        commit: Commit,
        publish_lock: asyncio.Lock,
        shards: int = 1,
    ) -> None:
        self.kinds = dict(kinds)
        self.decoders = dict(decoders)
        self.dead_letters = dict(dead_letters)
        self.send = send
        self.flush = flush
        self.commit = commit
        self.publish_lock = publish_lock
        self.shards = shards

    async def forward(self, groups: dict[tuple[str, int], list[Message]]) -> None:
        """Forward each ``(topic, partition)``'s messages, then commit past them."""
        loop = asyncio.get_running_loop()
        async with self.publish_lock:
            offsets: dict[tuple[str, int], int] = {}
            for (topic, p), msgs in sorted(groups.items()):
                msgs = ascending(msgs)
                kind = self.kinds[topic]
                ok, bad = self.decoders[kind].decode_batch([m.value for m in msgs])
                for pos, err in bad:
                    dead = self.dead_letters.get(topic)
                    if dead is not None:
                        dead.send(msgs[pos], err)
                    log.warning(
                        "worker.side_event_refused", topic=topic, partition=p,
                        offset=msgs[pos].offset, reason=err.reason,
                    )  # fmt: skip
                by_shard: dict[int, list[Message]] = {}
                for i, event in ok:
                    shard = shard_of(event.model, self.shards) if self.shards > 1 else 0
                    by_shard.setdefault(shard, []).append(msgs[i])
                for shard, good in sorted(by_shard.items()):
                    taken = [m.offset for m in good]
                    values = [m.value for m in good]
                    await self.send(b"", encode_side_events(kind, p, taken, values), shard)
                offsets[(topic, p)] = msgs[-1].offset + 1
            await self.flush()
            for dead in self.dead_letters.values():
                await loop.run_in_executor(None, dead.flush)
            await self.commit(offsets)
