"""The automatic references a merge stage builds (:mod:`drifthouse.profiles.auto`): which
models' first span of traffic the watermark has passed, built from the windows held for it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from drifthouse.profiles.auto import AutoReference, build_auto_reference, span_end
from drifthouse.profiles.sketches import Sketches
from drifthouse.stream.stage import Key, Partial
from drifthouse.stream.windows import WindowSpec

__all__ = ["due_references"]


def due_references(
    pending: Mapping[tuple[int, int, Key], Mapping[int, Partial]],
    specs: Sequence[WindowSpec],
    first: int,
    sketches: Sketches,
    ready: int | None,
) -> list[AutoReference]:
    """The automatic references whose span the watermark ``ready`` has passed (all of them
    when ``None``), built from the ``pending`` windows of spec ``first`` in their span (every
    partition's share, in start, key and partition order)."""
    size = specs[first].size_ms
    starts: dict[str, int] = {}
    for k, start, key in pending:
        if k == first and start % size == 0 and sketches(key[0]).collects_raw:
            starts[key[0]] = min(starts.get(key[0], start), start)
    out: list[AutoReference] = []
    for model in sorted(starts):
        span = sketches(model).auto_span
        assert span is not None
        start, end = starts[model], span_end(starts[model], span, size)
        if ready is not None and ready < end:
            continue
        states = [
            parts[p].state
            for (k, s, key), parts in sorted(pending.items(), key=lambda t: (t[0][1], t[0][2]))
            if k == first and key[0] == model and start <= s < end and s % size == 0
            for p in sorted(parts)
        ]
        out.append(build_auto_reference(model, start, end, states, sketches))
    return out
