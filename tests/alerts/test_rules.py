from __future__ import annotations

import json

import pytest

from drifthouse.alerts.backtest import backtest
from drifthouse.alerts.rules import RuleEngine, dedup_key, validate_rules
from drifthouse.config import RuleConfig
from drifthouse.config.default_rules import load_default_rules
from drifthouse.errors import ConfigError
from drifthouse.rows import MetricRow
from tests.alerts.conftest import MIN, mrow

DRIFT = RuleConfig.model_validate(
    {
        "name": "data-drift",
        "metric": "psi",
        "when": "value > 0.25",
        "clear": "value < 0.1",
        "severity": "warning",
    }
)


def statuses(engine: RuleEngine, values: list[float], **kw: object) -> list[tuple[int, str]]:
    """Feed one value per minute; return (minute, status) of each state change."""
    out = []
    for minute, value in enumerate(values, start=1):
        for alert in engine.process([mrow(minute, value, **kw)]):  # type: ignore[arg-type]
            out.append((alert.ts // MIN, alert.status))
    return out


@pytest.mark.parametrize(
    ("rule", "values", "expected"),
    [
        pytest.param(
            {"when": "value > 0.25"},
            [0.1, 0.3, 0.3, 0.1],
            [(2, "firing"), (4, "resolved")],
            id="fire-resolve",
        ),
        pytest.param(
            {"when": "value > 0.25", "for": 3},
            [0.3, 0.3, 0.1, 0.3, 0.3, 0.3, 0.1],
            [(6, "firing"), (7, "resolved")],
            id="for-needs-consecutive",
        ),
        pytest.param(
            {"when": "value > 0.25", "clear": "value < 0.1"},
            [0.3, 0.24, 0.26, 0.2, 0.27, 0.22, 0.05],
            [(1, "firing"), (7, "resolved")],
            id="hysteresis-no-flapping",
        ),
        pytest.param(
            {"when": "value > 0.25"},
            [0.3, 0.24, 0.26, 0.2, 0.27],
            [(1, "firing"), (2, "resolved"), (3, "firing"), (4, "resolved"), (5, "firing")],
            id="without-clear-it-flaps",
        ),
        pytest.param(
            {"when": "value > 0.25", "keep_firing_for": 2},
            [0.3, 0.1, 0.1, 0.3, 0.1, 0.1, 0.1],
            [(1, "firing"), (7, "resolved")],
            id="keep-firing-for",
        ),
        pytest.param(
            {"when": "value > 0.25", "clear": "value < 0.3"},
            [0.3, 0.28, 0.2],
            [(1, "firing"), (3, "resolved")],
            id="overlapping-clear-when-wins",
        ),
    ],
)
def test_state_machine(
    rule: dict[str, object], values: list[float], expected: list[tuple[int, str]]
) -> None:
    engine = RuleEngine([RuleConfig.model_validate({"name": "r", "metric": "psi", **rule})])
    assert statuses(engine, values) == expected


def test_series_are_independent_and_scoped_by_globs() -> None:
    rule = RuleConfig(name="r", metric="psi", when="value > 0.25", model="fraud*", feature="a*")
    engine = RuleEngine([rule])
    alerts = engine.process(
        [
            mrow(1, 0.3, feature="amount"),
            mrow(1, 0.3, feature="age"),
            mrow(1, 0.3, feature="country"),  # feature glob does not match
            mrow(1, 0.3, model="churn", feature="amount"),  # model glob does not match
            mrow(1, 0.3, metric="ks", feature="amount"),  # metric does not match
        ]
    )
    assert sorted(a.feature for a in alerts) == ["age", "amount"]
    assert len({a.dedup_key for a in alerts}) == 2


def test_alert_row_contents() -> None:
    rule = RuleConfig(
        name="latency",
        metric="latency_p95",
        when="value > 2 * baseline",
        severity="critical",
        message="{rule}: {metric}={value:.0f}ms > {threshold:.0f}ms on {model} ({window_end})",
    )
    engine = RuleEngine([rule], baselines=lambda model, version, feature, metric: 100.0)
    (alert,) = engine.process([mrow(5, 250.0, metric="latency_p95", feature="", run_id="replay-1")])
    assert alert.status == "firing"
    assert alert.severity == "critical"
    assert alert.ts == alert.window_end == 5 * MIN  # event time, not the wall clock
    assert alert.threshold == 200.0
    assert alert.value == 250.0
    assert alert.run_id == "replay-1"
    assert alert.message == "latency: latency_p95=250ms > 200ms on fraud (1970-01-01T00:05:00Z)"
    assert alert.dedup_key == dedup_key("latency", "fraud", "1", "", "", "1m")


def test_baseline_missing_never_fires() -> None:
    rule = RuleConfig(name="latency", metric="latency_p95", when="value > 2 * baseline")
    engine = RuleEngine([rule])
    assert engine.process([mrow(m, 1e9, metric="latency_p95") for m in range(1, 5)]) == []


def test_dedup_key_ignores_time_and_replay_equals_live() -> None:
    rows = [mrow(m, v) for m, v in enumerate([0.3, 0.1, 0.3, 0.3, 0.05], start=1)]
    live = RuleEngine([DRIFT])
    live_alerts = [a for r in rows for a in live.process([r])]
    replay = RuleEngine([DRIFT]).process(rows)  # all at once, as a replay batch
    assert live_alerts == replay
    assert len({a.dedup_key for a in live_alerts}) == 1


def test_rows_already_seen_are_ignored() -> None:
    engine = RuleEngine([RuleConfig(name="r", metric="psi", when="value > 0.25", for_=2)])
    engine.process([mrow(1, 0.3)])
    assert engine.process([mrow(1, 0.3)]) == []  # the same window again: not a second match
    assert [a.status for a in engine.process([mrow(2, 0.3)])] == ["firing"]


ACCURACY = RuleConfig(
    name="accuracy-drop",
    metric="accuracy",
    when="value < 0.8 and n >= 200",
    clear="value >= 0.85 and n >= 200",
)


def acc(minute: int, value: float, n: int) -> MetricRow:
    return mrow(minute, value, metric="accuracy", feature="", n=n)


def test_a_late_rewrite_fires_and_resolves_on_its_own_window() -> None:
    # Windows 1-3 are first written with few labels; then their late labels rewrite them.
    engine = RuleEngine([ACCURACY])
    assert engine.process([acc(1, 0.5, 40), acc(2, 0.5, 60), acc(3, 0.9, 80)]) == []
    (alert,) = engine.process([acc(1, 0.7, 400)])
    assert (alert.status, alert.window_end, alert.value) == ("firing", MIN, 0.7)
    assert engine.process([acc(1, 0.6, 500)]) == []  # the window that fired: nothing new
    assert engine.process([acc(2, 0.7, 400)]) == []  # still below: still firing
    assert engine.process([acc(3, 0.95, 100)]) == []  # above, but too few labels to clear
    assert [(a.status, a.ts // MIN) for a in engine.process([acc(3, 0.95, 400)])] == [
        ("resolved", 3)
    ]
    # History before the resolution: late labels of windows 1 and 2 do not fire again.
    assert engine.process([acc(2, 0.7, 500), acc(1, 0.5, 600)]) == []
    # A new window still counts as usual.
    assert [a.status for a in engine.process([acc(4, 0.5, 300)])] == ["firing"]


def test_a_late_row_that_does_not_hold_changes_nothing() -> None:
    engine = RuleEngine([ACCURACY])
    engine.process([acc(1, 0.5, 40), acc(2, 0.9, 300)])
    assert engine.process([acc(1, 0.9, 400), acc(1, 0.5, 100)]) == []  # too few labels
    assert engine.firing() == []


def test_when_wins_over_clear_for_late_rows_too() -> None:
    rule = RuleConfig(name="r", metric="psi", when="value > 0.25", clear="value < 0.3")
    engine = RuleEngine([rule])
    engine.process([mrow(1, 0.4), mrow(2, 0.35)])
    assert engine.process([mrow(2, 0.28)]) == []  # both hold: still firing
    assert [a.status for a in engine.process([mrow(2, 0.2)])] == ["resolved"]


def test_a_late_rewrite_with_for_counts_the_last_windows_at_their_newest_values() -> None:
    rule = ACCURACY.model_copy(update={"for_": 2})
    engine = RuleEngine([rule])
    # Windows 1-3: only window 3 holds at first; window 2's rewrite completes the run of two.
    assert engine.process([acc(1, 0.7, 300), acc(2, 0.7, 50), acc(3, 0.7, 300)]) == []
    (alert,) = engine.process([acc(2, 0.7, 400)])
    assert (alert.status, alert.window_end) == ("firing", 2 * MIN)
    # Window 1 is older than the last two windows: its rewrite is not counted.
    other = RuleEngine([rule])
    assert other.process([acc(1, 0.9, 50), acc(2, 0.7, 300), acc(3, 0.9, 300)]) == []
    assert other.process([acc(1, 0.7, 300)]) == []
    # A late row that no longer holds breaks the run, as a window that did not hold would.
    third = RuleEngine([rule])
    assert third.process([acc(1, 0.7, 300)]) == []
    assert third.process([acc(1, 0.9, 300)]) == []
    assert third.process([acc(2, 0.7, 300)]) == []
    assert [a.status for a in third.process([acc(3, 0.7, 300)])] == ["firing"]


def test_late_state_survives_a_restart() -> None:
    rule = ACCURACY.model_copy(update={"for_": 2})
    engine = RuleEngine([rule])
    engine.process([acc(1, 0.7, 50), acc(2, 0.7, 300)])
    restarted = RuleEngine([rule])
    restarted.load_state(json.loads(json.dumps(engine.dump_state())))
    assert [a.status for a in restarted.process([acc(1, 0.7, 300)])] == ["firing"]


def test_a_late_rewrite_with_keep_firing_for_needs_the_last_windows_to_clear() -> None:
    rule = ACCURACY.model_copy(update={"keep_firing_for": 1})
    engine = RuleEngine([rule])
    assert [a.status for a in engine.process([acc(1, 0.5, 300)])] == ["firing"]
    assert engine.process([acc(2, 0.9, 50), acc(3, 0.9, 300)]) == []  # one clear window
    (alert,) = engine.process([acc(2, 0.9, 300)])  # window 2 clears too: two in a row
    assert (alert.status, alert.window_end) == ("resolved", 2 * MIN)


def test_state_round_trip_neither_repages_nor_forgets() -> None:
    engine = RuleEngine([DRIFT])
    assert [a.status for a in engine.process([mrow(1, 0.3)])] == ["firing"]
    state = json.loads(json.dumps(engine.dump_state()))  # it must survive JSON
    restarted = RuleEngine([DRIFT])
    restarted.load_state(state)
    assert restarted.firing() == engine.firing()
    assert restarted.process([mrow(1, 0.3), mrow(2, 0.3)]) == []  # no re-page
    assert [a.status for a in restarted.process([mrow(3, 0.05)])] == ["resolved"]


def test_state_of_a_removed_rule_is_dropped() -> None:
    engine = RuleEngine([DRIFT])
    engine.process([mrow(1, 0.3)])
    other = RuleEngine([RuleConfig(name="other", metric="psi", when="value > 1")])
    other.load_state(engine.dump_state())
    assert other.firing() == []
    with pytest.raises(ConfigError, match="version"):
        other.load_state({"version": 99})


@pytest.mark.parametrize(
    ("rule", "location", "fragment"),
    [
        pytest.param({"when": "value >"}, "rules[0].when", "column 8", id="when"),
        pytest.param(
            {"when": "value > 1", "clear": "value <<"}, "rules[0].clear", "column", id="clear"
        ),
        pytest.param(
            {"when": "value > 1", "message": "{value.__class__}"},
            "rules[0].message",
            "unknown field",
            id="template-attr",
        ),
        pytest.param(
            {"when": "value > 1", "message": "{nope}"},
            "rules[0].message",
            "unknown field {nope}",
            id="template-field",
        ),
        pytest.param(
            {"when": "value > 1", "model": "[fraud"}, "rules[0].model", "unbalanced", id="glob"
        ),
        pytest.param(
            {"when": "value > 1", "metric": "pssi"},
            "rules[0].metric",
            "warning:",
            id="unknown-metric",
        ),
    ],
)
def test_validate_rules(rule: dict[str, object], location: str, fragment: str) -> None:
    config = RuleConfig.model_validate({"name": "r", "metric": "psi", **rule})
    problems = validate_rules([config])
    assert any(loc == location and fragment in msg for loc, msg in problems), problems


def test_validate_rules_duplicates_and_compile_errors() -> None:
    rules = [RuleConfig(name="r", metric="psi", when="value > 1")] * 2
    assert validate_rules(rules) == [
        ("rules[1].name", "duplicate rule name 'r' (also rules[0]); names key alert state")
    ]
    with pytest.raises(ConfigError) as info:
        RuleEngine([RuleConfig(name="r", metric="psi", when="value >")])
    assert info.value.problems[0][0] == "rules[0].when"
    RuleEngine(
        [RuleConfig(name="r", metric="pssi", when="value > 1")]
    )  # warnings do not stop the engine


def test_default_rules_load_validate_and_fire() -> None:
    rules = load_default_rules()
    assert validate_rules(rules) == []
    baselines = {"latency_p95": 100.0, "accuracy": 0.9}
    engine = RuleEngine(rules, baselines=lambda m, v, f, metric: baselines.get(metric))
    rows = [
        mrow(1, 0.06, metric="error_rate_5xx", feature=""),
        mrow(1, 250.0, metric="latency_p95", feature=""),
        mrow(1, 0.7, metric="accuracy", feature=""),
        mrow(1, 0.3, metric="psi"),
        mrow(2, 0.3, metric="psi"),
        mrow(1, 0.9, metric="cpu_util", feature=""),
        mrow(2, 0.85, metric="cpu_util", feature=""),
        mrow(1, 0.5, metric="importance_shift", feature=""),
        mrow(2, 0.5, metric="importance_shift", feature=""),
    ]
    fired = {(a.rule, a.severity) for a in engine.process(rows)}
    assert fired == {
        ("serving-errors", "critical"),
        ("latency-regression", "critical"),
        ("accuracy-drop", "critical"),
        ("data-drift", "warning"),
        ("resource-pressure", "warning"),
        ("importance-shift", "warning"),
    }


def test_backtest_summary() -> None:
    rows: list[MetricRow] = []
    for minute, (psi, err) in enumerate(
        [(0.3, 0.0), (0.3, 0.1), (0.05, 0.1), (0.3, 0.0), (0.3, 0.0)], start=1
    ):
        rows += [mrow(minute, psi), mrow(minute, err, metric="error_rate_5xx", feature="")]
    errors = RuleConfig(
        name="errors", metric="error_rate_5xx", when="value > 0.05", severity="critical"
    )
    report = backtest(rows, [DRIFT, errors])
    drift_line, err_line = report.lines
    assert (
        drift_line.fired,
        drift_line.resolved,
        drift_line.still_firing,
        drift_line.firing_ms,
    ) == (
        2,
        1,
        1,
        2 * MIN + 1 * MIN,
    )
    assert (
        err_line.fired,
        err_line.resolved,
        err_line.still_firing,
        err_line.firing_ms,
        err_line.rows,
    ) == (
        1,
        1,
        0,
        2 * MIN,
        5,
    )
    assert report.by_severity() == {"warning": 2, "critical": 1}
    assert [a.ts for a in report.alerts] == sorted(a.ts for a in report.alerts)
