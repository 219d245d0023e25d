"""The Kafka adapters: client settings (no broker), and admin, replay and dead letters on a real broker."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest

from drifthouse.config import KafkaConfig
from drifthouse.errors import ConfigError, DecodeError, SourceError, UsageError
from drifthouse.kafka import (
    KafkaDeadLetters,
    KafkaRangeSource,
    PartitionLag,
    Progress,
    client_kwargs,
    committed_offsets,
    end_offsets,
    ensure_topics,
    faust_broker,
    faust_credentials,
    lag,
    librdkafka_config,
    partitions_for,
    redacted,
)
from drifthouse.kafka.admin import ensure_partials_topic
from drifthouse.stream.dead_letters import DeadLetters
from drifthouse.stream.sources import Message

SECRET = "pa55-w0rd-never-logged"


def _missing(what: str) -> NoReturn:
    """Skip on a developer's machine without the tool; fail under CI, which installs it
    (``scripts/system-deps``, ``scripts/kafka fetch``), so these tests never silently vanish."""
    if os.environ.get("CI"):
        pytest.fail(f"{what}: CI installs it, so its absence is a broken set-up", pytrace=False)
    pytest.skip(what)


# -- client settings (no broker) -------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A self-signed certificate and its key (doubling as the CA), made with openssl."""
    if shutil.which("openssl") is None:
        _missing("openssl is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=drifthouse-test",
        ],
        check=True,
        capture_output=True,
    )
    return {"ssl_cafile": cert, "ssl_certfile": cert, "ssl_keyfile": key}


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        pytest.param(
            {},
            {
                "bootstrap_servers": ["localhost:9092"],
                "client_id": "drifthouse",
                "security_protocol": "PLAINTEXT",
            },
            id="plaintext",
        ),
        pytest.param(
            {"bootstrap": "a:9092, b:9093", "client_id": "w1"},
            {
                "bootstrap_servers": ["a:9092", "b:9093"],
                "client_id": "w1",
                "security_protocol": "PLAINTEXT",
            },
            id="several-brokers",
        ),
        pytest.param(
            {
                "security_protocol": "SASL_PLAINTEXT",
                "sasl_mechanism": "SCRAM-SHA-256",
                "sasl_username": "svc",
                "sasl_password": SECRET,
            },
            {
                "security_protocol": "SASL_PLAINTEXT",
                "sasl_mechanism": "SCRAM-SHA-256",
                "sasl_plain_username": "svc",
                "sasl_plain_password": SECRET,
            },
            id="sasl-scram",
        ),
        pytest.param(
            {
                "security_protocol": "SASL_SSL",
                "sasl_mechanism": "PLAIN",
                "sasl_username": "svc",
                "sasl_password": SECRET,
            },
            {
                "security_protocol": "SASL_SSL",
                "sasl_mechanism": "PLAIN",
                "sasl_plain_username": "svc",
                "sasl_plain_password": SECRET,
            },
            id="sasl-ssl-plain",
        ),
    ],
)
def test_client_kwargs(settings: dict[str, Any], expected: dict[str, Any]) -> None:
    kwargs = client_kwargs(KafkaConfig.model_validate(settings))
    assert {k: kwargs[k] for k in expected} == expected
    if "sasl_mechanism" not in expected:
        assert "sasl_mechanism" not in kwargs
        assert "sasl_plain_password" not in kwargs


def test_client_kwargs_tls_files_and_overrides(tls_files: dict[str, Path]) -> None:
    cfg = KafkaConfig.model_validate({"security_protocol": "SSL", **tls_files})
    kwargs = client_kwargs(cfg, group_id=None, request_timeout_ms=1_000)
    assert kwargs["security_protocol"] == "SSL"
    assert kwargs["ssl_cafile"] == str(tls_files["ssl_cafile"])
    assert kwargs["ssl_certfile"] == str(tls_files["ssl_certfile"])
    assert kwargs["ssl_keyfile"] == str(tls_files["ssl_keyfile"])
    assert kwargs["group_id"] is None
    assert kwargs["request_timeout_ms"] == 1_000


