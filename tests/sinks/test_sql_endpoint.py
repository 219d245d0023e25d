"""The worker's SQL endpoint answers its owner only: token, Host and Origin, size, time."""

from __future__ import annotations

import http.client
import json
import os
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from drifthouse.errors import StoreError, StoreUnavailable, UsageError
from drifthouse.sinks.clickhouse import ClickHouseSink
from drifthouse.sinks.schema import migrate
from drifthouse.sinks.sql_endpoint import (
    ReadonlyServer,
    query_readonly,
    read_token,
    serve_readonly,
    write_token,
)
from drifthouse.sinks.sql_guard import Limits
from tests.sinks import rowgen


@pytest.fixture(scope="module")
def server(store_client: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReadonlyServer]:
    name = f"sqlendpoint_{os.getpid()}"
    migrate(store_client, name)
    metrics, sketches, alerts = rowgen.results(hours=3)
    sink = ClickHouseSink(store_client, database=name)
    sink.write([*metrics, *sketches, *alerts])
    sink.flush()
    token_file = tmp_path_factory.mktemp("endpoint") / "sql-endpoint.token"
    previous, store_client.database = store_client.database, name
    served = serve_readonly(
        store_client,
        0,
        token_file=token_file,
        limits=Limits(timeout_s=1),
        max_request_bytes=4096,
    )
    yield served
    served.close()
    store_client.database = previous
    store_client.command(f"DROP DATABASE IF EXISTS `{name}`")


def _post(
    server: ReadonlyServer,
    body: bytes,
    headers: dict[str, str],
    *,
    method: str = "POST",
    path: str = "/sql",
) -> tuple[int, dict[str, Any], dict[str, str]]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        for key, value in headers.items():
            conn.putheader(key, value)
        conn.endheaders(body or None)
        response = conn.getresponse()
        payload = json.loads(response.read() or b"{}")
        return response.status, payload, dict(response.getheaders())
    finally:
        conn.close()


def _headers(server: ReadonlyServer, **extra: str) -> dict[str, str]:
    base = {
        "Host": f"127.0.0.1:{server.port}",
        "Authorization": f"Bearer {read_token(server.token_file)}",
        "Content-Type": "application/json",
    }
    base.update({k.replace("_", "-"): v for k, v in extra.items()})
    return {k: v for k, v in base.items() if v != ""}


QUERY = json.dumps({"sql": "SELECT count() AS n FROM metrics"}).encode()


@pytest.mark.parametrize(
    ("change", "status"),
    [
        pytest.param({}, 200, id="owner"),
        pytest.param({"Host": "localhost:{port}"}, 200, id="host-localhost"),
        pytest.param({"Origin": "http://127.0.0.1:{port}"}, 200, id="same-origin"),
        pytest.param({"Authorization": ""}, 401, id="no-token"),
        pytest.param({"Authorization": "Bearer wrong"}, 401, id="wrong-token"),
        pytest.param({"Authorization": "Basic {token}"}, 401, id="token-not-bearer"),
        pytest.param({"Host": "evil.example"}, 403, id="foreign-host"),
        pytest.param({"Host": "evil.example:{port}"}, 403, id="rebound-host"),
        pytest.param({"Host": "127.0.0.1:1"}, 403, id="other-port"),
        pytest.param({"Host": ""}, 403, id="no-host"),
        pytest.param({"Origin": "http://evil.example"}, 403, id="foreign-origin"),
        pytest.param({"Origin": "null"}, 403, id="null-origin"),
        pytest.param({"Origin": "https://127.0.0.1.evil.example"}, 403, id="lookalike-origin"),
    ],
)
def test_only_the_owner_from_this_machine_is_answered(
    server: ReadonlyServer, change: dict[str, str], status: int
) -> None:
    token = read_token(server.token_file)
    headers = _headers(server)
    for key, value in change.items():
        headers[key] = value.format(port=server.port, token=token)
    headers = {k: v for k, v in headers.items() if v}
    headers["Content-Length"] = str(len(QUERY))
    got, payload, response_headers = _post(server, QUERY, headers)
    assert got == status, payload
    assert "Access-Control-Allow-Origin" not in response_headers
    if status == 200:
        assert payload["columns"] == ["n"]
    else:
        assert "rows" not in payload
        assert token not in json.dumps(payload)


