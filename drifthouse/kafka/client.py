"""Kafka client settings and error translation shared by the Kafka adapters.

One place turns :class:`~drifthouse.config.KafkaConfig` into client settings, so TLS and SASL
reach every client the same way: kafka-python (admin, replay consumer, dead-letter producer)
through :func:`client_kwargs`, and faust (the live worker) through :func:`faust_broker` and
:func:`faust_credentials`. Secrets are read from their ``SecretStr`` only here, at the moment a
client is built, and never logged (:func:`redacted` gives a loggable view).

kafka-python errors are translated once, by :func:`translate`, into
:class:`~drifthouse.errors.SourceError` messages that say what failed, where, and the fix.

Example
-------
>>> from drifthouse.config import KafkaConfig
>>> cfg = KafkaConfig(bootstrap="a:9092,b:9092", security_protocol="SASL_SSL",
...                   sasl_mechanism="SCRAM-SHA-512", sasl_username="svc", sasl_password="s3cret")
>>> kw = client_kwargs(cfg)
>>> kw["bootstrap_servers"], kw["sasl_mechanism"], kw["sasl_plain_password"] == "s3cret"
(['a:9092', 'b:9092'], 'SCRAM-SHA-512', True)
>>> kw["sasl_plain_password"], redacted(kw)["sasl_plain_password"]
('**********', '**********')
>>> faust_broker(cfg)
'kafka://a:9092;kafka://b:9092'
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
from typing import Any

from drifthouse.config import KafkaConfig
from drifthouse.errors import ConfigError, SourceError
from drifthouse.logs import hide_secret

__all__ = [
    "aiokafka_kwargs",
    "client_kwargs",
    "faust_broker",
    "faust_credentials",
    "librdkafka_config",
    "open_client",
    "redacted",
    "ssl_context",
    "translate",
]

_SECRET_KEYS = frozenset({"sasl_plain_password", "ssl_password", "sasl.password"})


def _servers(cfg: KafkaConfig) -> list[str]:
    servers = [s.strip() for s in cfg.bootstrap.split(",") if s.strip()]
    if not servers:
        raise ConfigError(
            f"kafka.bootstrap must list at least one broker as host:port (got {cfg.bootstrap!r}); "
            "e.g. bootstrap: localhost:9092"
        )
    return servers


def _check_auth(cfg: KafkaConfig) -> None:
    problems: list[tuple[str, str]] = []
    uses_sasl = cfg.security_protocol.startswith("SASL_")
    if uses_sasl and (cfg.sasl_username is None or cfg.sasl_password is None):
        problems.append(
            (
                "kafka.sasl_username",
                f"security_protocol {cfg.security_protocol} needs sasl_username and sasl_password "
                "(e.g. sasl_password: ${KAFKA_PASSWORD})",
            )
        )
    if not uses_sasl and cfg.sasl_mechanism is not None:
        problems.append(
            (
                "kafka.sasl_mechanism",
                f"sasl_mechanism is set but security_protocol is {cfg.security_protocol}; "
                "use SASL_SSL or SASL_PLAINTEXT, or drop sasl_mechanism",
            )
        )
    if cfg.ssl_keyfile is not None and cfg.ssl_certfile is None:
        problems.append(
            ("kafka.ssl_keyfile", "ssl_keyfile needs ssl_certfile (the client certificate)")
        )
    for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
        path = getattr(cfg, name)
        if path is not None and not path.is_file():
            problems.append((f"kafka.{name}", f"file {path} does not exist or is not a file"))
    if problems:
        raise ConfigError(f"{len(problems)} problem(s) in the kafka settings", problems)


# kafka-python's (and aiokafka's) DEBUG log shows each request, the SASL PLAIN login (user
# and password) and the raw bytes sent included. drifthouse.logs masks every password handed to a client
# in records of the loggers that print them, so turning on debug logging never leaks one.
_LEAKY_LOGGERS = (
    "kafka.protocol.parser",
    "kafka.net.connection",
    "kafka.net.sasl.plain",
    "kafka.net.sasl.scram",
    "kafka.admin.client",
    "kafka.consumer.group",
    "kafka.producer.kafka",
    "kafka.conn",
    "aiokafka.conn",  # faust's client logs the same way
)


def _remember(secret: str) -> str:
    # kafka-python and aiokafka log the SASL PLAIN exchange at DEBUG.
    hide_secret(secret, *_LEAKY_LOGGERS)
    return secret


class _Masked(str):
    """A secret string whose ``repr`` is masked.

    kafka-python logs its whole configuration at DEBUG level (``KafkaAdminClient`` does), which
    formats each value with ``repr``; it uses the password itself only through ``join`` and
    ``encode``, which see the real characters.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return "'**********'"