def test_secrets_are_redacted() -> None:
    cfg = KafkaConfig.model_validate(
        {
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": "PLAIN",
            "sasl_username": "svc",
            "sasl_password": SECRET,
        }
    )
    kwargs = client_kwargs(cfg)
    assert kwargs["sasl_plain_password"] == SECRET
    assert kwargs["sasl_plain_password"].encode() == SECRET.encode()
    assert "\0".join(["u", kwargs["sasl_plain_password"]]) == f"u\0{SECRET}"
    assert SECRET not in repr(kwargs)  # what kafka-python's debug log of its configuration shows
    assert SECRET not in str(kwargs)
    assert SECRET not in repr(redacted(kwargs))
    assert SECRET not in repr(cfg)
    assert SECRET not in repr(faust_credentials(cfg))


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        pytest.param(
            {"security_protocol": "SASL_SSL", "sasl_username": "svc"},
            "kafka.sasl_username",
            id="no-password",
        ),
        pytest.param(
            {"sasl_mechanism": "PLAIN"}, "kafka.sasl_mechanism", id="mechanism-without-sasl"
        ),
        pytest.param(
            {"security_protocol": "SSL", "ssl_cafile": Path("/nonexistent/ca.pem")},
            "kafka.ssl_cafile",
            id="missing-ca-file",
        ),
        pytest.param({"bootstrap": " , "}, None, id="no-bootstrap"),
    ],
)
def test_bad_security_settings_name_the_field(settings: dict[str, Any], field: str | None) -> None:
    # Built without validation: the config tree refuses some of these itself; the clients
    # check again for settings that did not come through it.
    with pytest.raises(ConfigError) as info:
        client_kwargs(KafkaConfig.model_construct(**settings))
    if field is not None:
        assert field in [where for where, _ in info.value.problems]


def test_faust_settings(tls_files: dict[str, Path]) -> None:
    from faust.auth import SASLCredentials, SSLCredentials
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    assert faust_broker(KafkaConfig(bootstrap="a:9092,b:9092")) == "kafka://a:9092;kafka://b:9092"
    assert faust_credentials(KafkaConfig()) is None

    sasl = faust_credentials(
        KafkaConfig.model_validate(
            {
                "security_protocol": "SASL_PLAINTEXT",
                "sasl_mechanism": "SCRAM-SHA-512",
                "sasl_username": "svc",
                "sasl_password": SECRET,
            }
        )
    )
    assert isinstance(sasl, SASLCredentials)
    auth = credentials_to_aiokafka_auth(sasl)
    assert auth["security_protocol"] == "SASL_PLAINTEXT"
    assert auth["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (auth["sasl_plain_username"], auth["sasl_plain_password"]) == ("svc", SECRET)
    assert auth["ssl_context"] is None

    sasl_ssl = faust_credentials(
        KafkaConfig.model_validate(
            {
                "security_protocol": "SASL_SSL",
                "sasl_mechanism": "PLAIN",
                "sasl_username": "svc",
                "sasl_password": SECRET,
                "ssl_cafile": tls_files["ssl_cafile"],
            }
        )
    )
    auth = credentials_to_aiokafka_auth(sasl_ssl)
    assert auth["security_protocol"] == "SASL_SSL"
    assert auth["sasl_mechanism"] == "PLAIN"
    assert auth["ssl_context"] is not None

    tls = faust_credentials(KafkaConfig.model_validate({"security_protocol": "SSL", **tls_files}))
    assert isinstance(tls, SSLCredentials)
    auth = credentials_to_aiokafka_auth(tls)
    assert auth["security_protocol"] == "SSL"
    assert auth["ssl_context"].verify_mode.name == "CERT_REQUIRED"


@pytest.mark.parametrize(
    ("settings", "want"),
    [
        pytest.param({}, {"security.protocol": "plaintext"}, id="plaintext"),
        pytest.param(
            {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-512",
             "sasl_username": "svc", "sasl_password": SECRET},
            {"security.protocol": "sasl_plaintext", "sasl.mechanism": "SCRAM-SHA-512",
             "sasl.username": "svc", "sasl.password": SECRET},
            id="sasl-plaintext",
        ),
        pytest.param(
            {"security_protocol": "SASL_SSL", "sasl_mechanism": "PLAIN", "sasl_username": "svc",
             "sasl_password": SECRET,
             "ssl_cafile": "CA"},
            {"security.protocol": "sasl_ssl", "sasl.mechanism": "PLAIN", "sasl.username": "svc",
             "sasl.password": SECRET, "ssl.ca.location": "CA"},
            id="sasl-ssl",
        ),
        pytest.param(
            {"security_protocol": "SSL", "ssl_cafile": "CA", "ssl_certfile": "CERT",
             "ssl_keyfile": "KEY"},
            {"security.protocol": "ssl", "ssl.ca.location": "CA",
             "ssl.certificate.location": "CERT", "ssl.key.location": "KEY"},
            id="ssl-client-certificate",
        ),
    ],
)  # fmt: skip
def test_librdkafka_settings(
    settings: dict[str, Any], want: dict[str, str], tls_files: dict[str, Path]
) -> None:
    from confluent_kafka import Consumer

    files = {"CA": "ssl_cafile", "CERT": "ssl_certfile", "KEY": "ssl_keyfile"}
    settings = {k: tls_files[files[v]] if v in files else v for k, v in settings.items()}
    want = {k: str(tls_files[files[v]]) if v in files else v for k, v in want.items()}
    cfg = KafkaConfig.model_validate({"bootstrap": "a:9092, b:9093", "client_id": "w1", **settings})
    conf = librdkafka_config(cfg, **{"group.id": "g"})
    assert conf == {
        "bootstrap.servers": "a:9092,b:9093",
        "client.id": "w1",
        "group.id": "g",
        **want,
    }
    assert SECRET not in repr(conf)
    assert SECRET not in repr(redacted(conf))
    # librdkafka checks every property's name and value when the client is built.
    Consumer(conf).close()


def test_replay_range_must_be_ordered() -> None:
    with pytest.raises(UsageError, match="--from"):
        KafkaRangeSource(KafkaConfig(), "t", from_ms=2_000, to_ms=1_000)


def test_dead_letters_implement_the_protocol() -> None:
    sink: type[DeadLetters] = KafkaDeadLetters
    assert sink is KafkaDeadLetters


# -- unreachable broker (no broker; a closed local port) -------------------------------------


@pytest.fixture
def closed_port_cfg() -> KafkaConfig:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return KafkaConfig(bootstrap=f"127.0.0.1:{port}")


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(
            lambda cfg: ensure_topics(cfg, {"x": 1}, timeout_ms=1_500), id="ensure_topics"
        ),
        pytest.param(lambda cfg: partitions_for(cfg, "x", timeout_ms=1_500), id="partitions_for"),
        pytest.param(lambda cfg: lag(cfg, "g", "x", timeout_ms=1_500), id="lag"),
        pytest.param(lambda cfg: KafkaRangeSource(cfg, "x", timeout_ms=1_500), id="replay"),
        pytest.param(
            lambda cfg: KafkaDeadLetters(cfg, "x", create=False, timeout_ms=1_500),
            id="dead-letters",
        ),
    ],
)
def test_unreachable_broker_is_a_source_error(
    closed_port_cfg: KafkaConfig, call: Callable[[KafkaConfig], Any]
) -> None:
    def io_threads() -> int:
        return sum(t.name.startswith("kafka-io-") for t in threading.enumerate())

    before = io_threads()
    started = time.monotonic()
    with pytest.raises(SourceError) as info:
        call(closed_port_cfg)
    message = str(info.value)
    assert closed_port_cfg.bootstrap in message
    assert "scripts/kafka start" in message
    assert time.monotonic() - started < 15
    # kafka-python leaves its network thread running after a failed bootstrap; we close it.
    deadline = time.monotonic() + 5
    while io_threads() > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert io_threads() <= before


