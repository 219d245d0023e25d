"""Fixtures for the sink tests: the embedded store, fresh databases and an HTTP ClickHouse front.

The embedded engine admits one data folder per process, so every test shares one client: the
project-wide ``ch_client`` fixture when ``tests/conftest.py`` provides it, else one opened here.
"""

from __future__ import annotations

import itertools
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from drifthouse.sinks.schema import migrate
from drifthouse.sinks.store import open_store

ROOT = Path(__file__).resolve().parents[2]
_own_client: Any = None
_counter = itertools.count()


@pytest.fixture(scope="session")
def store_client(request: pytest.FixtureRequest) -> Any:
    """The process's one embedded-engine client."""
    global _own_client
    try:
        return request.getfixturevalue("ch_client")
    except pytest.FixtureLookupError:
        pass
    if _own_client is None:
        folder = tempfile.mkdtemp(prefix="drifthouse-sinks-")
        _own_client = open_store(f"chdb://{folder}", database="default")
    return _own_client


@pytest.fixture
def database(store_client: Any) -> Iterator[str]:
    """A fresh, migrated database for one test; the client's current database meanwhile."""
    name = f"sinks_{os.getpid()}_{next(_counter)}"
    migrate(store_client, name)
    previous = store_client.database
    store_client.database = name
    yield name
    store_client.database = previous
    store_client.command(f"DROP DATABASE IF EXISTS `{name}`")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class HttpClickHouse:
    """A ClickHouse HTTP endpoint served by ``tests/sinks/chhttp.py`` in a child process."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def dsn(self) -> str:
        return f"http://default:s3cret-pw@127.0.0.1:{self.port}/drifthouse?compress=false"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.sinks.chhttp",
                "--path",
                str(self.folder),
                "--port",
                str(self.port),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.strip() == b"ready", f"the HTTP front did not start: {line!r}"

    def stop(self) -> None:
        """Kill the server: connections are refused until :meth:`start`."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def fault(self, status: int, count: int, delay: float = 0.0) -> None:
        """Make the next ``count`` requests fail with HTTP ``status``; every request wait ``delay`` s."""
        url = f"http://127.0.0.1:{self.port}/__fault?status={status}&count={count}&delay={delay}"
        urllib.request.urlopen(
            urllib.request.Request(url, data=b"", method="POST"), timeout=10
        ).read()

    def wait_refused(self) -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
            except OSError:
                return
            time.sleep(0.05)
        raise AssertionError("the port still accepts connections")


@pytest.fixture
def http_clickhouse(tmp_path: Path) -> Iterator[HttpClickHouse]:
    server = HttpClickHouse(tmp_path / "engine")
    server.start()
    yield server
    server.stop()
