"""Everything sketched for one model in one window (or pane), behind the same protocol.

:class:`ModelSketch` bundles the blocks a model needs (numeric features, categorical features,
the prediction, latency quantiles, HTTP statuses) so the windowing code keeps one state per
model and pane. :meth:`ModelSketch.extract` turns decoded events into the columnar
:class:`ModelBatch` the kernels take; that loop is the one per-event Python step.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

import msgspec
import numpy as np

from drifthouse.detectors.base import Result
from drifthouse.detectors.categorical import MISSING_CODE, CategoricalBlock, CategoricalState
from drifthouse.detectors.numeric import MISSING, TYPE_ERROR, NumericBlock, NumericState, SketchPart
from drifthouse.detectors.quantiles import QuantileSketch, QuantileState
from drifthouse.detectors.reference import Profile, category_key
from drifthouse.detectors.status import StatusCounter, StatusState
from drifthouse.errors import SketchError

__all__ = ["ModelBatch", "ModelSketch", "ModelState", "prediction_score"]

_POSITIVE = ("1", "true", "yes", "positive", "pos")
#: Prediction metrics of the contract (CONTRACTS section 3, ``feature = '__prediction__'``).
_PREDICTION_METRICS = frozenset({"psi", "ks", "ks_pvalue", "js", "chi2", "chi2_pvalue"})


def prediction_score(prediction: object) -> object:
    """A prediction as profiled: ``{class: probability}`` becomes the positive class's
    probability when there are two classes (class ``1``/``true``/``yes``/``positive``, else
    the last class by name), else the most probable class; other values pass through."""
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
    return max(sorted(prediction, key=str), key=lambda k: prediction[k])


@dataclasses.dataclass(frozen=True, slots=True)
class ModelBatch:
    """One micro-batch of a model's events, as columns.

    ``values`` float64 (n, F_num) and ``status`` uint8 (n, F_num) for the numeric features;
    ``codes`` int32 (n, F_cat) for the categorical ones; ``prediction`` float64 (n, 1) with
    ``prediction_status`` (numeric prediction) or int32 (n, 1) codes (categorical), or
    ``None`` when the profile has no prediction; ``latency_ms`` float64 (n,) with NaN where
    absent; ``http_status`` int64 (n,) (200 where absent).
    """

    values: np.ndarray
    status: np.ndarray
    codes: np.ndarray
    prediction: np.ndarray | None
    prediction_status: np.ndarray | None
    latency_ms: np.ndarray
    http_status: np.ndarray

    @property
    def n(self) -> int:
        return int(self.latency_ms.shape[0])


@dataclasses.dataclass(frozen=True, eq=False)
class ModelState:
    """The state of every block of a model; ``events`` is int64 (1,)."""

    numeric: NumericState
    categorical: CategoricalState
    prediction: NumericState | CategoricalState | None
    latency: QuantileState
    status: StatusState
    events: np.ndarray

    def equals(self, other: object) -> bool:
        if not isinstance(other, ModelState):
            return False
        preds_equal = (self.prediction is None and other.prediction is None) or (
            self.prediction is not None and self.prediction.equals(other.prediction)
        )
        return bool(
            self.numeric.equals(other.numeric)
            and self.categorical.equals(other.categorical)
            and preds_equal
            and self.latency.equals(other.latency)
            and self.status.equals(other.status)
            and np.array_equal(self.events, other.events)
        )

    def to_bytes(self) -> bytes:
        """Exact serialisation (for partial-sketch messages and restarts)."""
        parts = {
            "numeric": self.numeric.to_bytes(),
            "categorical": self.categorical.to_bytes(),
            "latency": self.latency.to_bytes(),
            "status": self.status.to_bytes(),
            "events": int(self.events[0]).to_bytes(8, "little", signed=True),
        }
        if self.prediction is not None:
            parts["prediction"] = self.prediction.to_bytes()
        return msgspec.msgpack.encode(parts)

    @classmethod
    def from_bytes(cls, data: bytes, sketch: ModelSketch) -> ModelState:
        """Restore a state written by :meth:`to_bytes` for the same ``sketch`` (same profile)."""
        try:
            parts = msgspec.msgpack.decode(data, type=dict[str, bytes])
        except msgspec.DecodeError as exc:
            raise SketchError(f"not a serialised ModelState: {exc}") from exc
        expected = {"numeric", "categorical", "latency", "status", "events"} | (
            {"prediction"} if sketch.prediction is not None else set()
        )
        if set(parts) != expected:
            raise SketchError(
                f"serialised ModelState has parts {sorted(parts)} (expected {sorted(expected)})"
            )
        pred: NumericState | CategoricalState | None = None
        if isinstance(sketch.prediction, NumericBlock):
            pred = NumericState.from_bytes(parts["prediction"])
        elif isinstance(sketch.prediction, CategoricalBlock):
            pred = CategoricalState.from_bytes(parts["prediction"])
        state = cls(
            numeric=NumericState.from_bytes(parts["numeric"]),
            categorical=CategoricalState.from_bytes(parts["categorical"]),
            prediction=pred,
            latency=QuantileState.from_bytes(parts["latency"]),
            status=StatusState.from_bytes(parts["status"]),
            events=np.asarray(
                [int.from_bytes(parts["events"], "little", signed=True)], dtype=np.int64
            ),
        )
        sketch.check(state)
        return state


class ModelSketch:
    """All of a model's sketches, built from its reference profile.

    Parameters
    ----------
    profile
        The model's reference profile.
    bounds
        Optional ``{feature: (lo, hi)}`` for ``out_of_range`` (``ModelConfig.bounds``).
    latency_relative_accuracy
        Relative accuracy of the latency quantiles (``MetricsConfig.latency_relative_accuracy``).

    Examples
    --------
    >>> import numpy as np
    >>> from drifthouse.config import MetricsConfig
    >>> from drifthouse.detectors.reference import build_profile
    >>> p = build_profile(model="m", model_version="1", created_at="2026-01-01T00:00:00Z",
    ...     source_digest="", settings=MetricsConfig(),
    ...     features={"x": np.arange(100.0), "c": ["a", "b"] * 50}, prediction=np.linspace(0, 1, 100))
    >>> sk = ModelSketch(p)
    >>> batch = sk.extract([{"x": 5.0, "c": "a"}, {"x": "oops", "c": None}], predictions=[0.2, 0.9],
    ...     latencies_ms=[12.0, None], statuses=[200, 503])
    >>> state = sk.update(sk.empty(), batch)
    >>> {r.metric: r.value for r in sk.evaluate(state) if r.feature == "x"}["type_error"]
    1.0
    """

    def __init__(
        self,
        profile: Profile,
        *,
        bounds: Mapping[str, tuple[float, float]] | None = None,
        latency_relative_accuracy: float = 0.005,
    ) -> None:
        self.profile = profile
        self.numeric = NumericBlock.from_profile(profile, bounds=bounds)
        self.categorical = CategoricalBlock.from_profile(profile)
        self.prediction: NumericBlock | CategoricalBlock | None = None
        if profile.prediction is not None:
            if profile.prediction.kind == "numeric":
                self.prediction = NumericBlock([profile.prediction], eps=profile.settings.eps)
            else:
                self.prediction = CategoricalBlock([profile.prediction], eps=profile.settings.eps)
        self.latency = QuantileSketch(latency_relative_accuracy)
        self.status = StatusCounter()
        self._encoders = [self.categorical.encoder(j) for j in range(self.categorical.n_features)]
        self._new_codes = [self.categorical.new_code(j) for j in range(self.categorical.n_features)]

    def empty(self) -> ModelState:
        return ModelState(
            numeric=self.numeric.empty(),
            categorical=self.categorical.empty(),
            prediction=self.prediction.empty() if self.prediction is not None else None,
            latency=self.latency.empty(),
            status=self.status.empty(),
            events=np.zeros(1, dtype=np.int64),
        )

    def check(self, state: ModelState) -> None:
        """Raise :class:`SketchError` unless ``state`` was made by a sketch of this profile."""
        for block, sub in ((self.numeric, state.numeric), (self.categorical, state.categorical)):
            if sub.layout != block.layout:
                raise SketchError("ModelState belongs to another reference profile")
        if (self.prediction is None) != (state.prediction is None):
            raise SketchError("ModelState and ModelSketch disagree on having a prediction")

    def extract(
        self,
        features: Sequence[Mapping[str, object]],
        *,
        predictions: Sequence[object] | None = None,
        latencies_ms: Sequence[float | None] | None = None,
        statuses: Sequence[int | None] | None = None,
    ) -> ModelBatch:
        """Columns of a micro-batch from decoded events (their ``features`` objects etc.).

        Numeric features: numbers are values (NaN/inf become ``non_finite`` in the sketch),
        ``None`` or absent is missing, anything else (strings, bools) a type error.
        Categorical features: :func:`category_key` of the value looked up in the encoder.
        """
        n = len(features)
        num_names = self.numeric.names
        values = np.zeros((n, len(num_names)), dtype=np.float64)
        status = np.zeros((n, len(num_names)), dtype=np.uint8)
        codes = np.empty((n, len(self._encoders)), dtype=np.int32)
        cat_names = self.categorical.names
        for i, feats in enumerate(features):
            for j, name in enumerate(num_names):
                v = feats.get(name)
                if v is None:
                    status[i, j] = MISSING
                elif isinstance(v, float | int) and not isinstance(v, bool):
                    values[i, j] = v
                else:
                    status[i, j] = TYPE_ERROR
            for j, name in enumerate(cat_names):
                key = category_key(feats.get(name))
                codes[i, j] = (
                    MISSING_CODE if key is None else self._encoders[j].get(key, self._new_codes[j])
                )
        pred = pred_status = None
        if self.prediction is not None:
            raw = (
                [prediction_score(p) for p in predictions]
                if predictions is not None
                else [None] * n
            )
            if isinstance(self.prediction, NumericBlock):
                pred = np.zeros((n, 1))
                pred_status = np.zeros((n, 1), dtype=np.uint8)
                for i, p in enumerate(raw):
                    if p is None:
                        pred_status[i, 0] = MISSING
                    elif isinstance(p, float | int) and not isinstance(p, bool):
                        pred[i, 0] = p
                    else:
                        pred_status[i, 0] = TYPE_ERROR
            else:
                pred = self.prediction.codes_for(0, raw)[:, None]
        lat = np.asarray(
            [math.nan if v is None else v for v in latencies_ms]
            if latencies_ms is not None
            else [math.nan] * n,
            dtype=np.float64,
        )
        st = np.asarray(
            [200 if v is None else v for v in statuses] if statuses is not None else [200] * n,
            dtype=np.int64,
        )
        return ModelBatch(values, status, codes, pred, pred_status, lat, st)

    def update(self, state: ModelState, batch: ModelBatch) -> ModelState:
        """Add a micro-batch in place and return ``state``."""
        self.numeric.update(state.numeric, batch.values, batch.status)
        self.categorical.update(state.categorical, batch.codes)
        if self.prediction is not None and batch.prediction is not None:
            if isinstance(self.prediction, NumericBlock):
                assert isinstance(state.prediction, NumericState)
                self.prediction.update(state.prediction, batch.prediction, batch.prediction_status)
            else:
                assert isinstance(state.prediction, CategoricalState)
                self.prediction.update(state.prediction, batch.prediction)
        lat = batch.latency_ms[~np.isnan(batch.latency_ms)]
        self.latency.update(state.latency, lat)
        self.status.update(state.status, batch.http_status)
        state.events[0] += batch.n
        return state

    def merge(self, a: ModelState, b: ModelState) -> ModelState:
        """A new state holding both."""
        pred: NumericState | CategoricalState | None = None
        if isinstance(self.prediction, NumericBlock):
            assert isinstance(a.prediction, NumericState)
            assert isinstance(b.prediction, NumericState)
            pred = self.prediction.merge(a.prediction, b.prediction)
        elif isinstance(self.prediction, CategoricalBlock):
            assert isinstance(a.prediction, CategoricalState)
            assert isinstance(b.prediction, CategoricalState)
            pred = self.prediction.merge(a.prediction, b.prediction)
        return ModelState(
            numeric=self.numeric.merge(a.numeric, b.numeric),
            categorical=self.categorical.merge(a.categorical, b.categorical),
            prediction=pred,
            latency=self.latency.merge(a.latency, b.latency),
            status=self.status.merge(a.status, b.status),
            events=a.events + b.events,
        )

    def evaluate(self, current: ModelState, reference: ModelState | None = None) -> list[Result]:
        """Every metric of CONTRACTS section 3 the sketches can give, against the profile
        (or against ``reference``, e.g. a previous window).

        Model level (``feature == ''``): ``events``, ``latency_p50/p95/p99``,
        ``error_rate_4xx/5xx`` (the latter two only for non-empty windows). The prediction
        (``feature == '__prediction__'``): ``psi``, ``ks``, ``ks_pvalue``, ``js`` (numeric) or
        ``psi``, ``js``, ``chi2``, ``chi2_pvalue`` (categorical). ``events``-based metrics the
        window knows better (``invalid_events``, ``late_events``, ``throughput_rps``) are left
        to the caller.
        """
        n = int(current.events[0])
        n_ref = self.profile.baselines.events if reference is None else int(reference.events[0])
        out = [Result("", "events", float(n), None, n_ref, n)]
        ref_num = reference.numeric if reference is not None else self.numeric.reference
        ref_cat = reference.categorical if reference is not None else self.categorical.reference
        out += self.latency.evaluate(
            reference.latency if reference is not None else None, current.latency
        )
        out += self.status.evaluate(
            reference.status if reference is not None else None, current.status
        )
        out += self.numeric.evaluate(ref_num, current.numeric)
        out += self.categorical.evaluate(ref_cat, current.categorical)
        if isinstance(self.prediction, NumericBlock):
            assert isinstance(current.prediction, NumericState)
            ref_p = reference.prediction if reference is not None else self.prediction.reference
            assert isinstance(ref_p, NumericState)
            preds = self.prediction.evaluate(ref_p, current.prediction)
            out += [r for r in preds if r.metric in _PREDICTION_METRICS]
        elif isinstance(self.prediction, CategoricalBlock):
            assert isinstance(current.prediction, CategoricalState)
            ref_c = reference.prediction if reference is not None else self.prediction.reference
            assert isinstance(ref_c, CategoricalState)
            preds = self.prediction.evaluate(ref_c, current.prediction)
            out += [r for r in preds if r.metric in _PREDICTION_METRICS]
        return out

    def sketch_parts(self, state: ModelState) -> list[SketchPart]:
        """Rows for the ``sketches`` table: a ``hist`` per numeric feature (and numeric
        prediction), ``categories`` per categorical feature (and class prediction), and the
        latency ``quantiles`` (feature ``''``)."""
        parts = self.numeric.sketch_parts(state.numeric) + self.categorical.sketch_parts(
            state.categorical
        )
        if isinstance(self.prediction, NumericBlock):
            assert isinstance(state.prediction, NumericState)
            parts += self.prediction.sketch_parts(state.prediction)
        elif isinstance(self.prediction, CategoricalBlock):
            assert isinstance(state.prediction, CategoricalState)
            parts += self.prediction.sketch_parts(state.prediction)
        parts += self.latency.sketch_parts(state.latency, feature="")
        return parts