@pytest.fixture
def hang_up_server() -> Iterator[str]:
    """A local server that accepts connections and closes them at once, like a listener that
    does not speak the client's protocol."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    server.settimeout(0.2)
    done = threading.Event()

    def serve() -> None:
        while not done.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.getsockname()[1]}"
    done.set()
    thread.join(timeout=5)
    server.close()


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        pytest.param({}, "closed the connection during the handshake", id="plaintext"),
        pytest.param(
            {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN", "sasl_username": "u",
             "sasl_password": SECRET},
            "refused the SASL login of user 'u'",
            id="sasl",
        ),
        pytest.param({"security_protocol": "SSL"}, "TLS handshake", id="tls"),
    ],
)  # fmt: skip
def test_bootstrap_failure_names_the_cause(
    hang_up_server: str, settings: dict[str, Any], expected: str
) -> None:
    cfg = KafkaConfig.model_validate({"bootstrap": hang_up_server, **settings})
    with pytest.raises(SourceError, match=expected) as info:
        partitions_for(cfg, "x", timeout_ms=1_500)
    assert hang_up_server in str(info.value)
    assert SECRET not in str(info.value)


def test_secrets_are_masked_in_client_debug_logs(caplog: pytest.LogCaptureFixture) -> None:
    cfg = KafkaConfig.model_validate(
        {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN", "sasl_username": "u",
         "sasl_password": SECRET}
    )  # fmt: skip
    client_kwargs(cfg)
    auth = b"u\x00u\x00" + SECRET.encode()
    with caplog.at_level(logging.DEBUG):
        for name in ("kafka.protocol.parser", "kafka.net.connection", "aiokafka.conn"):
            logging.getLogger(name).debug(
                "Sending request 3 SaslAuthenticateRequest(auth_bytes=%r)", auth
            )
    assert len(caplog.records) == 3
    assert SECRET not in caplog.text
    assert "u\\x00u\\x00**********" in caplog.text


# -- on the real broker ----------------------------------------------------------------------

BASE_MS = (
    int(time.time() * 1000) // 1000 * 1000 - 3_600_000
)  # an hour ago: Kafka refuses the far future
N = 300


@pytest.fixture
def cfg(kafka_bootstrap: str) -> KafkaConfig:
    return KafkaConfig(bootstrap=kafka_bootstrap, batch_size=16)


@pytest.fixture
def drop_topics(kafka_admin: Any) -> Iterator[list[str]]:
    """Names of topics a test made without ``make_topic`` (dead-letter topics), deleted afterwards."""
    names: list[str] = []
    yield names
    if names:
        kafka_admin.delete_topics(names, raise_errors=False)


@pytest.fixture
def producer(kafka_bootstrap: str) -> Iterator[Any]:
    from kafka import KafkaProducer

    p = KafkaProducer(bootstrap_servers=kafka_bootstrap, linger_ms=5)
    yield p
    p.close()


@pytest.fixture
def timed_topic(make_topic: Callable[..., str], producer: Any) -> str:
    """3 partitions; message ``i`` goes to partition ``i % 3`` stamped ``BASE_MS + i`` seconds."""
    topic = make_topic(partitions=3)
    for i in range(N):
        producer.send(
            topic, value=b"%d" % i, key=b"m", partition=i % 3, timestamp_ms=BASE_MS + i * 1_000
        )
    producer.flush()
    return topic


def read_all(source: KafkaRangeSource) -> tuple[list[Message], list[Progress]]:
    messages: list[Message] = []
    progress: list[Progress] = []
    for batch, step in source.batches():
        messages.extend(batch)
        progress.append(step)
    return messages, progress


def assert_partition_order(messages: list[Message]) -> None:
    last: dict[int, int] = {}
    for m in messages:
        assert m.offset > last.get(m.partition, -1), (
            f"partition {m.partition} went back to {m.offset}"
        )
        last[m.partition] = m.offset


@pytest.mark.kafka
@pytest.mark.parametrize(
    ("from_i", "to_i"),
    [
        pytest.param(50, 200, id="from-to"),
        pytest.param(None, 100, id="to-only"),
        pytest.param(250, None, id="from-only"),
        pytest.param(None, None, id="whole-topic"),
        pytest.param(-10, N + 10, id="wider-than-topic"),
    ],
)
def test_replay_reads_exactly_the_range(
    cfg: KafkaConfig, timed_topic: str, from_i: int | None, to_i: int | None
) -> None:
    from_ms = None if from_i is None else BASE_MS + from_i * 1_000
    to_ms = None if to_i is None else BASE_MS + to_i * 1_000
    source = KafkaRangeSource(cfg, timed_topic, from_ms=from_ms, to_ms=to_ms)
    expected = set(range(max(from_i or 0, 0), min(N if to_i is None else to_i, N)))

    messages, progress = read_all(source)

    assert sorted(int(m.value) for m in messages) == sorted(expected)
    assert source.total() == len(expected)
    assert all(m.topic == timed_topic and m.key == b"m" for m in messages)
    assert all(m.partition == int(m.value) % 3 for m in messages)
    assert_partition_order(messages)
    assert len(progress) > 1  # several batches of 16
    assert [p.done for p in progress] == sorted(p.done for p in progress)
    assert progress[-1] == Progress(len(expected), len(expected))
    # No consumer group: a replay never moves the live worker's offsets.
    assert set(committed_offsets(cfg, cfg.group, timed_topic).values()) == {None}


@pytest.mark.kafka
@pytest.mark.parametrize(
    ("from_i", "to_i"),
    [
        pytest.param(100, 100, id="from-equals-to"),
        pytest.param(N + 5, None, id="after-the-last-message"),
        pytest.param(None, -5, id="before-the-first-message"),
        pytest.param(100.5, 100.9, id="between-two-messages"),
    ],
)
def test_empty_range_ends_at_once(
    cfg: KafkaConfig, timed_topic: str, from_i: float | None, to_i: float | None
) -> None:
    from_ms = None if from_i is None else int(BASE_MS + from_i * 1_000)
    to_ms = None if to_i is None else int(BASE_MS + to_i * 1_000)
    started = time.monotonic()
    source = KafkaRangeSource(cfg, timed_topic, from_ms=from_ms, to_ms=to_ms)
    assert source.total() == 0
    assert read_all(source) == ([], [])
    assert time.monotonic() - started < 10


@pytest.mark.kafka
def test_empty_topic(cfg: KafkaConfig, make_topic: Callable[..., str]) -> None:
    source = KafkaRangeSource(cfg, make_topic(partitions=2))
    assert source.total() == 0
    assert read_all(source) == ([], [])


@pytest.mark.kafka
@pytest.mark.parametrize("to_future", [False, True], ids=["to-none", "to-in-the-future"])
def test_replay_ends_while_the_topic_is_written(
    cfg: KafkaConfig, timed_topic: str, kafka_bootstrap: str, to_future: bool
) -> None:
    from kafka import KafkaProducer

    stop = threading.Event()
    written = 0

    def write() -> None:
        nonlocal written
        p = KafkaProducer(bootstrap_servers=kafka_bootstrap, linger_ms=2)
        while not stop.is_set():
            p.send(timed_topic, value=b"late", partition=written % 3)
            written += 1
            if written % 50 == 0:
                p.flush()
        p.close()

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    try:
        while written < 200:
            time.sleep(0.01)
        to_ms = int(time.time() * 1000) + 600_000 if to_future else None
        source = KafkaRangeSource(cfg, timed_topic, to_ms=to_ms)
        stops = dict(source.stop)
        assert source.total() >= N
        started = time.monotonic()
        messages, progress = read_all(source)
        elapsed = time.monotonic() - started
    finally:
        stop.set()
        writer.join(timeout=30)
    assert elapsed < 30
    assert len(messages) == source.total() == progress[-1].done == progress[-1].total
    assert all(m.offset < stops[m.partition] for m in messages)
    assert_partition_order(messages)
    assert written > 200
    ends = end_offsets(cfg, timed_topic)
    assert sum(ends.values()) > source.total()  # the topic grew past the stop offsets


@pytest.mark.kafka
def test_replay_that_stops_getting_messages_fails_instead_of_hanging(
    cfg: KafkaConfig, timed_topic: str
) -> None:
    # Stop offsets past the end stand for a broker that went quiet mid-replay.
    source = KafkaRangeSource(cfg, timed_topic, stall_timeout_ms=1_500)
    source.stop = {p: end + 5 for p, end in source.stop.items()}
    started = time.monotonic()
    with pytest.raises(
        SourceError, match=r"stalled: no message for 2s while partition 0 at 100 of 105"
    ):
        read_all(source)
    assert time.monotonic() - started < 15


@pytest.mark.kafka
def test_dead_letters_carry_the_error_in_headers(
    cfg: KafkaConfig, make_topic: Callable[..., str], drop_topics: list[str]
) -> None:
    topic = make_topic(partitions=2)
    dlq = KafkaDeadLetters(cfg, topic)
    drop_topics.append(dlq.topic)
    assert dlq.topic == f"{topic}.dlq"
    big = b"x" * 1_500_000
    dlq.send(
        Message(b'{"model": 1', 1, 41, topic, b"fraud"),
        DecodeError("invalid_json", "$", "expected a JSON object (got truncated text)"),
    )
    dlq.send(
        Message(big, 0, 7, topic, None),
        DecodeError("too_large", "$", f"expected at most 1000000 bytes (got {len(big)})"),
    )
    dlq.flush()
    dlq.close()

    letters = read_all(KafkaRangeSource(cfg, dlq.topic))[0]
    assert len(letters) == 2
    records = _records(cfg, dlq.topic)
    first, second = records
    assert first.key == b"fraud"
    assert first.value == b'{"model": 1'
    headers = dict(first.headers)
    assert headers["drifthouse.reason"] == b"invalid_json"
    assert headers["drifthouse.path"] == b"$"
    assert b"expected a JSON object" in headers["drifthouse.error"]
    assert headers["drifthouse.topic"] == topic.encode()
    assert headers["drifthouse.partition"] == b"1"
    assert headers["drifthouse.offset"] == b"41"
    assert "drifthouse.truncated" not in headers

    assert second.key is None
    headers = dict(second.headers)
    assert headers["drifthouse.reason"] == b"too_large"
    assert headers["drifthouse.truncated"] == str(len(big)).encode()
    assert 0 < len(second.value) < cfg.max_message_bytes
    assert big.startswith(second.value)


@pytest.mark.kafka
def test_dead_letter_refused_by_the_broker_is_sent_again_cut(
    kafka_bootstrap: str, make_topic: Callable[..., str], drop_topics: list[str]
) -> None:
    # Our limit is above the broker's (max.message.bytes, about 1 MB by default): the broker
    # refuses the record, and the dead letter goes again, cut to 64 KiB, rather than be lost.
    cfg = KafkaConfig(bootstrap=kafka_bootstrap, max_message_bytes=4_000_000)
    topic = make_topic(partitions=1)
    dlq = KafkaDeadLetters(cfg, topic)
    drop_topics.append(dlq.topic)
    big = b"y" * 3_000_000
    dlq.send(Message(big, 0, 3, topic, b"k"), DecodeError("too_large", "$", "too large"))
    dlq.flush()
    dlq.close()
    (record,) = _records(cfg, dlq.topic)
    assert len(record.value) == 65_536
    assert dict(record.headers)["drifthouse.truncated"] == b"3000000"


def _records(cfg: KafkaConfig, topic: str) -> list[Any]:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=cfg.bootstrap, group_id=None, enable_auto_commit=False
    )
    try:
        tps = [TopicPartition(topic, p) for p in partitions_for(cfg, topic)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        records: list[Any] = []
        deadline = time.monotonic() + 30
        while len(records) < sum(ends.values()) and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
        return sorted(records, key=lambda r: (r.partition, r.offset))
    finally:
        consumer.close()


@pytest.mark.kafka
def test_ensure_topics_is_idempotent(cfg: KafkaConfig, drop_topics: list[str]) -> None:
    suffix = str(time.monotonic_ns())
    a, b, c = f"ensure-a-{suffix}", f"ensure-b-{suffix}", f"ensure-c-{suffix}"
    drop_topics.extend([a, b, c])
    assert sorted(ensure_topics(cfg, {a: 3, b: 1})) == sorted([a, b])
    assert ensure_topics(cfg, {a: 3, b: 1}) == []
    assert ensure_topics(cfg, {a: 3, c: 2}) == [c]
    assert partitions_for(cfg, a) == [0, 1, 2]
    assert partitions_for(cfg, c) == [0, 1]
    assert end_offsets(cfg, a) == {0: 0, 1: 0, 2: 0}


@pytest.mark.kafka
def test_workers_racing_to_create_the_partials_topic_all_find_it(
    cfg: KafkaConfig, drop_topics: list[str]
) -> None:
    """Workers started at once all create the partials topic: the losers (``TOPIC_ALREADY_EXISTS``)
    must wait, like the winner, until it has a leader for each partition, and not read it before
    the broker's metadata shows it (seen failing: "does not exist")."""
    racers, rounds = 6, 8

    def race(racer_cfg: KafkaConfig, start: threading.Barrier, errors: list[BaseException]) -> None:
        start.wait()
        try:
            ensure_partials_topic(racer_cfg)
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    for round_ in range(rounds):
        name = f"race-{time.monotonic_ns()}-{round_}-partials"
        drop_topics.append(name)
        racer_cfg = KafkaConfig(bootstrap=cfg.bootstrap, partials_topic=name, partials_partitions=3)
        start = threading.Barrier(racers)
        errors: list[BaseException] = []
        threads = [
            threading.Thread(target=race, args=(racer_cfg, start, errors)) for _ in range(racers)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == [], f"round {round_}: {errors}"
        assert partitions_for(cfg, name) == [0, 1, 2]


@pytest.mark.kafka
@pytest.mark.parametrize(
    ("topics", "replication", "fix"),
    [
        pytest.param(
            {"ok-name-x": 1},
            3,
            "replication factor of at most the number of brokers",
            id="replication",
        ),
        pytest.param({"bad topic!": 1}, 1, "use only ASCII letters", id="bad-name"),
    ],
)
def test_ensure_topics_says_the_fix(
    cfg: KafkaConfig, topics: dict[str, int], replication: int, fix: str
) -> None:
    with pytest.raises(SourceError, match=fix):
        ensure_topics(cfg, topics, replication=replication)


@pytest.mark.kafka
def test_missing_topic_is_named(cfg: KafkaConfig) -> None:
    with pytest.raises(SourceError, match="'no-such-topic-here' does not exist"):
        partitions_for(cfg, "no-such-topic-here")
    with pytest.raises(SourceError, match="no-such-topic-here"):
        KafkaRangeSource(cfg, "no-such-topic-here")


@pytest.mark.kafka
def test_lag_per_partition(cfg: KafkaConfig, make_topic: Callable[..., str], producer: Any) -> None:
    from kafka import KafkaConsumer, TopicPartition
    from kafka.structs import OffsetAndMetadata

    topic = make_topic(partitions=3)
    for partition, count in ((0, 5), (1, 3)):
        for i in range(count):
            producer.send(topic, value=b"%d" % i, partition=partition)
    producer.flush()
    group = f"g-{topic}"
    assert committed_offsets(cfg, group, topic) == {0: None, 1: None, 2: None}

    consumer = KafkaConsumer(
        bootstrap_servers=cfg.bootstrap, group_id=group, enable_auto_commit=False
    )
    consumer.assign([TopicPartition(topic, 0)])
    consumer.commit({TopicPartition(topic, 0): OffsetAndMetadata(2, "", -1)})
    consumer.close(autocommit=False)

    assert committed_offsets(cfg, group, topic) == {0: 2, 1: None, 2: None}
    assert end_offsets(cfg, topic) == {0: 5, 1: 3, 2: 0}
    assert lag(cfg, group, topic) == {
        0: PartitionLag(partition=0, committed=2, end=5, lag=3),
        1: PartitionLag(partition=1, committed=None, end=3, lag=3),
        2: PartitionLag(partition=2, committed=None, end=0, lag=0),
    }


# -- TLS and SASL on a broker of our own --------------------------------------------------------

SECURED_JAAS = {
    "plain": 'org.apache.kafka.common.security.plain.PlainLoginModule required user_alice="alice-secret";',
    "scram": "org.apache.kafka.common.security.scram.ScramLoginModule required;",
}


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _broker_libs() -> Path | None:
    import os

    version = os.environ.get("KAFKA_VERSION", "4.0.2")
    libs = Path(
        os.environ.get(
            "KAFKA_LIBS", Path.home() / ".cache" / "drifthouse" / f"kafka-{version}" / "libs"
        )
    )
    return libs if (libs / ".complete").exists() or any(libs.glob("kafka_2.13-*.jar")) else None


@pytest.fixture(scope="module")
def secured_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A single-node Kafka with SASL_PLAINTEXT, SASL_SSL (PLAIN and SCRAM) and SSL listeners.

    Uses the broker jars that ``scripts/kafka`` caches; skipped when they, java or openssl are
    missing. Users: ``alice``/``alice-secret`` (PLAIN), ``bob``/``bob-secret`` (SCRAM-SHA-256/512).
    """
    libs = _broker_libs()
    if libs is None or shutil.which("java") is None or shutil.which("openssl") is None:
        _missing("needs java, openssl and the broker jars (scripts/kafka fetch)")
    folder = tmp_path_factory.mktemp("secured-kafka")

    def sh(*args: str) -> None:
        subprocess.run(list(args), check=True, capture_output=True, cwd=folder)

    sh(
        "openssl",
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "1",
        "-subj",
        "/CN=drifthouse-test-ca",
    )
    sh(
        "openssl",
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    )
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    sh(
        "openssl",
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "1",
        "-extfile",
        "san.ext",
    )
    sh("openssl", "pkcs8", "-topk8", "-nocrypt", "-in", "server.key", "-out", "server.p8")  # fmt: skip
    (folder / "keystore.pem").write_text(
        (folder / "server.p8").read_text() + (folder / "server.pem").read_text()
    )

    plain, controller, sasl, sasl_ssl, tls = _free_ports(5)
    lines = [
        "process.roles=broker,controller",
        "node.id=1",
        f"controller.quorum.bootstrap.servers=127.0.0.1:{controller}",
        "controller.listener.names=CONTROLLER",
        f"listeners=PLAINTEXT://127.0.0.1:{plain},CONTROLLER://127.0.0.1:{controller},"
        f"SASL_PLAINTEXT://127.0.0.1:{sasl},SASL_SSL://127.0.0.1:{sasl_ssl},SSL://127.0.0.1:{tls}",
        f"advertised.listeners=PLAINTEXT://127.0.0.1:{plain},SASL_PLAINTEXT://127.0.0.1:{sasl},"
        f"SASL_SSL://127.0.0.1:{sasl_ssl},SSL://127.0.0.1:{tls}",
        "inter.broker.listener.name=PLAINTEXT",
        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,"
        "SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL,SSL:SSL",
        "sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
        "ssl.keystore.type=PEM",
        f"ssl.keystore.location={folder / 'keystore.pem'}",
        f"log.dirs={folder / 'data'}",
        "offsets.topic.replication.factor=1",
        "offsets.topic.num.partitions=1",
        "transaction.state.log.replication.factor=1",
        "transaction.state.log.min.isr=1",
        "share.coordinator.state.topic.replication.factor=1",
        "share.coordinator.state.topic.min.isr=1",
        "group.initial.rebalance.delay.ms=0",
        "num.network.threads=1",
        "num.io.threads=1",
    ]
    for listener in ("sasl_plaintext", "sasl_ssl"):
        lines.append(f"listener.name.{listener}.plain.sasl.jaas.config={SECURED_JAAS['plain']}")
        for mechanism in ("scram-sha-256", "scram-sha-512"):
            lines.append(
                f"listener.name.{listener}.{mechanism}.sasl.jaas.config={SECURED_JAAS['scram']}"
            )
    (folder / "server.properties").write_text("\n".join(lines) + "\n")
    (folder / "log4j2.xml").write_text(
        '<Configuration status="WARN"><Appenders><File name="f" fileName="'
        + str(folder / "broker.log")
        + '"><PatternLayout pattern="[%d] %p %m (%c)%n"/></File></Appenders>'
        '<Loggers><Root level="warn"><AppenderRef ref="f"/></Root></Loggers></Configuration>'
    )
    java = [
        "java",
        "-Xmx384m",
        "-Xms64m",
        f"-Dlog4j2.configurationFile={folder / 'log4j2.xml'}",
        "-cp",
        f"{libs}/*",
    ]
    cluster = subprocess.run(
        [*java, "kafka.tools.StorageTool", "random-uuid"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    subprocess.run(
        [*java, "kafka.tools.StorageTool", "format", "--standalone", "-t", cluster, "-c",
         str(folder / "server.properties"),
         "--add-scram", "SCRAM-SHA-256=[name=bob,password=bob-secret]",
         "--add-scram", "SCRAM-SHA-512=[name=bob,password=bob-secret]"],
        check=True,
        capture_output=True,
    )  # fmt: skip
    log = (folder / "stdout.log").open("wb")
    broker = subprocess.Popen(
        [*java, "kafka.Kafka", str(folder / "server.properties")],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                partitions_for(
                    KafkaConfig(bootstrap=f"127.0.0.1:{plain}"), "__none__", timeout_ms=2_000
                )
            except SourceError as exc:
                if "does not exist" in str(exc):
                    break
            if broker.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the secured test broker did not start; see {folder / 'broker.log'}")
            time.sleep(0.5)
        yield {"sasl": sasl, "sasl_ssl": sasl_ssl, "ssl": tls, "ca": folder / "ca.pem"}
    finally:
        broker.terminate()
        try:
            broker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            broker.kill()
            broker.wait(timeout=10)
        log.close()


SECURED_CASES = [
    pytest.param("sasl", {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN",
                          "sasl_username": "alice", "sasl_password": "alice-secret"}, id="sasl-plaintext-plain"),
    pytest.param("sasl", {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-256",
                          "sasl_username": "bob", "sasl_password": "bob-secret"}, id="sasl-plaintext-scram-256"),
    pytest.param("sasl_ssl", {"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512",
                              "sasl_username": "bob", "sasl_password": "bob-secret"}, id="sasl-ssl-scram-512"),
    pytest.param("sasl_ssl", {"security_protocol": "SASL_SSL", "sasl_mechanism": "PLAIN",
                              "sasl_username": "alice", "sasl_password": "alice-secret"}, id="sasl-ssl-plain"),
    pytest.param("ssl", {"security_protocol": "SSL"}, id="ssl"),
]  # fmt: skip


@pytest.mark.kafka
@pytest.mark.slow
@pytest.mark.parametrize(("listener", "settings"), SECURED_CASES)
def test_tls_and_sasl_reach_every_client(
    secured_broker: dict[str, Any],
    listener: str,
    settings: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    import asyncio

    from aiokafka import AIOKafkaConsumer
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    if settings["security_protocol"] != "SASL_PLAINTEXT":
        settings = {**settings, "ssl_cafile": secured_broker["ca"]}
    cfg = KafkaConfig.model_validate(
        {"bootstrap": f"127.0.0.1:{secured_broker[listener]}", **settings}
    )
    topic = f"secured-{listener}-{time.monotonic_ns()}"
    with caplog.at_level(logging.DEBUG):
        # kafka-python: admin, dead-letter producer, replay consumer.
        assert ensure_topics(cfg, {topic: 2}) == [topic]
        dlq = KafkaDeadLetters(cfg, topic)
        dlq.send(
            Message(b"{bad", 1, 9, topic, b"k"), DecodeError("invalid_json", "$", "expected JSON")
        )
        dlq.close()
        (letter,) = read_all(KafkaRangeSource(cfg, dlq.topic))[0]
        assert letter.value == b"{bad"
        assert lag(cfg, cfg.group, dlq.topic)[0].lag == 1

        # faust: the worker's credentials, through its aiokafka driver.
        async def topics_seen_by_faust_client() -> set[str]:
            auth = credentials_to_aiokafka_auth(faust_credentials(cfg))
            consumer = AIOKafkaConsumer(bootstrap_servers=cfg.bootstrap, **auth)
            await consumer.start()
            try:
                return set(await consumer.topics())
            finally:
                await consumer.stop()

        assert {topic, dlq.topic} <= asyncio.run(topics_seen_by_faust_client())

        # confluent-kafka: the source group's membership (librdkafka), joined and committed.
        from confluent_kafka import Consumer, TopicPartition

        consumer = Consumer(librdkafka_config(cfg, **{"group.id": f"{topic}-source"}))
        try:
            assert topic in consumer.list_topics(timeout=20).topics
            consumer.commit(offsets=[TopicPartition(topic, 0, 1, "cp")], asynchronous=False)
            (found,) = consumer.committed([TopicPartition(topic, 0)], timeout=20)
            assert (found.offset, found.metadata) == (1, "cp")
        finally:
            consumer.close()
    for secret in ("alice-secret", "bob-secret"):
        assert secret not in caplog.text  # not even in the clients' DEBUG logs


@pytest.mark.kafka
@pytest.mark.slow
@pytest.mark.parametrize(
    ("listener", "settings", "expected"),
    [
        pytest.param("sasl", {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN",
                              "sasl_username": "alice", "sasl_password": "wrong"},
                     "SASL login of user 'alice'", id="wrong-password"),
        pytest.param("ssl", {"security_protocol": "SSL"}, "TLS handshake", id="untrusted-certificate"),
        pytest.param("sasl", {}, "closed the connection during the handshake", id="plaintext-to-sasl"),
    ],
)  # fmt: skip
def test_security_failures_say_the_fix(
    secured_broker: dict[str, Any], listener: str, settings: dict[str, Any], expected: str
) -> None:
    cfg = KafkaConfig.model_validate(
        {"bootstrap": f"127.0.0.1:{secured_broker[listener]}", **settings}
    )
    with pytest.raises(SourceError, match=expected):
        partitions_for(cfg, "x", timeout_ms=3_000)


@pytest.mark.parametrize(
    "cause",
    [
        "KafkaConnectionError: socket disconnected",
        # A listener that drops the socket with the client's bytes unread resets it instead
        # (seen in CI): the same cause, the same advice.
        "KafkaConnectionError: [Errno 104] Connection reset by peer",
    ],
)
def test_a_connection_dropped_during_the_handshake_is_named_so(cause: str) -> None:
    from drifthouse.kafka.client import _explain_bootstrap

    err = _explain_bootstrap(cause, KafkaConfig(), "connecting to Kafka failed", "the broker")
    assert "closed the connection during the handshake" in str(err)
    assert "kafka.security_protocol (PLAINTEXT)" in str(err)
