"""Reference profiles built from columns (docs/statistics.md, "Reference profiles").

:func:`build_profile` profiles each feature column (:func:`build_feature_profile`: quantile
grids for numeric features, top categories for categorical ones) and the model-level baselines:
latency percentiles, error rates, label metrics and feature importance.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import msgspec
import numpy as np

from drifthouse.categories import category_key
from drifthouse.detectors import labels as _labels
from drifthouse.detectors.calibration import Calibration
from drifthouse.detectors.importance import reference_importance
from drifthouse.detectors.reference import (
    PREDICTION,
    TYPE_ERROR_EXAMPLES,
    Baselines,
    EmbeddingProfile,
    FeatureProfile,
    Kind,
    Profile,
    ProfileSettings,
    ProfileSettingsLike,
)
from drifthouse.errors import ProfileError
from drifthouse.profiles.calibration import reference_calibration
from drifthouse.profiles.embeddings import build_embedding_profile, is_embedding_column
from drifthouse.profiles.labels import LabelColumn, type_labels
from drifthouse.profiles.loss_model import reference_loss_model
from drifthouse.profiles.multivariate import fit_multivariate

__all__ = [
    "KNOWN_OTHER_CAP",
    "NUMERIC_SHARE",
    "build_feature_profile",
    "build_profile",
    "quantile_edges",
]

#: How many reference categories beyond the top list are remembered, to tell "rare in the
#: reference" from "never seen" (``new_category``).
KNOWN_OTHER_CAP = 10_000
#: A column is numeric when at least this share of its present (non-null) values are numbers;
#: the others are counted as ``type_error``, as a window counts a string in a numeric feature.
NUMERIC_SHARE = 0.95


def _finite_or_none(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def quantile_edges(
    values: np.ndarray, *, ks_bins: int, psi_bins: int
) -> tuple[np.ndarray, np.ndarray]:
    """Fine edges at ``k / ks_bins`` and PSI edges at ``k / psi_bins`` drawn from the same grid.

    ``values`` are finite; both results are deduplicated and sorted. When ``ks_bins`` is not
    a multiple of ``psi_bins`` the PSI edge is the fine edge nearest ``k / psi_bins``.
    """
    if values.size == 0:
        return np.empty(0), np.empty(0)
    qs = np.arange(1, ks_bins) / ks_bins
    fine_raw = np.quantile(values, qs)
    pick = np.unique(np.rint(np.arange(1, psi_bins) * ks_bins / psi_bins).astype(np.int64) - 1)
    pick = pick[(pick >= 0) & (pick < fine_raw.size)]
    return np.unique(fine_raw), np.unique(fine_raw[pick])


def _numeric_profile(
    name: str,
    values: np.ndarray,
    missing: int,
    non_finite: int,
    s: ProfileSettings,
    odd: Sequence[Any] = (),
) -> FeatureProfile:
    fine, coarse = quantile_edges(values, ks_bins=s.ks_bins, psi_bins=s.psi_bins)
    counts = np.bincount(np.searchsorted(fine, values, side="right"), minlength=fine.size + 1)
    psi_counts = np.bincount(
        np.searchsorted(coarse, values, side="right"), minlength=coarse.size + 1
    )
    total = values.size + missing + non_finite + len(odd)
    n = values.size
    mean = std = None
    if n:
        # Scaled, so that huge but finite values do not overflow the sum of squares.
        scale = float(np.max(np.abs(values))) or 1.0
        mean = _finite_or_none(float(np.mean(values / scale)) * scale)
        std = _finite_or_none(float(np.std(values / scale)) * scale)
    return FeatureProfile(
        name=name,
        kind="numeric",
        count=int(n),
        missing=int(missing),
        missing_rate=missing / total if total else 0.0,
        non_finite=int(non_finite),
        type_error=len(odd),
        type_error_examples=_examples(odd),
        edges=[float(x) for x in fine],
        counts=[int(c) for c in counts],
        psi_edges=[float(x) for x in coarse],
        psi_counts=[int(c) for c in psi_counts],
        min=float(values.min()) if n else None,
        max=float(values.max()) if n else None,
        mean=mean,
        std=std,
    )


def _categorical_profile(name: str, keys: list[str | None], s: ProfileSettings) -> FeatureProfile:
    present = [k for k in keys if k is not None]
    missing = len(keys) - len(present)
    uniq, counts = (
        np.unique(np.asarray(present, dtype=object).astype(str), return_counts=True)
        if present
        else (np.empty(0, dtype=str), np.empty(0, dtype=np.int64))
    )
    # Most frequent first; ties by name, so the order is deterministic.
    order = sorted(range(len(uniq)), key=lambda i: (-int(counts[i]), str(uniq[i])))
    top = order[: s.top_categories]
    rest = order[s.top_categories :]
    return FeatureProfile(
        name=name,
        kind="categorical",
        count=len(present),
        missing=missing,
        missing_rate=missing / len(keys) if keys else 0.0,
        categories=[str(uniq[i]) for i in top],
        category_counts=[int(counts[i]) for i in top],
        other_count=int(sum(int(counts[i]) for i in rest)),
        known_other=[str(uniq[i]) for i in rest[:KNOWN_OTHER_CAP]],
    )


def _example(value: object, limit: int = 40) -> str:
    text = ("true" if value else "false") if isinstance(value, bool | np.bool_) else str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _examples(odd: Sequence[Any]) -> list[str]:
    """Up to :data:`TYPE_ERROR_EXAMPLES` distinct odd values, as text, in order of appearance."""
    found: dict[str, None] = {}
    for v in odd:
        found[_example(v)] = None
        if len(found) == TYPE_ERROR_EXAMPLES:
            break
    return list(found)


def _is_number(v: object) -> bool:
    return isinstance(v, int | float | np.integer | np.floating) and not isinstance(
        v, bool | np.bool_
    )


_NUMBER_TYPES = frozenset({int, float, np.float64, np.float32, np.int64, np.int32, type(None)})


def _kind_of(column: np.ndarray | Sequence[Any]) -> Literal["numeric", "categorical"]:
    if isinstance(column, np.ndarray) and column.dtype != object:
        return "numeric" if column.dtype.kind in "iuf" else "categorical"
    types = set(map(type, column))
    if types <= _NUMBER_TYPES:  # the common case, checked at C speed
        return "numeric" if types - {type(None)} else "categorical"
    seen = [v for v in column if v is not None]
    numbers = sum(map(_is_number, seen))
    # A few odd cells (a "?" among 60,000 numbers) do not make a column categorical: it would
    # then see every later value as a new category.
    if seen and numbers >= NUMERIC_SHARE * len(seen):
        return "numeric"
    return "categorical"


def build_feature_profile(
    name: str,
    column: np.ndarray | Sequence[Any],
    settings: ProfileSettings,
    *,
    kind: Literal["numeric", "categorical"] | None = None,
) -> FeatureProfile:
    """Profile one column.

    Numeric columns are float arrays (``NaN`` is missing) or sequences of numbers with
    ``None`` for missing (then ``NaN``/``inf`` count as ``non_finite``). A sequence is numeric when
    at least :data:`NUMERIC_SHARE` (95%) of its present values are numbers (bools are not); its
    other values are counted as ``type_error``. Bool and string columns, and mixed ones below
    that share, are categorical (see :func:`category_key`).
    """
    kind = kind or _kind_of(column)
    if kind == "numeric":
        if isinstance(column, np.ndarray) and column.dtype != object:
            arr = column.astype(np.float64, copy=False)
            finite = np.isfinite(arr)
            missing = int(np.isnan(arr).sum())
            non_finite = int((~finite).sum()) - missing
            odd: list[Any] = []
        else:
            present = [v for v in column if v is not None]
            missing = len(column) - len(present)
            if set(map(type, present)) <= _NUMBER_TYPES:
                numbers, odd = present, []
            else:
                numbers = [v for v in present if _is_number(v)]
                odd = [v for v in present if not _is_number(v)]
            arr = np.asarray(numbers, dtype=np.float64)
            finite = np.isfinite(arr)
            non_finite = int((~finite).sum())
        return _numeric_profile(name, arr[finite], missing, non_finite, settings, odd)
    return _categorical_profile(name, [category_key(v) for v in column], settings)


def build_profile(
    *,
    model: str,
    model_version: str,
    created_at: str,
    source_digest: str,
    settings: ProfileSettingsLike,
    features: Mapping[str, np.ndarray | Sequence[Any]],
    prediction: np.ndarray | Sequence[Any] | None = None,
    label: np.ndarray | Sequence[Any] | None = None,
    latency_ms: np.ndarray | Sequence[Any] | None = None,
    status: np.ndarray | Sequence[Any] | None = None,
    threshold: float = 0.5,
    task: Literal["auto", "classification", "regression"] = "auto",
    kinds: Mapping[str, Kind] | None = None,
    raw_predictions: Sequence[Any] | None = None,
) -> Profile:
    """Build a profile from columns of equal length.

    ``kinds`` forces the kind of the features it names (``{"zip": "categorical"}``); the others
    are inferred (:func:`build_feature_profile`). A column of arrays (a 2-D array, or values
    that are mostly lists) not named in ``kinds`` is an embedding feature
    (:func:`~drifthouse.profiles.embeddings.build_embedding_profile`).

    ``prediction`` is a numeric score (probability of the positive class, or a regression
    output) or class labels. With ``label`` the label metrics of the reference become baselines
    and a calibration (``raw_predictions`` as sent; :mod:`drifthouse.profiles.calibration`).
    Latency percentiles use ``np.quantile(..., method='lower')``, the definition
    :class:`~drifthouse.detectors.quantiles.QuantileSketch` estimates.
    """
    s = ProfileSettings.of(settings)
    events = _check_lengths(
        features, prediction=prediction, label=label, latency_ms=latency_ms, status=status
    )
    kinds = kinds or {}
    unknown = [n for n in kinds if n not in features]
    if unknown:
        raise ProfileError(
            f"kinds name features that are not in the data: {unknown} (features: {list(features)})"
        )
    features, embeddings = _split_embeddings(features, kinds)
    feats = [
        build_feature_profile(name, col, s, kind=kinds.get(name)) for name, col in features.items()
    ]
    pred = build_feature_profile(PREDICTION, prediction, s) if prediction is not None else None
    if pred is not None and pred.type_error and prediction is not None:
        # A score with a few odd cells: the baselines skip those rows, as windows do.
        prediction = [v if _is_number(v) else None for v in prediction]
    if label is not None and prediction is not None:
        label, typed = _typed_labels(label, prediction, pred, raw_predictions, threshold, task)
    else:
        typed = None
    baselines = _baselines(events, typed, threshold, latency_ms, status)
    resolved_task = baselines.task
    profile = Profile(
        model=model,
        model_version=model_version,
        created_at=created_at,
        source_digest=source_digest,
        settings=s,
        features=feats,
        prediction=pred,
        baselines=baselines,
        calibration=_calibration(prediction, label, raw_predictions, threshold, resolved_task),
        embeddings=embeddings,
    ).validate()
    if prediction is not None and pred is not None and pred.kind == "numeric" and feats:
        importance = reference_importance(profile, features, prediction)
        profile = msgspec.structs.replace(
            profile, baselines=msgspec.structs.replace(baselines, importance=importance)
        )
    loss = None
    if resolved_task == "regression" and prediction is not None and label is not None:
        loss = reference_loss_model(profile, features, prediction, label)  # DLE
    return msgspec.structs.replace(
        profile, multivariate=fit_multivariate(profile, features), loss_model=loss
    )


def _split_embeddings(
    features: Mapping[str, np.ndarray | Sequence[Any]], kinds: Mapping[str, Kind]
) -> tuple[dict[str, np.ndarray | Sequence[Any]], list[EmbeddingProfile]]:
    """The columns that are not embeddings, and the profiles of those that are (columns of
    arrays not named in ``kinds``)."""
    arrays = {n for n, c in features.items() if n not in kinds and is_embedding_column(c)}
    return (
        {n: c for n, c in features.items() if n not in arrays},
        [build_embedding_profile(n, c) for n, c in features.items() if n in arrays],
    )


@dataclasses.dataclass(frozen=True, slots=True)
class _LabelBaselines:
    """The label column as typed (:mod:`drifthouse.profiles.labels`) and its metrics."""

    column: LabelColumn
    task: Literal["classification", "regression"]
    metrics: dict[str, float]


def _typed_labels(
    label: np.ndarray | Sequence[Any],
    prediction: np.ndarray | Sequence[Any],
    pred: FeatureProfile | None,
    raw_predictions: Sequence[Any] | None,
    threshold: float,
    task: Literal["auto", "classification", "regression"],
) -> tuple[np.ndarray | Sequence[Any], _LabelBaselines]:
    """The labels as scored (left-out cells ``None``) and their baselines."""
    typed = type_labels(
        label,
        raw_predictions=raw_predictions,
        prediction_kind=pred.kind if pred is not None else None,
        task=task,
        numeric_share=NUMERIC_SHARE,
    )
    resolved, metrics = _labels.reference_metrics(
        y_true=typed.values, y_pred=prediction, threshold=threshold, task=typed.task
    )
    return typed.values, _LabelBaselines(typed, resolved, metrics)


def _baselines(
    events: int,
    labels: _LabelBaselines | None,
    threshold: float,
    latency_ms: np.ndarray | Sequence[Any] | None,
    status: np.ndarray | Sequence[Any] | None,
) -> Baselines:
    """The model-level baselines of the reference data."""
    lat, err = _latency_baselines(latency_ms), _status_baselines(status)
    column = labels.column if labels is not None else None
    return Baselines(
        events=events,
        task=labels.task if labels is not None else None,
        threshold=threshold,
        labels=labels.metrics if labels is not None else {},
        label_type_error=column.type_error if column is not None else 0,
        label_type_error_examples=list(column.examples) if column is not None else [],
        binary_classes=list(column.binary_classes or ()) if column is not None else [],
        latency_p50=lat.get("latency_p50"),
        latency_p95=lat.get("latency_p95"),
        latency_p99=lat.get("latency_p99"),
        error_rate_4xx=err.get("error_rate_4xx"),
        error_rate_5xx=err.get("error_rate_5xx"),
    )


def _calibration(
    prediction: np.ndarray | Sequence[Any] | None,
    label: np.ndarray | Sequence[Any] | None,
    raw_predictions: Sequence[Any] | None,
    threshold: float,
    task: str | None,
) -> Calibration | None:
    """A labelled classifier's calibration for performance estimation, else ``None``."""
    if label is None or prediction is None or task != "classification":
        return None
    return reference_calibration(
        prediction=prediction, label=label, raw_predictions=raw_predictions, threshold=threshold
    )


