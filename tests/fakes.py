"""Local HTTP servers that speak the outside APIs drifthouse notifies, for tests.

:class:`FakeApi` answers, on one port:

- Slack Web API ``POST /api/chat.postMessage`` and ``/api/chat.update`` (JSON or form bodies,
  ``Authorization: Bearer`` token), like slack.com does, with ``ts`` values it hands out;
- Slack incoming webhooks ``POST /hooks/...`` (``200 ok``);
- PagerDuty Events API v2 ``POST /v2/enqueue`` (``202`` with the ``dedup_key``), keeping the
  incidents it would open, fold and resolve;
- anything else under ``/webhook...`` with ``200``.

Failure modes are switchable at any time: :meth:`FakeApi.fail` answers the next ``times``
requests to a path with a status (``500``, or ``429`` with ``Retry-After``) until
:meth:`FakeApi.recover`, and
:meth:`FakeApi.down` / :meth:`FakeApi.up` close and reopen the port (connection refused).
Every request that reached the server is recorded in :attr:`FakeApi.requests`, with the status
it got. The real clients (slack-sdk, httpx) are aimed at :attr:`FakeApi.url`; nothing is mocked.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

__all__ = ["FakeApi", "Recorded"]


@dataclass
class Recorded:
    """One request the fake server received."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    status: int
    at: float = field(default_factory=time.monotonic)  # when it was answered (monotonic)


@dataclass
class _Failure:
    prefix: str
    status: int
    times: int
    retry_after: str | None = None
    body: Any = None
    after: int = 0


@dataclass
class _Incident:
    dedup_key: str
    status: str  # triggered, resolved
    triggers: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)


