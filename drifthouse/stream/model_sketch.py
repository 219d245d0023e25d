"""Everything drifthouse keeps about one model in one pane: the detectors' states side by side.

:class:`ModelSketch` is built once per model from its reference profile and follows the same
protocol as each detector (``empty``, ``update``, ``merge``, ``evaluate``), so the window
manager can treat a model's whole pane as one mergeable value. A model without a reference
profile still gets its model-level metrics (events, latency, error rates); its features need
a profile (``drifthouse profile``) for drift and quality.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import msgspec
import numpy as np

from drifthouse.config import MetricsConfig, ModelConfig
from drifthouse.detectors.base import Result
from drifthouse.detectors.categorical import CategoricalBlock, CategoricalState
from drifthouse.detectors.importance import ImportanceSketch, ImportanceState
from drifthouse.detectors.numeric import NumericBlock, NumericState, SketchPart
from drifthouse.detectors.quantiles import QuantileSketch, QuantileState
from drifthouse.detectors.reference import Profile
from drifthouse.detectors.status import StatusCounter, StatusState
from drifthouse.errors import SketchError
from drifthouse.logs import get_logger
from drifthouse.stream.columns import Columns, FeatureLayout

__all__ = ["PREDICTION_FEATURE", "ModelSketch", "ModelState", "Sketches"]

log = get_logger("sketches")

PREDICTION_FEATURE = "__prediction__"
_PREDICTION_METRICS = frozenset({"psi", "ks", "ks_pvalue", "js", "chi2", "chi2_pvalue", "mean"})


class _WireState(msgspec.Struct, array_like=True):
    numeric: bytes
    categorical: bytes
    latency: bytes
    status: bytes
    prediction: bytes | None
    counters: list[int]
    prediction_kind: str = "numeric"
    importance: bytes | None = None


_ENCODE = msgspec.msgpack.Encoder().encode
_DECODE = msgspec.msgpack.Decoder(_WireState).decode

# Counter slots of ModelState.counters.
EVENTS, LATE, INVALID = 0, 1, 2


@dataclass(frozen=True, eq=False)
class ModelState:
    """One model's pane: the states of its detectors plus event counters."""

    numeric: NumericState
    categorical: CategoricalState
    latency: QuantileState
    status: StatusState
    prediction: NumericState | CategoricalState | None
    counters: np.ndarray  # int64 [events, late_events, invalid_events]
    importance: ImportanceState | None = None

    def to_bytes(self) -> bytes:
        """Serialise exactly, for partial-window messages between workers."""
        return _ENCODE(
            _WireState(
                numeric=self.numeric.to_bytes(),
                categorical=self.categorical.to_bytes(),
                latency=self.latency.to_bytes(),
                status=self.status.to_bytes(),
                prediction=self.prediction.to_bytes() if self.prediction is not None else None,
                counters=[int(c) for c in self.counters],
                prediction_kind="categorical"
                if isinstance(self.prediction, CategoricalState)
                else "numeric",
                importance=self.importance.to_bytes() if self.importance is not None else None,
            )
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> ModelState:
        """Restore a state written by :meth:`to_bytes` (raises ``SketchError`` on foreign bytes)."""
        try:
            wire = _DECODE(data)
        except msgspec.DecodeError as exc:
            raise SketchError(f"not a serialised model state: {exc}") from exc
        return cls(
            numeric=NumericState.from_bytes(wire.numeric),
            categorical=CategoricalState.from_bytes(wire.categorical),
            latency=QuantileState.from_bytes(wire.latency),
            status=StatusState.from_bytes(wire.status),
            prediction=(
                CategoricalState if wire.prediction_kind == "categorical" else NumericState
            ).from_bytes(wire.prediction)
            if wire.prediction is not None
            else None,
            counters=np.asarray(wire.counters, dtype=np.int64),
            importance=ImportanceState.from_bytes(wire.importance)
            if wire.importance is not None
            else None,
        )

    def equals(self, other: ModelState) -> bool:
        """Bitwise equality of every part."""
        same_pred = (
            self.prediction is None
            if other.prediction is None
            else self.prediction is not None and self.prediction.equals(other.prediction)
        )
        same_importance = (
            self.importance is None
            if other.importance is None
            else self.importance is not None and self.importance.equals(other.importance)
        )
        return (
            self.numeric.equals(other.numeric)
            and self.categorical.equals(other.categorical)
            and self.latency.equals(other.latency)
            and self.status.equals(other.status)
            and same_pred
            and same_importance
            and bool(np.array_equal(self.counters, other.counters))
        )


class ModelSketch:
    """The sketches of one model, laid out from its reference profile.

    Parameters
    ----------
    model:
        The model name.
    profile:
        Its reference profile, or ``None`` (model-level metrics only).
    metrics, model_config:
        Settings: eps, latency accuracy; configured out-of-range bounds.
    """

    def __init__(
        self,
        model: str,
        profile: Profile | None,
        metrics: MetricsConfig,
        model_config: ModelConfig | None = None,
    ) -> None:
        self.model = model
        self.profile = profile
        bounds = dict(model_config.bounds) if model_config else {}
        if profile is not None:
            # PII features are never sketched: their values would reach the store as bins and
            # category labels. (The prediction log keeps them, as keyed hashes.)
            pii = set(model_config.pii) if model_config else set()
            numeric = [f for f in profile.numeric if f.name not in pii]
            categorical = [f for f in profile.categorical if f.name not in pii]
            known = {f.name for f in numeric}
            bounds = {k: v for k, v in bounds.items() if k in known}
            self.numeric = NumericBlock(numeric, bounds=bounds, eps=profile.settings.eps)
            self.categorical = CategoricalBlock(categorical, eps=profile.settings.eps)
        else:
            self.numeric = NumericBlock([], eps=metrics.eps)
            self.categorical = CategoricalBlock([], eps=metrics.eps)
        self.latency = QuantileSketch(metrics.latency_relative_accuracy)
        self.status = StatusCounter()
        pred = profile.prediction if profile is not None else None
        # Prediction drift: a score (regression, binary probability) on a numeric grid, or
        # class labels as categories.
        self.prediction: NumericBlock | CategoricalBlock | None = None
        if pred is not None:
            renamed = msgspec.structs.replace(pred, name=PREDICTION_FEATURE)
            if pred.kind == "numeric":
                self.prediction = NumericBlock([renamed], eps=metrics.eps)
            else:
                self.prediction = CategoricalBlock([renamed], eps=metrics.eps)
        self.baselines = profile.baselines if profile is not None else None
        # Feature importance: joint (feature bin, prediction bin) histograms, for a numeric
        # prediction (a score or a regression output) and at least one sketched feature.
        self.importance: ImportanceSketch | None = None
        if (
            metrics.importance
            and profile is not None
            and pred is not None
            and pred.kind == "numeric"
            and (numeric or categorical)
        ):
            ref = profile.baselines.importance
            names = [f.name for f in (*numeric, *categorical)]
            self.importance = ImportanceSketch(
                numeric,
                categorical,
                pred.psi_edges,
                reference={n: ref[n] for n in names} if all(n in ref for n in names) else None,
            )
        cat = self.categorical
        classes = self.prediction if isinstance(self.prediction, CategoricalBlock) else None
        self.layout = FeatureLayout(
            numeric=self.numeric.names,
            categorical=cat.names,
            categories=tuple(cat.encoder(j) for j in range(cat.n_features)),
            unseen=tuple(cat.new_code(j) for j in range(cat.n_features)),
            prediction_categories=classes.encoder(0) if classes is not None else None,
            prediction_unseen=classes.new_code(0) if classes is not None else 0,
        )

    def empty(self) -> ModelState:
        return ModelState(
            numeric=self.numeric.empty(),
            categorical=self.categorical.empty(),
            latency=self.latency.empty(),
            status=self.status.empty(),
            prediction=self.prediction.empty() if self.prediction is not None else None,
            counters=np.zeros(3, dtype=np.int64),
            importance=self.importance.empty() if self.importance is not None else None,
        )

    def update(self, state: ModelState, cols: Columns) -> ModelState:
        """Add one micro-batch of this model's events (in arrival order), in place."""
        if len(cols) == 0:
            return state
        self.numeric.update(state.numeric, cols.numeric, cols.status)
        self.categorical.update(state.categorical, cols.codes)
        latency = cols.latency[~np.isnan(cols.latency)]
        if latency.size:
            self.latency.update(state.latency, latency)
        self.status.update(state.status, cols.http_status)
        if isinstance(self.prediction, NumericBlock) and isinstance(state.prediction, NumericState):
            score = cols.score[:, None]
            status = np.isnan(score).astype(np.uint8)
            self.prediction.update(state.prediction, score, status)
        elif isinstance(self.prediction, CategoricalBlock) and isinstance(
            state.prediction, CategoricalState
        ):
            assert cols.pred_codes is not None
            self.prediction.update(state.prediction, cols.pred_codes[:, None])
        if self.importance is not None and state.importance is not None:
            self.importance.update(
                state.importance, cols.numeric, cols.status, cols.codes, cols.score
            )
        state.counters[EVENTS] += len(cols)
        return state

    def count(self, state: ModelState, slot: int, n: int) -> ModelState:
        """Add ``n`` to a counter (``LATE`` or ``INVALID``), in place."""
        state.counters[slot] += n
        return state

    def merge(self, a: ModelState, b: ModelState) -> ModelState:
        """A new state holding both (pure: a pane takes part in several sliding windows)."""
        pred = None
        if self.prediction is not None and a.prediction is not None and b.prediction is not None:
            pred = self.prediction.merge(a.prediction, b.prediction)  # type: ignore[arg-type]
        return ModelState(
            numeric=self.numeric.merge(a.numeric, b.numeric),
            categorical=self.categorical.merge(a.categorical, b.categorical),
            latency=self.latency.merge(a.latency, b.latency),
            status=self.status.merge(a.status, b.status),
            prediction=pred,
            counters=a.counters + b.counters,
            importance=self.importance.merge(a.importance, b.importance)
            if self.importance is not None and a.importance is not None and b.importance is not None
            else None,
        )

    def evaluate(self, state: ModelState, window_ms: int) -> list[Result]:
        """Every metric of a closed window: per feature, then model level (``feature == ''``)."""
        events = int(state.counters[EVENTS])
        out: list[Result] = []
        if events:
            out += self.numeric.evaluate(self.numeric.reference, state.numeric)
            out += self.categorical.evaluate(self.categorical.reference, state.categorical)
            if self.prediction is not None and state.prediction is not None:
                out += [
                    r
                    for r in self.prediction.evaluate(self.prediction.reference, state.prediction)  # type: ignore[arg-type]
                    if r.metric in _PREDICTION_METRICS
                ]
            if self.importance is not None and state.importance is not None:
                out += self.importance.evaluate(None, state.importance)
            out += self.latency.evaluate(None, state.latency)
            out += self.status.evaluate(None, state.status)
        out += [
            Result("", "events", float(events), None, 0, events),
            Result("", "late_events", float(state.counters[LATE]), None, 0, events),
            Result("", "invalid_events", float(state.counters[INVALID]), None, 0, events),
            Result("", "throughput_rps", events / (window_ms / 1000.0), None, 0, events),
        ]
        return out

    def sketch_parts(self, state: ModelState) -> list[SketchPart]:
        """The mergeable state as rows for the ``sketches`` table."""
        parts = self.numeric.sketch_parts(state.numeric) + self.categorical.sketch_parts(
            state.categorical
        )
        if int(self.latency.count(state.latency)):
            parts += self.latency.sketch_parts(state.latency)
        if self.prediction is not None and state.prediction is not None:
            parts += self.prediction.sketch_parts(state.prediction)  # type: ignore[arg-type]
        return parts

    def baseline(self, feature: str, metric: str) -> float | None:
        """The reference value of a metric, for rules such as ``value > 2 * baseline``."""
        if self.baselines is None:
            return None
        if feature == "":
            value = getattr(self.baselines, metric, None)
            if isinstance(value, int | float) and not isinstance(value, bool):
                return float(value)
            return self.baselines.labels.get(metric)
        if self.profile is None:
            return None
        for f in self.profile.features:
            if f.name == feature:
                if metric == "missing_rate":
                    return f.missing_rate
                if metric in {"mean", "std", "min", "max"}:
                    return getattr(f, metric)  # type: ignore[no-any-return]
        return None


class Sketches:
    """Each model's :class:`ModelSketch`, built on first use from its profile and settings."""

    def __init__(
        self,
        profiles: Mapping[str, Profile],
        metrics: MetricsConfig,
        models: Mapping[str, ModelConfig] | None = None,
    ) -> None:
        self.profiles = dict(profiles)
        self.metrics = metrics
        self.models = dict(models or {})
        self._built: dict[str, ModelSketch] = {}

    def __call__(self, model: str) -> ModelSketch:
        sketch = self._built.get(model)
        if sketch is None:
            profile = self.profiles.get(model)
            if profile is None and model:
                log.warning("model.no_reference", model=model, hint="drifthouse profile builds one")
            sketch = ModelSketch(model, profile, self.metrics, self.models.get(model))
            self._built[model] = sketch
        return sketch
