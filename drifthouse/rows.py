"""Rows that leave the pipeline: one shape per ClickHouse table (docs/clickhouse.md).

Times are integer epoch milliseconds (UTC); the sinks turn them into ``DateTime64(3, 'UTC')``.
Rows are frozen ``msgspec.Struct``s so they are cheap to build, compare and spool to disk.
"""

from __future__ import annotations

import msgspec

__all__ = [
    "ATTRIBUTION_METRICS",
    "AlertRow",
    "AttributionWithdrawal",
    "LabelPaneRow",
    "LateLabelRow",
    "LatePredictionRow",
    "MetricRow",
    "PredictionRow",
    "ReferenceRow",
    "Row",
    "SketchRow",
    "WindowStateRow",
]


class MetricRow(msgspec.Struct, frozen=True, kw_only=True):
    """One metric value of one window: a row of table ``metrics``.

    ``feature`` is ``''`` for model-level metrics; ``segment`` is ``''`` for all events,
    otherwise ``name=value``. ``n`` is the number of events in the window.
    ``computed_at`` is the only wall-clock field; it versions rewrites of the same key.
    ``bin`` names the bin or category of a drift attribution row (``psi_contribution``,
    ``js_contribution``, ``mass_shift``: ``[420.0, 480.0)``, ``BR``), ``''`` otherwise.
    """

    window_start: int
    window_end: int
    window: str
    model: str
    model_version: str
    feature: str
    segment: str
    metric: str
    value: float
    n: int
    run_id: str
    computed_at: int = 0
    bin: str = ""

    def key(self) -> tuple[int, str, str, str, str, str, str, str, str]:
        """The natural key: one row per key survives rewrites (the columns of the table's ORDER
        BY; ``metric`` and ``run_id`` last, in this order)."""
        return (
            self.window_start,
            self.window,
            self.model,
            self.model_version,
            self.feature,
            self.segment,
            self.bin,
            self.metric,
            self.run_id,
        )


class AttributionWithdrawal(msgspec.Struct, frozen=True, kw_only=True):
    """A rewrite's withdrawal of drift attribution rows in table ``metrics``: of one window,
    model version and run, every attribution row (``psi_contribution``, ``js_contribution``,
    ``mass_shift``, ``psi_segment_share``) written at or before ``computed_at`` whose
    ``(feature, segment, metric, bin)`` is not in ``keep``, the rewrite's own rows.

    Which bins lead depends on a window's data: a window rewritten whole (a partition that was
    idle woke up with its share) has rows its first write had not, and the other way round. A
    ReplacingMergeTree replaces rows by key but never removes a key, so the sink deletes them
    (docs/clickhouse.md, "Writing the same window twice").
    """

    window_start: int
    window: str
    model: str
    model_version: str
    run_id: str
    computed_at: int
    keep: tuple[tuple[str, str, str, str], ...] = ()

    def withdraws(self, row: MetricRow) -> bool:
        """Whether ``row`` is one of the rows withdrawn."""
        return (
            row.metric in ATTRIBUTION_METRICS
            and (row.window_start, row.window, row.model, row.model_version, row.run_id)
            == (self.window_start, self.window, self.model, self.model_version, self.run_id)
            and row.computed_at <= self.computed_at
            and (row.feature, row.segment, row.metric, row.bin) not in self.keep
        )


#: The metrics of drift attribution rows (docs/statistics.md, "Drift attribution"), each naming
#: its bin (or, ``psi_segment_share``, its segment value).
ATTRIBUTION_METRICS = frozenset(
    {"psi_contribution", "js_contribution", "mass_shift", "psi_segment_share"}
)