class FakeApi:
    """A threaded local HTTP server speaking Slack's and PagerDuty's APIs (see the module doc)."""

    def __init__(self, port: int = 0) -> None:
        self.requests: list[Recorded] = []
        self.incidents: dict[str, _Incident] = {}
        self.messages: dict[str, dict[str, Any]] = {}  # ts -> the latest message body
        self._failures: list[_Failure] = []
        self._lock = threading.Lock()
        self._ts = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = port
        self.up()

    # ---- lifecycle -----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def up(self) -> None:
        """(Re)open the port and serve."""
        if self._server is not None:
            return
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                status, headers, body = api._handle(self.path, dict(self.headers.items()), raw)
                payload = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        ThreadingHTTPServer.allow_reuse_address = True
        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def down(self) -> None:
        """Close the port: clients get 'connection refused' until :meth:`up`."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        self._server = None
        if self._thread is not None:
            self._thread.join(5)

    def close(self) -> None:
        self.down()

    # ---- failure modes -------------------------------------------------------------------------

    def fail(
        self,
        prefix: str,
        status: int = 500,
        *,
        times: int = 1,
        retry_after: float | None = None,
        after: int = 0,
    ) -> None:
        """Answer ``times`` requests whose path starts with ``prefix`` with ``status``, after
        letting the next ``after`` of them through."""
        body: Any = (
            {"ok": False, "error": "ratelimited"}
            if status == 429
            else {"ok": False, "error": "internal_error"}
        )
        if prefix.startswith("/v2"):
            body = (
                {
                    "status": "throttle event",
                    "message": "Requests for this service are arriving too quickly",
                }
                if status == 429
                else {"status": "error"}
            )
        with self._lock:
            self._failures.append(
                _Failure(
                    prefix,
                    status,
                    times,
                    None if retry_after is None else f"{retry_after:g}",
                    body,
                    after,
                )
            )

    def recover(self, prefix: str = "", status: int | None = None) -> None:
        """Stop failing requests under ``prefix`` (only those answered ``status``, when given)."""
        with self._lock:
            self._failures = [
                f
                for f in self._failures
                if not (f.prefix.startswith(prefix) and status in (None, f.status))
            ]

    # ---- views ---------------------------------------------------------------------------------

    def ok(self, prefix: str = "") -> list[Recorded]:
        """Requests to paths under ``prefix`` that succeeded."""
        with self._lock:
            return [r for r in self.requests if r.path.startswith(prefix) and r.status < 300]

    def pd_events(self) -> list[dict[str, Any]]:
        """Events API bodies PagerDuty accepted, in order."""
        return [r.body for r in self.ok("/v2/enqueue")]

    def slack_calls(self, method: str = "") -> list[Recorded]:
        """Accepted Slack Web API calls (``chat.postMessage``, ``chat.update``) or webhook posts."""
        if method == "webhook":
            return self.ok("/hooks/")
        return self.ok(f"/api/{method}")

    # ---- the APIs ------------------------------------------------------------------------------

    def _handle(
        self, path: str, headers: dict[str, str], raw: bytes
    ) -> tuple[int, dict[str, str], Any]:
        ctype = headers.get("Content-Type", headers.get("content-type", ""))
        body: Any
        if "json" in ctype:
            body = json.loads(raw or b"{}")
        elif raw:
            body = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
        else:
            body = {}
        with self._lock:
            for failure in self._failures:
                if failure.times > 0 and path.startswith(failure.prefix):
                    if failure.after > 0:
                        failure.after -= 1
                        continue
                    failure.times -= 1
                    out_headers = {"Content-Type": "application/json"}
                    if failure.retry_after is not None:
                        out_headers["Retry-After"] = failure.retry_after
                    self.requests.append(Recorded("POST", path, headers, body, failure.status))
                    return failure.status, out_headers, failure.body
            status, out = self._answer(path, headers, body)
            self.requests.append(Recorded("POST", path, headers, body, status))
        if isinstance(out, bytes):
            return status, {"Content-Type": "text/plain"}, out
        return status, {"Content-Type": "application/json"}, out

    def _answer(self, path: str, headers: dict[str, str], body: Any) -> tuple[int, Any]:
        if path.startswith("/api/chat."):
            auth = headers.get("Authorization", headers.get("authorization", ""))
            if not auth.startswith("Bearer xoxb-"):
                return 200, {"ok": False, "error": "not_authed"}
            if not body.get("channel"):
                return 200, {"ok": False, "error": "channel_not_found"}
            if path == "/api/chat.postMessage":
                self._ts += 1
                ts = f"1700000000.{self._ts:06d}"
                self.messages[ts] = body
                return 200, {"ok": True, "channel": body["channel"], "ts": ts, "message": body}
            if path == "/api/chat.update":
                ts = body.get("ts", "")
                if ts not in self.messages:
                    return 200, {"ok": False, "error": "message_not_found"}
                self.messages[ts] = body
                return 200, {"ok": True, "channel": body["channel"], "ts": ts}
            return 200, {"ok": False, "error": "unknown_method"}
        if path.startswith("/hooks/"):
            if not body.get("text") and not body.get("blocks"):
                return 400, b"no_text"
            return 200, b"ok"
        if path == "/v2/enqueue":
            return self._pagerduty(body)
        if path.startswith("/webhook"):
            return 200, {"ok": True}
        return 404, {"error": "not found"}

    def _pagerduty(self, body: Any) -> tuple[int, Any]:
        action = body.get("event_action")
        key = body.get("dedup_key")
        if not body.get("routing_key") or action not in ("trigger", "acknowledge", "resolve"):
            return 400, {
                "status": "invalid event",
                "message": "Event object is invalid",
                "errors": ["routing_key/event_action"],
            }
        if action == "trigger":
            payload = body.get("payload") or {}
            missing = [f for f in ("summary", "source", "severity") if not payload.get(f)]
            if missing or payload.get("severity") not in ("critical", "error", "warning", "info"):
                return 400, {
                    "status": "invalid event",
                    "message": "Event object is invalid",
                    "errors": missing,
                }
            incident = self.incidents.get(key)
            if incident is None or incident.status == "resolved":
                incident = self.incidents[key] = _Incident(key, "triggered")
            incident.triggers += 1
            incident.events.append(body)
        elif key in self.incidents:
            self.incidents[key].status = (
                "resolved" if action == "resolve" else self.incidents[key].status
            )
            self.incidents[key].events.append(body)
        return 202, {"status": "success", "message": "Event processed", "dedup_key": key}
