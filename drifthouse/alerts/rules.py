"""The rules engine: metric rows in, alert state changes out, all in event time.

For every rule and every series it matches (model, model version, feature, segment, window kind)
the engine keeps a small state machine::

    ok --(when holds `for` windows in a row)--> firing --(clear holds keep_firing_for + 1 windows)--> ok

``clear`` defaults to ``not when``; a separate ``clear`` gives hysteresis (a PSI rule that fires
above 0.25 and resolves below 0.1 does not flap on a value hovering around 0.25). While firing,
a window where ``when`` still holds wins over ``clear``, so overlapping conditions cannot flap.

Alerts are stamped with the window's end (event time, never the wall clock) and carry a
``dedup_key`` that hashes the rule and the series but not the time, so a replay gives the same
alerts as the live run and PagerDuty folds repeats into one incident. The whole state is a
plain value (:meth:`RuleEngine.dump_state` / :meth:`RuleEngine.load_state`): a restarted worker
neither pages again nor forgets an alert that is firing.

Example
-------
>>> from drifthouse.config import RuleConfig
>>> from drifthouse.rows import MetricRow
>>> rule = RuleConfig(name="errors", metric="error_rate_5xx", when="value > 0.05")
>>> engine = RuleEngine([rule])
>>> def row(end, value):
...     return MetricRow(window_start=end - 60_000, window_end=end, window="1m", model="fraud",
...                      model_version="1", feature="", segment="", metric="error_rate_5xx",
...                      value=value, n=1000, run_id="live")
>>> [a.status for a in engine.process([row(60_000, 0.2)])]
['firing']
>>> engine.process([row(120_000, 0.3)])
[]
>>> [(a.status, a.ts) for a in engine.process([row(180_000, 0.01)])]
[('resolved', 180000)]
"""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec

from drifthouse.alerts.contributors import WindowContributors
from drifthouse.config import RuleConfig
from drifthouse.config.alert_checks import KNOWN_METRICS, validate_rules
from drifthouse.config.templates import render_message
from drifthouse.errors import ConfigError
from drifthouse.expr import Condition, extract_threshold, parse
from drifthouse.logs import get_logger
from drifthouse.rows import AlertRow, MetricRow

__all__ = [
    "KNOWN_METRICS",
    "Baselines",
    "CompiledRule",
    "RuleEngine",
    "alert_labels",
    "compile_rules",
    "dedup_key",
    "validate_rules",
]

log = get_logger("alerts.rules")

Baselines = Callable[[str, str, str, str], float | None]
"""``(model, model_version, feature, metric) -> baseline or None``."""


def dedup_key(
    rule: str, model: str, model_version: str, feature: str, segment: str, window: str
) -> str:
    """A stable key for one rule on one series; time is left out on purpose."""
    text = "\x1f".join((rule, model, model_version, feature, segment, window))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """A rule with its conditions parsed once."""

    config: RuleConfig
    when: Condition
    clear: Condition
    explicit_clear: bool

    def uses(self, name: str) -> bool:
        """Whether ``when`` or ``clear`` mentions ``name`` (``qvalue``, ``seasonal``)."""
        return name in self.when.names or name in self.clear.names

    @property
    def name(self) -> str:
        return self.config.name

    def matches(self, row: MetricRow) -> bool:
        c = self.config
        return (
            fnmatch.fnmatchcase(row.metric, c.metric)
            and fnmatch.fnmatchcase(row.model, c.model)
            and fnmatch.fnmatchcase(row.model_version, c.model_version)
            and fnmatch.fnmatchcase(row.feature, c.feature)
            and fnmatch.fnmatchcase(row.segment, c.segment)
            and fnmatch.fnmatchcase(row.window, c.window)
        )

    def message(self, fields: dict[str, Any]) -> str:
        return render_message(self.config.message, fields)


