"""What a merge stage has taken of each of its inputs (``records:3``, ``labels:0``): the last
offset per input, so that a merge resumed from a snapshot skips what a re-read partition sends
again."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["take_fresh"]


def take_fresh(frontiers: dict[str, int], stream: str, offsets: Sequence[int]) -> list[int]:
    """Positions in ``offsets`` beyond what ``stream`` has taken (``frontiers``); taken now.

    Offsets come in ascending order from a worker, but an offset is taken once whatever the
    order: one at or below the highest taken so far, in this message or before, is left out,
    and the frontier never moves back. The events of one batched message share its offset and
    come together: a run of one offset just taken is taken whole.
    """
    if not offsets:
        return []
    keep: list[int] = []
    last = frontiers.get(stream, -1)
    for i, offset in enumerate(offsets):
        if offset > last or (offset == last and keep and keep[-1] == i - 1):
            keep.append(i)
            last = offset
    frontiers[stream] = last
    return keep
