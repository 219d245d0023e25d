"""Slack and PagerDuty failing for a while (500s, then 429s with Retry-After) during a live run:
every alert still reaches each of them exactly once, in order, once they recover."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from drifthouse.config import load_config
from tests.fakes import FakeApi
from tests.faults.conftest import (
    Reference,
    alerting,
    check_delivered_once,
    check_stored,
    failed,
    wait_for,
)
from tests.workers import PARTITIONS, Workers, write_config

pytestmark = [pytest.mark.faults, pytest.mark.kafka, pytest.mark.slow]

PATHS = ("/api/", "/v2/")  # Slack's Web API, PagerDuty's Events API


def _failures(api: FakeApi, status: int) -> dict[str, int]:
    return {
        p: sum(1 for r in failed(api) if r.path.startswith(p) and r.status == status) for p in PATHS
    }


def test_receivers_failing_for_a_while_get_every_alert_once(
    tmp_path: Path,
    kafka_bootstrap: str,
    shared_topic: tuple[str, int],
    reference: Reference,
    small_stream: Any,
    api: FakeApi,
) -> None:
    topic, _ = shared_topic
    config = write_config(
        tmp_path, kafka_bootstrap, topic, "receivers", small_stream.profiles, extra=alerting(api)
    )
    for path in PATHS:  # down from the start: the first alerts meet 500s
        api.fail(path, 500, times=10**6)
    workers = Workers(config, PARTITIONS)
    try:
        workers.start()
        wait_for("500s at both APIs", lambda: min(_failures(api, 500).values()) >= 2)
        for path in PATHS:  # then rate limited (the 429s are armed before the 500s go)
            api.fail(path, 429, times=10**6, retry_after=1.5)
            api.recover(path, status=500)
        wait_for("429s at both APIs", lambda: min(_failures(api, 429).values()) >= 2)
        api.recover()
        workers.wait_done(load_config(config), len(small_stream.records))
        check_delivered_once(api, reference)
    finally:
        workers.stop_all()
    check_stored(config, reference)
    # The retries waited as told: Retry-After (1.5 s) after a 429, backoff (1 s, 2 s) after a 500.
    delays = set(re.findall(r"notify\.retry .*?delay_s=([0-9.]+)", workers.logs()))
    assert {"1.0", "1.5"} <= delays, delays
