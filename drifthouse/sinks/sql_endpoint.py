"""The worker's SQL endpoint and its client: ``drifthouse sql`` while a worker holds the store.

The embedded engine admits one process per data folder, so while a worker runs, ``drifthouse
sql`` asks it. A worker with ``store.serve_port`` runs :class:`ReadonlyServer` on 127.0.0.1;
:func:`query_readonly` is its client. Only its owner can use it:

- every request carries ``Authorization: Bearer <token>``; the token is random, written at
  worker start to a file only its owner can read (mode 0600, :func:`write_token`), and read by
  the client (:func:`read_token`, which refuses a file others can read);
- the ``Host`` header must name 127.0.0.1, localhost or [::1] (with the endpoint's port), and an
  ``Origin`` header, if any, the same: a web page the operator visits cannot post to it (DNS
  rebinding, cross-site forms), and it sends no CORS headers;
- bodies are capped (``store.serve_max_request_bytes``) and read with a socket timeout;
- statements pass :func:`~drifthouse.sinks.sql_guard.run_select` (one SELECT over the drifthouse
  tables, run read-only within time, memory and result limits), one at a time: a request that
  waits longer than the time limit for its turn is answered 503, so no statement holds the
  store for longer than the limit, and beyond a few requests in flight the next are answered
  503 at once.

``pages`` add read-only GET paths behind the same rules (the worker's ``/report``,
docs/report.md): each is a function of the endpoint's client and the query string that returns
an HTML page, run in its turn like a statement.
"""

from __future__ import annotations

import contextlib
import fcntl
import hmac
import json
import os
import secrets
import stat
import tempfile
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from drifthouse.errors import StoreError, StoreUnavailable, UsageError
from drifthouse.logs import get_logger
from drifthouse.sinks.sql_guard import Limits, run_select
from drifthouse.sinks.store import Client

_T = TypeVar("_T")

__all__ = [
    "Page",
    "ReadonlyServer",
    "held_by_another_process",
    "query_readonly",
    "quiet_stderr",
    "read_token",
    "serve_readonly",
    "write_token",
]

log = get_logger("sinks.sql_endpoint")

#: A GET path's page: HTML from the endpoint's client and the query string (first values);
#: :class:`~drifthouse.errors.UsageError` for a bad query (answered 400).
Page = Callable[[Client, Mapping[str, str]], bytes]

_LOCAL_HOSTS = ("127.0.0.1", "localhost", "[::1]")
_READ_TIMEOUT_S = 10.0


def write_token(path: Path) -> str:
    """A fresh random token, written to ``path`` with mode 0600 (an old file there is replaced)."""
    token = secrets.token_urlsafe(32)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        raise StoreError(
            f"cannot write the SQL endpoint's token to {path}: {exc.strerror}; "
            "set store.serve_token_file to a writable place"
        ) from exc
    with os.fdopen(fd, "w", encoding="ascii") as file:
        os.fchmod(file.fileno(), 0o600)
        file.write(token + "\n")
    return token


