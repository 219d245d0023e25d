"""The served class of a prediction (docs/events.md, ``predicted_class``): one of its classes.

A prediction given as class -> probability may name the class the model served beside it;
that class must be one of the prediction's, compared as categories (``2`` names class ``"2"``).
Both decode paths, events built in Python and reference profiles check it here.
"""

from __future__ import annotations

from drifthouse.categories import category_key
from drifthouse.errors import DecodeError
from drifthouse.events.describe import describe, preview

__all__ = ["check_served_class"]


def check_served_class(prediction: object, served: int | str) -> None:
    """Raise ``schema`` at ``$.predicted_class`` unless ``served`` is one of the classes.

    A :class:`DecodeError` (not a ``ValueError``) passes through msgspec's decoder unchanged,
    so both decode paths and events built in Python say the same.

    >>> check_served_class({"fraud": 0.8, "ok": 0.2}, "fraud")
    >>> check_served_class({"1": 0.8, "0": 0.2}, 1)
    >>> check_served_class(0.8, "fraud")
    Traceback (most recent call last):
    ...
    drifthouse.errors.DecodeError: expected `predicted_class` only beside a `prediction` of class -> probability; got it beside number 0.8 - at `$.predicted_class`
    """
    if isinstance(prediction, dict) and prediction:
        if served in prediction:
            return
        key = category_key(served)
        if any(category_key(c) == key for c in prediction):
            return
        raise DecodeError(
            "schema",
            "$.predicted_class",
            f"expected one of the classes of `$.prediction` ({preview(list(prediction))}); "
            f"got {describe(served)}",
        )
    raise DecodeError(
        "schema",
        "$.predicted_class",
        f"expected `predicted_class` only beside a `prediction` of class -> probability; "
        f"got it beside {'no prediction' if prediction is None else describe(prediction)}",
    )
