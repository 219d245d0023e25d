"""The sections of the configuration about alerting: rules, routes, inhibitions, receivers.

See docs/configuration.md and docs/alerting.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator

from drifthouse.config.base import DurationMs, Strict
from drifthouse.durations import window_name

__all__ = [
    "AlertingConfig",
    "ConsoleReceiver",
    "InhibitConfig",
    "KafkaReceiver",
    "PagerDutyReceiver",
    "ReceiverConfig",
    "RouteConfig",
    "RuleConfig",
    "SlackReceiver",
    "WebhookReceiver",
]


class RuleConfig(Strict):
    """One alerting rule: a metric, a scope, a condition and what to do when it holds."""

    name: str
    metric: str
    when: str
    clear: str | None = None
    for_: int = Field(1, alias="for", ge=1)
    keep_firing_for: int = Field(
        0, ge=0, description="windows to keep firing after the condition clears"
    )
    severity: Literal["critical", "warning"] = "warning"
    model: str = "*"
    model_version: str = "*"
    feature: str = "*"
    segment: str = "*"
    window: str = "*"
    labels: dict[str, str] = Field(default_factory=dict)
    message: str | None = None
    season: DurationMs = Field(
        7 * 86_400_000, gt=0, description="how far back `seasonal` looks: the same window then"
    )

    @field_validator("window")
    @classmethod
    def _window_name(cls, value: str) -> str:
        # A window is named by its shortest spelling (7d is '1w'): match it however it is written.
        return window_name(value)


class RouteConfig(Strict):
    """An ordered route: alerts whose labels match go to its receivers."""

    match: dict[str, str] = Field(default_factory=dict)
    receivers: list[str]
    group_by: list[str] = Field(default_factory=list)
    group_wait: DurationMs = 30_000
    group_interval: DurationMs = 300_000
    repeat_interval: DurationMs = 4 * 3_600_000
    continue_: bool = Field(False, alias="continue")


class InhibitConfig(Strict):
    """While a ``source`` alert fires, ``target`` alerts with the same ``equal`` labels are muted."""

    source: dict[str, str]
    target: dict[str, str]
    equal: list[str] = Field(default_factory=list)


def _http_url(value: str | None) -> str | None:
    if value is not None and urlsplit(value).scheme not in {"http", "https"}:
        raise ValueError("expected an http:// or https:// URL")
    return value


class SlackReceiver(Strict):
    type: Literal["slack"]
    channel: str | None = None
    token: SecretStr | None = None
    webhook_url: SecretStr | None = None
    base_url: str | None = None
    grafana_url: str | None = None

    @field_validator("base_url", "grafana_url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        return _http_url(value)

    @model_validator(mode="after")
    def _auth(self) -> SlackReceiver:
        if self.webhook_url is None and (self.token is None or not self.channel):
            raise ValueError("a slack receiver needs 'token' and 'channel', or 'webhook_url'")
        return self


class PagerDutyReceiver(Strict):
    type: Literal["pagerduty"]
    routing_key: SecretStr
    url: str | None = None

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        return _http_url(value)


class WebhookReceiver(Strict):
    type: Literal["webhook"]
    url: SecretStr = Field(description="secret: a webhook's path or query often is its credential")
    headers: dict[str, SecretStr] = Field(default_factory=dict)

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: SecretStr) -> SecretStr:
        _http_url(value.get_secret_value())
        return value


class KafkaReceiver(Strict):
    type: Literal["kafka"]
    topic: str


class ConsoleReceiver(Strict):
    type: Literal["console"]


ReceiverConfig = Annotated[
    SlackReceiver | PagerDutyReceiver | WebhookReceiver | KafkaReceiver | ConsoleReceiver,
    Field(discriminator="type"),
]


class AlertingConfig(Strict):
    """Where alert state and undelivered notifications are kept."""

    outbox_dir: Path | None = None
    max_attempts: int = Field(8, ge=1)
    max_backoff: DurationMs = 300_000
    repeat_wall_clock: DurationMs = Field(
        3_600_000,
        description="a repeat of a still-firing group also waits this long in wall-clock time "
        "since the group's last notification to that receiver (0 turns it off), so a backfill "
        "that runs event time fast does not flood receivers",
    )
