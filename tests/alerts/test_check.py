from __future__ import annotations

from typing import Any

import pytest

from drifthouse.alerts.check import validate_alerting
from drifthouse.config import Config

BASE: dict[str, Any] = {
    "rules": [
        {
            "name": "errors",
            "metric": "error_rate_5xx",
            "when": "value > 0.05",
            "severity": "critical",
            "labels": {"team": "risk"},
        },
        {"name": "drift", "metric": "psi", "when": "value > 0.25", "severity": "warning"},
    ],
    "routes": [
        {"match": {"severity": "critical"}, "receivers": ["c"]},
        {"match": {"severity": "warning"}, "receivers": ["c"], "group_by": ["model"]},
    ],
    "inhibit": [
        {"source": {"severity": "critical"}, "target": {"severity": "warning"}, "equal": ["model"]}
    ],
    "receivers": {"c": {"type": "console"}},
}


def test_good_config_has_no_problems() -> None:
    assert validate_alerting(Config.model_validate(BASE)) == []


@pytest.mark.parametrize(
    ("patch", "location", "fragment"),
    [
        pytest.param(
            {"routes": [{"match": {"team": "risk"}, "receivers": ["c"]}]},
            "rules[1]",
            "match no route",
            id="unrouted-rule",
        ),
        pytest.param(
            {"routes": [{"match": {"sevrity": "x"}, "receivers": ["c"]}]},
            "routes[0].match.sevrity",
            "not a label",
            id="typo-in-match",
        ),
        pytest.param(
            {"routes": [{"match": {}, "receivers": ["c"], "group_by": ["modle"]}]},
            "routes[0].group_by.modle",
            "not a label",
            id="typo-in-group-by",
        ),
        pytest.param(
            {"inhibit": [{"source": {}, "target": {}, "equal": ["modl"]}]},
            "inhibit[0].equal.modl",
            "not a label",
            id="typo-in-equal",
        ),
        pytest.param(
            {
                "routes": [
                    {"match": {}, "receivers": ["c"], "group_wait": "10m", "group_interval": "1m"}
                ]
            },
            "routes[0].group_wait",
            "longer",
            id="wait-longer-than-interval",
        ),
        pytest.param(
            {"rules": [{"name": "x", "metric": "psi", "when": "value >>"}]},
            "rules[0].when",
            "column",
            id="rule-expression",
        ),
    ],
)
def test_problems(patch: dict[str, Any], location: str, fragment: str) -> None:
    problems = validate_alerting(Config.model_validate({**BASE, **patch}))
    assert any(loc == location and fragment in msg for loc, msg in problems), problems
