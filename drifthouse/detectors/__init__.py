"""Sketches, statistics and reference profiles: the numeric heart of drifthouse.

Every sketch follows one protocol (:class:`drifthouse.detectors.base.Sketch`): ``empty()``,
``update(state, batch)``, ``merge(a, b)``, ``evaluate(state, context)``. States are values of
numpy arrays, serialisable with ``to_bytes``/``from_bytes`` and exactly mergeable. Profiles are
built by :mod:`drifthouse.profiles`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from drifthouse.detectors.base import (
        MISSING,
        PRESENT,
        TYPE_ERROR,
        Context,
        Result,
        Sketch,
        State,
    )
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

# Where each public name lives. They are imported on first use, not with the package: the
# configuration imports `drifthouse.detectors.change`, and that must not load Numba and SciPy
# (the sketches' kernels and statistics) into `drifthouse check` or `drifthouse --help`.
_HOME = {
    **dict.fromkeys(
        ("MISSING", "PRESENT", "TYPE_ERROR", "Context", "Result", "Sketch", "State"), "base"
    ),
    **dict.fromkeys(("CategoricalBlock", "CategoricalState"), "categorical"),
    **dict.fromkeys(("NumericBatch", "NumericBlock", "NumericState", "SketchPart"), "numeric"),
    **dict.fromkeys(("QuantileSketch", "QuantileState"), "quantiles"),
    **dict.fromkeys(
        (
            "PREDICTION",
            "Baselines",
            "FeatureProfile",
            "Profile",
            "ProfileSettings",
            "category_key",
            "prediction_score",
        ),
        "reference",
    ),
    **dict.fromkeys(("StatusCounter", "StatusState"), "status"),
}


def __getattr__(name: str) -> object:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value


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