class SketchRow(msgspec.Struct, frozen=True, kw_only=True):
    """The mergeable state of one window, feature and kind: a row of table ``sketches``.

    For ``kind == 'hist'`` there are ``len(counts) - 1`` edges and a value ``v`` is counted in
    bin ``i`` when ``edges[i-1] <= v < edges[i]`` (outermost bins open). For ``categories``,
    ``labels[i]`` names ``counts[i]``. For ``quantiles``, ``edges`` are the lower bounds of the
    log buckets. Summing ``counts`` element-wise over rows with equal edges merges windows.
    """

    window_start: int
    window_end: int
    window: str
    model: str
    model_version: str
    feature: str
    segment: str
    metric: str
    kind: str
    edges: list[float]
    labels: list[str]
    counts: list[int]
    n: int
    run_id: str
    computed_at: int = 0


class AlertRow(msgspec.Struct, frozen=True, kw_only=True):
    """One alert state change (firing or resolved): a row of table ``alerts``."""

    ts: int
    rule: str
    severity: str
    status: str
    model: str
    model_version: str
    feature: str
    segment: str
    metric: str
    value: float
    threshold: float
    window_start: int
    window_end: int
    message: str
    receivers: list[str]
    dedup_key: str
    run_id: str


class PredictionRow(msgspec.Struct, frozen=True, kw_only=True):
    """One logged prediction: a row of table ``predictions``.

    ``features``, ``prediction`` and ``segment`` are JSON text; PII features are keyed hashes.
    ``sample_rate`` is the probability that an event like this one was logged (1.0 for errors and
    ``keep_when`` matches), so ``sum(1 / sample_rate)`` estimates the number of events.
    """

    ts: int
    model: str
    model_version: str
    event_id: str
    features: str
    prediction: str
    latency_ms: float | None
    status: int
    segment: str
    kept_because: str
    sample_rate: float


class ReferenceRow(msgspec.Struct, frozen=True, kw_only=True):
    """One stored reference profile (docs/statistics.md, "Reference profiles"): a row of table ``references``."""

    model: str
    model_version: str
    created_at: int
    digest: str
    source: str
    profile: str


class LateLabelRow(msgspec.Struct, frozen=True, kw_only=True):
    """A label the stream's label join could not join: a row of table ``labels``
    (docs/model-performance.md, "Labels later than the horizon"): ``reason`` ``expired``,
    ``unmatched`` or ``late_pane``. ``label`` is JSON text; ``seq`` the label's place in its
    model's arrivals (the first label of an id wins)."""

    ts: int
    model: str
    event_id: str
    label: str
    seq: int
    reason: str
    run_id: str


class LatePredictionRow(msgspec.Struct, frozen=True, kw_only=True):
    """A prediction that left the label join without its label: a row of table
    ``label_predictions``. ``score`` is NaN for class predictions; ``segment`` JSON pairs."""

    ts: int
    model: str
    model_version: str
    event_id: str
    score: float
    pred_class: str | None
    segment: str
    run_id: str


class LabelPaneRow(msgspec.Struct, frozen=True, kw_only=True):
    """A label pane the stream is done with: a row of table ``label_panes``. ``state`` is the
    base64 of the compressed label state (``''`` for none); ``counters`` predictions,
    unmatched, expired, duplicate; windows whose every pane starts before ``final_until``
    minus their size are final for the stream."""

    pane_start: int
    window: str
    model: str
    model_version: str
    segment: str
    state: str
    counters: list[int]
    final_until: int
    run_id: str
    computed_at: int = 0


class WindowStateRow(msgspec.Struct, frozen=True, kw_only=True):
    """The whole mergeable state of a closed base window of one model: a row of table
    ``window_states``, read back to build the windows configured with ``from``. ``state`` is
    base64 of the LZ4-compressed state (:mod:`drifthouse.sinks.window_states`)."""

    window_start: int
    window_end: int
    window: str
    model: str
    model_version: str
    state: str
    n: int
    run_id: str
    computed_at: int = 0


Row = (
    MetricRow
    | AttributionWithdrawal
    | SketchRow
    | AlertRow
    | PredictionRow
    | ReferenceRow
    | LateLabelRow
    | LatePredictionRow
    | LabelPaneRow
    | WindowStateRow
)
"""Any row a sink takes; :mod:`drifthouse.sinks.tables` says which table each type fills."""
