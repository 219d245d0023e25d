"""Reference profiles (docs/statistics.md, "Reference profiles"): the baseline a model's windows are compared with.

A :class:`Profile` is a versioned JSON document (``format: 1``). Per feature it holds the bins
both drift tests share: a *fine* grid of reference quantiles at ``k / ks_bins`` for KS, and the
PSI edges at ``k / psi_bins`` taken *from that grid* (every ``ks_bins / psi_bins``-th fine edge),
so PSI counts are sums of fine bins and one histogram per feature serves both tests.

Build one from columns with :func:`build_profile`, or from a file with
:func:`drifthouse.profiles.build.build_profile_from_file`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

import msgspec
import numpy as np

from drifthouse.categories import category_key
from drifthouse.detectors import labels as _labels
from drifthouse.errors import ProfileError

if TYPE_CHECKING:
    from drifthouse.config import MetricsConfig

__all__ = [
    "FORMAT",
    "NUMERIC_SHARE",
    "PREDICTION",
    "Baselines",
    "FeatureProfile",
    "Kind",
    "Profile",
    "ProfileSettings",
    "build_feature_profile",
    "build_profile",
    "category_key",
    "prediction_score",
]

FORMAT = 1
PREDICTION = "__prediction__"
#: How many reference categories beyond the top list are remembered, to tell "rare in the
#: reference" from "never seen" (``new_category``).
KNOWN_OTHER_CAP = 10_000
#: A column is numeric when at least this share of its present (non-null) values are numbers;
#: the others are counted as ``type_error``, as a window counts a string in a numeric feature.
NUMERIC_SHARE = 0.95
#: How many distinct odd values a numeric feature's profile keeps as examples.
TYPE_ERROR_EXAMPLES = 5
_POSITIVE = ("1", "true", "yes", "positive", "pos")
Kind = Literal["numeric", "categorical"]


class ProfileSettings(msgspec.Struct, frozen=True, kw_only=True):
    """The metric settings a profile was built with."""

    psi_bins: int
    ks_bins: int
    eps: float
    top_categories: int

    @classmethod
    def from_config(cls, config: MetricsConfig) -> ProfileSettings:
        return cls(
            psi_bins=config.psi_bins,
            ks_bins=config.ks_bins,
            eps=config.eps,
            top_categories=config.top_categories,
        )


class FeatureProfile(msgspec.Struct, frozen=True, kw_only=True):
    """The reference of one feature (or of the prediction, named ``__prediction__``).

    Numeric: ``edges`` are the fine grid's inner edges (``len(edges) + 1`` bins, outermost
    open, ``edges[i-1] <= v < edges[i]`` in bin ``i``) with reference ``counts``; ``psi_edges``
    is a subset of ``edges`` with ``psi_counts``. ``count`` counts present, finite values;
    ``std`` is the population standard deviation (``ddof=0``). ``type_error`` counts present
    values that are not numbers (a ``"?"`` in a column of numbers), with up to five distinct
    ones as text in ``type_error_examples``.
    Categorical: ``categories`` (most frequent first) with ``category_counts``; ``other_count``
    counts the rest, whose names (up to a cap) are in ``known_other``.
    """

    name: str
    kind: Literal["numeric", "categorical"]
    count: int
    missing: int
    missing_rate: float
    non_finite: int = 0
    type_error: int = 0
    type_error_examples: list[str] = msgspec.field(default_factory=list)
    edges: list[float] = msgspec.field(default_factory=list)
    counts: list[int] = msgspec.field(default_factory=list)
    psi_edges: list[float] = msgspec.field(default_factory=list)
    psi_counts: list[int] = msgspec.field(default_factory=list)
    min: float | None = None
    max: float | None = None
    mean: float | None = None
    std: float | None = None
    categories: list[str] = msgspec.field(default_factory=list)
    category_counts: list[int] = msgspec.field(default_factory=list)
    other_count: int = 0
    known_other: list[str] = msgspec.field(default_factory=list)

    def validate(self, where: str) -> None:
        """Raise :class:`ProfileError` if the feature's parts disagree."""
        if self.kind == "numeric":
            if len(self.counts) != len(self.edges) + 1:
                raise ProfileError(
                    f"{where}: {len(self.edges)} edges need {len(self.edges) + 1} counts (got {len(self.counts)})"
                )
            if len(self.psi_counts) != len(self.psi_edges) + 1:
                raise ProfileError(
                    f"{where}: {len(self.psi_edges)} psi_edges need {len(self.psi_edges) + 1} psi_counts (got {len(self.psi_counts)})"
                )
            e = np.asarray(self.edges, dtype=np.float64)
            if not np.all(np.isfinite(e)) or np.any(np.diff(e) <= 0):
                raise ProfileError(f"{where}: edges must be finite and strictly increasing")
            if not set(self.psi_edges) <= set(self.edges):
                raise ProfileError(f"{where}: psi_edges must be a subset of edges")
            if sum(self.counts) != self.count:
                raise ProfileError(
                    f"{where}: counts sum to {sum(self.counts)} but count is {self.count}"
                )
            if self.count > 0 and (
                self.min is None or self.max is None or self.mean is None or self.std is None
            ):
                raise ProfileError(f"{where}: min, max, mean and std are required when count > 0")
            if self.type_error < 0 or len(self.type_error_examples) > min(
                self.type_error, TYPE_ERROR_EXAMPLES
            ):
                raise ProfileError(
                    f"{where}: type_error must be >= 0 with at most min(type_error, "
                    f"{TYPE_ERROR_EXAMPLES}) type_error_examples (got {self.type_error} and "
                    f"{len(self.type_error_examples)})"
                )
        else:
            if len(self.category_counts) != len(self.categories):
                raise ProfileError(
                    f"{where}: {len(self.categories)} categories need as many category_counts (got {len(self.category_counts)})"
                )
            if len(set(self.categories)) != len(self.categories):
                raise ProfileError(f"{where}: categories must be distinct")
        if not 0.0 <= self.missing_rate <= 1.0:
            raise ProfileError(f"{where}: missing_rate must be in [0, 1] (got {self.missing_rate})")