def compile_rules(rules: Sequence[RuleConfig]) -> list[CompiledRule]:
    """Parse every rule's conditions; raise :class:`ConfigError` listing every problem."""
    problems = [p for p in validate_rules(rules) if not p[1].startswith("warning:")]
    if problems:
        raise ConfigError(f"{len(problems)} problem(s) in rules", problems)
    out = []
    for rule in rules:
        when = parse(rule.when)
        clear = parse(rule.clear) if rule.clear else when.negated()
        out.append(CompiledRule(rule, when, clear, rule.clear is not None))
    return out


def alert_labels(alert: AlertRow, rule_labels: Mapping[str, str] | None = None) -> dict[str, str]:
    """The labels routes, inhibitions and silences match on."""
    labels = dict(rule_labels or {})
    labels.update(
        rule=alert.rule,
        severity=alert.severity,
        model=alert.model,
        model_version=alert.model_version,
        feature=alert.feature,
        segment=alert.segment,
        metric=alert.metric,
    )
    return labels


class _Series(msgspec.Struct, kw_only=True):
    rule: str
    model: str
    model_version: str
    feature: str
    segment: str
    window: str
    matches: int = 0  # consecutive windows where `when` held, while not firing
    clears: int = 0  # consecutive windows where `clear` held, while firing
    last_end: int = -1  # the last window_end seen: older or repeated rows are late
    changed_end: int = -1  # the window_end of the last firing or resolved row
    # (window_end, `when` held, `clear` held) of the last windows a run can span (`for`,
    # `keep_firing_for` + 1): what a late row of one of them is counted against
    recent: list[tuple[int, bool, bool]] = msgspec.field(default_factory=list)
    # (window_end, value) of the last `season` of windows, oldest first, for rules over `seasonal`
    history: list[tuple[int, float]] = msgspec.field(default_factory=list)
    alert: AlertRow | None = None  # the firing alert, None when ok


_SeriesKey = tuple[str, str, str, str, str, str]
_QKey = tuple[str, str, str, str, str, int, str]
_Q = "_qvalue"


def _qkey(row: MetricRow, metric: str) -> _QKey:
    return (
        row.model,
        row.model_version,
        row.feature,
        row.segment,
        row.window,
        row.window_end,
        metric,
    )


def _test_of(metric: str) -> str:
    """The test a metric belongs to: ``ks`` for ``ks`` and ``ks_pvalue``."""
    return metric.removesuffix("_pvalue").removesuffix(_Q)


def _seasonal(series: _Series, row: MetricRow, season: int) -> float | None:
    """The series' value in the window that ended ``season`` before this one (None if it had no
    row), after recording this window's value: the history holds one season of windows."""
    history = series.history
    at = next((i for i, (end, _) in enumerate(history) if end >= row.window_end), len(history))
    if at < len(history) and history[at][0] == row.window_end:
        history[at] = (row.window_end, row.value)  # a window written again: its newest value
    else:
        history.insert(at, (row.window_end, row.value))
    keep_from = history[-1][0] - season
    del history[: next((i for i, (end, _) in enumerate(history) if end >= keep_from), 0)]
    return next((v for end, v in history if end == row.window_end - season), None)


