"""The configuration tree (``drifthouse.yaml``, docs/configuration.md).

One typed tree, loaded once by the CLI and passed down. The package, in the order a file is read:

- :mod:`~drifthouse.config.base`: the strict model every section derives from, durations, DSNs;
- :mod:`~drifthouse.config.sections` and :mod:`~drifthouse.config.alerting`: the sections;
- :mod:`~drifthouse.config.schema`: :class:`Config`, the whole tree;
- :mod:`~drifthouse.config.loading`: :func:`load_config` (YAML and ``${...}`` -> :class:`Config`);
- :mod:`~drifthouse.config.checks`: checks across sections, run while loading;
- :mod:`~drifthouse.config.alert_checks` and :mod:`~drifthouse.config.templates`: rules,
  routes and message templates, checked as ``drifthouse check`` does;
- :mod:`~drifthouse.config.report`: :func:`check_config`, everything ``drifthouse check`` finds.

Secrets (Slack token and webhook URL, PagerDuty routing key, webhook headers, Kafka SASL
password, ClickHouse DSN) are ``SecretStr`` and never appear in logs, reprs, ``str(config)``,
JSON dumps or error messages; a DSN prints with its password masked
(``http://user:***@host:8123/db``). :meth:`Config.describe` is the safe summary to log.

Example
-------
>>> cfg = Config.model_validate({"windows": [{"size": "1h"}, {"size": "15m", "hop": "1m"}]})
>>> [w.name for w in cfg.windows]
['1h', '15m/1m']
>>> cfg.windows[1].pane_ms
60000
"""

from __future__ import annotations

from drifthouse.config.alerting import (
    AlertingConfig,
    ConsoleReceiver,
    InhibitConfig,
    KafkaReceiver,
    PagerDutyReceiver,
    ReceiverConfig,
    RouteConfig,
    RuleConfig,
    SlackReceiver,
    WebhookReceiver,
)
from drifthouse.config.base import DurationMs, SecretDsn, mask_dsn
from drifthouse.config.loading import load_config
from drifthouse.config.report import ConfigReport, check_config
from drifthouse.config.schema import Config
from drifthouse.config.sections import (
    ChangeDetectionConfig,
    KafkaConfig,
    MetricsConfig,
    ModelConfig,
    StoreConfig,
    TrailingReference,
    WindowConfig,
    auto_span_of,
)
from drifthouse.durations import format_duration, parse_duration, window_name

__all__ = [
    "AlertingConfig",
    "ChangeDetectionConfig",
    "Config",
    "ConfigReport",
    "ConsoleReceiver",
    "DurationMs",
    "InhibitConfig",
    "KafkaConfig",
    "KafkaReceiver",
    "MetricsConfig",
    "ModelConfig",
    "PagerDutyReceiver",
    "ReceiverConfig",
    "RouteConfig",
    "RuleConfig",
    "SecretDsn",
    "SlackReceiver",
    "StoreConfig",
    "TrailingReference",
    "WebhookReceiver",
    "WindowConfig",
    "auto_span_of",
    "check_config",
    "format_duration",
    "load_config",
    "mask_dsn",
    "parse_duration",
    "window_name",
]