class Baselines(msgspec.Struct, frozen=True, kw_only=True):
    """Model-level baselines; ``None`` where the reference data had no such column."""

    events: int = 0
    latency_p50: float | None = None
    latency_p95: float | None = None
    latency_p99: float | None = None
    error_rate_4xx: float | None = None
    error_rate_5xx: float | None = None
    task: Literal["classification", "regression"] | None = None
    threshold: float = 0.5
    labels: dict[str, float] = msgspec.field(default_factory=dict)
    #: Mutual information (nats) of each feature with the prediction in the reference data
    #: (numeric predictions only); the yardstick of ``importance_shift``.
    importance: dict[str, float] = msgspec.field(default_factory=dict)


class Profile(msgspec.Struct, frozen=True, kw_only=True):
    """A model's reference profile (JSON ``format: 1``).

    Examples
    --------
    >>> import numpy as np
    >>> from drifthouse.config import MetricsConfig
    >>> p = build_profile(
    ...     model="fraud", model_version="1.0", created_at="2026-01-01T00:00:00Z",
    ...     source_digest="0" * 64, settings=MetricsConfig(),
    ...     features={"amount": np.arange(1000.0), "country": ["de", "fr"] * 500},
    ... )
    >>> Profile.from_json(p.to_json()) == p
    True
    """

    format: int = FORMAT
    model: str
    model_version: str
    created_at: str
    source_digest: str
    settings: ProfileSettings
    features: list[FeatureProfile]
    prediction: FeatureProfile | None = None
    baselines: Baselines = msgspec.field(default_factory=Baselines)

    def feature(self, name: str) -> FeatureProfile:
        for f in self.features:
            if f.name == name:
                return f
        raise ProfileError(
            f"profile of model {self.model!r} has no feature {name!r} (has {[f.name for f in self.features]})"
        )

    @property
    def numeric(self) -> list[FeatureProfile]:
        return [f for f in self.features if f.kind == "numeric"]

    @property
    def categorical(self) -> list[FeatureProfile]:
        return [f for f in self.features if f.kind == "categorical"]

    def validate(self) -> Profile:
        """Check the profile's parts agree; return it, or raise :class:`ProfileError`."""
        if self.format != FORMAT:
            raise ProfileError(
                f"profile format {self.format} is not supported (expected {FORMAT}); rebuild it with `drifthouse profile`"
            )
        try:
            moment = datetime.fromisoformat(self.created_at.replace("Z", "+00:00"))
        except ValueError:
            moment = None
        if moment is None or moment.tzinfo is None:
            raise ProfileError(
                f"created_at must be an RFC 3339 time with a zone, e.g. '2026-01-01T00:00:00Z' (got {self.created_at!r})"
            )
        names = [f.name for f in self.features]
        if len(set(names)) != len(names):
            raise ProfileError(f"profile of model {self.model!r} names a feature twice: {names}")
        for f in self.features:
            f.validate(f"feature {f.name!r}")
        if self.prediction is not None:
            self.prediction.validate("prediction")
        return self

    def to_json(self) -> bytes:
        """The JSON document (UTF-8 bytes)."""
        return msgspec.json.encode(self)

    @classmethod
    def from_json(cls, data: bytes | str) -> Profile:
        """Parse and validate a profile; raise :class:`ProfileError` with the failing path."""
        try:
            profile = msgspec.json.decode(data, type=cls)
        except msgspec.ValidationError as exc:
            raise ProfileError(f"not a valid drifthouse profile: {exc}") from exc
        except msgspec.DecodeError as exc:
            raise ProfileError(f"profile is not valid JSON: {exc}") from exc
        return profile.validate()


