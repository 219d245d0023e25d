"""What the report works out from the rows it read: the configured rules' thresholds, the
ranked "what changed" table, the run summary and the most drifted features (docs/report.md).

A rule's condition is evaluated on each window's model-wide value exactly as the rule engine
does (:mod:`drifthouse.expr`, the baseline from the stored reference profile); ``for`` and
``clear`` are not replayed: "first window over threshold" is the first window whose value makes
``when`` true, and "fired" is read from the ``alerts`` table.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Callable, Sequence

from drifthouse.config.alerting import RuleConfig
from drifthouse.expr import Condition, extract_threshold, parse
from drifthouse.report.data import AlertEvent, Change, RunSummary, Series, Threshold

__all__ = ["Baseline", "changes", "most_drifted", "summarize", "thresholds"]

#: ``(feature, metric) -> baseline`` of one model (``None`` where the reference has none).
Baseline = Callable[[str, str], float | None]


def _matches(rule: RuleConfig, model: str, window: str, metric: str, feature: str) -> bool:
    return (
        fnmatch.fnmatchcase(metric, rule.metric)
        and fnmatch.fnmatchcase(model, rule.model)
        and fnmatch.fnmatchcase(window, rule.window)
        and fnmatch.fnmatchcase(feature, rule.feature)
        and fnmatch.fnmatchcase("", rule.segment)
    )


def _direction(cond: Condition, threshold: float) -> str:
    """``>`` when the condition holds above its threshold, else ``<``."""
    above = threshold + abs(threshold) + 1.0
    # A q-value of 0 and a seasonal value of 1 let a condition that names them hold on `value`.
    holds = cond.evaluate(value=above, baseline=1.0, n=10**12, qvalue=0.0, seasonal=1.0)
    return ">" if holds else "<"


def thresholds(
    rules: Sequence[RuleConfig], model: str, window: str, metric: str, feature: str = "*"
) -> list[Threshold]:
    """The fixed thresholds (no ``baseline`` in them) of the rules on ``metric`` of the model's
    windows; ``feature="*"`` takes rules on any feature."""
    out = []
    for rule in rules:
        probe = feature if feature != "*" else (rule.feature if "*" not in rule.feature else "x")
        if not _matches(rule, model, window, metric, probe):
            continue
        cond = parse(rule.when)
        if cond.uses_baseline:
            continue
        value = extract_threshold(cond, n=10**12)
        if math.isfinite(value):
            out.append(Threshold(rule.name, metric, value, _direction(cond, value), rule.severity))
    return out


def _fired(alerts: Sequence[AlertEvent], rule: str, feature: str, metric: str) -> int | None:
    for a in alerts:
        if a.status == "firing" and a.rule == rule and a.feature == feature and a.metric == metric:
            return a.window_end_ms
    return None


def _change(
    rule: RuleConfig, series: Series, baseline: float | None, alerts: Sequence[AlertEvent]
) -> Change | None:
    cond = parse(rule.when)
    over = [p for p in series.points if cond.evaluate(value=p.value, baseline=baseline, n=p.n)]
    if not over:
        return None
    threshold = extract_threshold(cond, baseline=baseline, n=over[0].n)
    direction = _direction(cond, threshold) if math.isfinite(threshold) else ">"
    peak = (
        max(over, key=lambda p: p.value) if direction == ">" else min(over, key=lambda p: p.value)
    )
    return Change(
        feature=series.feature,
        rule=rule.name,
        metric=series.metric,
        severity=rule.severity,
        threshold=threshold,
        first_start_ms=over[0].start_ms,
        peak_start_ms=peak.start_ms,
        peak=peak.value,
        windows_over=len(over),
        fired_ms=_fired(alerts, rule.name, series.feature, series.metric),
    )


def _excess(c: Change) -> float:
    """How far past its threshold a change peaked (a ratio, at least 1)."""
    if not math.isfinite(c.threshold) or c.threshold == 0 or c.peak == 0:
        return math.inf
    ratio = c.peak / c.threshold
    return ratio if ratio >= 1 else 1 / ratio


def changes(
    rules: Sequence[RuleConfig],
    model: str,
    window: str,
    series: Sequence[Series],
    baseline: Baseline,
    alerts: Sequence[AlertEvent],
) -> list[Change]:
    """Every (rule, series) whose ``when`` held in some window, ranked: alerts that fired first,
    then by how far past the threshold the peak went, then the earliest."""
    found = []
    for rule in rules:
        for s in series:
            if _matches(rule, model, window, s.metric, s.feature):
                c = _change(rule, s, baseline(s.feature, s.metric), alerts)
                if c is not None:
                    found.append(c)
    return sorted(
        found,
        key=lambda c: (c.fired_ms is None, -_excess(c), c.first_start_ms, c.feature, c.rule),
    )


def _total(series: Series | None) -> int:
    return 0 if series is None else round(sum(p.value for p in series.points))


def summarize(get: Callable[[str], Series | None]) -> RunSummary:
    """Totals of the model-level counters over the range (``get(metric)``: the model's series)."""
    events = get("events")
    return RunSummary(
        events=_total(events),
        windows=0 if events is None else len(events.points),
        invalid_events=_total(get("invalid_events")),
        late_events=_total(get("late_events")),
        labels=_total(get("labels")),
    )


def most_drifted(psi: Sequence[Series], picked: Sequence[str], top: int) -> list[str]:
    """The ``top`` features with the highest peak PSI, then any ``picked`` feature not among
    them."""
    ranked = sorted(
        (s for s in psi if s.points and s.feature != "__prediction__"),
        key=lambda s: (-max(p.value for p in s.points), s.feature),
    )
    chosen = [s.feature for s in ranked[:top]]
    return chosen + [f for f in picked if f not in chosen]
