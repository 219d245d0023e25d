"""The alerting checks' own pieces: label matching as routes and inhibitions do it."""

from __future__ import annotations

import pytest

from drifthouse.config.alert_checks import labels_match


@pytest.mark.parametrize(
    ("matchers", "labels", "matched"),
    [
        pytest.param({}, {"severity": "critical"}, True, id="catch-all"),
        pytest.param({"severity": "critical"}, {"severity": "critical"}, True, id="exact"),
        pytest.param({"model": "fraud-*"}, {"model": "fraud-eu"}, True, id="glob"),
        pytest.param({"model": "fraud-*"}, {"model": "churn"}, False, id="glob-miss"),
        pytest.param({"team": ""}, {}, True, id="missing-is-empty"),
        pytest.param({"team": "risk"}, {}, False, id="missing-does-not-match"),
    ],
)
def test_labels_match(matchers: dict[str, str], labels: dict[str, str], matched: bool) -> None:
    assert labels_match(matchers, labels) is matched
