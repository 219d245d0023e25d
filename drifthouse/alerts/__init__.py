"""Alerting: rules over metric rows, routes to receivers, delivery that loses nothing.

See ``docs/alerting.md``. The pieces, in the order data flows through them:

- :class:`RuleEngine` (``rules``): metric rows -> alert state changes, in event time;
- :class:`Dispatcher` (``routing``): routes, groups, inhibitions and silences -> notifications;
- :class:`DeliveryWorker` (``delivery``): an outbox and a thread per receiver;
- receivers (``receivers``): Slack, PagerDuty, webhook, Kafka, console;
- :class:`Alerting` (``service``): the three wired together for a worker.
"""

from __future__ import annotations

from drifthouse.alerts.backtest import BacktestReport, backtest
from drifthouse.alerts.base import MemoryReceiver, Notification, Receiver
from drifthouse.alerts.check import validate_alerting
from drifthouse.alerts.delivery import DeliveryWorker, Outbox
from drifthouse.alerts.routing import Dispatcher
from drifthouse.alerts.rules import RuleEngine, validate_rules
from drifthouse.alerts.service import Alerting
from drifthouse.config.default_rules import load_default_rules
from drifthouse.expr import Condition, ExprError, parse

__all__ = [
    "Alerting",
    "BacktestReport",
    "Condition",
    "DeliveryWorker",
    "Dispatcher",
    "ExprError",
    "MemoryReceiver",
    "Notification",
    "Outbox",
    "Receiver",
    "RuleEngine",
    "backtest",
    "load_default_rules",
    "parse",
    "validate_alerting",
    "validate_rules",
]