def client_kwargs(cfg: KafkaConfig, **overrides: Any) -> dict[str, Any]:
    """Keyword arguments for kafka-python's ``KafkaConsumer``, ``KafkaProducer`` and ``KafkaAdminClient``.

    Covers the bootstrap servers, client id, security protocol, SASL (``PLAIN`` and ``SCRAM``,
    username and password taken from the ``SecretStr``) and TLS files. ``overrides`` are merged
    last (timeouts, ``group_id``, ...). The result holds the password, masked in ``repr`` (as
    kafka-python's debug log of its configuration shows it) but not in ``str``: log
    :func:`redacted`, never the values themselves.

    Raises
    ------
    ConfigError
        SASL without username/password, a mechanism without a SASL protocol, missing TLS files.
    """
    _check_auth(cfg)
    kwargs: dict[str, Any] = {
        "bootstrap_servers": _servers(cfg),
        "client_id": cfg.client_id,
        "security_protocol": cfg.security_protocol,
    }
    if cfg.security_protocol.startswith("SASL_"):
        kwargs["sasl_mechanism"] = cfg.sasl_mechanism or "PLAIN"
        kwargs["sasl_plain_username"] = cfg.sasl_username
        assert cfg.sasl_password is not None  # checked by _check_auth
        kwargs["sasl_plain_password"] = _Masked(_remember(cfg.sasl_password.get_secret_value()))
    if cfg.security_protocol.endswith("SSL"):
        for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            path = getattr(cfg, name)
            if path is not None:
                kwargs[name] = str(path)
    kwargs.update(overrides)
    return kwargs


def redacted(kwargs: dict[str, Any]) -> dict[str, Any]:
    """A copy of client keyword arguments that is safe to log."""
    return {
        k: ("**********" if k in _SECRET_KEYS and v is not None else v) for k, v in kwargs.items()
    }


def ssl_context(cfg: KafkaConfig) -> ssl.SSLContext:
    """A TLS client context from the configured CA, certificate and key files.

    Without ``ssl_cafile`` the system's trusted CAs verify the broker. faust's own
    ``SSLCredentials()`` cannot build a context without an explicit ``purpose``, so drifthouse
    builds it here and hands it over.
    """
    _check_auth(cfg)
    context = ssl.create_default_context(
        purpose=ssl.Purpose.SERVER_AUTH,
        cafile=str(cfg.ssl_cafile) if cfg.ssl_cafile is not None else None,
    )
    if cfg.ssl_certfile is not None:
        context.load_cert_chain(
            certfile=str(cfg.ssl_certfile),
            keyfile=str(cfg.ssl_keyfile) if cfg.ssl_keyfile is not None else None,
        )
    return context