def _check_lengths(
    features: Mapping[str, np.ndarray | Sequence[Any]], **extras: np.ndarray | Sequence[Any] | None
) -> int:
    """The columns' common length (0 without any); raise :class:`ProfileError` if they differ."""
    lengths = {name: len(col) for name, col in features.items()}
    lengths.update({name: len(col) for name, col in extras.items() if col is not None})
    if len(set(lengths.values())) > 1:
        raise ProfileError(f"columns must have equal lengths (got {lengths})")
    return int(next(iter(lengths.values()), 0))


def _latency_baselines(latency_ms: np.ndarray | Sequence[Any] | None) -> dict[str, float]:
    if latency_ms is None:
        return {}
    arr = np.asarray([np.nan if v is None else v for v in latency_ms], dtype=np.float64)
    arr = arr[np.isfinite(arr)]
    if not arr.size:
        return {}
    p50, p95, p99 = np.quantile(arr, [0.5, 0.95, 0.99], method="lower")
    return {"latency_p50": float(p50), "latency_p95": float(p95), "latency_p99": float(p99)}


def _status_baselines(status: np.ndarray | Sequence[Any] | None) -> dict[str, float]:
    if status is None:
        return {}
    st = np.asarray([200 if v is None else v for v in status], dtype=np.int64)
    if not st.size:
        return {}
    return {
        "error_rate_4xx": float(np.mean((st >= 400) & (st < 500))),
        "error_rate_5xx": float(np.mean((st >= 500) & (st < 600))),
    }