def read_token(path: Path) -> str:
    """The token in ``path``; a :class:`StoreError` if it is missing or others can read it."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        raise StoreUnavailable(
            f"cannot read the SQL endpoint's token {path}: {exc.strerror}; the worker writes it "
            "when it starts with store.serve_port set (and the same store.serve_token_file)"
        ) from exc
    with os.fdopen(fd, encoding="ascii") as file:
        info = os.fstat(file.fileno())
        if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO) or info.st_uid != os.getuid():
            raise StoreError(
                f"the SQL endpoint's token {path} must belong to you with mode 0600 "
                f"(got mode {stat.S_IMODE(info.st_mode):o}); restart the worker to rewrite it"
            )
        return file.read().strip()


def held_by_another_process(folder: Path) -> bool:
    """Whether an engine in another process holds the embedded store in ``folder``.

    The engine locks ``<folder>/status`` (``flock``) while it runs; this process's own engine
    counts as another holder too, so ask only after opening the folder failed.
    """
    try:
        fd = os.open(folder / "status", os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)  # closing releases a lock taken here
    return False


@contextlib.contextmanager
def quiet_stderr() -> Iterator[list[str]]:
    """File descriptor 2 captured: the engine prints lock errors there before raising.

    Yields a list that holds what was printed once the block ends, for an error message.
    """
    captured: list[str] = []
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        try:
            os.dup2(sink.fileno(), 2)
            yield captured
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            captured.append(sink.read(4096).decode("utf-8", "replace").strip())


def _encode(value: Any) -> Any:
    return str(value)


@dataclass(frozen=True)
class _Endpoint:
    """What every request of one endpoint shares: the store, its limits and the token."""

    client: Client
    limits: Limits
    token_file: Path
    expected_auth: bytes
    max_request_bytes: int
    # Requests in flight (running or waiting for the lock): beyond these, 503 at once, so a
    # flood of requests cannot pile up threads.
    in_flight: threading.BoundedSemaphore
    pages: Mapping[str, Page] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    encoder: msgspec.json.Encoder = field(
        default_factory=lambda: msgspec.json.Encoder(enc_hook=_encode)
    )


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], endpoint: _Endpoint) -> None:
        self.endpoint = endpoint
        super().__init__(address, _Handler)


class _BadRequest(Exception):
    """A request the endpoint answers with ``status`` and ``message``, before running anything."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _statement(body: bytes) -> tuple[str, dict[str, Any]]:
    """The ``sql`` and ``parameters`` of a request body; :class:`_BadRequest` (400) otherwise."""
    try:
        request = json.loads(body)
        sql = request["sql"]
        parameters = request.get("parameters") or {}
        if not isinstance(sql, str) or not isinstance(parameters, dict):
            raise TypeError("'sql' must be a string and 'parameters' an object")
        if not all(isinstance(v, str | int | float | bool) for v in parameters.values()):
            raise TypeError("parameter values must be strings or numbers")
    except (ValueError, KeyError, TypeError, OSError) as exc:
        raise _BadRequest(400, f"bad request: {exc}") from exc
    return sql, parameters


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = _READ_TIMEOUT_S  # a slow or silent client does not keep a thread
    # Replies are buffered and leave whole when the request is done (handle_one_request
    # flushes), after its in-flight slot is given back: a client asking again as soon as it has
    # its answer never finds the endpoint busy with its own last request.
    wbufsize = -1
    server: _HttpServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _reply(self, status: int, payload: object) -> None:
        body = self.server.endpoint.encoder.encode(payload)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        if status >= 400:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def _refused(self) -> str | None:
        port = self.server.server_address[1]
        local = {h for name in _LOCAL_HOSTS for h in (name, f"{name}:{port}")}
        host_header = self.headers.get("Host", "")
        if host_header not in local:
            return f"Host {host_header!r} is not this machine's endpoint"
        origin = self.headers.get("Origin")
        if origin is not None and origin.removeprefix("http://") not in local:
            return f"requests from origin {origin!r} are refused"
        return None

    def _not_allowed(self) -> None:
        self._reply(405, {"error": "POST a JSON object {sql, parameters} to /sql"})

    def do_GET(self) -> None:
        endpoint = self.server.endpoint
        url = urllib.parse.urlsplit(self.path)
        page = endpoint.pages.get(url.path.rstrip("/"))
        if page is None:
            self._not_allowed()
            return
        try:
            self._check_access(endpoint)
        except _BadRequest as exc:
            self._reply(exc.status, {"error": str(exc)})
            return
        query = {k: v[0] for k, v in urllib.parse.parse_qs(url.query).items()}
        if not endpoint.in_flight.acquire(blocking=False):
            self._reply(503, {"error": "the endpoint is busy: too many requests"})
            return
        try:
            self._page(endpoint, page, query)
        finally:
            endpoint.in_flight.release()

    def _page(self, endpoint: _Endpoint, page: Page, query: Mapping[str, str]) -> None:
        body = self._in_turn(endpoint, lambda: page(endpoint.client, query))
        if body is None:
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        self.wfile.write(body)

    def do_PUT(self) -> None:
        self._not_allowed()

    def do_DELETE(self) -> None:
        self._not_allowed()

    def do_OPTIONS(self) -> None:
        self._not_allowed()

    def do_POST(self) -> None:
        endpoint = self.server.endpoint
        try:
            sql, parameters = self._accept(endpoint)
        except _BadRequest as exc:
            self._reply(exc.status, {"error": str(exc)})
            return
        if not endpoint.in_flight.acquire(blocking=False):
            self._reply(503, {"error": "the endpoint is busy: too many requests"})
            return
        try:
            self._run(endpoint, sql, parameters)
        finally:
            endpoint.in_flight.release()

    def _check_access(self, endpoint: _Endpoint) -> None:
        """:class:`_BadRequest` unless the request comes from this machine with the token."""
        refused = self._refused()
        if refused is not None:
            raise _BadRequest(403, refused)
        given = (self.headers.get("Authorization") or "").encode()
        if not hmac.compare_digest(given, endpoint.expected_auth):
            raise _BadRequest(
                401, f"send Authorization: Bearer <the token in {endpoint.token_file}>"
            )

    def _accept(self, endpoint: _Endpoint) -> tuple[str, dict[str, Any]]:
        """The request's statement, once its origin, token, path and size pass."""
        self._check_access(endpoint)
        if self.path.rstrip("/") != "/sql":
            raise _BadRequest(404, "POST a JSON object {sql, parameters} to /sql")
        try:
            length = int(self.headers.get("Content-Length") or "")
        except ValueError:
            raise _BadRequest(411, "send a Content-Length") from None
        if not 0 <= length <= endpoint.max_request_bytes:
            raise _BadRequest(413, f"requests are at most {endpoint.max_request_bytes} bytes")
        try:
            body = self.rfile.read(length)
        except OSError as exc:
            raise _BadRequest(400, f"bad request: {exc}") from exc
        return _statement(body)

    def _run(self, endpoint: _Endpoint, sql: str, parameters: dict[str, Any]) -> None:
        result = self._in_turn(
            endpoint, lambda: run_select(endpoint.client, sql, parameters, limits=endpoint.limits)
        )
        if result is not None:
            columns, rows = result
            self._reply(200, {"columns": columns, "rows": rows})

    def _in_turn(self, endpoint: _Endpoint, work: Callable[[], _T]) -> _T | None:
        """``work()`` under the store's lock, one statement at a time; ``None`` once the error
        it raised (or a lock not had in time) has been replied."""
        if not endpoint.lock.acquire(timeout=endpoint.limits.timeout_s):
            self._reply(503, {"error": "the endpoint is busy with another statement"})
            return None
        try:
            return work()
        except UsageError as exc:
            self._reply(400, {"error": str(exc)})
        except StoreError as exc:
            self._reply(503 if isinstance(exc, StoreUnavailable) else 400, {"error": str(exc)})
        finally:
            endpoint.lock.release()
        return None


