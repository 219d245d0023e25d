"""A live worker serves the HTML report of what it wrote at ``/report`` on its SQL endpoint
(docs/report.md, "From a running worker"): the page of the `live` run, behind the token."""

from __future__ import annotations

import http.client
import time
from pathlib import Path
from typing import Any

import pytest

from drifthouse.config import load_config
from tests.ports import free_port
from tests.workers import PARTITIONS, Workers, produce_stream, write_config

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def _get(port: int, path: str, token: str | None) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    conn.request("GET", path, headers=headers)
    response = conn.getresponse()
    body = response.read().decode("utf-8", errors="replace")
    conn.close()
    return response.status, body


def test_a_live_worker_serves_the_report_of_its_windows(
    tmp_path: Path, kafka_bootstrap: str, make_topic: Any, small_stream: Any
) -> None:
    topic = make_topic(partitions=PARTITIONS)
    records = small_stream.records
    serve_port = free_port()
    config = write_config(
        tmp_path, kafka_bootstrap, topic, "report", small_stream.profiles, serve_port=serve_port
    )
    cfg = load_config(config)
    workers = Workers(config, PARTITIONS)
    try:
        workers.start()
        produce_stream(kafka_bootstrap, topic, records)
        workers.wait_done(cfg, len(records))
        token = cfg.sql_token_path().read_text().strip()
        hours = int((time.time() * 1000 - records[0].ts_ms) / 3_600_000) + 2
        status, _ = _get(serve_port, f"/report?hours={hours}", None)
        assert status == 401
        status, page = _get(serve_port, f"/report?hours={hours}&run_id=live", token)
        assert status == 200, page[:1000]
        assert "<title>drifthouse report: run live</title>" in page
        models = {r.key.decode() for r in records if r.key}
        for model in models or {"fraud", "eta"}:
            assert f'id="{model}-heatmap"' in page
        assert "no data: no window of the run starts in the range" not in page
    finally:
        workers.stop_all()
