"""The events of a pane kept as they came, for a model whose reference is not built yet.

A model on an automatic reference (``reference: auto``) has no feature layout until its first
span of traffic is profiled, so a partition stage cannot sketch its features yet. It keeps each
pane's events instead (a :class:`RawLeaf`: the events in arrival order, plus the pane's late
and refused counts), and a merge of two such states keeps both sides as a pair, so the tree
records every merge in the order it was made. Once the reference exists, replaying the tree
(:meth:`~drifthouse.detectors.model_sketch.ModelSketch.resolve`: each leaf sketched in one update,
each pair merged) gives bit for bit the state the stage would have built had it known the
layout from the start: the sketches' updates are sequential per event, and the merges are the
same merges in the same order.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from drifthouse.errors import SketchError
from drifthouse.events import PredictionEvent

__all__ = [
    "RawLeaf",
    "RawTree",
    "decode_events",
    "decode_tree",
    "encode_events",
    "encode_tree",
    "leaves",
    "same_tree",
]


@dataclass(eq=False)
class RawLeaf:
    """One pane's events (msgpack-encoded :class:`PredictionEvent`, arrival order), and the
    late and refused events counted in it."""

    events: list[bytes] = field(default_factory=list)
    late: int = 0
    invalid: int = 0


RawTree = RawLeaf | tuple["RawTree", "RawTree"]

_ENCODE = msgspec.msgpack.Encoder().encode
_DECODE_EVENT = msgspec.msgpack.Decoder(PredictionEvent).decode
_DECODE_ANY = msgspec.msgpack.Decoder().decode


def encode_events(events: Sequence[PredictionEvent]) -> list[bytes]:
    """Each decoded event, encoded exactly (floats, ints, strings and booleans round-trip)."""
    return [_ENCODE(e) for e in events]


def decode_events(data: Sequence[bytes]) -> list[PredictionEvent]:
    return [_DECODE_EVENT(d) for d in data]


def leaves(tree: RawTree) -> Iterator[RawLeaf]:
    """The leaves, left to right (the panes in the order they were merged)."""
    stack: list[RawTree] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, RawLeaf):
            yield node
        else:
            stack.append(node[1])
            stack.append(node[0])


def _to_wire(tree: RawTree) -> list[Any]:
    if isinstance(tree, RawLeaf):
        return [0, tree.events, tree.late, tree.invalid]
    return [1, _to_wire(tree[0]), _to_wire(tree[1])]


def _from_wire(wire: Any) -> RawTree:
    if not isinstance(wire, list) or not wire or wire[0] not in (0, 1):
        raise SketchError(f"not a raw pane tree (got {type(wire).__name__})")
    if wire[0] == 0:
        return RawLeaf(list(wire[1]), int(wire[2]), int(wire[3]))
    return (_from_wire(wire[1]), _from_wire(wire[2]))


def encode_tree(tree: RawTree) -> bytes:
    return zlib.compress(_ENCODE(_to_wire(tree)), 1)


def decode_tree(data: bytes) -> RawTree:
    try:
        return _from_wire(_DECODE_ANY(zlib.decompress(data)))
    except (msgspec.DecodeError, zlib.error, IndexError, TypeError, ValueError) as exc:
        raise SketchError(f"not a serialised raw pane tree: {exc}") from exc


def same_tree(a: RawTree | None, b: RawTree | None) -> bool:
    """Equality of shape, events and counts."""
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, RawLeaf) or isinstance(b, RawLeaf):
        return (
            isinstance(a, RawLeaf)
            and isinstance(b, RawLeaf)
            and (a.events, a.late, a.invalid) == (b.events, b.late, b.invalid)
        )
    return same_tree(a[0], b[0]) and same_tree(a[1], b[1])