class RuleEngine:
    """Evaluates rules over metric rows and emits alert state changes.

    Parameters
    ----------
    rules:
        The rules (``drifthouse.yaml`` ``rules`` or :func:`drifthouse.config.default_rules.load_default_rules`).
    baselines:
        ``(model, model_version, feature, metric) -> float | None``; without it every condition that
        mentions ``baseline`` is false.

    Rows should come in event-time order, a window's rows together. A row whose window ends at
    or before the last window seen for its series is *late*: a window written again (late
    labels rewrite their window) or re-read after a restart. A late row counts at its new
    values in place of the window's earlier ones: it fires a series that is not firing when
    ``when`` holds on it (with ``for`` above 1: on the last ``for`` windows, this one among
    them), and resolves a firing one when ``clear`` does (with ``keep_firing_for`` above 0: on
    the last ``keep_firing_for + 1``). It never counts a window twice, and is ignored if the
    series fired or resolved in that window or a later one.
    """

    def __init__(self, rules: Sequence[RuleConfig], baselines: Baselines | None = None) -> None:
        self.rules = compile_rules(rules)
        self._by_name = {r.name: r for r in self.rules}
        self.baselines: Baselines = baselines or (lambda *_: None)
        self._series: dict[_SeriesKey, _Series] = {}
        self._by_metric: dict[str, list[CompiledRule]] = {}  # metric name -> rules that may match
        self._contributors = WindowContributors(())  # of the rows being processed
        self._qvalues: dict[_QKey, float] = {}  # the q-value rows of the rows in hand

    def rule_labels(self, name: str) -> dict[str, str]:
        rule = self._by_name.get(name)
        return dict(rule.config.labels) if rule else {}

    def process(self, rows: Iterable[MetricRow]) -> list[AlertRow]:
        """Feed rows; return the alerts that started firing or resolved, in event-time order.

        A window's rows come in one call: ``qvalue`` is read from the same call's rows.
        """
        out: list[AlertRow] = []
        rows = sorted(rows, key=lambda r: r.window_end)
        self._qvalues = {_qkey(r, r.metric): r.value for r in rows if r.metric.endswith(_Q)}
        self._contributors = WindowContributors(rows)
        for row in rows:
            if row.bin:
                continue  # an attribution row: read for messages, no series of its own
            candidates = self._by_metric.get(row.metric)
            if candidates is None:
                candidates = self._by_metric[row.metric] = [
                    r for r in self.rules if fnmatch.fnmatchcase(row.metric, r.config.metric)
                ]
            for rule in candidates:
                if rule.matches(row):
                    alert = self._step(rule, row)
                    if alert is not None:
                        out.append(alert)
        return out

    def firing(self) -> list[AlertRow]:
        """The alerts firing now (their firing rows)."""
        return [s.alert for s in self._series.values() if s.alert is not None]

    def _step(self, rule: CompiledRule, row: MetricRow) -> AlertRow | None:
        key = (rule.name, row.model, row.model_version, row.feature, row.segment, row.window)
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = _Series(
                rule=rule.name,
                model=row.model,
                model_version=row.model_version,
                feature=row.feature,
                segment=row.segment,
                window=row.window,
            )
        # Recorded before a late row can be skipped: the history keeps every window's newest value.
        seasonal = _seasonal(series, row, rule.config.season) if rule.uses("seasonal") else None
        late = row.window_end <= series.last_end
        if late and row.window_end <= series.changed_end:
            log.debug(
                "alert.row_skipped", rule=rule.name, window_end=row.window_end, last=series.last_end
            )
            return None
        baseline = self.baselines(row.model, row.model_version, row.feature, row.metric)
        qvalue = self._qvalues.get(_qkey(row, _test_of(row.metric) + _Q))
        holds = functools.partial(
            Condition.evaluate, value=row.value, baseline=baseline, n=row.n, qvalue=qvalue,
            seasonal=seasonal,
        )  # fmt: skip
        when = holds(rule.when)
        firing = series.alert is not None
        # `when` wins over `clear`: an alert never resolves in a window in which it holds.
        clear = firing and not when and holds(rule.clear)
        need = rule.config.keep_firing_for + 1 if firing else rule.config.for_
        if late:
            run = self._late_run(series, row.window_end, when, clear, need, firing)
            if run is None:
                return None
        else:
            series.last_end = row.window_end
            keep = max(rule.config.for_, rule.config.keep_firing_for + 1)
            if keep > 1:
                series.recent.append((row.window_end, when, clear))
                del series.recent[:-keep]
            if firing:
                series.clears = run = series.clears + 1 if clear else 0
            else:
                series.matches = run = series.matches + 1 if when else 0
        if run < need:
            return None
        if late:
            log.debug("alert.late_window", rule=rule.name, window_end=row.window_end)
        series.matches = series.clears = 0
        series.changed_end = row.window_end
        cond = rule.clear if firing and rule.explicit_clear else rule.when
        threshold = extract_threshold(cond, baseline, row.n, seasonal=seasonal)
        if not firing:
            series.alert = self._alert(rule, row, "firing", threshold, baseline)
            return series.alert
        series.alert = None
        return self._alert(rule, row, "resolved", threshold, baseline)

    @staticmethod
    def _late_run(
        series: _Series, end: int, when: bool, clear: bool, need: int, firing: bool
    ) -> int | None:
        """How many windows in a row hold (``clear`` while firing, else ``when``) counting a
        late row of window ``end`` at its new values; None if it cannot count."""
        if need == 1:  # the one window is enough, wherever it lies after the last change
            return int(clear if firing else when)
        recent = series.recent
        at = next((i for i, entry in enumerate(recent) if entry[0] == end), None)
        if at is None:  # older than the last windows a run can span
            return None
        recent[at] = (end, when, clear)
        run = 0
        for entry_end, entry_when, entry_clear in reversed(recent):
            if entry_end <= series.changed_end or not (entry_clear if firing else entry_when):
                break
            run += 1
        if firing:
            series.clears = run
        else:
            series.matches = run
        return run

    def _alert(
        self,
        rule: CompiledRule,
        row: MetricRow,
        status: str,
        threshold: float,
        baseline: float | None,
    ) -> AlertRow:
        scope = "".join(
            part
            for part in (
                f" feature {row.feature}" if row.feature else "",
                f" segment {row.segment}" if row.segment else "",
                f" version {row.model_version}" if row.model_version not in ("", "unknown") else "",
            )
        )
        fields: dict[str, Any] = {
            "rule": rule.name,
            "severity": rule.config.severity,
            "status": status,
            "model": row.model,
            "model_version": row.model_version,
            "feature": row.feature,
            "segment": row.segment,
            "metric": row.metric,
            "window": row.window,
            "value": row.value,
            "threshold": threshold,
            "baseline": math.nan if baseline is None else baseline,
            "n": row.n,
            "window_start": _iso(row.window_start),
            "window_end": _iso(row.window_end),
            "window_start_ms": row.window_start,
            "window_end_ms": row.window_end,
            "scope": scope,
            "contributors": self._contributors.text(row) if status == "firing" else "",
        }
        message = rule.message(fields)
        if fields["contributors"] and "{contributors}" not in (rule.config.message or ""):
            message += f"; top contributors: {fields['contributors']}"
        return AlertRow(
            ts=row.window_end,
            rule=rule.name,
            severity=rule.config.severity,
            status=status,
            model=row.model,
            model_version=row.model_version,
            feature=row.feature,
            segment=row.segment,
            metric=row.metric,
            value=row.value,
            threshold=threshold,
            window_start=row.window_start,
            window_end=row.window_end,
            message=message,
            receivers=[],
            dedup_key=dedup_key(
                rule.name, row.model, row.model_version, row.feature, row.segment, row.window
            ),
            run_id=row.run_id,
        )

    # ---- persistence ---------------------------------------------------------------------------

    def dump_state(self) -> dict[str, Any]:
        """The engine's state as JSON-ready builtins (only series that carry state)."""
        series = [
            s
            for s in self._series.values()
            if s.alert is not None
            or s.matches
            or s.clears
            or s.last_end >= 0
            or s.recent
            or s.history
        ]
        return {"version": 1, "series": msgspec.to_builtins(series)}

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`dump_state`'s output; series of rules no longer configured are dropped."""
        if state.get("version") != 1:
            raise ConfigError(
                f"unknown rule engine state version {state.get('version')!r} (expected 1)"
            )
        series = msgspec.convert(state.get("series", []), list[_Series])
        self._series.clear()
        for s in series:
            if s.rule not in self._by_name:
                log.warning("alert.state_dropped", rule=s.rule, reason="rule no longer configured")
                continue
            self._series[(s.rule, s.model, s.model_version, s.feature, s.segment, s.window)] = s