def aiokafka_kwargs(cfg: KafkaConfig, **overrides: Any) -> dict[str, Any]:
    """Keyword arguments for aiokafka's ``AIOKafkaConsumer`` (the live worker's bulk reader).

    The same bootstrap servers, client id, SASL and TLS settings as :func:`client_kwargs`; TLS
    goes through the context of :func:`ssl_context`, as aiokafka takes no certificate files.
    ``overrides`` are merged last.
    """
    _check_auth(cfg)
    protocol = cfg.security_protocol
    kwargs: dict[str, Any] = {
        "bootstrap_servers": _servers(cfg),
        "client_id": cfg.client_id,
        "security_protocol": protocol,
    }
    if protocol.startswith("SASL_"):
        assert cfg.sasl_password is not None  # checked by _check_auth
        kwargs["sasl_mechanism"] = cfg.sasl_mechanism or "PLAIN"
        kwargs["sasl_plain_username"] = cfg.sasl_username
        kwargs["sasl_plain_password"] = _Masked(_remember(cfg.sasl_password.get_secret_value()))
    if protocol.endswith("SSL"):
        kwargs["ssl_context"] = ssl_context(cfg)
    kwargs.update(overrides)
    return kwargs


def librdkafka_config(cfg: KafkaConfig, **overrides: Any) -> dict[str, Any]:
    """Settings for confluent-kafka's clients (librdkafka's property names), the worker's
    source group membership (:mod:`drifthouse.kafka.membership`).

    The same bootstrap servers, client id, SASL and TLS settings as :func:`client_kwargs`:
    TLS takes the CA, certificate and key files as they are (without ``ssl_cafile`` the
    system's trusted CAs verify the broker). ``overrides`` are merged last.
    """
    _check_auth(cfg)
    protocol = cfg.security_protocol
    conf: dict[str, Any] = {
        "bootstrap.servers": ",".join(_servers(cfg)),
        "client.id": cfg.client_id,
        "security.protocol": protocol.lower(),
    }
    if protocol.startswith("SASL_"):
        assert cfg.sasl_password is not None  # checked by _check_auth
        conf["sasl.mechanism"] = cfg.sasl_mechanism or "PLAIN"
        conf["sasl.username"] = cfg.sasl_username
        conf["sasl.password"] = _Masked(_remember(cfg.sasl_password.get_secret_value()))
    if protocol.endswith("SSL"):
        for name, key in (
            ("ssl_cafile", "ssl.ca.location"),
            ("ssl_certfile", "ssl.certificate.location"),
            ("ssl_keyfile", "ssl.key.location"),
        ):
            path = getattr(cfg, name)
            if path is not None:
                conf[key] = str(path)
    conf.update(overrides)
    return conf


def faust_broker(cfg: KafkaConfig) -> str:
    """The faust ``broker`` setting: ``kafka://host:port`` per bootstrap server, ``;``-separated."""
    return ";".join(f"kafka://{server}" for server in _servers(cfg))


def faust_credentials(cfg: KafkaConfig) -> Any:
    """The faust ``broker_credentials`` setting for ``cfg`` (``None`` for ``PLAINTEXT``).

    ``SSL`` gives ``faust.SSLCredentials`` with the context of :func:`ssl_context`;
    ``SASL_PLAINTEXT`` and ``SASL_SSL`` give ``faust.SASLCredentials`` with the mechanism,
    username and password (and the TLS context for ``SASL_SSL``).
    """
    _check_auth(cfg)
    protocol = cfg.security_protocol
    if protocol == "PLAINTEXT":
        return None
    import faust  # imported here: faust pulls in aiokafka and mode, which replay does not need

    if protocol == "SSL":
        return faust.SSLCredentials(ssl_context(cfg))
    assert cfg.sasl_password is not None  # checked by _check_auth
    return faust.SASLCredentials(
        username=cfg.sasl_username,
        password=_remember(cfg.sasl_password.get_secret_value()),
        mechanism=cfg.sasl_mechanism or "PLAIN",
        ssl_context=ssl_context(cfg) if protocol == "SASL_SSL" else None,
    )


