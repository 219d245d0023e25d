"""evaluate -> rows: what a closed window writes to the ``metrics`` and ``sketches`` tables.

The merge stage (:mod:`drifthouse.stream.merge`) decides when a window is complete and merges
its partials; this module turns the merged state into a :class:`WindowResult`: the window's
metric rows (model level, per feature and per capped segment value, the Benjamini-Hochberg
q-value beside every p-value, plus the change detectors' verdicts) and its sketch rows
(docs/clickhouse.md, docs/metrics.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import msgspec

from drifthouse.detectors.base import Context, Result
from drifthouse.detectors.change import ChangeDetectors
from drifthouse.detectors.model_sketch import EVENTS, ModelSketch, ModelState, SegmentState
from drifthouse.detectors.multiple_testing import bh_qvalues
from drifthouse.detectors.window_attribution import attribute
from drifthouse.profiles.auto import DRIFT_METRICS
from drifthouse.profiles.sketches import Sketches
from drifthouse.rows import ATTRIBUTION_METRICS, AttributionWithdrawal, MetricRow, Row, SketchRow
from drifthouse.stream.stage import Key
from drifthouse.stream.trailing import Baseline
from drifthouse.stream.windows import WindowSpec

__all__ = [
    "PVALUE_SUFFIX",
    "QVALUE_SUFFIX",
    "WindowResult",
    "change_results",
    "evaluate_window",
    "metric_rows",
    "qvalue_rows",
    "window_rows",
    "withdrawal",
]

PVALUE_SUFFIX = "_pvalue"
QVALUE_SUFFIX = "_qvalue"


@dataclass(frozen=True)
class WindowResult:
    """One closed window of one model: its rows, handed to the sink and to the alert stage."""

    spec: WindowSpec
    start: int
    end: int
    model: str
    model_version: str
    metrics: list[MetricRow]
    sketches: list[SketchRow]
    #: A rewrite's withdrawal of the attribution rows it no longer has (see
    #: :class:`~drifthouse.rows.AttributionWithdrawal`), written after ``metrics``.
    withdrawn: tuple[AttributionWithdrawal, ...] = ()

    def rows(self) -> list[Row]:
        """What the sink is handed: the metric and sketch rows, then the withdrawals."""
        return [*self.metrics, *self.sketches, *self.withdrawn]


#: One row's own part: ``(feature, metric, value, n, bin)``.
Value = tuple[str, str, float, int, str]


def window_rows(
    spec: WindowSpec,
    start: int,
    model: str,
    version: str,
    segment: str,
    values: Iterable[Value],
    *,
    run_id: str,
    computed_at: int,
) -> list[MetricRow]:
    """The rows of one window, model version and segment, one per value."""
    return [
        MetricRow(
            window_start=start,
            window_end=start + spec.size_ms,
            window=spec.name,
            model=model,
            model_version=version,
            feature=feature,
            segment=segment,
            metric=metric,
            value=value,
            n=n,
            run_id=run_id,
            computed_at=computed_at,
            bin=bin_,
        )
        for feature, metric, value, n, bin_ in values
    ]


def metric_rows(
    spec: WindowSpec,
    start: int,
    model: str,
    version: str,
    results: Sequence[Result],
    *,
    run_id: str,
    computed_at: int,
) -> list[MetricRow]:
    """Model-level rows (segment ``''``) of a window, one per result, ``n`` its ``n_cur``."""
    values = [(r.feature, r.metric, r.value, r.n_cur, r.bin) for r in results]
    return window_rows(
        spec, start, model, version, "", values, run_id=run_id, computed_at=computed_at
    )


def qvalue_rows(metrics: Sequence[MetricRow]) -> list[MetricRow]:
    """A ``<test>_qvalue`` row beside every finite ``<test>_pvalue`` row of one model-window.

    The family is every p-value of the window: all features, the model-wide rows and every
    segment value's (docs/statistics.md#false-alarms). Its q-values depend on the window's merged
    rows alone, never on their order, so a replay or a scaled-out run writes the same digits.
    """
    tested = [r for r in metrics if r.metric.endswith(PVALUE_SUFFIX) and 0.0 <= r.value <= 1.0]
    qs = bh_qvalues([r.value for r in tested])
    return [
        msgspec.structs.replace(r, metric=r.metric[: -len(PVALUE_SUFFIX)] + QVALUE_SUFFIX, value=q)
        for r, q in zip(tested, qs, strict=True)
    ]


def change_results(
    specs: Mapping[str, WindowSpec],
    released: Mapping[tuple[str, str, str, int], Sequence[Result]],
    *,
    run_id: str,
    computed_at: int,
) -> list[WindowResult]:
    """The ``change_detected`` rows of windows whose feed was deferred, one result per window
    (``released`` is keyed ``(model, version, window name, start)``)."""
    out = []
    for (model, version, window, start), results in released.items():
        spec = specs[window]
        rows = metric_rows(
            spec, start, model, version, results, run_id=run_id, computed_at=computed_at
        )
        out.append(WindowResult(spec, start, start + spec.size_ms, model, version, rows, []))
    return out


def _segment_rows(
    sketch: ModelSketch,
    spec: WindowSpec,
    common: dict[str, object],
    segments: Sequence[tuple[str, SegmentState]],
    attributed: Sequence[tuple[str, Result]],
    reference: object,
    *,
    drop: bool,
) -> list[MetricRow]:
    """Serving metrics per segment value (capped per attribute; see model_sketch), their
    prediction compared with ``reference`` (``drop``: not compared), and each value's share of
    the prediction's drift (docs/statistics.md, "Drift attribution") in ``attributed``."""
    out: list[MetricRow] = []
    events = {segment: seg.events for segment, seg in segments}
    for segment, seg in segments:
        per = {**common, "segment": segment}
        out += [
            MetricRow(feature=r.feature, metric=r.metric, value=r.value, n=seg.events, **per)  # type: ignore[arg-type]
            for r in sketch.evaluate_segment(seg, Context(reference, spec.size_ms))
            if not drop or r.metric not in DRIFT_METRICS
        ]
    for segment, r in attributed:
        if segment:
            row = {**common, "segment": segment, "n": events[segment]}
            out.append(MetricRow(feature=r.feature, metric=r.metric, value=r.value, **row))  # type: ignore[arg-type]
    return out


