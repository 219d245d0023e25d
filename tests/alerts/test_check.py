from __future__ import annotations

from pathlib import Path
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


@pytest.mark.parametrize(
    ("when", "fragment"),
    [
        pytest.param("(" * 400 + "value > 1" + ")" * 400, "nested more than 32 levels", id="deep"),
        pytest.param("value > 1" + " or value > 2" * 200, "at most 1000 characters", id="long"),
    ],
)
def test_check_names_the_rule_and_line_of_a_long_or_deep_condition(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], when: str, fragment: str
) -> None:
    from drifthouse import cli

    path = tmp_path / "drifthouse.yaml"
    path.write_text(
        "rules:\n"
        "  - {name: fine, metric: psi, when: 'value > 0.25'}\n"
        f"  - {{name: deep, metric: psi, when: '{when}'}}\n"
        "routes:\n  - {match: {}, receivers: [c]}\n"
        "receivers:\n  c: {type: console}\n"
    )
    code = cli.main(["check", "-c", str(path)])
    out, err = capsys.readouterr()
    assert code == 2
    (line,) = [ln for ln in out.splitlines() if ln.startswith(f"{path}:3 rules[1].when: ")]
    assert fragment in line
    assert "rule 'deep': at column " in line
    assert len(line) < 500 + len(str(path))
    assert "RecursionError" not in out + err
    assert "Traceback" not in out + err
