"""What each part of a model's window is compared with: its sketch's own reference (the
profile's), or the parts of a given model state, such as a trailing baseline (the merge of the
model's earlier windows; docs/statistics.md "Trailing baselines")."""

from __future__ import annotations

from dataclasses import dataclass

from drifthouse.detectors.base import NO_CONTEXT, Context
from drifthouse.detectors.model_state import ModelState
from drifthouse.errors import SketchError

__all__ = ["PartContexts", "part_contexts"]


@dataclass(frozen=True, slots=True)
class PartContexts:
    """The :class:`Context` each part of a :class:`ModelState` is evaluated with."""

    numeric: Context = NO_CONTEXT
    categorical: Context = NO_CONTEXT
    prediction: Context = NO_CONTEXT
    importance: Context = NO_CONTEXT


OWN = PartContexts()


def part_contexts(reference: object) -> PartContexts:
    """Each part compared with ``reference``'s, a :class:`ModelState` (``None``: with the
    sketches' own references)."""
    if reference is None:
        return OWN
    if not isinstance(reference, ModelState):
        raise SketchError(
            f"ModelSketch compares with a ModelState (got {type(reference).__name__})"
        )
    return PartContexts(
        numeric=Context(reference=reference.numeric),
        categorical=Context(reference=reference.categorical),
        prediction=Context(reference=reference.prediction)
        if reference.prediction is not None
        else NO_CONTEXT,
        importance=Context(reference=reference.importance)
        if reference.importance is not None
        else NO_CONTEXT,
    )
