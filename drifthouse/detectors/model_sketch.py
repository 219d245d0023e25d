"""Everything drifthouse keeps about one model in one pane: the detectors' states side by side.

:class:`ModelSketch` is built once per model from its reference profile and follows the same
protocol as each detector (``empty``, ``update``, ``merge``, ``evaluate``), so the window
manager can treat a model's whole pane as one mergeable value. A model without a reference
profile still gets its model-level metrics (events, latency, error rates). On an automatic
reference (``reference: auto``, the default for models without a profile file) its panes also
keep their events (:mod:`drifthouse.detectors.raw_panes`) until the merge stage has built the
reference from the model's first span of traffic (:mod:`drifthouse.profiles.auto`);
the sketch built on that reference then replays them (:meth:`ModelSketch.resolve`), so the
features are sketched exactly as if the layout had been known from the first event.

Segments
--------
Events with a ``segment`` (``{"country": "DE"}``) also feed a small :class:`SegmentState` per
segment value (``("country", "DE")``): its event count, latency, status codes and prediction,
so a window gets the serving metrics (``events``, ``throughput_rps``, latency quantiles, error
rates, prediction drift) per segment value as well. Feature drift and quality, late and
invalid counts and importance stay model-wide. A merge is the union of the values with a merge
per value, so panes, partitions and workers add up exactly as the model-level state does.

How many values are written is decided when a window is evaluated, never by arrival order: per
attribute, the ``max_segment_values`` values with the most events (ties by value) are kept
apart and the rest pooled into ``attr=__other__``. To bound memory, one pane of one partition
keeps at most ``10 * max_segment_values`` values per attribute apart (``pane_segment_limit``)
and pools later ones into ``__other__`` as they arrive: below that limit the window's values
do not depend on how events are spread over partitions.

Attributes are bounded the same way: the decoder refuses an event with more than
``max_segment_attributes`` of them (``too_many_segments``), a window writes the
``max_segment_attributes`` attributes with the most events (ties by name) and leaves the others
out (logged as ``segments.attributes_dropped``), and one pane keeps at most ten times as many
(later attributes are not kept), so events naming fresh attributes cannot multiply rows or
memory either.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import msgspec
import numpy as np

from drifthouse.detectors.base import NO_CONTEXT, Context, Result, Sketch, window_ms_of
from drifthouse.detectors.baselines import baseline_of
from drifthouse.detectors.categorical import CategoricalBlock
from drifthouse.detectors.cbpe import batch_of, sketch_for
from drifthouse.detectors.columns import Columns, extract
from drifthouse.detectors.dle import batch_of_columns
from drifthouse.detectors.dle import sketch_for as dle_for
from drifthouse.detectors.embedding import EmbeddingBatch, EmbeddingSketch
from drifthouse.detectors.importance import ImportanceBatch, ImportanceSketch
from drifthouse.detectors.layout import FeatureLayout
from drifthouse.detectors.model_reference import part_contexts
from drifthouse.detectors.model_state import (
    EVENTS,
    INVALID,
    LATE,
    ModelState,
    SegmentKey,
    SegmentState,
)
from drifthouse.detectors.multivariate import MultivariateBatch
from drifthouse.detectors.multivariate import sketch_for as multivariate_for
from drifthouse.detectors.numeric import NumericBatch, NumericBlock, SketchPart
from drifthouse.detectors.quantiles import QuantileSketch
from drifthouse.detectors.raw_panes import RawLeaf, RawTree, decode_events
from drifthouse.detectors.reference import Profile
from drifthouse.detectors.segment_features import FeatureBins
from drifthouse.detectors.segments import OTHER_VALUE, Rows, SegmentSketch, cap_segments
from drifthouse.detectors.status import StatusCounter
from drifthouse.errors import SketchError
from drifthouse.logs import get_logger

__all__ = [
    "EVENTS",
    "INVALID",
    "LATE",
    "OTHER_VALUE",
    "PREDICTION_FEATURE",
    "ModelBatch",
    "ModelOptions",
    "ModelSketch",
    "ModelState",
    "SegmentState",
    "SketchSettings",
]

log = get_logger("sketches")

PREDICTION_FEATURE = "__prediction__"
PANE_LIMIT_FACTOR = 10  # distinct values per attribute one pane keeps apart, x max_segment_values


class SketchSettings(Protocol):
    """The metric settings a model's sketches are laid out with (the configuration's
    ``metrics`` has them)."""

    @property
    def eps(self) -> float: ...
    @property
    def latency_relative_accuracy(self) -> float: ...
    @property
    def max_segment_values(self) -> int: ...
    @property
    def max_segment_attributes(self) -> int: ...
    @property
    def importance(self) -> bool: ...
    @property
    def attribution_top_k(self) -> int: ...


class ModelOptions(Protocol):
    """One model's own settings (an entry of the configuration's ``models``): out-of-range
    bounds per feature, and the PII features, never sketched."""

    @property
    def bounds(self) -> Mapping[str, tuple[float, float]]: ...
    @property
    def pii(self) -> Sequence[str]: ...


@dataclass(frozen=True, slots=True)
class ModelBatch:
    """A micro-batch of one model's events: their ``columns`` and, while the model's automatic
    reference is not built, the same events encoded (``raw``,
    :func:`~drifthouse.detectors.raw_panes.encode_events`)."""

    columns: Columns
    raw: Sequence[bytes] | None = None


class ModelSketch(Sketch[ModelState, ModelBatch]):
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
        metrics: SketchSettings,
        model_config: ModelOptions | None = None,
        auto_span: int | None = None,
    ) -> None:
        self.model = model
        self.profile = profile
        #: The span of the model's automatic reference (ms), when it runs on one.
        self.auto_span = auto_span
        #: Panes keep their events: the automatic reference is not built yet.
        self.collects_raw = profile is None and auto_span is not None
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
        self.embedding = EmbeddingSketch.of(profile, model_config.pii if model_config else ())
        self.latency = QuantileSketch(metrics.latency_relative_accuracy)
        self.max_segment_values = metrics.max_segment_values
        self.pane_segment_limit = PANE_LIMIT_FACTOR * metrics.max_segment_values
        self.max_segment_attributes = metrics.max_segment_attributes
        self.pane_attribute_limit = PANE_LIMIT_FACTOR * metrics.max_segment_attributes
        self._dropped_logged = False
        self.status = StatusCounter()
        pred = profile.prediction if profile is not None else None
        # Prediction drift: a score (regression, binary probability) on a numeric grid, or
        # class labels as categories.
        self.prediction: NumericBlock | CategoricalBlock | None = None
        if pred is not None:
            block = NumericBlock if pred.kind == "numeric" else CategoricalBlock
            renamed = msgspec.structs.replace(pred, name=PREDICTION_FEATURE)
            self.prediction = block([renamed], eps=metrics.eps)
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
            probability_classes=tuple(profile.calibration.classes)
            if profile is not None and profile.calibration is not None
            else (),
            embeddings=self.embedding.layout_pairs if self.embedding is not None else (),
        )
        self.segment = SegmentSketch(self.latency, self.status, self.prediction, self._bins(metrics))  # fmt: skip
        self.cbpe, self.dle = sketch_for(profile), dle_for(profile, self.numeric.names, cat.names)
        self.multivariate = multivariate_for(profile, self.numeric.names, cat.names)  # PCA

    def _bins(self, metrics: SketchSettings) -> FeatureBins | None:
        """Each segment value's counts on the features' PSI bins, kept while attribution is on."""
        on = metrics.attribution_top_k > 0
        return FeatureBins(self.numeric, self.categorical) if on else None

    def empty(self) -> ModelState:
        return ModelState(
            numeric=self.numeric.empty(),
            categorical=self.categorical.empty(),
            latency=self.latency.empty(),
            status=self.status.empty(),
            prediction=self.prediction.empty() if self.prediction is not None else None,
            counters=np.zeros(3, dtype=np.int64),
            importance=self.importance.empty() if self.importance is not None else None,
            raw=RawLeaf() if self.collects_raw else None,
            cbpe=self.cbpe.empty() if self.cbpe is not None else None,
            embedding=self.embedding.empty() if self.embedding is not None else None,
            multivariate=self.multivariate.empty() if self.multivariate is not None else None,
            dle=self.dle.empty() if self.dle is not None else None,
        )

    def empty_segment(self) -> SegmentState:
        return self.segment.empty()

    def update(self, state: ModelState, batch: ModelBatch) -> ModelState:
        """Add one micro-batch of this model's events (in arrival order), in place; its ``raw``
        events are kept in the pane while :attr:`collects_raw`."""
        cols, raw = batch.columns, batch.raw
        if len(cols) == 0:
            return state
        if state.raw is not None:
            if not self.collects_raw:
                state = self.resolve(state)
            else:
                if raw is None or len(raw) != len(cols) or not isinstance(state.raw, RawLeaf):
                    raise SketchError(
                        f"model {self.model!r} keeps its panes' events until its automatic "
                        f"reference is built: expected the {len(cols)} encoded events of the "
                        f"batch and a pane, got {0 if raw is None else len(raw)} events and "
                        f"{'a pane' if isinstance(state.raw, RawLeaf) else 'a merged window'}"
                    )
                state.raw.events.extend(raw)
        self.numeric.update(state.numeric, NumericBatch(cols.numeric, cols.status))
        self.categorical.update(state.categorical, cols.codes)
        self.segment.serve(state.latency, state.status, state.prediction, cols, None)
        if cols.segments:
            self._update_segments(state.segments, cols)
        if self.cbpe is not None and state.cbpe is not None:
            self.cbpe.update(state.cbpe, batch_of(self.cbpe, cols))
        if self.dle is not None and state.dle is not None:
            self.dle.update(state.dle, batch_of_columns(cols))
        if self.embedding is not None and state.embedding is not None:
            self.embedding.update(state.embedding, EmbeddingBatch.of(cols))
        if self.multivariate is not None and state.multivariate is not None:
            mv_batch = MultivariateBatch(cols.numeric, cols.status, cols.codes)
            self.multivariate.update(state.multivariate, mv_batch)
        if self.importance is not None and state.importance is not None:
            self.importance.update(
                state.importance, ImportanceBatch(cols.numeric, cols.status, cols.codes, cols.score)
            )
        state.counters[EVENTS] += len(cols)
        return state

    def _update_segments(self, segments: dict[SegmentKey, SegmentState], cols: Columns) -> None:
        """Each segment value's rows, in arrival order. Values beyond the pane's limit for their
        attribute go to ``__other__``, with the events of values literally named so, in one
        update of their rows in arrival order (so batch cuts change no digit)."""
        pooled: dict[str, list[np.ndarray]] = {}
        distinct: Counter[str] | None = None
        attrs: set[str] | None = None
        for key, idx in cols.segments.items():  # in the order of their first row
            attr, value = key
            seg = segments.get(key)
            if seg is None:
                if attrs is None:
                    attrs = {a for a, _ in segments}
                if attr not in attrs:
                    if len(attrs) >= self.pane_attribute_limit:
                        continue  # a pane keeps so many attributes; a window writes fewer
                    attrs.add(attr)
                if value == OTHER_VALUE:
                    pooled.setdefault(attr, []).append(idx)
                    continue
                if distinct is None:
                    distinct = Counter(a for a, v in segments if v != OTHER_VALUE)
                if distinct[attr] >= self.pane_segment_limit:
                    pooled.setdefault(attr, []).append(idx)
                    continue
                distinct[attr] += 1
                seg = segments[key] = self.empty_segment()
            elif value == OTHER_VALUE:
                pooled.setdefault(attr, []).append(idx)
                continue
            self._update_segment(seg, cols, idx)
        for attr, parts in pooled.items():
            key = (attr, OTHER_VALUE)
            seg = segments.get(key)
            if seg is None:
                seg = segments[key] = self.empty_segment()
            rows = parts[0] if len(parts) == 1 else np.sort(np.concatenate(parts))
            self._update_segment(seg, cols, rows)

    def _update_segment(self, seg: SegmentState, cols: Columns, idx: np.ndarray) -> None:
        self.segment.update(seg, Rows(cols, idx))

    def count(self, state: ModelState, slot: int, n: int) -> ModelState:
        """Add ``n`` to a counter (``LATE`` or ``INVALID``), in place."""
        if state.raw is not None:
            if not self.collects_raw:
                state = self.resolve(state)
            elif isinstance(state.raw, RawLeaf):
                if slot == LATE:
                    state.raw.late += n
                else:
                    state.raw.invalid += n
        state.counters[slot] += n
        return state

    def resolve(self, state: ModelState) -> ModelState:
        """The state with its kept events sketched on this model's reference: each pane in one
        update, each merge made again in the same order (see :mod:`~drifthouse.detectors.raw_panes`).
        A state keeping no events is returned as it is."""
        if state.raw is None or self.collects_raw:
            return state
        return self._replay(state.raw)

    def _replay(self, tree: RawTree) -> ModelState:
        if not isinstance(tree, RawLeaf):
            return self.merge(self._replay(tree[0]), self._replay(tree[1]))
        state = self.empty()
        if tree.events:
            state = self.update(state, ModelBatch(extract(decode_events(tree.events), self.layout)))
        state.counters[LATE] += tree.late
        state.counters[INVALID] += tree.invalid
        return state

    def merge(self, a: ModelState, b: ModelState) -> ModelState:
        """A new state holding both (pure: a pane takes part in several sliding windows)."""
        raw: RawTree | None = None
        if self.collects_raw:
            if a.raw is None or b.raw is None:
                raise SketchError(
                    f"model {self.model!r}: cannot merge a sketched pane before its reference"
                )
            raw = (a.raw, b.raw)
        else:
            a, b = self.resolve(a), self.resolve(b)
        return ModelState(
            numeric=self.numeric.merge(a.numeric, b.numeric),
            categorical=self.categorical.merge(a.categorical, b.categorical),
            latency=self.latency.merge(a.latency, b.latency),
            status=self.status.merge(a.status, b.status),
            prediction=self.segment.merge_prediction(a.prediction, b.prediction),
            counters=a.counters + b.counters,
            importance=self.importance.merge(a.importance, b.importance)
            if self.importance is not None and a.importance is not None and b.importance is not None
            else None,
            segments=self._merge_segments(a.segments, b.segments),
            raw=raw,
            cbpe=self.cbpe.merge(a.cbpe, b.cbpe)
            if self.cbpe is not None and a.cbpe is not None and b.cbpe is not None
            else None,
            embedding=self.embedding.merge(a.embedding, b.embedding)
            if self.embedding is not None and a.embedding is not None and b.embedding is not None
            else None,
            multivariate=self.multivariate.merge(a.multivariate, b.multivariate)
            if self.multivariate and a.multivariate and b.multivariate
            else None,
            dle=self.dle.merge(a.dle, b.dle) if self.dle and a.dle and b.dle else None,
        )

    def merge_segment(self, a: SegmentState, b: SegmentState) -> SegmentState:
        """A new segment state holding both."""
        return self.segment.merge(a, b)

    def _merge_segments(
        self, a: dict[SegmentKey, SegmentState], b: dict[SegmentKey, SegmentState]
    ) -> dict[SegmentKey, SegmentState]:
        # The union of the values, sorted; a value on one side only is copied (merged with an
        # empty state, the identity), so the result shares no array with its inputs.
        if not a and not b:
            return {}
        out = {}
        for key in sorted(a.keys() | b.keys()):
            sa, sb = a.get(key), b.get(key)
            out[key] = self.merge_segment(
                sa if sa is not None else self.empty_segment(),
                sb if sb is not None else self.empty_segment(),
            )
        return out

    def evaluate(self, state: ModelState, context: Context = NO_CONTEXT) -> list[Result]:
        """Every metric of a closed window of ``context.window_ms``: per feature, then model
        level (``feature == ''``); compared with ``context.reference`` (a ModelState) if given."""
        window_ms = window_ms_of("ModelSketch", context)
        events = int(state.counters[EVENTS])
        out: list[Result] = []
        if events:
            ref = part_contexts(context.reference)  # docs/statistics.md "Trailing baselines"
            out += self.numeric.evaluate(state.numeric, ref.numeric)
            out += self.categorical.evaluate(state.categorical, ref.categorical)
            out += self.segment.prediction_results(state.prediction, ref.prediction)
            if self.importance is not None and state.importance is not None:
                out += self.importance.evaluate(state.importance, ref.importance)
            out += self.latency.evaluate(state.latency)
            out += self.status.evaluate(state.status)
            if self.cbpe is not None and state.cbpe is not None:
                out += self.cbpe.evaluate(state.cbpe)
            if self.dle is not None and state.dle is not None:
                out += self.dle.evaluate(state.dle)
            if self.embedding is not None and state.embedding is not None:
                out += self.embedding.evaluate(state.embedding)
            if self.multivariate is not None and state.multivariate is not None:
                out += self.multivariate.evaluate(state.multivariate)
        out += [
            Result("", "events", float(events), None, 0, events),
            Result("", "late_events", float(state.counters[LATE]), None, 0, events),
            Result("", "invalid_events", float(state.counters[INVALID]), None, 0, events),
            Result("", "throughput_rps", events / (window_ms / 1000.0), None, 0, events),
        ]
        return out

    def capped_segments(self, state: ModelState) -> Iterator[tuple[str, SegmentState]]:
        """``("attr=value", state)`` of a window, sorted: the ``max_segment_attributes``
        attributes with the most events (ties by name), and per attribute the
        ``max_segment_values`` values with the most events (ties by value) kept apart, the rest
        merged (in value order) into ``attr=__other__`` with what a pane pooled there."""
        capped, dropped = cap_segments(
            state.segments,
            max_values=self.max_segment_values,
            max_attributes=self.max_segment_attributes,
        )
        if dropped:
            (log.warning if not self._dropped_logged else log.debug)(
                "segments.attributes_dropped",
                model=self.model,
                kept=self.max_segment_attributes,
                dropped=len(dropped),
                first_dropped=dropped[:3],
                hint="raise metrics.max_segment_attributes, or send fewer segment attributes",
            )
            self._dropped_logged = True
        for c in capped:
            keep = list(c.kept)
            if c.pooled:
                merged = c.pooled[0][1]
                for _, seg in c.pooled[1:]:
                    merged = self.merge_segment(merged, seg)
                keep.append((OTHER_VALUE, merged))
            for value, seg in sorted(keep, key=lambda t: t[0]):
                yield f"{c.attribute}={value}", seg

    def evaluate_segment(self, seg: SegmentState, context: Context = NO_CONTEXT) -> list[Result]:
        """The serving metrics of one segment value's window (:meth:`SegmentSketch.evaluate`)."""
        return self.segment.evaluate(seg, context)

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
        return baseline_of(self.profile, feature, metric)
