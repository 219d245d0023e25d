"""A regression profile's loss model for direct loss estimation, from its labelled reference
columns (docs/model-performance.md, "Regression without labels").

The columns are encoded as windows encode them (numbers as float64, categories through
:class:`~drifthouse.detectors.categorical.CategoricalBlock`'s codes), then the loss model is
fitted (:func:`~drifthouse.detectors.dle_fit.fit_loss_model`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from drifthouse.detectors.categorical import CategoricalBlock
from drifthouse.detectors.dle import LossModel
from drifthouse.detectors.dle_fit import fit_loss_model
from drifthouse.detectors.reference import Profile

__all__ = ["reference_loss_model"]


def floats(column: np.ndarray | Sequence[Any]) -> npt.NDArray[np.float64]:
    """A column as float64, NaN where a value is missing or not a number."""
    if isinstance(column, np.ndarray) and column.dtype != object:
        return column.astype(np.float64)
    return np.asarray(
        [
            float(v)
            if isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool)
            else np.nan
            for v in column
        ],
        dtype=np.float64,
    )


def reference_loss_model(
    profile: Profile,
    features: Mapping[str, np.ndarray | Sequence[Any]],
    prediction: np.ndarray | Sequence[Any],
    label: np.ndarray | Sequence[Any],
) -> LossModel | None:
    """The loss model of a labelled regression reference with a numeric prediction, else
    ``None`` (fewer than :data:`~drifthouse.detectors.dle_fit.MIN_EVENTS` labelled rows)."""
    pred = profile.prediction
    if pred is None or pred.kind != "numeric" or profile.baselines.task != "regression":
        return None
    numeric = [(f.name, f.edges, f.psi_edges, floats(features[f.name])) for f in profile.numeric]
    block = CategoricalBlock(profile.categorical)
    categorical = [
        (f.name, len(f.categories), block.codes_for(j, features[f.name]))
        for j, f in enumerate(profile.categorical)
    ]
    return fit_loss_model(
        numeric=numeric,
        categorical=categorical,
        prediction_edges=pred.edges,
        prediction_coarse=pred.psi_edges,
        y_true=floats(label),
        y_pred=floats(prediction),
    )
