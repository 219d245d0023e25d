"""Sketches, statistics and reference profiles: the numeric heart of drifthouse.

Every sketch follows one protocol (:class:`drifthouse.detectors.base.Sketch`): ``empty()``,
``update(state, batch)``, ``merge(a, b)``, ``evaluate(state, context)``. States are values of
numpy arrays, serialisable with ``to_bytes``/``from_bytes`` and exactly mergeable. Profiles are
built by :mod:`drifthouse.profiles`.
"""

from __future__ import annotations

from drifthouse.detectors.base import MISSING, PRESENT, TYPE_ERROR, Context, Result, Sketch, State
from drifthouse.detectors.categorical import CategoricalBlock, CategoricalState
from drifthouse.detectors.numeric import NumericBatch, NumericBlock, NumericState, SketchPart
from drifthouse.detectors.quantiles import QuantileSketch, QuantileState
from drifthouse.detectors.reference import (
    PREDICTION,
    Baselines,
    FeatureProfile,
    Profile,
    ProfileSettings,
    category_key,
    prediction_score,
)
from drifthouse.detectors.status import StatusCounter, StatusState

__all__ = [
    "MISSING",
    "PREDICTION",
    "PRESENT",
    "TYPE_ERROR",
    "Baselines",
    "CategoricalBlock",
    "CategoricalState",
    "Context",
    "FeatureProfile",
    "NumericBatch",
    "NumericBlock",
    "NumericState",
    "Profile",
    "ProfileSettings",
    "QuantileSketch",
    "QuantileState",
    "Result",
    "Sketch",
    "SketchPart",
    "State",
    "StatusCounter",
    "StatusState",
    "category_key",
    "prediction_score",
]
