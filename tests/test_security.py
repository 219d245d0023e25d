"""Security properties, end to end (see SECURITY.md).

(a) SQL is built with parameters: names full of quotes, backslashes, ``'; DROP TABLE ...; --``,
    query-parameter and Grafana syntax and unicode go through the pipeline, the store, ``drifthouse
    sql --param``, the recipes and the silence commands; the tables survive and values round-trip.
(b) Secrets (Slack token and webhook URL, PagerDuty routing key, ClickHouse password, Kafka SASL
    password) never appear in logs, errors, reprs, alert rows, files or ``drifthouse check`` output.
(c) Message and label sizes are bounded: an over-size event is dead-lettered as ``too_large``.
(d) PII fields are keyed hashes (``DRIFTHOUSE_PII_KEY``) wherever drifthouse stores them.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import socket
import textwrap
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import msgspec
import pytest
import structlog

from drifthouse import cli
from drifthouse.app.pipeline import Pipeline
from drifthouse.app.replay import replay_alerts
from drifthouse.config import Config, ModelConfig
from drifthouse.errors import ConfigError
from drifthouse.events import EventDecoder, PredictionEvent
from drifthouse.simulate import Record
from drifthouse.sinks import (
    ClickHouseSink,
    MemorySink,
    PredictionLog,
    migrate,
    reference_rows,
    run_recipe,
    store_reference,
)
from drifthouse.sinks.predictions import hash_pii
from drifthouse.stream.dead_letters import MemoryDeadLetters
from drifthouse.stream.sources import Message
from tests.workers import profiles_from

T0 = 1_767_225_600_000  # 2026-01-01T00:00Z
HOUR = 3_600_000
TABLES = {"metrics", "sketches", "alerts", "predictions", "references", "schema_migrations"}

NASTY = [
    "'; DROP TABLE metrics; --",
    "\\'; DROP TABLE alerts; --",
    "quo\"te's \\ back\\\\slash",
    "{model:String} $model ${model} $__timeFilter(ts) %s %(x)s",
    "`backtick`; SELECT 1 FORMAT JSON",
    "модель-🚀-ñ-\u202e-漢字",
    "new\nline\r\ttab -- comment /* c */",
    "[/bold] [link=http://evil.example]rich markup[/link]",
]


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    yield
    structlog.reset_defaults()


def event(model: str, i: int, *, feature: str = "amount", **extra: Any) -> bytes:
    body: dict[str, Any] = {
        "model": model,
        "model_version": "1.0",
        "ts": T0 + i * 10_000,
        "event_id": f"{model}-{i}",
        "features": {feature: float(i % 23), "plain": ["a", "b", "c"][i % 3]},
        "prediction": (i % 10) / 10,
        "latency_ms": 5.0 + i % 7,
        "status": 200,
    }
    body.update(extra)
    return json.dumps(body).encode()


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# -- (a) SQL is built with parameters ----------------------------------------------------------------


@pytest.fixture
def nasty_store(ch_dsn: str, ch_database: tuple[Any, str], tmp_path: Path) -> dict[str, Any]:
    """NASTY model and feature names, run id and segments through the pipeline into the store."""
    client, database = ch_database
    migrate(client, database)
    run_id = NASTY[0] + NASTY[5]
    reference: list[Record] = []
    live: list[Message] = []
    for m, model in enumerate(NASTY):
        feature = NASTY[(m + 1) % len(NASTY)]
        for i in range(300):
            raw = event(model, i, feature=feature, segment={NASTY[m]: NASTY[-1 - m]})
            reference.append(Record("predictions", model.encode(), raw, T0))
    for i in range(360, 1000):  # ~1h45 of events, the models interleaved in event time
        for m, model in enumerate(NASTY):
            feature = NASTY[(m + 1) % len(NASTY)]
            live.append(Message(event(model, i, feature=feature), 0, len(live)))
    config = Config.model_validate(
        {
            "rules": [
                {"name": "any-psi", "metric": "psi", "when": "value >= 0", "severity": "warning"}
            ]
        }
    )
    profiles = profiles_from(reference, config)
    sink = ClickHouseSink(client, database=database)
    for profile in profiles.values():
        store_reference(sink, profile)
    alerts = replay_alerts(config, sink, profiles, run_id=run_id, notify=False, keep_rows=False)
    dead = MemoryDeadLetters()
    pipeline = Pipeline(
        config=config,
        profiles=profiles,
        sink=sink,
        dead_letters=dead,
        run_id=run_id,
        on_window=[alerts],
    )
    pipeline.process(live)
    pipeline.finish()
    alerts.finish()
    sink.flush()
    assert dead.letters == []
    cfg = tmp_path / "drifthouse.yaml"
    cfg.write_text(f"store: {{dsn: '{ch_dsn}', database: {database}}}\n")
    return {"client": client, "database": database, "run_id": run_id, "config": str(cfg)}


def _tables(client: Any) -> set[str]:
    return {r[0] for r in client.query("SHOW TABLES").result_rows}


def test_nasty_names_round_trip_through_the_pipeline_and_the_store(
    nasty_store: dict[str, Any],
) -> None:
    client = nasty_store["client"]
    assert _tables(client) >= TABLES
    models = {r[0] for r in client.query("SELECT DISTINCT model FROM metrics").result_rows}
    assert models == set(NASTY)
    features = {r[0] for r in client.query("SELECT DISTINCT feature FROM metrics").result_rows}
    assert set(NASTY) <= features
    runs = {r[0] for r in client.query("SELECT DISTINCT run_id FROM metrics").result_rows}
    assert runs == {nasty_store["run_id"]}
    refs = {r[0] for r in client.query("SELECT DISTINCT model FROM `references`").result_rows}
    assert refs == set(NASTY)
    fired = client.query("SELECT DISTINCT model, feature FROM alerts WHERE metric = 'psi'")
    assert {r[0] for r in fired.result_rows} == set(NASTY)


@pytest.mark.parametrize("model", NASTY, ids=[f"nasty{i}" for i in range(len(NASTY))])
def test_drifthouse_sql_binds_parameters(
    nasty_store: dict[str, Any], capsys: pytest.CaptureFixture[str], model: str
) -> None:
    sql = (
        "SELECT count() AS n, lower(hex(MD5(any(model)))) AS m, lower(hex(MD5(any(run_id)))) AS r "
        "FROM metrics WHERE model = {m:String} AND run_id = {r:String}"
    )
    code, out, err = run_cli(
        capsys,
        "sql",
        sql,
        "-c",
        nasty_store["config"],
        "--param",
        f"m={model}",
        "--param",
        f"r={nasty_store['run_id']}",
    )
    assert code == 0, err
    assert hashlib.md5(model.encode()).hexdigest() in out
    assert hashlib.md5(nasty_store["run_id"].encode()).hexdigest() in out
    (count,) = (
        nasty_store["client"]
        .query("SELECT count() FROM metrics WHERE model = {m:String}", parameters={"m": model})
        .result_rows[0]
    )
    assert count > 0
    assert f" {count} " in f" {out.replace('│', ' ')} "
    assert _tables(nasty_store["client"]) >= TABLES


def test_drifthouse_sql_prints_values_literally(
    nasty_store: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """Values are data, not rich console markup: ``[/bold]`` in a model name prints as is."""
    markup = NASTY[-1]
    code, out, err = run_cli(
        capsys,
        "sql",
        "SELECT DISTINCT model FROM metrics WHERE model = {m:String}",
        "-c",
        nasty_store["config"],
        "--param",
        f"m={markup}",
    )
    assert code == 0, err
    assert markup in out


@pytest.mark.parametrize("model", NASTY, ids=[f"nasty{i}" for i in range(len(NASTY))])
def test_recipes_bind_parameters(nasty_store: dict[str, Any], model: str) -> None:
    client, run_id = nasty_store["client"], nasty_store["run_id"]
    feature = NASTY[(NASTY.index(model) + 1) % len(NASTY)]
    common = {"days": 10_000, "run_id": run_id}
    _, top = run_recipe(client, "top_drifting_features", {"model": model, **common})
    assert {r[0] for r in top} == {feature, "plain"}
    cols, series = run_recipe(
        client, "metric_series", {"model": model, "metric": "psi", "feature": feature, **common}
    )
    assert series
    assert all(r[cols.index("model_version")] == "1.0" for r in series)
    cols, history = run_recipe(client, "alert_history", {"model": model, **common})
    assert history
    assert {r[cols.index("model")] for r in history} == {model}
    assert feature in {r[cols.index("feature")] for r in history}
    cols, psi = run_recipe(
        client,
        "psi_range",
        {
            "model": model,
            "model_version": "1.0",
            "start": "2026-01-01 00:00:00.000",
            "end": "2026-01-02 00:00:00.000",
            "run_id": run_id,
        },
    )
    assert {r[0] for r in psi} == {feature, "__prediction__"}
    _, quality = run_recipe(client, "quality_trend", {"model": model, **common})
    assert feature in {r[1] for r in quality}
    _, compare = run_recipe(
        client,
        "compare_versions",
        {"model": model, "version_a": "1.0", "version_b": model, **common},
    )
    assert compare == []  # no such version: an empty answer, not an error
    assert _tables(client) >= TABLES


def test_silence_commands_store_values_exactly(
    nasty_store: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    from drifthouse.alerts.silences import ClickHouseSilenceStore

    client, cfg = nasty_store["client"], nasty_store["config"]
    for text in NASTY:
        code, _, err = run_cli(
            capsys,
            "silence",
            "add",
            f"model={text}",
            f"feature={text}*",
            "--duration",
            "1h",
            "--author",
            text,
            "--reason",
            text + " reason",
            "-c",
            cfg,
        )
        assert code == 0, err
    store = ClickHouseSilenceStore(client, nasty_store["database"], cache_seconds=0)
    silences = store.all()
    assert sorted(s.created_by for s in silences) == sorted(NASTY)
    for s in silences:
        assert s.matchers == {"model": s.created_by, "feature": s.created_by + "*"}
        assert s.reason == s.created_by + " reason"
    code, _, err = run_cli(capsys, "silence", "list", "-c", cfg)
    assert code == 0, err
    code, _out, err = run_cli(capsys, "silence", "expire", silences[0].id, "-c", cfg)
    assert code == 0, err
    assert TABLES | {"silences"} <= _tables(client)


# -- (b) secrets never leak --------------------------------------------------------------------------

MARK = "MARKER-sec-7f3a"
SECRETS = {
    "DH_SLACK_TOKEN": f"xoxb-{MARK}-slack-token",
    "DH_SLACK_WEBHOOK": f"http://127.0.0.1:9/services/{MARK}-webhook",
    "DH_PD_KEY": f"{MARK}-routing-key",
    "DH_CH_PASSWORD": f"{MARK}-ch-password",
    "DH_KAFKA_PASSWORD": f"{MARK}-kafka-password",
    "DH_HOOK_TOKEN": f"Bearer {MARK}-hook-header",
}


@pytest.fixture
def secrets_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    return SECRETS


class EchoServer:
    """Answers every request with 400 and the request body echoed, as some gateways do."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        bodies = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                bodies.append(body)
                reply = json.dumps(
                    {"ok": False, "error": "invalid_request", "received": body.decode("latin-1")}
                ).encode()
                self.send_response(400)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def echo_server() -> Iterator[EchoServer]:
    server = EchoServer()
    yield server
    server.close()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _config_text(store: str, receivers_url: str, kafka_port: int) -> str:
    return textwrap.dedent(f"""
        kafka:
          bootstrap: 127.0.0.1:{kafka_port}
          timeout: 2s
          security_protocol: SASL_PLAINTEXT
          sasl_mechanism: PLAIN
          sasl_username: svc
          sasl_password: ${{DH_KAFKA_PASSWORD}}
        store: {store}
        alerting: {{outbox_dir: ./outbox, max_attempts: 1, max_backoff: 1s}}
        rules:
          - {{name: serving-errors, metric: error_rate_5xx, feature: "", when: "value > 0.05", severity: critical}}
        routes:
          - {{match: {{severity: critical}}, receivers: [slack, slack_hook, pagerduty, hook], group_wait: 0s}}
        receivers:
          slack: {{type: slack, channel: "#ml", token: "${{DH_SLACK_TOKEN}}", base_url: "{receivers_url}/api/"}}
          slack_hook: {{type: slack, webhook_url: "${{DH_SLACK_WEBHOOK}}"}}
          pagerduty: {{type: pagerduty, routing_key: "${{DH_PD_KEY}}", url: "{receivers_url}/v2/enqueue"}}
          hook: {{type: webhook, url: "{receivers_url}/hook", headers: {{Authorization: "${{DH_HOOK_TOKEN}}"}}}}
        """).lstrip()  # fmt: skip


