"""What a report shows, as typed values: read from the store by
:mod:`~drifthouse.report.queries`, drawn by :mod:`~drifthouse.report.charts`
(docs/report.md)."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "AlertEvent",
    "Categories",
    "Change",
    "Contributors",
    "Histogram",
    "ModelReport",
    "Point",
    "Report",
    "RunSummary",
    "Series",
    "Threshold",
]


@dataclass(frozen=True)
class Point:
    """One window's value of a metric (``start_ms`` is the window's start, UTC)."""

    start_ms: int
    value: float
    n: int


@dataclass(frozen=True)
class Series:
    """One metric of one feature (``""`` for the model, ``__prediction__``) over the windows."""

    metric: str
    feature: str
    points: tuple[Point, ...]


@dataclass(frozen=True)
class Threshold:
    """A rule's threshold on a metric, as its ``when`` condition compares it."""

    rule: str
    metric: str
    value: float
    #: ``>`` (fires above) or ``<`` (fires below).
    direction: str
    severity: str


@dataclass(frozen=True)
class Histogram:
    """Reference and current shares of a numeric feature on the reference's PSI bins.

    ``edges`` are the inner bin edges (``len(edges) + 1`` bins: below the first edge, between
    edges, from the last edge up); counts are events per bin.
    """

    feature: str
    edges: tuple[float, ...]
    reference: tuple[int, ...]
    current: tuple[int, ...]
    #: The window with the feature's highest PSI, and its counts on the same bins.
    peak_start_ms: int | None
    peak: tuple[int, ...]


@dataclass(frozen=True)
class Categories:
    """Reference and current counts of a categorical feature's categories.

    ``labels`` are the reference's categories then ``__other__`` (values outside them);
    ``new`` counts the current events whose category the reference never saw (a part of
    ``__other__``).
    """

    feature: str
    labels: tuple[str, ...]
    reference: tuple[int, ...]
    current: tuple[int, ...]
    new: int


@dataclass(frozen=True)
class AlertEvent:
    """One alert state change (table ``alerts``)."""

    ts_ms: int
    window_start_ms: int
    window_end_ms: int
    rule: str
    severity: str
    status: str
    feature: str
    metric: str
    value: float
    threshold: float
    receivers: tuple[str, ...]


@dataclass(frozen=True)
class Change:
    """A feature (or the model) whose metric crossed a rule's threshold in the range."""

    feature: str
    rule: str
    metric: str
    severity: str
    threshold: float
    first_start_ms: int
    peak_start_ms: int
    peak: float
    windows_over: int
    #: When the rule's alert first fired for this series (``None``: it never fired).
    fired_ms: int | None


@dataclass(frozen=True)
class Contributors:
    """The top contributors of one feature's drift in the window where its PSI peaked, from the
    drift attribution rows (docs/statistics.md "Drift attribution").

    ``bins`` are ``(bin, psi term, mass shift)``, largest term first; ``segments``
    ``(segment, share of the drift)``, largest first.
    """

    feature: str
    start_ms: int
    psi: float
    bins: tuple[tuple[str, float, float], ...]
    segments: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class RunSummary:
    """Totals of one model over the report's range, from the model-level metrics."""

    events: int
    windows: int
    invalid_events: int
    late_events: int
    labels: int


@dataclass(frozen=True)
class Comparison:
    """One comparison metric of one version over the range: a canary against the main version
    (``segment`` ``vs=<baseline>``) or a shadow's agreement (``shadow=<shadow>``)."""

    version: str
    segment: str
    metric: str
    windows: int
    #: Mean over the windows, weighted by ``n``; the largest window value.
    mean: float
    peak: float
    n: int


@dataclass(frozen=True)
class ModelReport:
    """Everything the report shows of one model."""

    model: str
    versions: tuple[str, ...]
    summary: RunSummary
    #: Every metric read, keyed ``(metric, feature)``.
    series: dict[tuple[str, str], Series]
    thresholds: tuple[Threshold, ...]
    histograms: tuple[Histogram, ...]
    categories: tuple[Categories, ...]
    alerts: tuple[AlertEvent, ...]
    changes: tuple[Change, ...]
    #: Top contributors of the drifted features at their PSI peaks (the most drifted first).
    contributors: tuple[Contributors, ...] = ()
    #: Versions compared in each window, and shadows (docs/metrics.md).
    comparisons: tuple[Comparison, ...] = ()

    def features(self, metric: str) -> list[str]:
        """Features with a series of ``metric`` (the prediction and the model excluded)."""
        return sorted(
            f for (m, f) in self.series if m == metric and f not in ("", "__prediction__")
        )

    def get(self, metric: str, feature: str = "") -> Series | None:
        return self.series.get((metric, feature))


@dataclass(frozen=True)
class Report:
    """A whole report: which run, range and window, and each model's part."""

    run_id: str
    window: str
    start_ms: int | None
    end_ms: int | None
    generated_ms: int
    store: str
    models: tuple[ModelReport, ...] = field(default_factory=tuple)
    #: What the drift heatmap is coloured by: ``psi`` or ``p-value``.
    heatmap: str = "psi"
