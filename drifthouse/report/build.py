"""Read one run from the store into a :class:`~drifthouse.report.data.Report`
(docs/report.md): which run, models, window and range, then each model's part."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from drifthouse.alerts.contributors import DRIFT_RULE_METRICS
from drifthouse.config import Config, MetricsConfig
from drifthouse.detectors.model_sketch import ModelSketch
from drifthouse.detectors.reference import Profile
from drifthouse.errors import DrifthouseError, UsageError
from drifthouse.logs import get_logger
from drifthouse.report.analysis import Baseline, changes, most_drifted, summarize, thresholds
from drifthouse.report.data import Change, Histogram, ModelReport, Report, Series, Threshold
from drifthouse.report.heatmap import KINDS
from drifthouse.report.queries import (
    Range,
    choose_run,
    read_alerts,
    read_categories,
    read_comparisons,
    read_contributors,
    read_metrics,
    read_numeric_bins,
    read_profiles_json,
    read_run_features,
    read_run_models,
)

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

__all__ = ["ReportRequest", "build_report", "report_window"]

log = get_logger("report")

#: Numeric and categorical features drawn whatever their drift, beyond those picked.
TOP_FEATURES = 3


@dataclass(frozen=True)
class ReportRequest:
    """What to report on: ``None`` run id means the run written last; no models, all of the
    run's; times in ms (UTC), ``None`` for unbounded; ``features`` are drawn as histograms
    besides the most drifted ones."""

    run_id: str | None = None
    models: Sequence[str] = ()
    start_ms: int | None = None
    end_ms: int | None = None
    window: str | None = None
    features: Sequence[str] = field(default_factory=tuple)
    #: The drift heatmap's colour: ``psi`` or ``p-value`` (KS for numeric features,
    #: chi-squared for categorical ones).
    heatmap: str = "psi"


def report_window(config: Config, name: str | None) -> str:
    """The window spec the report reads: ``name``, else the configured tumbling window with the
    most windows per day (the shortest), else the first configured window."""
    names = [w.name for w in config.windows]
    if name is not None:
        if name not in names:
            raise UsageError(f"--window must be one of {', '.join(names)} (got {name!r})")
        return name
    tumbling = [w for w in config.windows if w.hop is None or w.hop == w.size]
    if tumbling:
        return min(tumbling, key=lambda w: w.size).name
    return names[0]


def _baseline(client: Client, model: str, versions: Sequence[str]) -> Baseline:
    """Baselines from the newest stored reference profile of the versions; none when there
    is none or it no longer reads (rules on ``baseline`` then never hold, as in the engine)."""
    stored = read_profiles_json(client, model, versions)
    try:
        profile = Profile.from_json(stored[0]) if stored else None
    except DrifthouseError as exc:
        log.warning("report.profile_unreadable", model=model, error=str(exc))
        profile = None
    if profile is None:
        return lambda _feature, _metric: None
    return ModelSketch(model, profile, MetricsConfig()).baseline


def _thresholds(
    config: Config, rng: Range, series: dict[tuple[str, str], Series]
) -> list[Threshold]:
    """The fixed thresholds of the rules on the model's metrics, one per rule and metric."""
    found: dict[tuple[str, str], Threshold] = {}
    for metric, feature in sorted(series):
        scope = feature if feature in ("", "__prediction__") else "*"
        for t in thresholds(config.rules, rng.model, rng.window, metric, scope):
            found.setdefault((t.rule, t.metric), t)
    return list(found.values())


