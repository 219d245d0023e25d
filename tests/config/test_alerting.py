"""Alerting sections: rule windows named however they are spelled."""

from __future__ import annotations

from drifthouse.config import Config, RuleConfig


def test_sliding_rule_window_is_normalised_too() -> None:
    config = Config.model_validate(
        {
            "windows": [{"size": "7d", "hop": "24h"}],
            "rules": [{"name": "r", "metric": "psi", "when": "value > 1", "window": "1w/1d"}],
        }
    )
    assert config.windows[0].name == "1w/1d"
    assert config.rules[0].window == "1w/1d"
    assert (
        Config.model_validate(
            {"rules": [{"name": "r", "metric": "psi", "when": "value > 1", "window": "7d/24h"}]}
        )
        .rules[0]
        .window
        == "1w/1d"
    )


def test_rule_window_globs_stay_globs() -> None:
    rule = RuleConfig(name="r", metric="psi", when="value > 1", window="1*")
    assert rule.window == "1*"
