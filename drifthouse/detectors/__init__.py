"""Sketches, statistics and reference profiles: the numeric heart of drifthouse.

Every sketch follows one protocol (:mod:`drifthouse.detectors.base`): ``empty()``,
``update(state, batch...)``, ``merge(a, b)``, ``evaluate(reference, current)``. States are
values of numpy arrays, serialisable with ``to_bytes``/``from_bytes`` and exactly mergeable.
"""

from __future__ import annotations

from drifthouse.detectors.base import Result, State
from drifthouse.detectors.categorical import CategoricalBlock, CategoricalState
from drifthouse.detectors.numeric import (
    MISSING,
    PRESENT,
    TYPE_ERROR,
    NumericBlock,
    NumericState,
    SketchPart,
)
from drifthouse.detectors.quantiles import QuantileSketch, QuantileState
from drifthouse.detectors.reference import (
    PREDICTION,
    Baselines,
    FeatureProfile,
    Profile,
    ProfileSettings,
    build_profile,
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
    "FeatureProfile",
    "NumericBlock",
    "NumericState",
    "Profile",
    "ProfileSettings",
    "QuantileSketch",
    "QuantileState",
    "Result",
    "SketchPart",
    "State",
    "StatusCounter",
    "StatusState",
    "build_profile",
    "category_key",
    "prediction_score",
]
