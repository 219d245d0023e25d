"""Ad-hoc SQL for ``drifthouse sql``: run a statement, run a named recipe, or ask a running worker.

The embedded engine admits one process per data folder, so while a worker holds the store,
``drifthouse sql`` cannot open it. A worker started with ``store.serve_port`` runs
:func:`serve_readonly`, a small HTTP endpoint on 127.0.0.1 that answers read-only statements
(``SELECT``, ``WITH``, ``SHOW``, ``DESCRIBE``, ``EXPLAIN``, ``EXISTS``); :func:`query_readonly`
is its client.

Recipes are the named queries of ``sql/queries.sql`` (also ``deploy/clickhouse/queries.sql``):

>>> sorted(load_recipes())[:3]
['alert_history', 'compare_versions', 'metric_series']
>>> load_recipes()["top_drifting_features"].params["model"]
'String'
"""

from __future__ import annotations

import json
import re
import threading
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any

import msgspec

from drifthouse.errors import StoreError, StoreUnavailable, UsageError
from drifthouse.logs import get_logger
from drifthouse.sinks.store import Client, call

__all__ = [
    "ReadonlyServer",
    "Recipe",
    "check_readonly",
    "load_recipes",
    "query_readonly",
    "run_recipe",
    "run_sql",
    "serve_readonly",
]

log = get_logger("sinks.query")

_PARAM = re.compile(r"\{(\w+):([^}]+)\}")
_HEADER = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)
_READONLY_WORDS = {"SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXPLAIN", "EXISTS"}