class _FailureLog(logging.Handler):
    """Keeps the connection failures kafka-python logs while it bootstraps.

    kafka-python retries a failed bootstrap until its deadline and then raises a bare
    "Unable to bootstrap"; the reason (refused, TLS, SASL) is only logged on the way.
    """

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.causes: list[BaseException | str] = []

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args if isinstance(record.args, tuple) else ()
        errors = [a for a in args if isinstance(a, BaseException)]
        self.causes.append(errors[-1] if errors else record.getMessage())


_FAILURE_LOGGERS = ("kafka.net.connection", "kafka.net.manager")


def open_client(
    factory: Any, cfg: KafkaConfig, doing: str, *, topic: str | None = None, **overrides: Any
) -> Any:
    """``factory(**client_kwargs(cfg, **overrides))`` with its failures as :class:`SourceError`.

    ``factory`` is ``KafkaConsumer``, ``KafkaProducer`` or ``KafkaAdminClient``. A bootstrap
    that fails is explained by the last connection failure kafka-python logged (connection
    refused, TLS verification, SASL login), not just by the timeout.
    """
    from kafka.errors import KafkaError

    kwargs = client_kwargs(cfg, **overrides)
    # kafka-python starts its network thread before it bootstraps and leaves it running when
    # the bootstrap fails; keep hold of the network client so a failed start can close it
    # (a worker retrying its connection would otherwise gather threads).
    started: list[Any] = []
    network = getattr(factory, "DEFAULT_CONFIG", {}).get("kafka_client")
    if network is not None and "kafka_client" not in kwargs:

        def tracked(*args: Any, **options: Any) -> Any:
            client = network(*args, **options)
            started.append(client)
            return client

        kwargs["kafka_client"] = tracked
    handler = _FailureLog()
    loggers = [logging.getLogger(name) for name in _FAILURE_LOGGERS]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        return factory(**kwargs)
    except (KafkaError, OSError) as exc:
        for client in started:
            with contextlib.suppress(Exception):
                client.close()
        raise translate(exc, cfg, doing, topic=topic, causes=handler.causes) from exc
    finally:
        for logger in loggers:
            logger.removeHandler(handler)


def _best_cause(causes: list[BaseException | str]) -> BaseException | None:
    """The most telling failure: a SASL error, then TLS, refused, disconnected, anything else."""
    import kafka.errors as ke

    def rank(cause: BaseException) -> int:
        text = str(cause).lower()
        if isinstance(
            cause,
            ke.SaslAuthenticationFailedError
            | ke.IllegalSaslStateError
            | ke.UnsupportedSaslMechanismError,
        ):
            return 5
        if "certificate" in text or "ssl" in text or "handshake failed" in text:
            return 4
        if "refused" in text or "unreachable" in text:
            return 3
        if "disconnected" in text:
            return 2
        return 1

    errors = [
        c
        for c in causes
        if isinstance(c, BaseException) and not isinstance(c, ke.KafkaTimeoutError)
    ]
    return max(reversed(errors), key=rank) if errors else None


_RUN_LOCAL = "`scripts/kafka start` starts a local one at 127.0.0.1:9092"


