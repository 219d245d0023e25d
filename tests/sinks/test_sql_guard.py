"""Read-only by construction: every attack statement is refused on every path, the store stays intact.

The three paths of ``drifthouse sql``: :func:`run_select` on the store directly, the worker's
endpoint (:func:`serve_readonly` / :func:`query_readonly`), and the command itself.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from drifthouse import cli
from drifthouse.errors import DrifthouseError, UsageError
from drifthouse.sinks.clickhouse import ClickHouseSink
from drifthouse.sinks.schema import migrate
from drifthouse.sinks.sql_endpoint import query_readonly, read_token, serve_readonly
from drifthouse.sinks.sql_guard import Limits, run_select
from tests.sinks import rowgen
from tests.sinks.sql_attacks import ATTACKS

MARK = "drifthouse-secret-4b1d"
Runner = Callable[[str, dict[str, Any]], tuple[list[str], list[Any]]]


class _Recorder(BaseHTTPRequestHandler):
    hits: ClassVar[list[str]] = []

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _answer(self) -> None:
        type(self).hits.append(self.path)
        body = f"{MARK}\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_HEAD = do_POST = _answer  # noqa: N815


@pytest.fixture(scope="module")
def recorder() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/internal"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def store(store_client: Any) -> Iterator[tuple[Any, str]]:
    """``(client, database)``: a migrated database with results, shared by this module's tests."""
    name = f"sqlguard_{os.getpid()}"
    migrate(store_client, name)
    previous = store_client.database
    store_client.database = name
    metrics, sketches, alerts = rowgen.results(hours=3)
    sink = ClickHouseSink(store_client, database=name)
    sink.write([*metrics, *sketches, *alerts])
    sink.flush()
    yield store_client, name
    store_client.database = previous
    store_client.command(f"DROP DATABASE IF EXISTS `{name}`")


@pytest.fixture
def filled(store: tuple[Any, str]) -> Any:
    client, name = store
    client.database = name
    return client


@pytest.fixture
def database(store: tuple[Any, str]) -> str:
    return store[1]


