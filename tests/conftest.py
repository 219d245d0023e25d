"""Project-wide fixtures: the real Kafka broker and the embedded ClickHouse engine.

Kafka
-----
``kafka_bootstrap`` (session)
    ``"host:port"`` of a real Kafka 4.0 broker. Uses ``KAFKA_BOOTSTRAP`` when set; else the
    broker of ``scripts/kafka`` (127.0.0.1, ``KAFKA_PORT`` or 9092), starting it if needed
    (about 10 s). The session holds a lease on it: when the session ends the broker is stopped
    only if a test session started it and no other session (or ``make test``) still uses it;
    a broker started by hand (``make kafka-start``) keeps running. Every test marked
    ``@pytest.mark.kafka`` gets it, even without asking.
``kafka_admin`` (session)
    A kafka-python ``KafkaAdminClient`` on that broker.
``make_topic`` (function)
    ``make_topic(partitions=1, *, configs=None) -> str`` creates a uniquely named topic
    (``t-<test name>-<random>``), waits until every partition has a leader, and returns its
    name. The topics are deleted after the test.

ClickHouse (embedded engine, through clickhouse-connect)
--------------------------------------------------------
The embedded engine opens one data folder per process at a time, so the whole session shares
one folder: never call ``clickhouse_connect.get_client(dsn="chdb:///another/folder")`` in a
test; build what you test from ``ch_dsn`` instead (clients on the same folder coexist).

``ch_dsn`` (session)
    ``"chdb:///<tmp>/clickhouse"``: the session's data folder as a DSN, e.g. for
    ``drifthouse.sinks.store.open_store(ch_dsn, database=name)``.
``ch_client`` (session)
    The session's ``clickhouse_connect`` client on ``ch_dsn``.
``ch_database`` (function)
    ``(client, database_name)``: a fresh, empty, uniquely named database (``t_<random>``)
    that is the client's current database for the test (unqualified table names go there),
    dropped afterwards.

Side by side (pytest-xdist)
---------------------------
``make test`` runs the suite in worker processes (``pytest -n 3 --dist loadfile
--no-loadscope-reorder``), each given whole modules, so a module's fixtures are built once. Each
worker is a session of its own: its own temporary folders (so its own ``ch_dsn`` data folder),
its own session fixtures, its own block of ports for servers started in child processes
(``tests/ports.py``); every topic, consumer group and database a test makes is uniquely named.
Modules that share a costly session fixture go to one worker together
(:data:`SHARED_MODULES`), and :func:`pytest_collection_modifyitems` hands out the modules with
slow tests first, so that none starts last.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.keyed_topic import keyed_replay, keyed_topic  # noqa: F401  (a topic keyed three ways, shared)
from tests.workers import small_stream  # noqa: F401  (the session fixture of a small simulated stream, for every suite)

ROOT = Path(__file__).resolve().parents[1]
KAFKA_SCRIPT = ROOT / "scripts" / "kafka"


def pytest_configure(config: pytest.Config) -> None:
    # kafka-python 3.0 loads its protocol schemas with importlib.resources' legacy API.
    for api in ("read_text", "open_text"):
        config.addinivalue_line("filterwarnings", f"ignore:{api} is deprecated:DeprecationWarning")


#: Modules that share a session fixture costly to build, and the unit of work each is handed out
#: in under pytest-xdist (one worker, one build): keyed_topic/keyed_replay, the fault suite's
#: reference run, the report tests' demo run.
SHARED_MODULES = {
    "tests/app/test_any_key.py": "keyed-topic",
    "tests/app/test_merge_shards.py": "keyed-topic",
    "tests/faults/test_receivers.py": "faults-reference",
    "tests/faults/test_replay.py": "faults-reference",
    "tests/faults/test_store.py": "faults-reference",
    "tests/report/test_browser.py": "report-demo",
    "tests/report/test_report.py": "report-demo",
    "tests/report/test_serve.py": "report-demo",
}


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist loadfile``, with the modules of :data:`SHARED_MODULES` handed out together.
    (Not ``--dist loadgroup`` with marks: pytest-xdist 3.8 groups nothing under pytest 9.2,
    pytest-xdist issue 1386.)"""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ModuleScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return SHARED_MODULES.get(module, module)

    return ModuleScheduling(config, log)


def _module_fixture(item: pytest.Item) -> bool:
    """Whether the test uses a fixture wider than a test that belongs to its module: one of
    module (or class or package) scope, or a session one defined in the module."""
    info = getattr(item, "_fixtureinfo", None)
    module = item.nodeid.split("::", 1)[0]
    return info is not None and any(
        defs[-1].scope in {"module", "class", "package"}
        or (defs[-1].scope == "session" and defs[-1].baseid == module)
        for defs in info.name2fixturedefs.values()
        if defs
    )


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under pytest-xdist, the order modules are handed out in: those holding a slow test, then
    those with a set-up of their own (a module fixture), then the rest, each in collection
    order; the rest, many and short, fill the workers' time at the end."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return
    slow = {i.nodeid.split("::", 1)[0] for i in items if i.get_closest_marker("slow")}
    own = {i.nodeid.split("::", 1)[0] for i in items if _module_fixture(i)}

    def rank(item: pytest.Item) -> int:
        module = item.nodeid.split("::", 1)[0]
        return 0 if module in slow else 1 if module in own else 2

    items.sort(key=rank)


