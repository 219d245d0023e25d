"""The serving sketch of one segment value (``country=DE``): events, latency, status codes and
the prediction's drift, so a window gets its serving metrics per segment value as well.

:class:`SegmentSketch` shares its parts with the model's
:class:`~drifthouse.detectors.model_sketch.ModelSketch` (which also uses :meth:`serve` for the
model-wide serving state); how many values a pane keeps and a window writes is decided there.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from drifthouse.detectors.attribution import segment_shares
from drifthouse.detectors.base import NO_CONTEXT, Context, Result, Sketch, window_ms_of
from drifthouse.detectors.categorical import CategoricalBlock, CategoricalState
from drifthouse.detectors.columns import Columns
from drifthouse.detectors.model_state import EVENTS, SegmentKey, SegmentState
from drifthouse.detectors.numeric import NumericBatch, NumericBlock, NumericState
from drifthouse.detectors.quantiles import QuantileSketch, QuantileState
from drifthouse.detectors.segment_features import FeatureBins
from drifthouse.detectors.status import StatusCounter, StatusState

__all__ = ["OTHER_VALUE", "PREDICTION_METRICS", "Capped", "Rows", "SegmentSketch", "cap_segments"]

OTHER_VALUE = "__other__"

#: The prediction's metrics a window writes (``feature == '__prediction__'``).
PREDICTION_METRICS = frozenset(
    {"psi", "kl", "ks", "ks_pvalue", "js", "chi2", "chi2_pvalue", "mean"}
)

PredictionState = NumericState | CategoricalState


@dataclass(frozen=True, slots=True)
class Rows:
    """A batch: the rows ``rows`` (ascending; all when ``None``) of a model's ``columns``."""

    columns: Columns
    rows: np.ndarray | None = None


