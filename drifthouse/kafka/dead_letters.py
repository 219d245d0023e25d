"""Dead letters to Kafka: refused messages go to ``<topic>.dlq`` with the error in headers.

Each dead letter is the raw value of the refused message, keyed by its original key, with these
headers (UTF-8 bytes):

====================== ======================================================================
``drifthouse.reason``  short reason (``invalid_json``, ``schema``, ``late``, ``too_large``, ...)
``drifthouse.path``    JSON path of the offending field (``$.features.amount``; ``$`` for all)
``drifthouse.error``   what was expected and what came
``drifthouse.topic``   topic of the original message
``drifthouse.partition`` its partition (decimal)
``drifthouse.offset``  its offset (decimal)
``drifthouse.truncated`` only when the value was cut to fit: the original size in bytes
====================== ======================================================================

A dead letter must never fail for being large: values beyond what the broker accepts are cut to
fit (``drifthouse.truncated`` says so), and a record the broker still refuses as too large is
sent again cut to 64 KiB. :meth:`KafkaDeadLetters.flush` returns once the broker acknowledged
every dead letter (``acks=all``), so the stream commits its offsets only after that.

Example
-------
>>> from drifthouse.config import KafkaConfig
>>> dlq = KafkaDeadLetters(KafkaConfig(), "predictions")  # doctest: +SKIP
>>> dlq.send(message, DecodeError("invalid_json", "$", "expected a JSON object"))  # doctest: +SKIP
>>> dlq.flush()  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from drifthouse.config import KafkaConfig
from drifthouse.errors import DecodeError
from drifthouse.kafka.admin import ensure_topics
from drifthouse.kafka.client import open_client, translate
from drifthouse.logs import get_logger
from drifthouse.stream.sources import Message

__all__ = ["KafkaDeadLetters", "dead_letter_headers", "dead_letter_topic"]

log = get_logger("stream.kafka")

_ERROR_MAX = 4_096  # header text kept per dead letter
_KEY_MAX = 4_096
_OVERHEAD = 16_384  # record and batch framing plus headers, kept free below the size limit
_FALLBACK_VALUE = 65_536  # a refused oversize record is sent again cut to this


def dead_letter_topic(topic: str) -> str:
    """The topic the dead letters of ``topic`` go to.

    >>> dead_letter_topic("predictions")
    'predictions.dlq'
    """
    return f"{topic}.dlq"


def _cut(text: str, limit: int) -> bytes:
    raw = text.encode("utf-8", errors="replace")
    return raw if len(raw) <= limit else raw[: limit - 3] + b"..."


def dead_letter_headers(
    message: Message, error: DecodeError, *, truncated_from: int | None = None
) -> list[tuple[str, bytes]]:
    """The headers of one dead letter (see the module table)."""
    headers = [
        ("drifthouse.reason", _cut(error.reason, 256)),
        ("drifthouse.path", _cut(error.path, 1_024)),
        ("drifthouse.error", _cut(str(error), _ERROR_MAX)),
        ("drifthouse.topic", _cut(message.topic, 1_024)),
        ("drifthouse.partition", str(message.partition).encode()),
        ("drifthouse.offset", str(message.offset).encode()),
    ]
    if truncated_from is not None:
        headers.append(("drifthouse.truncated", str(truncated_from).encode()))
    return headers


@dataclass
class _Pending:
    future: Any
    message: Message
    error: DecodeError
    cut: bool


class KafkaDeadLetters:
    """The :class:`~drifthouse.stream.dead_letters.DeadLetters` of a Kafka source.

    Parameters
    ----------
    cfg:
        Broker address and security settings; ``cfg.max_message_bytes`` caps a dead letter.
    topic:
        The source topic; dead letters go to ``<topic>.dlq``.
    create:
        Create ``<topic>.dlq`` (``partitions`` partitions) when it does not exist.
    timeout_ms:
        Bound on bootstrapping, each request and on :meth:`flush` (default ``cfg.timeout``).
    """

    def __init__(
        self,
        cfg: KafkaConfig,
        topic: str,
        *,
        create: bool = True,
        partitions: int = 1,
        timeout_ms: int | None = None,
    ) -> None:
        from kafka import KafkaProducer

        self.cfg = cfg
        self.topic = dead_letter_topic(topic)
        self.timeout_ms = timeout_ms = cfg.timeout if timeout_ms is None else timeout_ms
        self.count = 0
        self.max_value = max(1_024, cfg.max_message_bytes - _OVERHEAD)
        self._pending: list[_Pending] = []
        if create:
            ensure_topics(cfg, {self.topic: partitions}, timeout_ms=timeout_ms)
        self._producer: Any = open_client(
            KafkaProducer,
            cfg,
            "opening the dead-letter producer",
            topic=self.topic,
            acks="all",
            # kafka-python's idempotent producer treats a record the broker refuses as too
            # large as fatal and fails every later send; dead letters need the retry with a
            # cut value, and a rare duplicate dead letter is harmless.
            enable_idempotence=False,
            linger_ms=5,
            max_request_size=cfg.max_message_bytes + _OVERHEAD,
            bootstrap_timeout_ms=timeout_ms,
            request_timeout_ms=timeout_ms,
            max_block_ms=timeout_ms,
            delivery_timeout_ms=max(2 * timeout_ms, 30_000),
        )

    def _produce(self, message: Message, error: DecodeError, limit: int) -> _Pending:
        from kafka.errors import KafkaError

        value = message.value
        cut = len(value) > limit
        headers = dead_letter_headers(message, error, truncated_from=len(value) if cut else None)
        key = (
            message.key
            if message.key is None or len(message.key) <= _KEY_MAX
            else message.key[:_KEY_MAX]
        )
        try:
            future = self._producer.send(
                self.topic, value=value[:limit] if cut else value, key=key, headers=headers
            )
        except (KafkaError, OSError) as exc:
            raise translate(exc, self.cfg, "sending a dead letter", topic=self.topic) from exc
        return _Pending(future, message, error, cut)

    def send(self, message: Message, error: DecodeError) -> None:
        """Queue one dead letter; :meth:`flush` waits until the broker has it."""
        self._pending.append(self._produce(message, error, self.max_value))
        self.count += 1

    def flush(self) -> None:
        """Return once every dead letter sent so far is acknowledged by the broker.

        Raises
        ------
        SourceError
            The broker did not take them; the caller must not commit the offsets they cover.
        """
        from kafka.errors import KafkaError, MessageSizeTooLargeError, RecordListTooLargeError

        if not self._pending:
            return
        retry: list[_Pending] = []
        try:
            self._producer.flush(timeout=self.timeout_ms / 1000)
            for item in self._pending:
                try:
                    item.future.get(timeout=self.timeout_ms / 1000)
                except (MessageSizeTooLargeError, RecordListTooLargeError):
                    # The broker's limit (message.max.bytes) is below ours: send it again, cut.
                    log.warning(
                        "kafka.dead_letter_cut", topic=self.topic, bytes=len(item.message.value)
                    )
                    retry.append(self._produce(item.message, item.error, _FALLBACK_VALUE))
            self._pending = retry
            if retry:
                self._producer.flush(timeout=self.timeout_ms / 1000)
                for item in retry:
                    item.future.get(timeout=self.timeout_ms / 1000)
        except (KafkaError, OSError) as exc:
            raise translate(exc, self.cfg, "delivering dead letters", topic=self.topic) from exc
        self._pending = []

    def close(self) -> None:
        """Flush, then close the producer."""
        try:
            self.flush()
        finally:
            self._producer.close(timeout=self.timeout_ms / 1000)

    def __repr__(self) -> str:
        return f"KafkaDeadLetters(topic={self.topic!r}, sent={self.count})"
