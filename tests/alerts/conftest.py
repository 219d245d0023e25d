"""Fixtures for the alerting tests: the fake Slack/PagerDuty server and row builders."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from drifthouse.rows import AlertRow, MetricRow
from tests.fakes import FakeApi

MIN = 60_000


@pytest.fixture
def api() -> Iterator[FakeApi]:
    server = FakeApi()
    yield server
    server.close()


def mrow(
    end_min: int,
    value: float,
    *,
    metric: str = "psi",
    model: str = "fraud",
    feature: str = "amount",
    segment: str = "",
    window: str = "1m",
    n: int = 1000,
    version: str = "1",
    run_id: str = "live",
) -> MetricRow:
    """A metric row of the one-minute window that ends at minute ``end_min``."""
    return MetricRow(
        window_start=(end_min - 1) * MIN,
        window_end=end_min * MIN,
        window=window,
        model=model,
        model_version=version,
        feature=feature,
        segment=segment,
        metric=metric,
        value=value,
        n=n,
        run_id=run_id,
    )


def arow(
    ts: int,
    *,
    status: str = "firing",
    severity: str = "critical",
    rule: str = "errors",
    model: str = "fraud",
    feature: str = "",
    metric: str = "error_rate_5xx",
    key: str | None = None,
    **extra: Any,
) -> AlertRow:
    """An alert row as the rules engine would emit it."""
    return AlertRow(
        ts=ts,
        rule=rule,
        severity=severity,
        status=status,
        model=model,
        model_version="1",
        feature=feature,
        segment="",
        metric=metric,
        value=extra.get("value", 0.2),
        threshold=extra.get("threshold", 0.05),
        window_start=ts - MIN,
        window_end=ts,
        message=f"{rule} on {model}",
        receivers=[],
        dedup_key=key or f"{rule}|{model}|{feature}",
        run_id="live",
    )