@pytest.mark.parametrize(
    ("method", "body", "length", "status"),
    [
        pytest.param("GET", b"", None, 405, id="get"),
        pytest.param("OPTIONS", b"", None, 405, id="preflight"),
        pytest.param("POST", b"x" * 5000, "5000", 413, id="too-large"),
        pytest.param("POST", b"", "100000000", 413, id="announced-too-large"),
        pytest.param("POST", b"{}", "", 411, id="no-length"),
        pytest.param("POST", b"not json", "8", 400, id="not-json"),
        pytest.param("POST", b'{"sql": 1}', "10", 400, id="sql-not-text"),
        pytest.param(
            "POST",
            b'{"sql": "SELECT 1", "parameters": {"a": [1]}}',
            "44",
            400,
            id="parameter-not-scalar",
        ),
    ],
)
def test_malformed_requests_are_refused_before_any_statement(
    server: ReadonlyServer, method: str, body: bytes, length: str | None, status: int
) -> None:
    headers = _headers(server)
    if length:
        headers["Content-Length"] = length
    got, payload, _ = _post(server, body, headers, method=method)
    assert got == status, payload


def test_the_token_file_is_private_and_goes_with_the_server(
    store_client: Any, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("stale\n")
    os.chmod(token_file, 0o644)
    served = serve_readonly(store_client, 0, token_file=token_file)
    try:
        mode = stat.S_IMODE(token_file.stat().st_mode)
        assert mode == 0o600
        token = read_token(token_file)
        assert len(token) >= 40
        assert token != "stale"
        assert query_readonly(served.port, "SELECT 1 AS one", token=token) == (["one"], [[1]])
    finally:
        served.close()
    assert not token_file.exists()
    with pytest.raises(StoreError, match="no drifthouse worker"):
        query_readonly(served.port, "SELECT 1", token=token, timeout=2)


def test_a_token_file_others_can_read_is_refused(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    write_token(token_file)
    os.chmod(token_file, 0o640)
    with pytest.raises(StoreError, match="mode 0600"):
        read_token(token_file)
    link = tmp_path / "link"
    link.symlink_to(token_file)
    with pytest.raises(StoreError, match="cannot read"):
        read_token(link)


def test_a_statement_does_not_hold_the_store_past_its_limit(server: ReadonlyServer) -> None:
    token = read_token(server.token_file)
    started = time.monotonic()
    with pytest.raises(UsageError, match="limits"):
        query_readonly(
            server.port,
            "SELECT count() FROM metrics AS a, metrics AS b, metrics AS c, metrics AS d "
            "WHERE sipHash64(a.value, b.value, c.value, d.value) = 7",
            token=token,
        )
    assert time.monotonic() - started < 5
    assert query_readonly(server.port, "SELECT 1 AS one", token=token) == (["one"], [[1]])


def test_the_endpoint_binds_to_this_machine_only(store_client: Any, tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="this machine only"):
        serve_readonly(store_client, 0, token_file=tmp_path / "t", host="0.0.0.0")


def test_requests_beyond_the_in_flight_bound_are_turned_away_at_once(
    server: ReadonlyServer, store_client: Any, tmp_path: Path
) -> None:
    single = serve_readonly(
        store_client, 0, token_file=tmp_path / "t", limits=Limits(timeout_s=2), max_in_flight=1
    )
    token = read_token(tmp_path / "t")
    slow = (
        "SELECT count() FROM metrics AS a, metrics AS b, metrics AS c, metrics AS d "
        "WHERE sipHash64(a.value, b.value, c.value, d.value) = 7"
    )
    errors: list[Exception] = []

    def ask_slow() -> None:
        try:
            query_readonly(single.port, slow, token=token)
        except Exception as exc:  # the limit stops it: expected
            errors.append(exc)

    thread = threading.Thread(target=ask_slow)
    try:
        thread.start()
        time.sleep(0.5)
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match="too many requests"):
            query_readonly(single.port, "SELECT 1", token=token)
        assert time.monotonic() - started < 1
        thread.join(timeout=10)
        assert errors
        assert isinstance(errors[0], UsageError)
        assert query_readonly(single.port, "SELECT 1 AS one", token=token) == (["one"], [[1]])
    finally:
        single.close()


def test_a_client_asking_in_turn_is_never_turned_away(store_client: Any, tmp_path: Path) -> None:
    """The in-flight slot is given back before the reply can be read: a client that asks again
    as soon as it has its answer never finds the endpoint busy with its own last request."""
    single = serve_readonly(
        store_client, 0, token_file=tmp_path / "t", limits=Limits(timeout_s=2), max_in_flight=1
    )
    token = read_token(tmp_path / "t")
    try:
        for _ in range(300):
            assert query_readonly(single.port, "SELECT 1 AS one", token=token) == (["one"], [[1]])
    finally:
        single.close()