def _explain_bootstrap(
    cause: BaseException | str, cfg: KafkaConfig, what: str, where: str
) -> SourceError:
    import kafka.errors as ke

    text = str(cause)
    if isinstance(cause, ke.SaslAuthenticationFailedError):
        return SourceError(
            f"{what}: {where} refused the SASL login of user {cfg.sasl_username!r} "
            f"({cfg.sasl_mechanism}): {text}; check kafka.sasl_username, kafka.sasl_password and "
            "kafka.sasl_mechanism."
        )
    if isinstance(cause, ke.IllegalSaslStateError | ke.UnsupportedSaslMechanismError):
        return SourceError(
            f"{what}: the SASL handshake with {where} failed ({type(cause).__name__}); the listener "
            f"may not use {cfg.security_protocol} or may not enable {cfg.sasl_mechanism}; check "
            "kafka.security_protocol and kafka.sasl_mechanism against the broker's listener."
        )
    lowered = text.lower()
    if "certificate" in lowered or "ssl" in lowered or "handshake failed" in lowered:
        return SourceError(
            f"{what}: the TLS handshake with {where} failed ({text}); check kafka.ssl_cafile (the CA "
            "that signed the broker's certificate) and that the listener speaks "
            f"{cfg.security_protocol}."
        )
    if "refused" in lowered or "unreachable" in lowered or "name or service" in lowered:
        return SourceError(
            f"{what}: cannot connect to {where} ({text}); check kafka.bootstrap and that the broker "
            f"is running. {_RUN_LOCAL}."
        )
    if "disconnected" in lowered or "reset by peer" in lowered:
        login = (
            f", or it refused the SASL login of user {cfg.sasl_username!r}: check "
            "kafka.sasl_username, kafka.sasl_password and kafka.sasl_mechanism"
            if cfg.security_protocol.startswith("SASL_")
            else ""
        )
        return SourceError(
            f"{what}: {where} closed the connection during the handshake; check that "
            f"kafka.security_protocol ({cfg.security_protocol}) matches the broker's listener{login}."
        )
    return SourceError(
        f"{what}: cannot bootstrap from {where} ({text}); check kafka.bootstrap and the security "
        f"settings. {_RUN_LOCAL}."
    )


def translate(
    exc: BaseException,
    cfg: KafkaConfig,
    doing: str,
    *,
    topic: str | None = None,
    causes: list[BaseException | str] | None = None,
) -> SourceError:
    """Turn a kafka-python (or socket/TLS) error into a :class:`SourceError` that says the fix.

    ``doing`` names the operation (``"reading offsets"``); ``topic`` is named when given;
    ``causes`` are connection failures seen while bootstrapping (see :func:`open_client`). The
    caller raises the result ``from exc``.
    """
    import kafka.errors as ke

    where = f"the Kafka broker at {cfg.bootstrap}"
    what = f"{doing} failed" + (f" for topic {topic!r}" if topic else "")
    if isinstance(exc, SourceError):
        return exc
    if isinstance(exc, ke.KafkaTimeoutError) and "bootstrap" in str(exc).lower():
        cause = _best_cause(causes or [])
        if cause is not None:
            return _explain_bootstrap(cause, cfg, what, where)
        return SourceError(
            f"{what}: cannot reach {where} (no answer to the bootstrap request); check "
            f"kafka.bootstrap and that the broker is running. {_RUN_LOCAL}."
        )
    if isinstance(exc, ke.KafkaConnectionError | ConnectionError | socket.gaierror):
        return SourceError(
            f"{what}: cannot connect to {where} ({exc}); check kafka.bootstrap and that the "
            f"broker is running. {_RUN_LOCAL}."
        )
    if isinstance(exc, ke.SaslAuthenticationFailedError | ke.UnsupportedSaslMechanismError):
        return _explain_bootstrap(exc, cfg, what, where)
    if isinstance(exc, ssl.SSLError):
        return SourceError(
            f"{what}: the TLS handshake with {where} failed ({exc.reason or exc}); check "
            "kafka.security_protocol and kafka.ssl_cafile (the CA that signed the broker's certificate)."
        )
    if isinstance(exc, ke.AuthorizationError):
        return SourceError(
            f"{what}: {where} denied access ({type(exc).__name__}); grant user "
            f"{cfg.sasl_username!r} the ACLs for the topic and group kafka.group={cfg.group!r}."
        )
    if isinstance(exc, ke.UnknownTopicOrPartitionError):
        return SourceError(
            f"{what}: topic {topic!r} does not exist at {cfg.bootstrap}; check the topic name "
            "(kafka.topic) or create it."
        )
    if isinstance(exc, ke.KafkaTimeoutError):
        return SourceError(
            f"{what}: {where} did not answer in time ({exc}); the broker may be overloaded or "
            "restarting; retry, or raise the timeout."
        )
    return SourceError(f"{what} at {cfg.bootstrap}: {type(exc).__name__}: {exc}")