@dataclass(frozen=True)
class Recipe:
    """A named query: its SQL, parameters (name -> ClickHouse type) and defaults."""

    name: str
    description: str
    sql: str
    params: dict[str, str] = field(default_factory=dict)
    defaults: dict[str, str] = field(default_factory=dict)

    def bind(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """Defaults overlaid with ``given``; a :class:`UsageError` naming what is missing or unknown."""
        unknown = sorted(set(given) - set(self.params))
        if unknown:
            raise UsageError(
                f"recipe {self.name!r} has no parameter {unknown}; it takes {sorted(self.params)}"
            )
        values: dict[str, Any] = {**self.defaults, **given}
        missing = sorted(set(self.params) - set(values))
        if missing:
            hint = " ".join(f"--param {name}=..." for name in missing)
            raise UsageError(f"recipe {self.name!r} needs {missing}: pass {hint}")
        return values


def load_recipes(path: str | Path | None = None) -> dict[str, Recipe]:
    """The recipes of ``path`` (default: the ``queries.sql`` shipped in the package), by name."""
    if path is None:
        text = (
            resources.files("drifthouse.sinks")
            .joinpath("sql", "queries.sql")
            .read_text(encoding="utf-8")
        )
    else:
        text = Path(path).read_text(encoding="utf-8")
    recipes: dict[str, Recipe] = {}
    headers = list(_HEADER.finditer(text))
    for i, header in enumerate(headers):
        body = text[header.end() : headers[i + 1].start() if i + 1 < len(headers) else len(text)]
        description: list[str] = []
        defaults: dict[str, str] = {}
        sql_lines: list[str] = []
        for line in body.splitlines():
            stripped = line.strip()
            if stripped.startswith("-- defaults:"):
                for pair in stripped[len("-- defaults:") :].split():
                    key, _, value = pair.partition("=")
                    defaults[key] = value
            elif stripped.startswith("--") and not sql_lines:
                description.append(stripped[2:].strip())
            elif stripped or sql_lines:
                sql_lines.append(line)
        sql = "\n".join(sql_lines).strip().rstrip(";").strip()
        params = {name: ptype for name, ptype in _PARAM.findall(sql)}
        recipes[header.group(1)] = Recipe(
            header.group(1), " ".join(description), sql, params, defaults
        )
    return recipes


def run_sql(
    client: Client,
    sql: str,
    parameters: Mapping[str, Any] | None = None,
    *,
    settings: Mapping[str, Any] | None = None,
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run one statement; return its column names and rows (statements without a result give none)."""
    result = call(
        "running a query",
        client.query,
        sql,
        parameters=dict(parameters or {}),
        settings=dict(settings or {}),
    )
    return list(result.column_names), [tuple(row) for row in result.result_rows]


def run_recipe(
    client: Client, name: str, parameters: Mapping[str, Any] | None = None
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run the recipe ``name`` with ``parameters`` over its defaults."""
    recipes = load_recipes()
    if name not in recipes:
        raise UsageError(f"no recipe named {name!r}; the recipes are {sorted(recipes)}")
    recipe = recipes[name]
    return run_sql(client, recipe.sql, recipe.bind(parameters or {}))


def check_readonly(sql: str) -> str:
    """``sql`` without comments and a trailing ``;`` if it is one read-only statement; else :class:`UsageError`."""
    text = re.sub(r"--[^\n]*|/\*.*?\*/", " ", sql, flags=re.DOTALL).strip().rstrip(";").strip()
    first = text.split(None, 1)[0].upper() if text else ""
    if first not in _READONLY_WORDS:
        raise UsageError(
            f"only read-only statements are answered here ({', '.join(sorted(_READONLY_WORDS))}); got {first or 'nothing'!r}"
        )
    if ";" in text:
        raise UsageError("one statement at a time: remove the ';' between statements")
    if re.search(r"\bINTO\s+OUTFILE\b", text, re.IGNORECASE):
        raise UsageError("INTO OUTFILE writes files; it is not answered here")
    return text


def _encode(value: Any) -> Any:
    return str(value)


class ReadonlyServer:
    """A running read-only SQL endpoint; :meth:`close` stops it."""

    def __init__(self, client: Client, host: str, port: int) -> None:
        lock = threading.Lock()
        encoder = msgspec.json.Encoder(enc_hook=_encode)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _reply(self, status: int, payload: object) -> None:
                body = encoder.encode(payload)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                if self.path.rstrip("/") != "/sql":
                    self._reply(404, {"error": "POST a JSON object {sql, parameters} to /sql"})
                    return
                try:
                    request = json.loads(
                        self.rfile.read(int(self.headers.get("Content-Length") or 0))
                    )
                    sql = check_readonly(str(request["sql"]))
                    parameters = dict(request.get("parameters") or {})
                except (ValueError, KeyError, TypeError, UsageError) as exc:
                    self._reply(
                        400,
                        {
                            "error": str(exc)
                            if isinstance(exc, UsageError)
                            else f"bad request: {exc}"
                        },
                    )
                    return
                try:
                    with lock:
                        # readonly=1: no writes, and no file() or url() reads of the host.
                        columns, rows = run_sql(client, sql, parameters, settings={"readonly": 1})
                except StoreError as exc:
                    self._reply(
                        503 if isinstance(exc, StoreUnavailable) else 400, {"error": str(exc)}
                    )
                    return
                self._reply(200, {"columns": columns, "rows": rows})

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self.host = host
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="drifthouse-sql", daemon=True
        )
        self._thread.start()
        log.info("sql.serving", host=host, port=self.port)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/sql"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def serve_readonly(client: Client, port: int, host: str = "127.0.0.1") -> ReadonlyServer:
    """Answer read-only SQL on ``http://host:port/sql`` from a background thread (port 0: any free one).

    Give it its own client (``open_store`` again with the same DSN): requests are serialised on it.
    """
    try:
        return ReadonlyServer(client, host, port)
    except OSError as exc:
        raise StoreError(
            f"cannot serve SQL on {host}:{port}: {exc.strerror}; choose another store.serve_port"
        ) from exc


def query_readonly(
    port: int,
    sql: str,
    parameters: Mapping[str, Any] | None = None,
    *,
    host: str = "127.0.0.1",
    timeout: float = 60.0,
) -> tuple[list[str], list[list[Any]]]:
    """Ask a worker's :func:`serve_readonly` endpoint; values come back as JSON (times as text)."""
    body = json.dumps({"sql": sql, "parameters": dict(parameters or {})}, default=str).encode()
    request = urllib.request.Request(
        f"http://{host}:{port}/sql",
        data=body,
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            payload = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        message = json.loads(exc.read() or b"{}").get("error", exc.reason)
        if exc.code == 400:
            raise UsageError(message) from None
        raise StoreError(f"the worker's SQL endpoint failed: {message}") from None
    except OSError as exc:
        raise StoreUnavailable(
            f"no drifthouse worker answers SQL on {host}:{port} ({exc}); is it running with store.serve_port set?"
        ) from exc
    return list(payload["columns"]), [list(row) for row in payload["rows"]]