def evaluate_window(
    spec: WindowSpec,
    start: int,
    key: Key,
    state: ModelState,
    sketches: Sketches,
    *,
    changes: ChangeDetectors | None,
    defer_changes: bool = False,
    rewrite: bool = False,
    run_id: str,
    computed_at: int,
    baseline: Baseline | None = None,
) -> WindowResult:
    """The rows of one model's merged prediction window; feeds the change detectors once
    (``defer_changes``: it may be rewritten; its change rows come once no partition can add to it).
    A model on a trailing ``baseline`` is compared with its state, or not at all when it has
    none (docs/statistics.md "Trailing baselines"). A ``rewrite`` also withdraws the attribution
    rows of earlier writes that it does not write again (:func:`withdrawal`)."""
    model, version = key
    sketch = sketches(model)
    n = int(state.counters[EVENTS])
    common = {
        "window_start": start,
        "window_end": start + spec.size_ms,
        "window": spec.name,
        "model": model,
        "model_version": version,
        "segment": "",
        "run_id": run_id,
        "computed_at": computed_at,
    }
    reference = baseline.state if baseline is not None else None
    results = sketch.evaluate(state, Context(reference=reference, window_ms=spec.size_ms))
    segments = list(sketch.capped_segments(state))
    attributed = attribute(sketch, state, segments, sketches.metrics, reference)
    results += [r for segment, r in attributed if not segment]
    auto = sketches.auto_references.get(model)
    # Inside an automatic reference's own span: quality yes, comparisons with itself no.
    compare = (auto is None or start >= auto.end) if baseline is None else reference is not None
    if not compare:
        results = [r for r in results if r.metric not in DRIFT_METRICS]
    metrics = [
        MetricRow(feature=r.feature, metric=r.metric, value=r.value, n=n, bin=r.bin, **common)  # type: ignore[arg-type]
        for r in results
    ]
    own = reference.prediction if reference is not None else None
    drop = baseline is not None and not compare  # a trailing baseline too small: no drift rows
    metrics += _segment_rows(
        sketch, spec, common, segments, attributed if compare else [], own, drop=drop
    )
    metrics += qvalue_rows(metrics)
    if changes is not None:
        # Fed once per window, in window order: a rewritten window is skipped; attribution rows
        # (one per bin) are no series.
        changed = changes.update(
            model, version, spec.name, start, [r for r in results if not r.bin], defer=defer_changes
        )
        metrics += metric_rows(
            spec, start, model, version, changed, run_id=run_id, computed_at=computed_at
        )
    # Attribution off (top_k 0) writes no attribution rows and withdraws none.
    on = rewrite and sketches.metrics.attribution_top_k > 0
    withdrawn = (
        (withdrawal(spec, start, key, metrics, run_id=run_id, at=computed_at),) if on else ()
    )
    sketch_rows = [
        SketchRow(feature=p.feature, metric="", kind=p.kind, edges=p.edges, labels=p.labels,
                  counts=p.counts, n=p.n, **common)  # type: ignore[arg-type]
        for p in sketch.sketch_parts(state)
    ]  # fmt: skip
    end = start + spec.size_ms
    return WindowResult(spec, start, end, model, version, metrics, sketch_rows, withdrawn)


def withdrawal(
    spec: WindowSpec, start: int, key: Key, metrics: Sequence[MetricRow], *, run_id: str, at: int
) -> AttributionWithdrawal:
    """The withdrawal a rewrite of a window writes after its rows (``metrics``): every
    attribution row of the window's earlier writes but the ones it writes again."""
    keep = sorted(
        (r.feature, r.segment, r.metric, r.bin) for r in metrics if r.metric in ATTRIBUTION_METRICS
    )
    return AttributionWithdrawal(
        window_start=start, window=spec.name, model=key[0], model_version=key[1],
        run_id=run_id, computed_at=at, keep=tuple(keep),
    )  # fmt: skip