def prediction_score(prediction: object, predicted_class: object = None) -> object:
    """A prediction as profiled: ``{class: probability}`` becomes the positive class's
    probability when there are two classes (class ``1``/``true``/``yes``/``positive``, else
    the last class by name), else the class the model served (``predicted_class``, the class
    of ``prediction`` it names as a category) or, without one, the most probable class (ties
    broken by name); other values pass through."""
    if not isinstance(prediction, dict):
        return prediction
    if not prediction:
        return None
    if len(prediction) == 2:
        keys = list(prediction)
        pos = next(
            (k for k in keys if str(k).strip().lower() in _POSITIVE), sorted(keys, key=str)[-1]
        )
        return prediction[pos]
    if predicted_class is not None:
        if predicted_class in prediction:
            return predicted_class
        served = category_key(predicted_class)
        for k in prediction:
            if category_key(k) == served:
                return k
    return max(sorted(prediction, key=str), key=lambda k: prediction[k])


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
    settings: MetricsConfig | ProfileSettings,
    features: Mapping[str, np.ndarray | Sequence[Any]],
    prediction: np.ndarray | Sequence[Any] | None = None,
    label: np.ndarray | Sequence[Any] | None = None,
    latency_ms: np.ndarray | Sequence[Any] | None = None,
    status: np.ndarray | Sequence[Any] | None = None,
    threshold: float = 0.5,
    task: Literal["auto", "classification", "regression"] = "auto",
    kinds: Mapping[str, Kind] | None = None,
) -> Profile:
    """Build a profile from columns of equal length.

    ``kinds`` forces the kind of the features it names (``{"zip": "categorical"}``); the others
    are inferred (:func:`build_feature_profile`).

    ``prediction`` is a numeric score (probability of the positive class, or a regression
    output) or class labels. With ``label`` the label metrics of the reference become baselines
    (see :mod:`drifthouse.detectors.labels`). Latency percentiles use ``np.quantile(...,
    method='lower')``, the definition :class:`~drifthouse.detectors.quantiles.QuantileSketch`
    estimates.
    """
    s = settings if isinstance(settings, ProfileSettings) else ProfileSettings.from_config(settings)
    lengths = {name: len(col) for name, col in features.items()}
    for extra_name, extra in (
        ("prediction", prediction),
        ("label", label),
        ("latency_ms", latency_ms),
        ("status", status),
    ):
        if extra is not None:
            lengths[extra_name] = len(extra)
    if len(set(lengths.values())) > 1:
        raise ProfileError(f"columns must have equal lengths (got {lengths})")
    kinds = kinds or {}
    unknown = [n for n in kinds if n not in features]
    if unknown:
        raise ProfileError(
            f"kinds name features that are not in the data: {unknown} (features: {list(features)})"
        )
    feats = [
        build_feature_profile(name, col, s, kind=kinds.get(name)) for name, col in features.items()
    ]
    pred = build_feature_profile(PREDICTION, prediction, s) if prediction is not None else None
    if pred is not None and pred.type_error and prediction is not None:
        # A score with a few odd cells: the baselines skip those rows, as windows do.
        prediction = [v if _is_number(v) else None for v in prediction]
    events = next(iter(lengths.values()), 0)

    lat = {}
    if latency_ms is not None:
        arr = np.asarray([np.nan if v is None else v for v in latency_ms], dtype=np.float64)
        arr = arr[np.isfinite(arr)]
        if arr.size:
            p50, p95, p99 = np.quantile(arr, [0.5, 0.95, 0.99], method="lower")
            lat = {"latency_p50": float(p50), "latency_p95": float(p95), "latency_p99": float(p99)}
    err = {}
    if status is not None:
        st = np.asarray([200 if v is None else v for v in status], dtype=np.int64)
        if st.size:
            err = {
                "error_rate_4xx": float(np.mean((st >= 400) & (st < 500))),
                "error_rate_5xx": float(np.mean((st >= 500) & (st < 600))),
            }
    label_metrics: dict[str, float] = {}
    resolved_task: Literal["classification", "regression"] | None = None
    if label is not None and prediction is not None:
        resolved_task, label_metrics = _labels.reference_metrics(
            y_true=label, y_pred=prediction, threshold=threshold, task=task
        )
    baselines = Baselines(
        events=int(events),
        task=resolved_task,
        threshold=threshold,
        labels=label_metrics,
        latency_p50=lat.get("latency_p50"),
        latency_p95=lat.get("latency_p95"),
        latency_p99=lat.get("latency_p99"),
        error_rate_4xx=err.get("error_rate_4xx"),
        error_rate_5xx=err.get("error_rate_5xx"),
    )
    profile = Profile(
        model=model,
        model_version=model_version,
        created_at=created_at,
        source_digest=source_digest,
        settings=s,
        features=feats,
        prediction=pred,
        baselines=baselines,
    ).validate()
    if prediction is not None and pred is not None and pred.kind == "numeric" and feats:
        # Deferred: the importance sketch builds on this module.
        from drifthouse.detectors.importance import reference_importance

        importance = reference_importance(profile, features, prediction)
        profile = msgspec.structs.replace(
            profile, baselines=msgspec.structs.replace(baselines, importance=importance)
        )
    return profile
