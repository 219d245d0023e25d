"""How a reference's label column is read (docs/statistics.md, "Reference profiles"; the
task table of docs/model-performance.md, "Label metrics").

:func:`type_labels` decides what the labels are before any metric is computed:

- **Labels of a two-class ``{class: probability}`` prediction** name one of its two classes
  (compared as category keys: ``1``, ``1.0`` and ``"1"`` are one class) or are a 0/1 spelling
  (``1``, ``true``, ``yes``...: ``1`` is the positive class, the one whose probability is the
  prediction). They become 0/1. Labels that are neither are left out and counted; more than
  5% of them (the 95% rule of feature columns) is refused: the labels do not belong to the
  prediction.
- **Labels of a class prediction** (a class name, or ``{class: probability}`` with more
  classes) are classes, whatever their spelling: the model is a classifier.
- **Other labels** follow the feature rule: when at least 95% (``numeric_share``,
  :data:`~drifthouse.profiles.columns.NUMERIC_SHARE`) of the
  present labels are numbers (and not all 0/1 spellings), the labels are numbers and the other
  cells (a stray ``?``) are left out of every label baseline, counted and given as examples;
  below that share the labels are class names.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np

from drifthouse.categories import category_key
from drifthouse.detectors.reference import TYPE_ERROR_EXAMPLES
from drifthouse.errors import ProfileError

__all__ = ["LabelColumn", "two_classes", "type_labels"]
_POSITIVE = frozenset({"1", "1.0", "true", "yes", "positive", "pos"})
_NEGATIVE = frozenset({"0", "0.0", "false", "no", "negative", "neg"})

Task = Literal["auto", "classification", "regression"]


@dataclasses.dataclass(frozen=True, slots=True)
class LabelColumn:
    """A label column as scored: ``values`` (``None`` where missing or left out), the task the
    predictions' form decides (``task``, else the caller's), the cells left out
    (``type_error``, with up to :data:`TYPE_ERROR_EXAMPLES` ``examples``) and, for a two-class
    ``{class: probability}`` prediction, its classes (``binary_classes``: negative, positive)."""

    values: np.ndarray | Sequence[Any]
    task: Task
    type_error: int = 0
    examples: tuple[str, ...] = ()
    binary_classes: tuple[str, str] | None = None


def _is_number(v: object) -> bool:
    return isinstance(v, int | float | np.integer | np.floating) and not isinstance(
        v, bool | np.bool_
    )


def _key(v: object) -> str | None:
    key = category_key(v)
    return None if key is None else key.strip().lower()


def _examples(odd: Sequence[object]) -> tuple[str, ...]:
    found: dict[str, None] = {}
    for v in odd:
        text = ("true" if v else "false") if isinstance(v, bool | np.bool_) else str(v)
        found[text if len(text) <= 40 else text[:37] + "..."] = None
        if len(found) == TYPE_ERROR_EXAMPLES:
            break
    return tuple(found)


def two_classes(raw_predictions: Sequence[Any] | None) -> tuple[str, str] | None:
    """The (negative, positive) class keys when every prediction present is a
    ``{class: probability}`` of the same two classes, else ``None``. The positive class is
    the one :func:`~drifthouse.detectors.reference.prediction_score` takes the probability
    of: a ``1``/``true``/``yes``/``positive`` spelling, else the last by name."""
    if raw_predictions is None:
        return None
    keys: list[Any] | None = None
    seen: set[str | None] | None = None
    for p in raw_predictions:
        if p is None:
            continue
        if not isinstance(p, Mapping) or len(p) != 2:
            return None
        these = {category_key(k) for k in p}
        if seen is None:
            keys, seen = list(p), these
        elif these != seen:
            return None
    if keys is None or seen is None or None in seen or len(seen) != 2:
        return None
    pos = next((k for k in keys if str(k).strip().lower() in _POSITIVE), sorted(keys, key=str)[-1])
    neg = next(k for k in keys if k is not pos)
    return str(category_key(neg)), str(category_key(pos))


def _two_class_labels(
    label: np.ndarray | Sequence[Any], classes: tuple[str, str]
) -> tuple[list[int | None], list[object]]:
    """Labels as 0/1 against ``classes`` (negative, positive), and the ones that match none."""
    neg, pos = classes
    out: list[int | None] = []
    odd: list[object] = []
    for v in label:
        key = category_key(v)
        if key is None:
            out.append(None)
        elif key in (pos, neg):
            out.append(int(key == pos))
        elif key.strip().lower() in _POSITIVE or key.strip().lower() in _NEGATIVE:
            out.append(int(key.strip().lower() in _POSITIVE))
        else:
            out.append(None)
            odd.append(v)
    return out, odd


def type_labels(
    label: np.ndarray | Sequence[Any],
    *,
    raw_predictions: Sequence[Any] | None,
    prediction_kind: Literal["numeric", "categorical"] | None,
    task: Task,
    numeric_share: float,
) -> LabelColumn:
    """The label column as the profile scores it (see the module); raise
    :class:`ProfileError` when the labels of a two-class prediction match neither class."""
    classes = two_classes(raw_predictions) if task != "regression" else None
    if classes is not None:
        values, odd = _two_class_labels(label, classes)
        n_present = sum(1 for v in label if category_key(v) is not None)
        if odd and len(odd) > (1.0 - numeric_share) * n_present:
            got = ", ".join(f'"{e}"' for e in _examples(odd))
            first = next(i for i, v in enumerate(values) if v is None and category_key(label[i]))
            raise ProfileError(
                f"labels must name a class of the prediction "
                f'("{classes[0]}", "{classes[1]}") or be 0/1 (1 is "{classes[1]}"); '
                f"{len(odd)} of {n_present} labels match neither (the first in row {first + 1}), "
                f"got {got}; "
                "fix the label field or send the prediction with the labels' class names"
            )
        return LabelColumn(values, "classification", len(odd), _examples(odd), classes)
    if prediction_kind == "categorical" and task != "regression":
        return LabelColumn(label, "classification")  # class names: labels are classes
    if isinstance(label, np.ndarray) and label.dtype.kind in "iufb":
        return LabelColumn(label, task)  # a column of numbers (or bools): nothing to leave out
    present = [v for v in label if category_key(v) is not None]
    keys = {_key(v) for v in present}
    if not present or keys <= _POSITIVE | _NEGATIVE:
        return LabelColumn(label, task)
    numbers = sum(map(_is_number, present))
    if numbers == len(present) or numbers < numeric_share * len(present):
        return LabelColumn(label, task)
    odd = [v for v in present if not _is_number(v)]
    values = [v if _is_number(v) or category_key(v) is None else None for v in label]
    return LabelColumn(values, task, len(odd), _examples(odd))
