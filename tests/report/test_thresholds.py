"""The report's threshold lines for rules whose conditions name a second metric (``qvalue``) or
a seasonal value: drawn on the right side, or not at all (docs/report.md)."""

from __future__ import annotations

from drifthouse.config import RuleConfig
from drifthouse.config.default_rules import load_default_rules
from drifthouse.report.analysis import thresholds


def test_a_q_value_rule_draws_its_effect_size_floor_above() -> None:
    found = thresholds(load_default_rules(), "fraud", "1h", "ks", "amount")
    assert [(t.rule, t.value, t.direction) for t in found] == [("distribution-shift", 0.1, ">")]


def test_a_seasonal_rule_has_no_fixed_line() -> None:
    rule = RuleConfig(name="slow", metric="latency_p95", feature="", when="value > 2 * seasonal")
    assert thresholds([rule], "fraud", "1h", "latency_p95", "") == []
