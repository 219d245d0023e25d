"""The worker's ``/report`` on its SQL endpoint: the same page, read-only, for the last hours,
behind the endpoint's rules (this machine only, the token)."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from drifthouse.config import load_config
from drifthouse.report.serve import report_page
from drifthouse.sinks import open_store, serve_readonly
from drifthouse.sinks.sql_endpoint import ReadonlyServer
from tests.report.conftest import DemoRun

#: Enough hours back from now to reach the demo's first window (2026-01-01).
_SINCE_DEMO = str(int((time.time() * 1000 - 1_767_225_600_000) / 3_600_000) + 48)


@pytest.fixture(scope="module")
def server(demo_run: DemoRun, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReadonlyServer]:
    config = load_config(demo_run.summary.config_path)
    token_file = tmp_path_factory.mktemp("token") / "sql-endpoint.token"
    served = serve_readonly(
        open_store(config.store_dsn(), config.store.database),
        0,
        token_file=token_file,
        pages={"/report": report_page(config, run_id="demo")},
    )
    yield served
    served.close()


def _get(
    server: ReadonlyServer, path: str, *, token: bool = True, **headers: str
) -> tuple[int, str, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
    sent = dict(headers)
    if token:
        sent["Authorization"] = "Bearer " + Path(server.token_file).read_text().strip()
    conn.request("GET", path, headers=sent)
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response.status, response.getheader("Content-Type") or "", body


def test_the_report_of_the_last_hours_is_served_with_the_token(server: ReadonlyServer) -> None:
    status, kind, body = _get(server, f"/report?hours={_SINCE_DEMO}&model=fraud")
    assert status == 200, body[:500]
    assert kind == "text/html; charset=utf-8"
    page = body.decode()
    assert "<title>drifthouse report: run demo</title>" in page
    assert 'id="fraud-heatmap"' in page
    assert 'id="eta-heatmap"' not in page
    status, _, body = _get(server, f"/report?hours={_SINCE_DEMO}&model=fraud&heatmap=p-value")
    assert status == 200
    assert b"Drift heatmap (p-value per feature and window)" in body


def test_the_last_day_of_an_old_run_has_no_data(server: ReadonlyServer) -> None:
    status, _, body = _get(server, "/report")  # the last 24 hours: the demo is months old
    assert status == 200
    assert b"no data: no window of the run starts in the range" in body


@pytest.mark.parametrize(
    ("headers", "token", "status"),
    [
        pytest.param({}, False, 401, id="no-token"),
        pytest.param({"Authorization": "Bearer wrong"}, False, 401, id="wrong-token"),
        pytest.param({"Host": "evil.example:80"}, True, 403, id="foreign-host"),
        pytest.param({"Origin": "http://evil.example"}, True, 403, id="foreign-origin"),
    ],
)
def test_the_endpoint_rules_hold_for_the_report(
    server: ReadonlyServer, headers: dict[str, str], token: bool, status: int
) -> None:
    got, kind, body = _get(server, "/report", token=token, **headers)
    assert got == status
    assert kind == "application/json"
    assert b"drifthouse report" not in body


def test_a_bad_query_is_a_clear_error(server: ReadonlyServer) -> None:
    status, _, body = _get(server, "/report?hours=-3")
    assert status == 400
    assert "hours must be a number in (0, 9600] (got '-3')" in json.loads(body)["error"]
    status, _, body = _get(server, f"/report?hours={_SINCE_DEMO}&model=nope")
    assert status == 400
    assert "has no metrics of that model" in json.loads(body)["error"]
    status, _, body = _get(server, "/report?heatmap=ks")
    assert status == 400
    assert "--heatmap must be one of psi, p-value (got 'ks')" in json.loads(body)["error"]


def test_other_paths_and_methods_are_refused(server: ReadonlyServer) -> None:
    assert _get(server, "/elsewhere")[0] == 405
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    conn.request("POST", "/report", body=b"{}", headers={"Content-Length": "2"})
    assert conn.getresponse().status == 401  # POST is the SQL path's, token first
    conn.close()
