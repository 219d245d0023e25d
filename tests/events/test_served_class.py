"""The served class comes beside the probabilities it is one of."""

from __future__ import annotations

import pytest

from drifthouse.events import encode_event
from tests.events.samples import PREDICTIONS, prediction


@pytest.mark.parametrize(
    ("probabilities", "served"),
    [
        pytest.param({"a": 0.4, "b": 0.4, "c": 0.2}, "b", id="class-name"),
        pytest.param({"0": 0.2, "1": 0.2, "2": 0.6}, 1, id="integer-class-id"),
        pytest.param({"1": 0.2, "2": 0.8}, "1.0", id="class-spelled-as-a-number"),
    ],
)
def test_the_served_class_comes_beside_the_probabilities(
    probabilities: dict[str, float], served: object
) -> None:
    event = PREDICTIONS.decode(prediction(prediction=probabilities, predicted_class=served))
    assert event.predicted_class == served
    assert b'"predicted_class"' in encode_event(event)