class ReadonlyServer:
    """A running SQL endpoint; :meth:`close` stops it and removes its token file."""

    def __init__(
        self,
        client: Client,
        host: str,
        port: int,
        *,
        token_file: Path,
        limits: Limits,
        max_request_bytes: int,
        max_in_flight: int = 4,
        pages: Mapping[str, Page] | None = None,
    ) -> None:
        token = write_token(token_file)
        self.token_file = token_file
        self._token = token
        endpoint = _Endpoint(
            client=client,
            limits=limits,
            token_file=token_file,
            expected_auth=f"Bearer {token}".encode(),
            max_request_bytes=max_request_bytes,
            in_flight=threading.BoundedSemaphore(max_in_flight),
            pages=dict(pages or {}),
        )
        try:
            self._server = _HttpServer((host, port), endpoint)
        except OSError:
            self._remove_token()
            raise
        self.host = host
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="drifthouse-sql", daemon=True
        )
        self._thread.start()
        log.info("sql.serving", host=host, port=self.port, token_file=str(token_file))

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/sql"

    def _remove_token(self) -> None:
        with contextlib.suppress(OSError):
            if self.token_file.read_text(encoding="ascii").strip() == self._token:
                self.token_file.unlink()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        self._remove_token()


def serve_readonly(
    client: Client,
    port: int,
    *,
    token_file: Path,
    host: str = "127.0.0.1",
    limits: Limits | None = None,
    max_request_bytes: int = 64 * 1024,
    max_in_flight: int = 4,
    pages: Mapping[str, Page] | None = None,
) -> ReadonlyServer:
    """Answer SELECTs on ``http://host:port/sql`` from a background thread (port 0: any free one).

    Give it its own client (``open_store`` again with the same DSN): requests are serialised on
    it, and answered over its current database. The token goes to ``token_file`` (mode 0600) and is removed by :meth:`ReadonlyServer.close`.
    """
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise StoreError(f"the SQL endpoint binds to this machine only (got host {host!r})")
    try:
        return ReadonlyServer(
            client,
            host,
            port,
            token_file=token_file,
            limits=limits or Limits(),
            max_request_bytes=max_request_bytes,
            max_in_flight=max_in_flight,
            pages=pages,
        )
    except OSError as exc:
        raise StoreError(
            f"cannot serve SQL on {host}:{port}: {exc.strerror}; choose another store.serve_port"
        ) from exc


def query_readonly(
    port: int,
    sql: str,
    parameters: Mapping[str, Any] | None = None,
    *,
    token: str,
    host: str = "127.0.0.1",
    timeout: float = 60.0,
) -> tuple[list[str], list[list[Any]]]:
    """Ask a worker's :func:`serve_readonly` endpoint; values come back as JSON (times as text)."""
    body = json.dumps({"sql": sql, "parameters": dict(parameters or {})}, default=str).encode()
    request = urllib.request.Request(
        f"http://{host}:{port}/sql",
        data=body,
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            payload = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read() or b"{}").get("error", exc.reason)
        except ValueError:
            message = exc.reason
        if exc.code == 400:
            raise UsageError(message) from None
        if exc.code == 503:
            raise StoreUnavailable(f"the worker's SQL endpoint is busy: {message}") from None
        raise StoreError(f"the worker's SQL endpoint refused the request: {message}") from None
    except OSError as exc:
        raise StoreUnavailable(
            f"no drifthouse worker answers SQL on {host}:{port} ({exc}); is it running with store.serve_port set?"
        ) from exc
    return list(payload["columns"]), [list(row) for row in payload["rows"]]
