"""A Kafka topic (e.g. retrain requests): one JSON record per notification, keyed by its group."""

from __future__ import annotations

from typing import Any

import msgspec

from drifthouse.alerts.base import Notification
from drifthouse.errors import NotifyError, NotifyRetryable

__all__ = ["KafkaReceiver"]


class KafkaReceiver:
    """Produces each notification to ``topic`` with kafka-python and waits for the broker's ack.

    The record's key is the group key, so the notifications of one group stay in order in one
    partition; the value's ``id`` lets consumers drop a notification delivered twice.
    """

    def __init__(
        self,
        *,
        topic: str,
        bootstrap: str = "localhost:9092",
        name: str = "kafka",
        timeout: float = 10.0,
        **producer: Any,
    ) -> None:
        self.name = name
        self.topic = topic
        self.bootstrap = bootstrap
        self.timeout = timeout
        self._producer_args = producer
        self._producer: Any = None

    def _get_producer(self) -> Any:
        if self._producer is None:
            from kafka import KafkaProducer
            from kafka.errors import KafkaError

            try:
                self._producer = KafkaProducer(
                    bootstrap_servers=self.bootstrap, acks="all", retries=0, **self._producer_args
                )
            except KafkaError as exc:
                raise NotifyRetryable(
                    f"kafka {self.name}: cannot connect to {self.bootstrap} ({exc})"
                ) from exc
        return self._producer

    def send(self, notification: Notification) -> None:
        from kafka.errors import KafkaError

        producer = self._get_producer()
        try:
            future = producer.send(
                self.topic,
                key=notification.group_key.encode(),
                value=msgspec.json.encode(notification),
            )
            future.get(timeout=self.timeout)
        except KafkaError as exc:
            if getattr(exc, "retriable", True):
                raise NotifyRetryable(f"kafka {self.name}: {exc}") from exc
            raise NotifyError(f"kafka {self.name}: the broker refused the record ({exc})") from exc

    def close(self) -> None:
        if self._producer is not None:
            self._producer.close(timeout=self.timeout)
            self._producer = None
