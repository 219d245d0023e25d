"""A labelled classifier's profile carries performance estimation's calibration; profiles
without one (older files, regression, no labels) still load."""

from __future__ import annotations

import json

import numpy as np
import pytest

from drifthouse.config import MetricsConfig
from drifthouse.detectors.reference import Profile
from drifthouse.errors import ProfileError
from drifthouse.profiles.build import profile_from_events
from tests.detectors.strategies import make_profile

RNG = np.random.default_rng(5)
N = 2_000


def _binary() -> Profile:
    score = RNG.uniform(size=N) ** 2  # under-confident for label 1: calibration needed
    label = (RNG.uniform(size=N) < np.sqrt(score)).astype(int)
    return make_profile({"x": RNG.normal(size=N)}, prediction=score, label=label)


def test_binary_profile_has_a_calibration_that_round_trips() -> None:
    p = _binary()
    cal = p.calibration
    assert cal is not None
    assert cal.classes == []
    assert cal.maps[0] is not None
    assert cal.events == N
    assert set(cal.sampling) == {"accuracy", "precision", "recall", "f1", "roc_auc"}
    assert Profile.from_json(p.to_json()) == p


def test_a_profile_without_calibration_still_loads() -> None:
    doc = json.loads(_binary().to_json())
    del doc["calibration"]
    assert Profile.from_json(json.dumps(doc)).calibration is None


def test_a_bad_calibration_is_refused_with_its_path() -> None:
    doc = json.loads(_binary().to_json())
    doc["calibration"]["maps"][0]["y"] = doc["calibration"]["maps"][0]["y"][::-1]
    with pytest.raises(ProfileError, match=r"calibration.maps\[0\]"):
        Profile.from_json(json.dumps(doc))


@pytest.mark.parametrize(
    ("prediction", "label"),
    [
        pytest.param(RNG.normal(size=N) * 10, RNG.normal(size=N), id="regression"),
        pytest.param(RNG.uniform(size=N), None, id="no-labels"),
        pytest.param(RNG.uniform(size=50), (RNG.uniform(size=50) < 0.5) * 1, id="too-few"),
        pytest.param(
            list(RNG.choice(["a", "b", "c"], N)),
            list(RNG.choice(["a", "b", "c"], N)),
            id="classes-only",
        ),
    ],
)
def test_no_calibration_without_labelled_probabilities(prediction: object, label: object) -> None:
    n = len(prediction)  # type: ignore[arg-type]
    p = make_profile({"x": RNG.normal(size=n)}, prediction=prediction, label=label)
    assert p.calibration is None


def test_multiclass_events_give_a_calibration_per_class() -> None:
    rows = []
    for _ in range(600):
        logits = RNG.normal(size=3)
        pr = np.exp(logits) / np.exp(logits).sum()
        truth = ["cat", "dog", "eel"][int(RNG.choice(3, p=pr))]
        rows.append(
            {
                "features": {"x": float(logits[0])},
                "prediction": {"dog": float(pr[1]), "cat": float(pr[0]), "eel": float(pr[2])},
                "label": truth,
            }
        )
    p = profile_from_events(
        rows,
        model="m",
        model_version="1",
        created_at="2026-01-01T00:00:00Z",
        source_digest="0" * 64,
        settings=MetricsConfig(),
    )
    assert p.calibration is not None
    assert p.calibration.classes == ["cat", "dog", "eel"]
    assert len(p.calibration.maps) == 3
    assert len(p.calibration.sampling["f1"]) == 3
    assert len(p.calibration.sampling["accuracy"]) == 1
