"""The Kafka adapters of drifthouse, in one import.

* :mod:`~drifthouse.kafka.client`: ``KafkaConfig`` -> kafka-python keyword arguments and
  faust broker settings (TLS and SASL pass through to both); kafka-python errors -> ``SourceError``.
* :mod:`~drifthouse.kafka.admin`: create topics, partitions, committed and end offsets, lag.
* :mod:`~drifthouse.kafka.source`: :class:`KafkaRangeSource`, the bounded replay of a
  topic over a record-time range, without a consumer group.
* :mod:`~drifthouse.kafka.membership`: the source workers' consumer group of the predictions
  topic, cooperative-sticky through confluent-kafka (librdkafka settings:
  :func:`~drifthouse.kafka.client.librdkafka_config`).
* :mod:`~drifthouse.kafka.dead_letters`: :class:`KafkaDeadLetters`, dead letters to ``<topic>.dlq``
  with the error in headers.
"""

from __future__ import annotations

from drifthouse.kafka.admin import (
    PartitionLag,
    admin_client,
    beginning_offsets,
    committed_offsets,
    end_offsets,
    ensure_topics,
    lag,
    partitions_for,
)
from drifthouse.kafka.client import (
    client_kwargs,
    faust_broker,
    faust_credentials,
    librdkafka_config,
    open_client,
    redacted,
    ssl_context,
    translate,
)
from drifthouse.kafka.dead_letters import KafkaDeadLetters, dead_letter_headers, dead_letter_topic
from drifthouse.kafka.source import KafkaRangeSource, Progress

__all__ = [
    "KafkaDeadLetters",
    "KafkaRangeSource",
    "PartitionLag",
    "Progress",
    "admin_client",
    "beginning_offsets",
    "client_kwargs",
    "committed_offsets",
    "dead_letter_headers",
    "dead_letter_topic",
    "end_offsets",
    "ensure_topics",
    "faust_broker",
    "faust_credentials",
    "lag",
    "librdkafka_config",
    "open_client",
    "partitions_for",
    "redacted",
    "ssl_context",
    "translate",
]