class SegmentSketch(Sketch[SegmentState, Rows]):
    """Latency quantiles, status codes and the prediction (``None``: the model has no profiled
    prediction) of one segment value's events."""

    def __init__(
        self,
        latency: QuantileSketch,
        status: StatusCounter,
        prediction: NumericBlock | CategoricalBlock | None,
        features: FeatureBins | None = None,
    ) -> None:
        self.latency = latency
        self.status = status
        self.prediction = prediction
        #: Counts on every feature's PSI bins, for per-feature segment attribution (``None``:
        #: attribution off, none kept).
        self.features = features

    def empty(self) -> SegmentState:
        return SegmentState(
            counters=np.zeros(1, dtype=np.int64),
            latency=self.latency.empty(),
            status=self.status.empty(),
            prediction=self.prediction.empty() if self.prediction is not None else None,
            features=self.features.empty() if self.features is not None else None,
        )

    def update(self, state: SegmentState, batch: Rows) -> SegmentState:
        """Add the batch's rows, in order, in place; return ``state``."""
        idx = batch.rows
        n = len(batch.columns) if idx is None else idx.size
        if n == 0:
            return state
        self.serve(state.latency, state.status, state.prediction, batch.columns, idx)
        if self.features is not None and state.features is not None:
            self.features.add(state.features, batch.columns, idx)
        state.counters[EVENTS] += n
        return state

    def serve(
        self,
        latency: QuantileState,
        status: StatusState,
        prediction: PredictionState | None,
        cols: Columns,
        idx: np.ndarray | None,
    ) -> None:
        """Latency, status codes and prediction of the rows ``idx`` (all when ``None``)."""
        lat = cols.latency if idx is None else cols.latency[idx]
        lat = lat[~np.isnan(lat)]
        if lat.size:
            self.latency.update(latency, lat)
        self.status.update(status, cols.http_status if idx is None else cols.http_status[idx])
        if isinstance(self.prediction, NumericBlock) and isinstance(prediction, NumericState):
            score = (cols.score if idx is None else cols.score[idx])[:, None]
            self.prediction.update(
                prediction, NumericBatch(score, np.isnan(score).astype(np.uint8))
            )
        elif isinstance(self.prediction, CategoricalBlock) and isinstance(
            prediction, CategoricalState
        ):
            assert cols.pred_codes is not None
            codes = cols.pred_codes if idx is None else cols.pred_codes[idx]
            self.prediction.update(prediction, codes[:, None])

    def merge(self, a: SegmentState, b: SegmentState) -> SegmentState:
        """A new segment state holding both."""
        return SegmentState(
            counters=a.counters + b.counters,
            latency=self.latency.merge(a.latency, b.latency),
            status=self.status.merge(a.status, b.status),
            prediction=self.merge_prediction(a.prediction, b.prediction),
            # A state without counts (written with attribution off) makes a window without.
            features=a.features + b.features
            if a.features is not None and b.features is not None
            else None,
        )

    def merge_prediction(
        self, a: PredictionState | None, b: PredictionState | None
    ) -> PredictionState | None:
        if self.prediction is None or a is None or b is None:
            return None
        return self.prediction.merge(a, b)  # type: ignore[arg-type]

    def evaluate(self, state: SegmentState, context: Context = NO_CONTEXT) -> list[Result]:
        """The serving metrics of one segment value's window of ``context.window_ms``
        (``feature == ''``, and the prediction's drift with ``feature == '__prediction__'``)."""
        window_ms = window_ms_of("SegmentSketch", context)
        events = state.events
        out: list[Result] = []
        if events:
            out += self.prediction_results(state.prediction, context)
            out += self.latency.evaluate(state.latency)
            out += self.status.evaluate(state.status)
        out += [
            Result("", "events", float(events), None, 0, events),
            Result("", "throughput_rps", events / (window_ms / 1000.0), None, 0, events),
        ]
        return out

    def prediction_results(
        self, state: PredictionState | None, context: Context = NO_CONTEXT
    ) -> list[Result]:
        """The prediction's drift metrics (``feature == '__prediction__'``), against
        ``context.reference`` when given."""
        if self.prediction is None or state is None:
            return []
        return [
            r
            for r in self.prediction.evaluate(state, context)  # type: ignore[arg-type]
            if r.metric in PREDICTION_METRICS
        ]

    def prediction_shares(
        self,
        model_prediction: PredictionState | None,
        segments: Sequence[tuple[str, SegmentState]],
        *,
        top_k: int,
        min_psi: float,
        context: Context = NO_CONTEXT,
    ) -> list[tuple[str, Result]]:
        """``(segment, psi_segment_share)`` of a window whose model-wide prediction PSI is at
        least ``min_psi``: the share of the prediction's drift each segment value carries
        (:func:`~drifthouse.detectors.attribution.segment_shares`, each value's PSI weighted by
        the predictions it rests on), the ``top_k`` largest per attribute."""
        model = [r for r in self.prediction_results(model_prediction, context) if r.metric == "psi"]
        if top_k <= 0 or not model or model[0].value < min_psi:
            return []
        items = [
            (name, r.n_cur, r.value)
            for name, seg in segments
            for r in self.prediction_results(seg.prediction, context)
            if r.metric == "psi"
        ]
        n_ref = model[0].n_ref
        counts = {name: n for name, n, _ in items}
        return [
            (name, Result(model[0].feature, "psi_segment_share", share, None, n_ref, counts[name]))
            for name, share in segment_shares(items, top_k=top_k)
        ]

    def feature_shares(
        self,
        features: Sequence[str],
        segments: Sequence[tuple[str, SegmentState]],
        *,
        top_k: int,
        n_ref: Mapping[str, int],
    ) -> list[tuple[str, Result]]:
        """``(segment, psi_segment_share)`` of each of ``features`` (the drifted ones): the share
        of the feature's drift each segment value carries, the ``top_k`` largest per attribute
        (:meth:`FeatureBins.shares`); none without counts (attribution off)."""
        if self.features is None or top_k <= 0:
            return []
        counts = [(name, seg.features) for name, seg in segments]
        return [
            (name, Result(feature, "psi_segment_share", share, None, n_ref[feature], n))
            for feature in features
            for name, share, n in self.features.shares(feature, counts, top_k=top_k)
        ]


@dataclass(frozen=True)
class Capped:
    """One segment attribute's values in a window: those ``kept`` apart (by value), and those
    ``pooled`` into ``attr=__other__`` (in value order, with what panes pooled there)."""

    attribute: str
    kept: list[tuple[str, SegmentState]]
    pooled: list[tuple[str, SegmentState]]


def cap_segments(
    segments: Mapping[SegmentKey, SegmentState], *, max_values: int, max_attributes: int
) -> tuple[list[Capped], list[str]]:
    """Which values of a window are written: the ``max_attributes`` attributes with the most
    events (ties by name; the others are returned as dropped), and per attribute the
    ``max_values`` values with the most events (ties by value) kept apart, the rest pooled."""
    by_attr: dict[str, list[tuple[str, SegmentState]]] = {}
    for (attr, value), seg in segments.items():
        by_attr.setdefault(attr, []).append((value, seg))
    dropped: list[str] = []
    if len(by_attr) > max_attributes:
        # Each event has at most one value per attribute: an attribute's events are the sum
        # over its values.
        ranked = sorted(by_attr, key=lambda a: (-sum(s.events for _, s in by_attr[a]), a))
        dropped = ranked[max_attributes:]
        by_attr = {a: by_attr[a] for a in ranked[:max_attributes]}
    out = []
    for attr in sorted(by_attr):
        named = sorted(
            (t for t in by_attr[attr] if t[0] != OTHER_VALUE), key=lambda t: (-t[1].events, t[0])
        )
        pool = [t for t in by_attr[attr] if t[0] == OTHER_VALUE] + named[max_values:]
        out.append(Capped(attr, named[:max_values], sorted(pool, key=lambda t: t[0])))
    return out, dropped
