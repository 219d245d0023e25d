"""A window's drift attribution across a model's sketches (docs/statistics.md, "Drift
attribution"): the top bins of each feature and of the prediction, and each segment value's share
of the prediction's drift, from the merged window state the other metrics come from."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from drifthouse.detectors.base import Result
from drifthouse.detectors.model_reference import part_contexts
from drifthouse.detectors.model_sketch import (
    EVENTS,
    PREDICTION_FEATURE,
    ModelSketch,
    ModelState,
    SegmentState,
)

__all__ = ["AttributionSettings", "attribute"]


class AttributionSettings(Protocol):
    """How many attribution rows a window writes (the configuration's ``metrics`` has them)."""

    @property
    def attribution_top_k(self) -> int: ...
    @property
    def attribution_min_psi(self) -> float: ...


def attribute(
    sketch: ModelSketch,
    state: ModelState,
    segments: Sequence[tuple[str, SegmentState]],
    settings: AttributionSettings,
    reference: ModelState | None = None,
) -> list[tuple[str, Result]]:
    """``(segment, row)`` of a window's drift attribution: per feature (and the prediction) whose
    PSI reaches ``attribution_min_psi``, its ``attribution_top_k`` bins (segment ``''``), and each
    of ``segments`` (:meth:`ModelSketch.capped_segments`) with its share of the prediction's
    drift and of each such feature's. None when ``attribution_top_k`` is 0 or the window has no
    events."""
    k, floor = settings.attribution_top_k, settings.attribution_min_psi
    if k <= 0 or not int(state.counters[EVENTS]):
        return []
    ref = part_contexts(reference)  # compared with reference's parts when given
    out = sketch.numeric.contributions(state.numeric, top_k=k, min_psi=floor, context=ref.numeric)
    out += sketch.categorical.contributions(
        state.categorical, top_k=k, min_psi=floor, context=ref.categorical
    )
    if sketch.prediction is not None and state.prediction is not None:
        out += sketch.prediction.contributions(
            state.prediction,  # type: ignore[arg-type]
            top_k=k,
            min_psi=floor,
            context=ref.prediction,
        )
    rows = [("", r) for r in out]
    # The drifted features (their PSI reached the floor: they have bins), by segment value.
    drifted = sorted(
        {r.feature for r in out if r.metric == "psi_contribution"} - {PREDICTION_FEATURE}
    )
    n_ref = {r.feature: r.n_ref for r in out}
    rows += sketch.segment.prediction_shares(
        state.prediction, segments, top_k=k, min_psi=floor, context=ref.prediction
    )
    return rows + sketch.segment.feature_shares(drifted, segments, top_k=k, n_ref=n_ref)