def _model_report(client: Client, config: Config, rng: Range, picked: Sequence[str]) -> ModelReport:
    series, versions = read_metrics(client, rng)
    alerts = read_alerts(client, rng)
    psi = [s for (m, _), s in series.items() if m == "psi"]
    peaks = {s.feature: max(s.points, key=lambda p: p.value).start_ms for s in psi if s.points}
    numeric = [f for (m, f) in series if m == "ks" and f not in ("", "__prediction__")]
    categorical = [f for (m, f) in series if m == "chi2"]
    drifted = most_drifted(psi, picked, TOP_FEATURES)
    bins = (
        read_numeric_bins(client, rng, versions, [f for f in drifted if f in numeric], peaks)
        if versions
        else {}
    )
    new = {
        f: round(sum(p.value for p in s.points))
        for (m, f), s in series.items()
        if m == "new_category"
    }
    cats = (
        read_categories(client, rng, versions, [f for f in drifted if f in categorical], new)
        if versions
        else []
    )
    baseline = _baseline(client, rng.model, versions) if versions else (lambda _f, _m: None)
    found = changes(config.rules, rng.model, rng.window, list(series.values()), baseline, alerts)
    return ModelReport(
        model=rng.model,
        versions=tuple(versions),
        summary=summarize(lambda metric: series.get((metric, ""))),
        series=series,
        thresholds=tuple(_thresholds(config, rng, series)),
        histograms=tuple(
            Histogram(f, tuple(e), tuple(r), tuple(c), peaks.get(f), tuple(p))
            for f, (e, r, c, p) in bins.items()
        ),
        categories=tuple(cats),
        alerts=tuple(alerts),
        changes=tuple(found),
        contributors=tuple(read_contributors(client, rng, _drift_peaks(psi, drifted, found))),
        comparisons=tuple(read_comparisons(client, rng)),
    )


def _drift_peaks(
    psi: Sequence[Series], drifted: Sequence[str], found: Sequence[Change]
) -> dict[str, tuple[int, float]]:
    """``{feature: (start, psi)}`` of the window where each drifted feature's PSI peaked: the
    most drifted features, those a rule on a drift metric caught, and the prediction."""
    wanted = [*drifted, *(c.feature for c in found if c.metric in DRIFT_RULE_METRICS)]
    wanted.append("__prediction__")
    out: dict[str, tuple[int, float]] = {}
    by_feature = {s.feature: s for s in psi if s.points}
    for f in wanted:
        s = by_feature.get(f)
        if s is not None and f not in out:
            peak = max(s.points, key=lambda p: p.value)  # the first, like the histograms' peak
            out[f] = (peak.start_ms, peak.value)
    return out


def build_report(
    client: Client, config: Config, request: ReportRequest, *, store: str = ""
) -> Report:
    """Read the report's rows from the store.

    Raises
    ------
    UsageError
        The run id is not in the store, a model is not in the run, the window is not
        configured, or ``start`` is not before ``end``.
    """
    if (
        request.start_ms is not None
        and request.end_ms is not None
        and request.start_ms >= request.end_ms
    ):
        raise UsageError("--from must be before --to")
    if request.heatmap not in KINDS:
        raise UsageError(f"--heatmap must be one of {', '.join(KINDS)} (got {request.heatmap!r})")
    window = report_window(config, request.window)
    run_id = choose_run(client, request.run_id)
    present = read_run_models(client, run_id)
    missing = [m for m in request.models if m not in present]
    if missing:
        raise UsageError(
            f"--model {missing[0]!r}: run {run_id!r} has no metrics of that model "
            f"(models it has: {', '.join(present) or 'none'})"
        )
    models = list(request.models) or present
    known = read_run_features(client, run_id, models) - {"", "__prediction__"}
    unknown = [f for f in request.features if f not in known]
    if unknown:
        raise UsageError(
            f"--feature {unknown[0]!r}: no model of run {run_id!r} has that feature "
            f"(features: {', '.join(sorted(known)) or 'none'})"
        )
    parts = tuple(
        _model_report(
            client,
            config,
            Range(run_id, model, window, request.start_ms, request.end_ms),
            request.features,
        )
        for model in models
    )
    return Report(
        run_id=run_id,
        window=window,
        start_ms=request.start_ms,
        end_ms=request.end_ms,
        generated_ms=int(time.time() * 1000),
        store=store,
        models=parts,
        heatmap=request.heatmap,
    )
