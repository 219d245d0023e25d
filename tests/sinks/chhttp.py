"""A small HTTP front for the embedded ClickHouse engine (chdb), for outage tests.

There is no ClickHouse server binary on the test machines, so this process speaks the part of
ClickHouse's HTTP interface that clickhouse-connect uses and executes every statement in chdb:

- ``GET /ping`` answers ``Ok.``;
- ``POST /?query=...`` with a body: ``INSERT ... FORMAT Native`` takes the body as the data
  (``compress=False`` on the client, so it is plain Native); any other statement is the URL query
  followed by the body, as ClickHouse concatenates them;
- ``param_<name>`` URL parameters are the query parameters (``{name:Type}``); ``database`` picks the
  current database; other URL parameters are settings, which the engine does not need here;
- errors answer with the status ClickHouse uses, ``X-ClickHouse-Exception-Code`` and the message.

``POST /__fault?status=503&count=2`` makes the next requests fail (for retry tests);
``POST /__fault?count=0&delay=2`` makes every request wait two seconds first (for timeouts).
Run as ``python -m tests.sinks.chhttp --path DIR --port PORT``; it prints ``ready`` when listening.
Kill the process for an outage (connections are refused) and start it again on the same folder.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import chdb

_INSERT_FORMAT = re.compile(
    r"^\s*(INSERT\s+INTO\s+.+?)\s+FORMAT\s+(\w+)\s*$", re.IGNORECASE | re.DOTALL
)
_INSERT_HEAD = re.compile(rb"^\s*(INSERT\s+INTO\s[^\n]+?\sFORMAT\s+\w+)[ \t]*\r?\n", re.IGNORECASE)
_CODE = re.compile(r"Code: (\d+)\.")
_STATUS_BY_CODE = {
    60: 404,
    81: 404,
    62: 400,
    47: 400,
    53: 400,
    6: 400,
    27: 400,
    36: 400,
    43: 400,
    516: 401,
}


class _Engine:
    def __init__(self, path: str) -> None:
        self.conn: Any = chdb.connect(path)  # type: ignore[no-untyped-call]
        self.lock = threading.Lock()
        self.faults: list[int] = []
        self.delay = 0.0

    def run(self, sql: str, database: str | None, params: dict[str, str], body: bytes) -> bytes:
        with self.lock:
            if database:
                self.conn.query(f"USE `{database}`", "TabSeparated")
            if not sql:
                head = _INSERT_HEAD.match(body)
                if head:
                    sql, body = head.group(1).decode(), body[head.end() :]
            match = _INSERT_FORMAT.match(sql)
            if match and body:
                with tempfile.NamedTemporaryFile(
                    suffix="." + match.group(2).lower(), delete=False
                ) as tmp:
                    tmp.write(body)
                try:
                    stmt = f"{match.group(1)} SELECT * FROM file('{tmp.name}', '{match.group(2)}')"
                    self.conn.query(stmt, "TabSeparated", params=params)
                finally:
                    os.unlink(tmp.name)
                return b""
            if body:
                sql = f"{sql}\n{body.decode()}" if sql else body.decode()
            result = self.conn.query(sql, "TabSeparated", params=params)
            return bytes(result.bytes()) if result is not None else b""


def _handler(engine: _Engine) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _reply(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header("X-ClickHouse-Timezone", "UTC")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _body(self) -> bytes:
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                parts: list[bytes] = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass
                        return b"".join(parts)
                    parts.append(self.rfile.read(size))
                    self.rfile.readline()
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def do_GET(self) -> None:
            if urlsplit(self.path).path.rstrip("/") in ("/ping", ""):
                self._reply(200, b"Ok.\n")
            else:
                self._reply(404, b"not found\n")

        def do_POST(self) -> None:
            url = urlsplit(self.path)
            args = dict(parse_qsl(url.query, keep_blank_values=True))
            body = self._body()
            if url.path == "/__fault":
                engine.faults.extend([int(args.get("status", "503"))] * int(args.get("count", "1")))
                engine.delay = float(args.get("delay", "0"))
                self._reply(200, b"ok\n")
                return
            if engine.delay:
                time.sleep(engine.delay)
            if engine.faults:
                status = engine.faults.pop(0)
                self._reply(
                    status,
                    b"Code: 999. DB::Exception: injected fault\n",
                    {"X-ClickHouse-Exception-Code": "999"},
                )
                return
            params = {k[6:]: v for k, v in args.items() if k.startswith("param_")}
            try:
                out = engine.run(args.get("query", ""), args.get("database"), params, body)
            except Exception as exc:  # every engine error becomes an HTTP error, as in ClickHouse
                text = str(exc)
                match = _CODE.search(text)
                code = int(match.group(1)) if match else 1000
                self._reply(
                    _STATUS_BY_CODE.get(code, 500),
                    text.encode() + b"\n",
                    {"X-ClickHouse-Exception-Code": str(code)},
                )
                return
            self._reply(200, out, {"X-ClickHouse-Summary": '{"read_rows":"0","written_rows":"0"}'})

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--path", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    engine = _Engine(args.path)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), _handler(engine))
    server.daemon_threads = True
    print("ready", flush=True)
    sys.stdout.close()
    server.serve_forever()


if __name__ == "__main__":
    main()
