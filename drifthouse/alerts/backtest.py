"""Backtests: run rules over historical metric rows and count what they would have done.

``drifthouse replay --rules other.yaml`` calls :func:`backtest` to compare rule sets on history
before anyone is paged by them.

Example
-------
>>> from drifthouse.config import RuleConfig
>>> from drifthouse.rows import MetricRow
>>> rows = [MetricRow(window_start=t, window_end=t + 60_000, window="1m", model="m", model_version="1",
...                   feature="", segment="", metric="error_rate_5xx", value=v, n=100, run_id="r")
...         for t, v in zip(range(0, 300_000, 60_000), [0.0, 0.2, 0.3, 0.0, 0.0])]
>>> report = backtest(rows, [RuleConfig(name="errors", metric="error_rate_5xx", when="value > 0.05",
...                                     severity="critical")])
>>> line = report.lines[0]
>>> (line.rule, line.severity, line.fired, line.resolved, line.firing_ms)
('errors', 'critical', 1, 1, 120000)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from drifthouse.alerts.rules import Baselines, RuleEngine
from drifthouse.config import RuleConfig
from drifthouse.rows import AlertRow, MetricRow

__all__ = ["BacktestLine", "BacktestReport", "backtest"]


@dataclass
class BacktestLine:
    """What one rule did: alerts fired and resolved, series touched, time spent firing."""

    rule: str
    severity: str
    fired: int = 0
    resolved: int = 0
    still_firing: int = 0
    series: int = 0
    firing_ms: int = 0
    rows: int = 0
    first_fired: int | None = None
    last_fired: int | None = None


@dataclass
class BacktestReport:
    """Per-rule lines (in rule order) and every alert state change, in event-time order."""

    lines: list[BacktestLine]
    alerts: list[AlertRow] = field(default_factory=list)

    def by_severity(self) -> dict[str, int]:
        """Alerts fired per severity."""
        out: dict[str, int] = {}
        for line in self.lines:
            out[line.severity] = out.get(line.severity, 0) + line.fired
        return out


def backtest(
    rows: Iterable[MetricRow], rules: Sequence[RuleConfig], baselines: Baselines | None = None
) -> BacktestReport:
    """Evaluate ``rules`` over ``rows`` (in event-time order) with a fresh engine; notify nobody.

    ``firing_ms`` sums, over alerts, the event time from firing to resolution (or to the end
    of the last window seen, for alerts still firing at the end).
    """
    engine = RuleEngine(rules, baselines)
    lines = {r.name: BacktestLine(rule=r.name, severity=r.severity) for r in rules}
    series: dict[str, set[str]] = {r.name: set() for r in rules}
    opened: dict[str, int] = {}
    alerts: list[AlertRow] = []
    end = 0
    batch: list[MetricRow] = []

    def run(batch: list[MetricRow]) -> None:
        for alert in engine.process(batch):
            alerts.append(alert)
            line = lines[alert.rule]
            series[alert.rule].add(alert.dedup_key)
            if alert.status == "firing":
                line.fired += 1
                opened[alert.dedup_key] = alert.ts
                line.first_fired = alert.ts if line.first_fired is None else line.first_fired
                line.last_fired = alert.ts
            else:
                line.resolved += 1
                line.firing_ms += alert.ts - opened.pop(alert.dedup_key, alert.ts)

    for row in rows:
        end = max(end, row.window_end)
        for rule in engine.rules:
            if rule.matches(row):
                lines[rule.name].rows += 1
        if batch and row.window_end != batch[-1].window_end:
            run(batch)
            batch = []
        batch.append(row)
    run(batch)
    for alert in engine.firing():
        lines[alert.rule].still_firing += 1
        lines[alert.rule].firing_ms += end - opened.get(alert.dedup_key, end)
    for name, keys in series.items():
        lines[name].series = len(keys)
    return BacktestReport(lines=[lines[r.name] for r in rules], alerts=alerts)