def _leaks(text: str) -> list[str]:
    """Every place a secret (or any text with the marker) shows, with some context."""
    out = []
    start = text.find(MARK)
    while start != -1:
        out.append(text[max(0, start - 150) : start + 60])
        start = text.find(MARK, start + 1)
    return out


def _files_text(folder: Path) -> str:
    return "\n".join(
        p.read_bytes().decode("utf-8", "replace") for p in folder.rglob("*") if p.is_file()
    )


def test_check_and_reprs_show_no_secret(
    secrets_env: dict[str, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    from drifthouse.alerts.receivers import build_receivers
    from drifthouse.config import load_config
    from drifthouse.kafka.client import client_kwargs

    caplog.set_level(logging.DEBUG)
    store = "{dsn: 'http://ingest:${DH_CH_PASSWORD}@127.0.0.1:8123/drifthouse'}"
    path = tmp_path / "drifthouse.yaml"
    path.write_text(_config_text(store, "http://127.0.0.1:9", 9))
    code, out, err = run_cli(capsys, "check", "-c", str(path))
    assert code == 0, out + err
    assert "configuration OK" in out
    config = load_config(path)
    receivers = build_receivers(config.receivers, state_dir=tmp_path / "state")
    shown = "\n".join(
        [
            out,
            err,
            caplog.text,
            repr(config),
            str(config),
            config.model_dump_json(),
            repr(config.describe()),
            config.masked_store_dsn(),
            repr(client_kwargs(config.kafka)),
            repr(receivers),
            *(repr(r) for r in receivers.values()),
        ]
    )
    assert not (found := _leaks(shown)), "\n---\n".join(found)


def test_failing_receivers_and_replay_leak_no_secret(
    secrets_env: dict[str, str],
    ch_dsn: str,
    ch_database: tuple[Any, str],
    echo_server: EchoServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A replay with ``--notify`` whose every receiver refuses (400, echoing the request)."""
    client, database = ch_database
    caplog.set_level(logging.DEBUG)
    path = tmp_path / "drifthouse.yaml"
    store = f"{{dsn: '{ch_dsn}', database: {database}}}"
    path.write_text(_config_text(store, echo_server.url, _closed_port()))
    events = tmp_path / "events.jsonl"
    events.write_bytes(
        b"\n".join(event("fraud", i, status=503 if i % 3 else 200) for i in range(800))
        + b"\nnot json\n"
    )
    code, out, err = run_cli(
        capsys,
        "replay",
        "-c",
        str(path),
        "--source",
        f"file:{events}",
        "--run-id",
        "sec",
        "--notify",
    )
    # The line that is not JSON is left out of the store: the run says so and fails (its
    # message is searched for secrets below too).
    assert code == 1, out + err
    assert "1 event was not used" in " ".join(err.split()), err
    assert echo_server.bodies, "the receivers were not called"
    rows = client.query("SELECT * FROM alerts").result_rows
    assert rows, "no alert was recorded"
    files = [p for p in tmp_path.rglob("*") if p.is_file() and MARK.encode() in p.read_bytes()]
    everything = "\n".join([out, err, caplog.text, repr(rows), _files_text(tmp_path)])
    found = _leaks(everything)
    assert not found, f"files {[str(p.relative_to(tmp_path)) for p in files]}:\n" + "\n---\n".join(
        found
    )


ROUTING_KEY = "R0123456789abcdef0123456789abcdZ"  # 32 characters
HOOK_PATH = "/hooks/T0123ABCD/B0456EFGH/xYzSeCrEtPaTh0123"


def test_webhook_urls_are_masked_in_logs_errors_and_the_outbox(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A webhook URL's path and query are its credential: a receiver that cannot be reached is
    reported as ``scheme://host:port/***`` in logs, errors, the outbox and reprs."""
    from drifthouse.alerts.base import Notification
    from drifthouse.alerts.delivery import DeliveryWorker, Outbox
    from drifthouse.alerts.receivers import build_receivers
    from drifthouse.config import load_config
    from drifthouse.logs import configure

    port = _closed_port()
    monkeypatch.setenv("DH_HOOK_URL", f"http://127.0.0.1:{port}{HOOK_PATH}?token=qUeRySeCrEt")
    path = tmp_path / "drifthouse.yaml"
    path.write_text("receivers: {hook: {type: webhook, url: '${DH_HOOK_URL}'}}\n")
    configure(level="DEBUG", json=True)
    code, out, err = run_cli(capsys, "check", "-c", str(path))
    assert code == 0, out + err
    config = load_config(path)
    receivers = build_receivers(config.receivers, state_dir=tmp_path / "state")
    worker = DeliveryWorker(receivers, Outbox(tmp_path / "outbox"), max_attempts=1)
    worker.start()
    worker.enqueue(
        Notification(id="n1", receiver="hook", kind="firing", ts=0, group_key="g",
                     group_labels={}, firing=[], resolved=[])
    )  # fmt: skip
    assert worker.flush(timeout=10)
    worker.stop()
    assert worker.gave_up == 1
    outbox = (tmp_path / "outbox" / "outbox.jsonl").read_text()
    logged = capsys.readouterr().err
    shown = "\n".join(
        [out, err, logged, outbox, repr(config), config.model_dump_json(), repr(receivers)]
    )
    assert f"http://127.0.0.1:{port}/***" in outbox
    for piece in ("T0123ABCD", "B0456EFGH", "xYzSeCrEtPaTh", "qUeRySeCrEt"):
        assert piece not in shown


def test_errors_show_no_piece_of_a_secret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A message quoting 31 of a routing key's 32 characters (or its two ends) shows neither."""
    import drifthouse.app.run
    from drifthouse.errors import SourceError

    monkeypatch.setenv("DH_PD_KEY", ROUTING_KEY)
    path = tmp_path / "drifthouse.yaml"
    path.write_text("receivers: {pd: {type: pagerduty, routing_key: '${DH_PD_KEY}'}}\n")

    def failing(*_args: object, **_kwargs: object) -> None:
        raise SourceError(
            f"refused key {ROUTING_KEY[:31]!r} (also seen as {ROUTING_KEY[:8]}...{ROUTING_KEY[-8:]})"
        )

    monkeypatch.setattr(drifthouse.app.run, "run", failing)
    code, out, err = run_cli(capsys, "run", "-c", str(path))
    assert code == 1
    assert "refused key" in err
    for i in range(len(ROUTING_KEY) - 5):
        assert ROUTING_KEY[i : i + 6] not in out + err


@pytest.mark.parametrize(
    "argv",
    [
        ["sql", "SELECT 1"],
        ["migrate"],
        ["silence", "add", "model=fraud", "--duration", "1h", "--author", "a", "--reason", "r"],
        ["replay", "--source", "file:{events}", "--run-id", "x"],
    ],
    ids=["sql", "migrate", "silence", "replay"],
)
def test_unreachable_store_errors_show_no_password(
    secrets_env: dict[str, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    argv: list[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    port = _closed_port()
    store = f"{{dsn: 'http://ingest:${{DH_CH_PASSWORD}}@127.0.0.1:{port}/drifthouse'}}"
    path = tmp_path / "drifthouse.yaml"
    path.write_text(_config_text(store, "http://127.0.0.1:9", 9))
    events = tmp_path / "events.jsonl"
    events.write_bytes(event("fraud", 1) + b"\n")
    args = [a.replace("{events}", str(events)) for a in argv]
    code, out, err = run_cli(capsys, *args, "-c", str(path))
    assert code == 1, out + err
    assert "unreachable" in err or "127.0.0.1" in err
    assert not (found := _leaks("\n".join([out, err, caplog.text]))), "\n---\n".join(found)


@pytest.mark.slow  # kafka-python gives up on the bootstrap after its 30 s timeout
def test_unreachable_kafka_with_sasl_shows_no_password(
    secrets_env: dict[str, str],
    ch_dsn: str,
    ch_database: tuple[Any, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    _, database = ch_database
    caplog.set_level(logging.DEBUG)
    path = tmp_path / "drifthouse.yaml"
    store = f"{{dsn: '{ch_dsn}', database: {database}}}"
    path.write_text(_config_text(store, "http://127.0.0.1:9", _closed_port()))
    code, out, err = run_cli(
        capsys, "replay", "-c", str(path), "--source", "kafka:predictions", "--run-id", "k"
    )
    assert code == 1, out + err
    assert "127.0.0.1" in err
    assert not (found := _leaks("\n".join([out, err, caplog.text]))), "\n---\n".join(found)


# -- (c) sizes are bounded ---------------------------------------------------------------------------


def _pipeline(config: Config) -> tuple[Pipeline, MemorySink, MemoryDeadLetters]:
    sink, dead = MemorySink(), MemoryDeadLetters()
    pipeline = Pipeline(config=config, profiles={}, sink=sink, dead_letters=dead)
    pipeline.expect_partitions([0])
    return pipeline, sink, dead


class _CountingPeek:
    """Stands in for the stage's peek decoder (the model of a refused message), noting sizes."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.sizes: list[int] = []

    def decode(self, raw: bytes) -> Any:
        self.sizes.append(len(raw))
        return self.real.decode(raw)


def test_an_oversize_message_is_dead_lettered_unparsed(monkeypatch: pytest.MonkeyPatch) -> None:
    from drifthouse.stream import stage

    peek = _CountingPeek(stage._PEEK)
    monkeypatch.setattr(stage, "_PEEK", peek)
    config = Config.model_validate({"kafka": {"max_message_bytes": 4096}})
    pipeline, sink, dead = _pipeline(config)
    padded = event("fraud", 1, event_id="x" * 5000)  # valid JSON, too large
    nested = b"[" * 100_000 + b"]" * 100_000  # would take the parser down a deep path
    fine = event("fraud", 2)
    pipeline.process([Message(padded, 0, 0), Message(nested, 0, 1), Message(fine, 0, 2)])
    pipeline.finish()
    sink.flush()
    assert [(d.offset, d.reason) for d in dead.letters] == [(0, "too_large"), (1, "too_large")]
    assert "at most 4096 bytes" in dead.letters[0].error
    assert pipeline.stats.events == 1
    assert pipeline.stats.invalid == 2
    invalid = [r for r in sink.rows("metrics") if r.metric == "invalid_events"]
    assert sum(r.value for r in invalid) == 2
    # Not parsed at all: not even to find out whose it was (the message key says that).
    assert [n for n in peek.sizes if n > 4096] == []


def test_the_default_bound_is_one_megabyte() -> None:
    decoder = EventDecoder(PredictionEvent)
    big = event("fraud", 1, event_id="x" * 1_000_000)
    ok, bad = decoder.decode_batch([big])
    assert ok == []
    assert [e.reason for _, e in bad] == ["too_large"]


LABEL_LIMIT = 1024  # bytes: proposed kafka.max_label_bytes


@pytest.mark.parametrize(
    "where",
    ["model", "model_version", "feature", "segment_name", "segment_value"],
)
def test_an_oversize_label_is_refused_not_multiplied(where: str) -> None:
    """A label (model, version, feature name, segment) is copied into every row of every window:
    a 100 kB model name in one message becomes megabytes of ClickHouse keys (and a 900 kB one
    fits the default 1 MB message bound). Labels need their own bound, far below the message's."""
    big = "m" * (LABEL_LIMIT * 100)
    options: dict[str, dict[str, Any]] = {
        "model": {"model": big},
        "model_version": {"model_version": big},
        "feature": {"features": {big: 1.0}},
        "segment_name": {"segment": {big: "x"}},
        "segment_value": {"segment": {"x": big}},
    }
    fields = options[where]
    raw = json.dumps(
        {"model": "fraud", "ts": T0, "features": {"a": 1.0}, "status": 200, **fields}
    ).encode()
    pipeline, sink, dead = _pipeline(Config())
    pipeline.process([Message(raw, 0, 0)])
    pipeline.finish()
    sink.flush()
    stored = sum(len(msgspec.json.encode(r)) for t in ("metrics", "sketches") for r in sink.rows(t))
    refused = [d.reason for d in dead.letters] == ["too_large"]
    # Refused as too large, or at least not multiplied into the store (today only the model and
    # its version become row keys: features and segments of no profile are not stored).
    assert refused or stored < 100 * LABEL_LIMIT, f"{stored:,} bytes of rows for one label"


# -- (d) PII is hashed -------------------------------------------------------------------------------

EMAILS = [f"person{i}@example.com" for i in range(5)]


def test_prediction_log_hashes_pii_with_the_key_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key = "k" * 32
    monkeypatch.setenv("DRIFTHOUSE_PII_KEY", key)
    log = PredictionLog({"shop": ModelConfig(pii=["email", "phone"], sample_rate=1.0)})
    rows = [
        log.row(
            model="shop",
            model_version="1",
            ts_ms=T0 + i,
            event_id=f"e{i}",
            features={"email": EMAILS[i % 2], "phone": "+49 151 0000", "amount": 3.0},
            prediction=0.2,
            latency_ms=4.0,
            status=200,
        )
        for i in range(4)
    ]
    texts = [repr(r) + msgspec.json.encode(r).decode() for r in rows]
    for text in texts:
        assert "example.com" not in text
        assert "+49 151" not in text
    features = [json.loads(r.features) for r in rows if r is not None]
    expected = (
        "hmac-sha256:"
        + hmac.new(key.encode(), b'"person0@example.com"', hashlib.sha256).hexdigest()
    )
    assert features[0]["email"] == expected
    assert features[0]["email"] == features[2]["email"] != features[1]["email"]
    assert features[0]["amount"] == 3.0
    other = PredictionLog({"shop": ModelConfig(pii=["email"], sample_rate=1.0)}, key=b"another")
    again = other.row(
        model="shop", model_version="1", ts_ms=T0, event_id="e0",
        features={"email": EMAILS[0]}, prediction=0.2, latency_ms=4.0, status=200,
    )  # fmt: skip
    assert again is not None
    assert json.loads(again.features)["email"] != expected
    monkeypatch.delenv("DRIFTHOUSE_PII_KEY")
    with pytest.raises(ConfigError, match="DRIFTHOUSE_PII_KEY"):
        PredictionLog({"shop": ModelConfig(pii=["email"])})


def test_pii_values_never_reach_the_store_in_plain_text(monkeypatch: pytest.MonkeyPatch) -> None:
    """A feature listed under ``pii`` is stored only as keyed hashes: not in the reference profile
    (``references``), not in the reference or window histograms (``sketches.labels``)."""
    monkeypatch.setenv("DRIFTHOUSE_PII_KEY", "k" * 32)
    config = Config.model_validate({"models": {"shop": {"pii": ["email"], "sample_rate": 1.0}}})
    records = [
        Record(
            "predictions",
            b"shop",
            event("shop", i, features={"email": EMAILS[i % 5], "amount": float(i)}),
            T0,
        )
        for i in range(400)
    ]
    profiles = profiles_from(records, config)
    reference, reference_sketches = reference_rows(profiles["shop"])
    sink = MemorySink()
    pipeline = Pipeline(
        config=config,
        profiles=profiles,
        sink=sink,
        dead_letters=MemoryDeadLetters(),
        prediction_log=PredictionLog(config.models),
    )
    pipeline.process([Message(r.value, 0, i) for i, r in enumerate(records)])
    pipeline.finish()
    sink.flush()
    places = {
        "references": repr(reference),
        "reference sketches": repr(reference_sketches),
        "window sketches": repr(sink.rows("sketches")),
        "metrics": repr(sink.rows("metrics")),
        "predictions": repr(sink.rows("predictions")),
    }
    assert len(sink.rows("predictions")) == len(records)
    leaked = sorted(where for where, text in places.items() if "@example.com" in text)
    assert leaked == []


PII_KEY = "k" * 32


@pytest.mark.parametrize(
    "settings",
    [
        pytest.param(
            {"models": {"shop": {"pii": ["email", "user", "event_id"], "sample_rate": 1.0}}},
            id="per-model",
        ),
        pytest.param(
            {
                "pii": ["user", "event_id"],
                "models": {"shop": {"pii": ["email"], "sample_rate": 1.0}},
            },
            id="global-and-per-model",
        ),
        pytest.param({"pii": ["email", "user", "event_id"]}, id="global-unconfigured-model"),
    ],
)
def test_pii_in_event_ids_and_segments_is_hashed_everywhere_it_is_stored(
    monkeypatch: pytest.MonkeyPatch, settings: dict[str, Any]
) -> None:
    """PII names also cover ``event_id`` and segment attributes: the prediction log's
    ``event_id`` and ``segment``, and ``segment`` of metrics and sketches (and so of alerts),
    hold keyed hashes of them (the same hash everywhere, so they still join and group)."""
    monkeypatch.setenv("DRIFTHOUSE_PII_KEY", PII_KEY)
    config = Config.model_validate(
        {
            **settings,
        }
    )
    records = [
        Record(
            "predictions",
            b"shop",
            event(
                "shop",
                i,
                event_id=f"{EMAILS[i % 5]}#{i}",
                segment={"user": EMAILS[i % 5], "country": "DE"},
                features={"email": EMAILS[i % 5], "amount": float(i)},
                status=500 if i % 2 else 200,
            ),
            T0,
        )
        for i in range(400)
    ]
    sink = MemorySink()
    pipeline = Pipeline(
        config=config,
        profiles=profiles_from(records, config),
        sink=sink,
        dead_letters=MemoryDeadLetters(),
        prediction_log=PredictionLog.for_config(config),
    )
    pipeline.process([Message(r.value, 0, i) for i, r in enumerate(records)])
    pipeline.finish()
    sink.flush()
    places = {table: repr(sink.rows(table)) for table in ("metrics", "sketches", "predictions")}
    assert sink.rows("predictions")
    leaked = sorted(where for where, text in places.items() if "@example.com" in text)
    assert leaked == []
    hashed = hash_pii(EMAILS[0], PII_KEY.encode())
    segments = {r.segment for r in sink.rows("metrics")}
    assert f"user={hashed}" in segments
    assert "country=DE" in segments  # attributes not listed stay readable
    for row in sink.rows("predictions"):
        i = (row.ts - T0) // 10_000
        user = hash_pii(EMAILS[i % 5], PII_KEY.encode())
        assert json.loads(row.segment) == {"country": "DE", "user": user}
        assert row.event_id == hash_pii(f"{EMAILS[i % 5]}#{i}", PII_KEY.encode())


@pytest.mark.parametrize(
    ("key", "ok"),
    [
        pytest.param("k" * 31, False, id="31-bytes"),
        pytest.param("é" * 16, True, id="32-bytes-16-chars"),
        pytest.param("k" * 32, True, id="32-bytes"),
    ],
)
def test_pii_key_must_be_at_least_32_bytes(
    monkeypatch: pytest.MonkeyPatch, key: str, ok: bool
) -> None:
    monkeypatch.setenv("DRIFTHOUSE_PII_KEY", key)
    config = Config.model_validate({"pii": ["email"]})
    if ok:
        assert PredictionLog.for_config(config).key == key.encode()
        return
    with pytest.raises(ConfigError, match="at least 32 bytes") as info:
        PredictionLog.for_config(config)
    assert key not in str(info.value) + repr(info.value.problems)


# -- (e) the read-only SQL endpoint reads the store, not the machine -------------------------------


class _Recorder(BaseHTTPRequestHandler):
    hits: ClassVar[list[str]] = []

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        type(self).hits.append(self.path)
        body = b"remote-line\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


_tokens: dict[int, str] = {}


@pytest.fixture
def readonly_port(ch_client: Any, tmp_path: Path) -> Iterator[int]:
    from drifthouse.sinks import serve_readonly
    from drifthouse.sinks.sql_endpoint import read_token

    server = serve_readonly(ch_client, 0, token_file=tmp_path / "token")
    _tokens[server.port] = read_token(tmp_path / "token")
    yield server.port
    server.close()


def test_readonly_endpoint_answers_selects(readonly_port: int) -> None:
    from drifthouse.sinks import query_readonly

    columns, rows = query_readonly(
        readonly_port, "SELECT {x:String} AS x", {"x": NASTY[0]}, token=_tokens[readonly_port]
    )
    assert (columns, rows) == (["x"], [[NASTY[0]]])


def test_readonly_endpoint_does_not_read_local_files(readonly_port: int, tmp_path: Path) -> None:
    """``SELECT ... FROM file(...)`` is a SELECT, but it reads the worker's files (its config,
    ``/proc/self/environ`` with every secret) for anyone who can reach 127.0.0.1."""
    from drifthouse.errors import DrifthouseError
    from drifthouse.sinks import query_readonly

    secret = tmp_path / "secret.txt"
    secret.write_text(f"{MARK}-file-content\n")
    with pytest.raises(DrifthouseError) as refused:
        query_readonly(
            readonly_port,
            f"SELECT * FROM file('{secret}', 'LineAsString')",
            token=_tokens[readonly_port],
        )
    assert MARK not in str(refused.value)


def test_readonly_endpoint_makes_no_outbound_requests(readonly_port: int) -> None:
    """``url(...)`` turns the endpoint into a proxy to any host the worker can reach."""
    from drifthouse.errors import DrifthouseError
    from drifthouse.sinks import query_readonly

    _Recorder.hits = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        target = f"http://127.0.0.1:{server.server_address[1]}/internal"
        with contextlib.suppress(DrifthouseError):
            query_readonly(
                readonly_port,
                f"SELECT * FROM url('{target}', 'LineAsString')",
                timeout=20,
                token=_tokens[readonly_port],
            )
    finally:
        server.shutdown()
        server.server_close()
    assert _Recorder.hits == []


# -- segment attributes cannot multiply an event into rows ----------------------------------------


@pytest.mark.parametrize(
    ("attributes", "events", "refused"),
    [
        # one 358 kB event with 20,000 attributes used to write 80,006 rows
        pytest.param(20_000, 1, 1, id="one-event-20000-attributes"),
        pytest.param(17, 1, 1, id="one-over-the-limit"),
        pytest.param(16, 1, 0, id="at-the-limit"),
        pytest.param(10, 60, 0, id="fresh-attributes-in-every-event"),  # 600 across events
    ],
)
def test_segment_attributes_are_bounded(attributes: int, events: int, refused: int) -> None:
    """An event is copied into the rows of every segment value it names: attributes per event
    are bounded (``metrics.max_segment_attributes``, dead letter ``too_many_segments``), and so
    are the attributes one model writes per window, whatever the events spread them over."""
    limit = Config().metrics.max_segment_attributes
    assert limit == 16
    raws = [
        event("fraud", i, segment={f"a{i:03d}_{k:05d}": "v" for k in range(attributes)})
        for i in range(events)
    ]
    pipeline, sink, dead = _pipeline(Config())
    pipeline.process([Message(raw, 0, i) for i, raw in enumerate(raws)])
    pipeline.finish()
    sink.flush()
    assert [d.reason for d in dead.letters] == ["too_many_segments"] * refused
    if refused:
        assert dead.letters[0].path == "$.segment"
        assert f"at most {limit} segment attributes; got {attributes}" in dead.letters[0].error
    rows = sink.rows("metrics")
    windows: dict[tuple[str, int], set[str]] = {}
    for r in rows:
        attrs = windows.setdefault((r.window, r.window_start), set())
        if "=" in r.segment:
            attrs.add(r.segment.split("=", 1)[0])
    assert bool(windows) is not bool(refused)  # a refused event alone has no window
    assert max((len(a) for a in windows.values()), default=0) <= limit
    # the hour holding every event keeps the attributes with the most events, ties by name
    # (here each has one event)
    named = sorted({f"a{i:03d}_{k:05d}" for i in range(events) for k in range(attributes)})
    hour = windows.get(("1h", T0), set())
    assert hour == (set() if refused else set(named[:limit]))
    assert len(rows) / max(1, len(windows)) < 40 * (limit + 1), f"{len(rows):,} rows"