def _script_env() -> dict[str, str]:
    # The script's readiness check needs kafka-python: use this interpreter.
    return {**os.environ, "PYTHON": sys.executable}


def _kafka(command: str, *, timeout: float) -> subprocess.CompletedProcess[str]:
    # The lease (this process) lets sessions share a broker: see scripts/kafka.
    return subprocess.run(
        [str(KAFKA_SCRIPT), command],
        env={**_script_env(), "KAFKA_LEASE": str(os.getpid())},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """Bootstrap address of a real Kafka broker for the session (see the module docstring)."""
    address = os.environ.get("KAFKA_BOOTSTRAP")
    if address:
        yield address
        return
    started = _kafka("start", timeout=900)
    if started.returncode != 0:
        pytest.fail(
            "could not start a Kafka broker with scripts/kafka start "
            f"(exit {started.returncode}):\n{started.stderr[-4000:]}\n"
            "Start one yourself (make kafka-start), point KAFKA_BOOTSTRAP at one, "
            'or deselect these tests with -m "not kafka".',
            pytrace=False,
        )
    address = started.stdout.strip().splitlines()[-1]
    try:
        yield address
    finally:
        _kafka("stop", timeout=120)


@pytest.fixture(autouse=True)
def _kafka_for_marked_tests(request: pytest.FixtureRequest) -> None:
    """Tests marked ``kafka`` get the broker without naming the fixture."""
    if request.node.get_closest_marker("kafka") is not None:
        request.getfixturevalue("kafka_bootstrap")


@pytest.fixture(scope="session")
def kafka_admin(kafka_bootstrap: str) -> Iterator[Any]:
    """A kafka-python ``KafkaAdminClient`` on the session's broker."""
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap, client_id="drifthouse-tests")
    yield admin
    admin.close()


def _slug(text: str, limit: int = 40) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-")[:limit] or "test"


@pytest.fixture
def make_topic(kafka_admin: Any, request: pytest.FixtureRequest) -> Iterator[Callable[..., str]]:
    """Factory of fresh topics: ``make_topic(partitions=3) -> "t-test_x-1a2b3c4d"``.

    Parameters of the factory: ``partitions`` (default 1), ``configs`` (topic configs such
    as ``{"max.message.bytes": "2000000"}``) and ``name`` (default: unique per test). Each topic is ready (every partition has a leader)
    when returned, and deleted after the test.
    """
    created: list[str] = []

    def make(
        partitions: int = 1, *, configs: dict[str, str] | None = None, name: str | None = None
    ) -> str:
        name = name or f"t-{_slug(request.node.name)}-{uuid.uuid4().hex[:8]}"
        spec = {"num_partitions": partitions, "replication_factor": 1, "configs": configs or {}}
        kafka_admin.create_topics({name: spec}, wait_for_metadata=True)
        created.append(name)
        return name

    yield make
    if created:
        # Best effort: a topic still being read by a lingering consumer may refuse to go.
        with contextlib.suppress(Exception):
            kafka_admin.delete_topics(created)


@pytest.fixture(scope="session")
def ch_dsn(tmp_path_factory: pytest.TempPathFactory) -> str:
    """``chdb:///...``: the session's one embedded-ClickHouse data folder."""
    folder = tmp_path_factory.mktemp("clickhouse", numbered=True)
    return f"chdb://{folder.resolve()}"


@pytest.fixture(scope="session")
def ch_client(ch_dsn: str) -> Iterator[Any]:
    """The session's clickhouse-connect client on the embedded engine (``ch_dsn``)."""
    import clickhouse_connect

    client = clickhouse_connect.get_client(dsn=ch_dsn)
    yield client
    client.close()


@pytest.fixture
def ch_database(ch_client: Any) -> Iterator[tuple[Any, str]]:
    """``(client, database)``: a fresh database, current for the test, dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    ch_client.command(f"CREATE DATABASE `{name}`")
    previous = ch_client.database
    ch_client.database = name
    try:
        yield ch_client, name
    finally:
        ch_client.database = previous
        ch_client.command(f"DROP DATABASE IF EXISTS `{name}` SYNC")


@pytest.fixture(autouse=True)
def _forget_secrets() -> Iterator[None]:
    """Secrets a test registers (a loaded config, a receiver) are masked in all later output of
    the process, as in a real one; each test starts with the secrets it found."""
    from drifthouse import logs

    before = set(logs._SECRETS)
    yield
    logs._SECRETS.clear()
    logs._SECRETS.update(before)
