"""Reference profiles (docs/statistics.md, "Reference profiles"): the baseline a model's windows are compared with.

A :class:`Profile` is a versioned JSON document (``format: 1``). Per feature it holds the bins
both drift tests share: a *fine* grid of reference quantiles at ``k / ks_bins`` for KS, and the
PSI edges at ``k / psi_bins`` taken *from that grid* (every ``ks_bins / psi_bins``-th fine edge),
so PSI counts are sums of fine bins and one histogram per feature serves both tests.

Profiles are built from columns by :func:`drifthouse.profiles.columns.build_profile`, or from a
file by :func:`drifthouse.profiles.build.build_profile_from_file`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal, Protocol

import msgspec
import numpy as np

from drifthouse.categories import category_key
from drifthouse.detectors.calibration import Calibration
from drifthouse.detectors.dle import LossModel
from drifthouse.detectors.multivariate import Multivariate
from drifthouse.errors import ProfileError

__all__ = [
    "FORMAT",
    "PREDICTION",
    "TYPE_ERROR_EXAMPLES",
    "Baselines",
    "EmbeddingProfile",
    "FeatureProfile",
    "Kind",
    "Profile",
    "ProfileSettings",
    "ProfileSettingsLike",
    "category_key",
    "prediction_score",
]

FORMAT = 1
PREDICTION = "__prediction__"
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
    def of(cls, settings: ProfileSettingsLike) -> ProfileSettings:
        """The four settings of any object that has them (the configuration's ``metrics``)."""
        if isinstance(settings, ProfileSettings):
            return settings
        return cls(
            psi_bins=settings.psi_bins,
            ks_bins=settings.ks_bins,
            eps=settings.eps,
            top_categories=settings.top_categories,
        )


class ProfileSettingsLike(Protocol):
    """What a profile's settings are read from (``ProfileSettings``, or ``MetricsConfig``)."""

    @property
    def psi_bins(self) -> int: ...
    @property
    def ks_bins(self) -> int: ...
    @property
    def eps(self) -> float: ...
    @property
    def top_categories(self) -> int: ...


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


class EmbeddingProfile(msgspec.Struct, frozen=True, kw_only=True):
    """The reference of one embedding feature: a fixed-length array of numbers
    (docs/statistics.md, "Embedding features").

    Quality: ``count`` valid vectors (``dim`` finite numbers, not all zero), and the other
    values by kind. Drift: ``unit_mean``, the mean of the valid vectors scaled to length 1;
    the random Fourier map (``rff_features`` frequencies drawn by NumPy's PCG64 from ``seed``,
    scaled by ``1 / bandwidth``; ``rff_digest`` pins the draw) with the reference's mean of
    its cosine features ``rff_mean``, and the trace of their covariance and of its square
    (``rff_trace``, ``rff_trace2``), which give the statistic's null distribution.
    """

    name: str
    dim: int
    count: int
    missing: int
    missing_rate: float
    type_error: int = 0
    wrong_length: int = 0
    non_finite: int = 0
    zero_vector: int = 0
    unit_mean: list[float]
    seed: int
    bandwidth: float
    rff_features: int
    rff_digest: str
    rff_mean: list[float]
    rff_trace: float
    rff_trace2: float

    def validate(self, where: str) -> None:
        """Raise :class:`ProfileError` if the embedding's parts disagree."""
        if self.dim < 1 or self.rff_features < 1:
            raise ProfileError(
                f"{where}: dim and rff_features must be >= 1 (got {self.dim}, {self.rff_features})"
            )
        if len(self.unit_mean) != self.dim or len(self.rff_mean) != self.rff_features:
            raise ProfileError(
                f"{where}: unit_mean needs dim={self.dim} values and rff_mean rff_features="
                f"{self.rff_features} (got {len(self.unit_mean)} and {len(self.rff_mean)})"
            )
        if not (self.bandwidth > 0 and np.isfinite(self.bandwidth)):
            raise ProfileError(f"{where}: bandwidth must be finite and > 0 (got {self.bandwidth})")
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
    #: Label cells left out of ``labels`` because they are not of the labels' type (a ``?``
    #: among numbers, a name of no class of the prediction), with examples (docs/statistics.md,
    #: "Reference profiles").
    label_type_error: int = 0
    label_type_error_examples: list[str] = msgspec.field(default_factory=list)
    #: The two classes of a ``{class: probability}`` prediction, negative then positive (as
    #: category keys): a label naming one is 0 or 1 (docs/model-performance.md).
    binary_classes: list[str] = msgspec.field(default_factory=list)
    #: Mutual information (nats) of each feature with the prediction in the reference data
    #: (numeric predictions only); the yardstick of ``importance_shift``.
    importance: dict[str, float] = msgspec.field(default_factory=dict)


class Profile(msgspec.Struct, frozen=True, kw_only=True):
    """A model's reference profile (JSON ``format: 1``).

    Examples
    --------
    >>> import numpy as np
    >>> from drifthouse.config import MetricsConfig
    >>> from drifthouse.profiles.columns import build_profile
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
    #: Performance estimation's calibration (a labelled classifier's reference); ``None`` in
    #: profiles built without labels or before it existed (docs/model-performance.md).
    calibration: Calibration | None = None
    #: Embedding features (arrays of numbers), apart from ``features``; empty in profiles
    #: built before they existed.
    embeddings: list[EmbeddingProfile] = msgspec.field(default_factory=list)
    #: The PCA of the features for multivariate drift; ``None`` in profiles built without one
    #: (docs/statistics.md, "Multivariate drift").
    multivariate: Multivariate | None = None
    #: Direct loss estimation's loss model (a labelled regression reference); ``None`` otherwise
    #: (docs/model-performance.md, "Regression without labels").
    loss_model: LossModel | None = None

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
        names = [f.name for f in self.features] + [e.name for e in self.embeddings]
        if len(set(names)) != len(names):
            raise ProfileError(f"profile of model {self.model!r} names a feature twice: {names}")
        for f in self.features:
            f.validate(f"feature {f.name!r}")
        for e in self.embeddings:
            e.validate(f"embedding {e.name!r}")
        if self.prediction is not None:
            self.prediction.validate("prediction")
        if self.calibration is not None:
            self.calibration.validate("calibration")
        if self.loss_model is not None:
            self.loss_model.validate("loss_model")
        if self.multivariate is not None:
            self.multivariate.validate(
                "multivariate",
                {
                    f.name: len(f.categories) if f.kind == "categorical" else None
                    for f in self.features
                },
            )
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
