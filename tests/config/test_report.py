"""``drifthouse check``: rule checks and references beyond what loading finds."""

from __future__ import annotations

import pytest

from drifthouse.config import check_config, load_config
from tests.config.helpers import WriteConfig


def test_check_config_adds_rules_and_references(write_config: WriteConfig) -> None:
    path = write_config(
        """
        models:
          fraud: {reference: refs/fraud.json}
        rules:
          - {name: drift, metric: psi, when: "value >> 1"}
          - {name: drift, metric: cpu_utilization, when: "value > 1", window: 5m}
        """
    )
    report = check_config(path)
    assert not report.ok
    assert [w.split(" ")[1] for w, _ in report.errors] == ["rules[0].when", "rules[1].name"]
    assert "at column 8 of 'value >> 1'" in report.errors[0][1]
    assert "duplicate rule name 'drift' (also rules[0])" in report.errors[1][1]
    warnings = dict(report.warnings)
    assert "does not exist yet" in warnings[f"{path}:2 models.fraud.reference"]
    assert "never fires" in warnings[f"{path}:5 rules[1].window"]
    assert "not a metric drifthouse computes" in warnings[f"{path}:5 rules[1].metric"]


@pytest.mark.parametrize(
    ("size", "rule_window"),
    [
        pytest.param("7d", "7d", id="7d-as-written"),
        pytest.param("7d", "1w", id="7d-as-named"),
        pytest.param("1w", "7d", id="1w-spelled-in-days"),
        pytest.param("60m", "1h", id="60m-is-1h"),
        pytest.param("1h", "3600s", id="seconds"),
    ],
)
def test_rule_windows_match_however_the_duration_is_spelled(
    write_config: WriteConfig, size: str, rule_window: str
) -> None:
    path = write_config(
        f"""
        windows: [{{size: {size}}}]
        rules:
          - {{name: weekly, metric: psi, when: "value > 0.2", window: "{rule_window}"}}
        """
    )
    report = check_config(path)
    assert report.ok, report.errors
    assert not [w for w in report.warnings if "not configured" in w[1]], report.warnings
    config = load_config(path)
    assert config.rules[0].window == config.windows[0].name
