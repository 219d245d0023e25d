"""Receivers: where notifications go. One module each, one method each (``send``).

:func:`build_receivers` turns the ``receivers`` section of ``drifthouse.yaml`` into receiver
objects; :class:`~drifthouse.alerts.base.MemoryReceiver` is the in-memory fake for tests.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from drifthouse.alerts.base import MemoryReceiver, Receiver
from drifthouse.alerts.receivers.console import ConsoleReceiver
from drifthouse.alerts.receivers.kafka import KafkaReceiver
from drifthouse.alerts.receivers.pagerduty import PagerDutyReceiver
from drifthouse.alerts.receivers.slack import SlackMessageIndex, SlackReceiver
from drifthouse.alerts.receivers.webhook import WebhookReceiver
from drifthouse.config import (
    ConsoleReceiver as ConsoleConfig,
)
from drifthouse.config import (
    KafkaReceiver as KafkaConfig,
)
from drifthouse.config import (
    PagerDutyReceiver as PagerDutyConfig,
)
from drifthouse.config import (
    SlackReceiver as SlackConfig,
)
from drifthouse.config import (
    WebhookReceiver as WebhookConfig,
)
from drifthouse.files import private_dir
from drifthouse.sinks.alert_state import AlertStateStore

__all__ = [
    "ConsoleReceiver",
    "KafkaReceiver",
    "MemoryReceiver",
    "PagerDutyReceiver",
    "Receiver",
    "SlackReceiver",
    "WebhookReceiver",
    "build_receiver",
    "build_receivers",
]


def build_receiver(
    name: str,
    config: Any,
    *,
    state_dir: Path | None = None,
    kafka_bootstrap: str = "localhost:9092",
    http: httpx.Client | None = None,
    state_store: AlertStateStore | None = None,
) -> Receiver:
    """One receiver from its config model (``drifthouse.config.SlackReceiver`` and friends).

    ``state_dir`` (usually ``alerting.outbox_dir``) keeps the Slack message index, so resolved
    alerts update the right messages after a restart; ``state_store`` keeps it in the store
    instead, so they do after a move to another host too.
    """
    if isinstance(config, SlackConfig):
        index_path = None
        if state_dir is not None and state_store is None:
            index_path = state_dir / f"slack-{name}.json"
            private_dir(state_dir)
        return SlackReceiver(
            name=name,
            token=config.token.get_secret_value() if config.token is not None else None,
            channel=config.channel,
            webhook_url=config.webhook_url.get_secret_value()
            if config.webhook_url is not None
            else None,
            base_url=config.base_url,
            grafana_url=config.grafana_url,
            index=SlackMessageIndex(index_path, store=state_store, key=name),
        )
    if isinstance(config, PagerDutyConfig):
        return PagerDutyReceiver(
            name=name,
            routing_key=config.routing_key.get_secret_value(),
            url=config.url,
            client=http,
        )
    if isinstance(config, WebhookConfig):
        headers = {k: v.get_secret_value() for k, v in config.headers.items()}
        return WebhookReceiver(
            name=name, url=config.url.get_secret_value(), headers=headers, client=http
        )
    if isinstance(config, KafkaConfig):
        return KafkaReceiver(name=name, topic=config.topic, bootstrap=kafka_bootstrap)
    if isinstance(config, ConsoleConfig):
        return ConsoleReceiver(name=name)
    raise TypeError(f"receiver {name!r}: unknown config type {type(config).__name__}")


def build_receivers(
    receivers: Mapping[str, Any],
    *,
    state_dir: Path | None = None,
    kafka_bootstrap: str = "localhost:9092",
    http: httpx.Client | None = None,
    state_store: AlertStateStore | None = None,
) -> dict[str, Receiver]:
    """Every receiver of ``config.receivers``:
    ``build_receivers(cfg.receivers, state_dir=cfg.alerting.outbox_dir, kafka_bootstrap=cfg.kafka.bootstrap)``."""
    return {
        name: build_receiver(
            name,
            conf,
            state_dir=state_dir,
            kafka_bootstrap=kafka_bootstrap,
            http=http,
            state_store=state_store,
        )
        for name, conf in receivers.items()
    }