@pytest.fixture(scope="module")
def endpoint(store: tuple[Any, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    token_file = tmp_path_factory.mktemp("endpoint") / "token"
    server = serve_readonly(store[0], 0, token_file=token_file)
    yield server, read_token(token_file)
    server.close()


def _snapshot(client: Any, database: str) -> dict[str, int]:
    tables = client.query(
        "SELECT name FROM system.tables WHERE database = {d:String} ORDER BY name",
        parameters={"d": database},
    ).result_rows
    return {
        name: client.command(f"SELECT count() FROM `{database}`.`{name}`") for (name,) in tables
    }


@pytest.fixture(params=["direct", "explain", "endpoint", "cli"])
def runner(
    request: pytest.FixtureRequest,
    filled: Any,
    database: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> Iterator[Runner]:
    """One way into the store: ``run_select`` (with ``parseQueryToJSON``, or ``EXPLAIN AST`` as
    on servers before 26.x), the endpoint, or ``drifthouse sql``."""
    if request.param == "direct":
        yield lambda sql, params: run_select(filled, sql, params)
    elif request.param == "explain":
        yield lambda sql, params: run_select(filled, sql, params, parser="explain")
    elif request.param == "endpoint":
        server, token = request.getfixturevalue("endpoint")
        yield lambda sql, params: query_readonly(server.port, sql, params, token=token)
    else:
        config = tmp_path / "drifthouse.yaml"
        config.write_text(f"store: {{dsn: 'chdb://{filled.path}', database: {database}}}\n")

        def run(sql: str, params: dict[str, Any]) -> tuple[list[str], list[Any]]:
            argv = ["sql", sql, "-c", str(config), "--format", "json"]
            for key, value in params.items():
                argv += ["--param", f"{key}={value}"]
            code = cli.main(argv)
            captured = capsys.readouterr()
            if code != 0:
                raise UsageError(captured.err)
            rows = json.loads(captured.out)
            return (list(rows[0]) if rows else []), [list(r.values()) for r in rows]

        yield run
        filled.database = database  # the command's own client shares the engine


@pytest.mark.parametrize("template", ATTACKS)
def test_attack_is_refused_and_the_store_is_intact(
    template: str, runner: Runner, filled: Any, database: str, tmp_path: Path, recorder: str
) -> None:
    watched = tmp_path / "watched"
    watched.mkdir()
    secret = tmp_path / "secret.txt"
    secret.write_text(f"{MARK}-file\n")
    before = _snapshot(filled, database)
    _Recorder.hits = []
    sql = template.format(dir=watched, secret=secret, url=recorder, db=database)
    started = time.monotonic()
    with pytest.raises(DrifthouseError) as refused:
        runner(sql, {"t": "system.users"})
    assert time.monotonic() - started < 10
    assert MARK not in str(refused.value)
    assert _snapshot(filled, database) == before
    assert list(watched.iterdir()) == []
    assert _Recorder.hits == []
    assert run_select(filled, "SELECT count() FROM metrics")[1][0][0] > 0


@pytest.mark.parametrize("runner", ["direct", "explain", "endpoint"], indirect=True)
def test_every_table_function_is_refused_in_every_position(
    runner: Runner, filled: Any, database: str
) -> None:
    names = [r[0] for r in filled.query("SELECT name FROM system.table_functions").result_rows]
    assert len(names) > 50
    before = _snapshot(filled, database)
    for name in names:
        # the view functions take a statement: (SELECT ...), (EXPLAIN ...), (SELECT ... ELSE ...)
        args = {"view": "SELECT 1", "viewIfPermitted": "SELECT 1 ELSE null('x UInt8')",
                "viewExplain": "'EXPLAIN', '', (SELECT 1)"}.get(name, "")  # fmt: skip
        for sql in (
            f"SELECT * FROM {name}({args})",
            f"SELECT * FROM metrics AS m JOIN {name}({args}) AS t ON 1",
            f"SELECT count() FROM (SELECT * FROM {name}({args}))",
        ):
            with pytest.raises(DrifthouseError, match="table function"):
                runner(sql, {})
        if name not in ("format", "null"):  # a harmless string function; a keyword
            with pytest.raises(DrifthouseError, match="reaches outside"):
                runner(f"SELECT {name}('x')", {})
    assert _snapshot(filled, database) == before


@pytest.mark.parametrize(
    ("sql", "params", "expected"),
    [
        pytest.param(
            "SELECT count() AS n FROM metrics WHERE model = {{m:String}}",
            {"m": "x' OR 1=1 --"},
            [[0]],
            id="bound-parameter",
        ),
        pytest.param(
            "WITH c AS (SELECT model FROM metrics FINAL WHERE model = 'fraud') "
            "SELECT count() > 0 AS n FROM c",
            {},
            [[1]],
            id="with",
        ),
        pytest.param(
            "SELECT n FROM (SELECT 1 AS n UNION ALL SELECT 2) ORDER BY n",
            {},
            [[1], [2]],
            id="union",
        ),
        pytest.param(
            "SELECT count() > 0 AS n FROM {db}.metrics AS m "
            "INNER JOIN (SELECT DISTINCT model FROM sketches) AS s ON m.model = s.model",
            {},
            [[1]],
            id="qualified-join-subquery",
        ),
        pytest.param(
            "SELECT arrayMap(x -> x * 2, [1, 2]) AS n, format('{{}}-{{}}', 'a', 'b') AS f",
            {},
            [[[2, 4], "a-b"]],
            id="lambda-and-format",
        ),
        pytest.param(
            "SELECT count() > 0 AS n FROM metrics WHERE model IN metrics_in_cte "
            "SETTINGS_NOT_A_CLAUSE",
            {},
            None,
            id="syntax-error",
        ),
    ],
)
def test_selects_over_drifthouse_tables_are_answered(
    runner: Runner, database: str, sql: str, params: dict[str, Any], expected: Any
) -> None:
    sql = sql.format(db=database)
    if expected is None:
        with pytest.raises(UsageError, match="not one SELECT"):
            runner(sql, params)
        return
    columns, rows = runner(sql, params)
    assert columns[0] == "n"
    assert [list(row) for row in rows] == expected


@pytest.mark.parametrize(
    ("limits", "sql", "match"),
    [
        pytest.param(
            Limits(timeout_s=1),
            "SELECT count() FROM metrics AS a, metrics AS b, metrics AS c, metrics AS d "
            "WHERE sipHash64(a.value, b.value, c.value, d.value) = 7",
            "limits",
            id="timeout",
        ),
        pytest.param(Limits(max_rows=5), "SELECT * FROM metrics", "limits", id="rows"),
        pytest.param(
            Limits(max_memory=20 << 20),
            "SELECT groupArray(a.value) FROM metrics AS a, metrics AS b, metrics AS c",
            "limits",
            id="memory",
        ),
    ],
)
def test_statements_stop_at_their_limits(
    filled: Any, database: str, limits: Limits, sql: str, match: str
) -> None:
    started = time.monotonic()
    with pytest.raises(UsageError, match=match):
        run_select(filled, sql, limits=limits)
    assert time.monotonic() - started < limits.timeout_s + 5
    # the client is not left read-only or limited
    filled.command("CREATE TABLE IF NOT EXISTS after_limits (x UInt8) ENGINE = Memory")
    filled.command("DROP TABLE after_limits")


def test_the_store_stays_writable_after_readonly_statements(filled: Any, database: str) -> None:
    run_select(filled, "SELECT count() FROM metrics")
    with contextlib.suppress(DrifthouseError):
        run_select(filled, "DROP TABLE metrics")
    sink = ClickHouseSink(filled, database=database)
    metrics, _, _ = rowgen.results(hours=1)
    sink.write(metrics[:3])
    sink.flush()
