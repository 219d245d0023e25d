"""The configuration tree (``drifthouse.yaml``, docs/configuration.md).

One typed tree, loaded once by the CLI and passed down. YAML values may use ``${ENV_VAR}``,
``${ENV_VAR:-default}`` and ``${file:/path/to/secret}`` (relative to the config file's folder);
``$${`` writes a literal ``${``. Interpolation happens inside parsed YAML values, so a secret
containing ``#``, ``:`` or quotes cannot change the document's structure, and references in
comments are ignored.

Secrets (Slack token and webhook URL, PagerDuty routing key, webhook headers, Kafka SASL
password, ClickHouse DSN) are ``SecretStr`` and never appear in logs, reprs, ``str(config)``,
JSON dumps or error messages; a DSN prints with its password masked
(``http://user:***@host:8123/db``). :meth:`Config.describe` is the safe summary to log.

:func:`load_config` reports every problem at once, each located as ``file:line dotted.path``;
:func:`check_config` adds the rule checks and warnings of ``drifthouse check``.

Example
-------
>>> cfg = Config.model_validate({"windows": [{"size": "1h"}, {"size": "15m", "hop": "1m"}]})
>>> [w.name for w in cfg.windows]
['1h', '15m/1m']
>>> cfg.windows[1].pane_ms
60000
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_serializer,
    field_validator,
    model_validator,
)

from drifthouse.errors import ConfigError
from drifthouse.logs import get_logger, hide_secret, redact

__all__ = [
    "AlertingConfig",
    "ChangeDetectionConfig",
    "Config",
    "ConfigReport",
    "ConsoleReceiver",
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
    "WebhookReceiver",
    "WindowConfig",
    "check_config",
    "format_duration",
    "load_config",
    "mask_dsn",
    "parse_duration",
    "window_name",
]

log = get_logger("config")

_UNITS_MS = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_DURATION = re.compile(r"^\s*(\d+)\s*(ms|s|m|h|d|w)\s*$")


def parse_duration(value: object) -> int:
    """Parse ``"500ms"``, ``"30s"``, ``"15m"``, ``"1h"``, ``"7d"`` or integer seconds into milliseconds."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration such as '30s', '15m' or '1h' (got {value!r})")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"expected a non-negative duration (got {value})")
        return value * 1_000
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            return int(match.group(1)) * _UNITS_MS[match.group(2)]
    raise ValueError(
        f"expected a duration such as '30s', '15m', '1h' or '7d' (got {value!r} that is a {type(value).__name__})"
    )


def format_duration(ms: int) -> str:
    """The shortest exact spelling of a duration: 3_600_000 -> ``'1h'``."""
    for unit in ("w", "d", "h", "m", "s"):
        size = _UNITS_MS[unit]
        if ms and ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


DurationMs = Annotated[int, BeforeValidator(parse_duration)]


def window_name(text: str) -> str:
    """The name drifthouse gives a window spelled ``text``: ``'7d'`` -> ``'1w'``,
    ``'15m/60s'`` -> ``'15m/1m'``; globs and anything else come back unchanged.

    >>> window_name("7d"), window_name("60m/30s"), window_name("1*")
    ('1w', '1h/30s', '1*')
    """
    if any(ch in text for ch in "*?["):
        return text
    try:
        parts = [parse_duration(part) for part in text.split("/")]
    except ValueError:
        return text
    if len(parts) == 1 or (len(parts) == 2 and parts[0] == parts[1]):
        return format_duration(parts[0])
    if len(parts) == 2:
        return f"{format_duration(parts[0])}/{format_duration(parts[1])}"
    return text


def mask_dsn(dsn: str) -> str:
    """A DSN fit to print: the password (and any ``password=`` query value) becomes ``***``.

    >>> mask_dsn("http://user:s3cret@clickhouse:8123/drifthouse")
    'http://user:***@clickhouse:8123/drifthouse'
    >>> mask_dsn("chdb:///var/lib/drifthouse")
    'chdb:///var/lib/drifthouse'
    """
    try:
        parts = urlsplit(dsn)
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, _, hostport = netloc.rpartition("@")
            user, has_password, _ = userinfo.partition(":")
            netloc = f"{user}:***@{hostport}" if has_password else netloc
        query = re.sub(r"(?i)((?:password|passwd|pwd|secret|token)=)[^&]*", r"\1***", parts.query)
        if netloc == parts.netloc and query == parts.query:
            return dsn
        rebuilt = f"{parts.scheme}://{netloc}{parts.path}"
        return (
            rebuilt
            + (f"?{query}" if query else "")
            + (f"#{parts.fragment}" if parts.fragment else "")
        )
    except ValueError:
        return "***"


class SecretDsn(SecretStr):
    """A DSN kept secret because it may hold a password; prints with the password masked."""

    def _display(self) -> str:
        return mask_dsn(self.get_secret_value())


class _Strict(BaseModel):
    # hide_input_in_errors: a ValidationError printed anywhere must not echo a secret.
    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, hide_input_in_errors=True
    )


class KafkaConfig(_Strict):
    """Where prediction, label and metric events come from."""

    bootstrap: str = "localhost:9092"
    topic: str = "predictions"
    labels_topic: str = "labels"
    metrics_topic: str = "metrics"
    group: str = "drifthouse"
    client_id: str = "drifthouse"
    partials_topic: str = "drifthouse-partials"
    partitions: int = Field(
        3,
        ge=1,
        description="partitions of the predictions topic when `drifthouse run` creates it "
        "(an existing topic keeps its own)",
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    max_message_bytes: int = Field(1_000_000, gt=0)
    max_label_bytes: int = Field(
        1_024, gt=0, description="longest model, version, feature or segment name or value"
    )
    batch_size: int = Field(1_024, gt=0, description="events per micro-batch")
    timeout: DurationMs = Field(
        30_000,
        gt=0,
        description="how long a call to the broker waits before it fails (admin, replay, "
        "dead letters, produce)",
    )
    idle_after: DurationMs = Field(
        30_000, description="a partition quiet this long no longer holds windows back"
    )
    web_port: int | None = Field(
        None, description="faust's web endpoint (health, lag) on 127.0.0.1; off when unset"
    )

    @model_validator(mode="after")
    def _sasl(self) -> KafkaConfig:
        if self.security_protocol.startswith("SASL_"):
            missing = [
                name
                for name in ("sasl_mechanism", "sasl_username", "sasl_password")
                if getattr(self, name) is None
            ]
            if missing:
                raise ValueError(
                    f"security_protocol {self.security_protocol} needs {', '.join(missing)}; "
                    "set sasl_password from the environment, e.g. sasl_password: ${KAFKA_PASSWORD}"
                )
        return self

    @property
    def dlq_topic(self) -> str:
        return f"{self.topic}.dlq"


class StoreConfig(_Strict):
    """Where results go: an embedded ClickHouse folder (``path``) or a server (``dsn``)."""

    path: Path | None = None
    dsn: SecretDsn | None = None
    database: str = "drifthouse"
    batch_rows: int = Field(10_000, gt=0)
    flush_interval: DurationMs = 1_000
    spool_dir: Path | None = None
    spool_max_bytes: int = Field(256 * 1024 * 1024, gt=0)
    ttl_days: dict[str, int] = Field(default_factory=lambda: {"predictions": 30})
    serve_port: int | None = Field(
        None,
        ge=1,
        le=65535,
        description="read-only local HTTP endpoint for `drifthouse sql` while a worker holds the store",
    )
    serve_token_file: Path | None = Field(
        None,
        description="the endpoint's secret (0600), written at worker start; "
        "default: sql-endpoint.token in the store's folder",
    )
    serve_timeout: float = Field(
        30.0, gt=0, le=3600, description="seconds one `drifthouse sql` statement may run"
    )
    serve_max_rows: int = Field(
        100_000, gt=0, description="rows one `drifthouse sql` statement may return"
    )
    serve_max_memory: int = Field(
        1 << 30, gt=0, description="bytes of memory one `drifthouse sql` statement may use"
    )
    serve_max_request_bytes: int = Field(
        64 * 1024, gt=0, le=16 << 20, description="largest request body the endpoint reads"
    )

    @model_validator(mode="after")
    def _one_location(self, info: ValidationInfo) -> StoreConfig:
        if info.context and info.context.get("skip_cross_refs"):
            return self  # load_config checks this on the raw data, beside field errors
        if self.path is not None and self.dsn is not None:
            raise ValueError(
                "give either 'path' (embedded ClickHouse) or 'dsn' (a server), not both"
            )
        return self

    @field_validator("dsn")
    @classmethod
    def _dsn_scheme(cls, value: SecretDsn | None) -> SecretDsn | None:
        if value is None:
            return None
        scheme = value.get_secret_value().partition("://")[0].lower()
        if scheme not in {"http", "https", "clickhouse", "clickhouses", "chdb"}:
            raise ValueError(
                f"expected a DSN such as 'http://user:password@host:8123/drifthouse' or "
                f"'chdb:///absolute/folder' (got {mask_dsn(value.get_secret_value())!r}); "
                "for a folder of the embedded engine, use store.path instead"
            )
        return value

    @field_serializer("dsn", when_used="json")
    def _dump_dsn(self, value: SecretDsn | None) -> str | None:
        return None if value is None else str(value)

    @field_validator("ttl_days")
    @classmethod
    def _positive_ttl(cls, value: dict[str, int]) -> dict[str, int]:
        bad = sorted(name for name, days in value.items() if days < 1)
        if bad:
            raise ValueError(f"TTLs must be at least 1 day (got {bad})")
        return value

    @field_validator("database")
    @classmethod
    def _identifier(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
            raise ValueError(f"must be a plain identifier such as 'drifthouse' (got {value!r})")
        return value


class WindowConfig(_Strict):
    """An event-time window: tumbling (``size``) or sliding (``size`` and ``hop``)."""

    size: DurationMs
    hop: DurationMs | None = None

    @model_validator(mode="after")
    def _check(self) -> WindowConfig:
        if self.size <= 0:
            raise ValueError("window 'size' must be positive, e.g. '1h'")
        if self.hop is not None:
            if self.hop <= 0 or self.hop > self.size:
                raise ValueError(
                    f"'hop' must be positive and at most 'size' (got hop {format_duration(self.hop)}, size {format_duration(self.size)})"
                )
            if self.size % self.hop:
                raise ValueError(
                    f"'size' must be a whole number of hops (got size {format_duration(self.size)}, hop {format_duration(self.hop)}); e.g. size 15m with hop 1m"
                )
        return self

    @property
    def name(self) -> str:
        """``'1h'`` for tumbling, ``'15m/1m'`` for sliding windows (the ``window`` column)."""
        if self.hop is None or self.hop == self.size:
            return format_duration(self.size)
        return f"{format_duration(self.size)}/{format_duration(self.hop)}"

    @property
    def pane_ms(self) -> int:
        """Pane length: the window itself when tumbling, the hop when sliding."""
        return self.size if self.hop is None else math.gcd(self.size, self.hop)


class ModelConfig(_Strict):
    """Per-model settings."""

    reference: Literal["auto"] | Path | None = Field(
        None,
        description="a profile file, or 'auto': a reference built from the model's first traffic "
        "(default: metrics.default_reference)",
    )
    reference_span: DurationMs | None = Field(
        None, gt=0, description="event time an automatic reference covers (default: metrics')"
    )
    pii: list[str] = Field(default_factory=list)
    sample_rate: float = Field(0.01, ge=0.0, le=1.0)
    keep_when: str | None = Field(
        None,
        description="a rule expression over the prediction; matching predictions are always logged",
    )
    threshold: float = Field(0.5, ge=0.0, le=1.0)
    task: Literal["auto", "classification", "regression"] = "auto"
    labels: bool = Field(
        True, description="hold this model's predictions for their delayed labels (label metrics)"
    )
    bounds: dict[str, tuple[float, float]] = Field(default_factory=dict)

    @field_validator("bounds")
    @classmethod
    def _ordered_bounds(
        cls, value: dict[str, tuple[float, float]]
    ) -> dict[str, tuple[float, float]]:
        for name, (low, high) in value.items():
            if not low <= high:
                raise ValueError(f"bounds of {name!r} must be [low, high] with low <= high")
        return value


def auto_span_of(settings: ModelConfig, metrics: MetricsConfig) -> int | None:
    """The span (ms) of the automatic reference of a model with these settings, or ``None``
    (see :meth:`Config.auto_reference_span`)."""
    if settings.reference == "auto" or (
        settings.reference is None and metrics.default_reference == "auto"
    ):
        return settings.reference_span or metrics.auto_reference_span
    return None


#: The series change detection watches by default: serving metrics and the prediction's mean
#: and drift. Label metrics are left out: they are fed when their window is first written, with
#: the labels in by then, so their detections would follow label arrival.
DEFAULT_CHANGE_SERIES = (
    "error_rate_5xx",
    "latency_p95",
    "__prediction__:mean",
    "__prediction__:psi",
)


class ChangeDetectionConfig(_Strict):
    """river's ADWIN and Page-Hinkley over each model's series of window metrics."""

    enabled: bool = True
    series: list[str] = Field(
        default_factory=lambda: list(DEFAULT_CHANGE_SERIES),
        description=(
            "model-level metric names, or feature:metric; label metrics (accuracy, mae, ...) are "
            "fed at their window's first write, so their changes depend on label arrival times"
        ),
    )
    warmup: int = Field(30, ge=2)
    min_std: float = Field(1e-3, gt=0.0)
    adwin_delta: float = Field(0.002, gt=0.0, lt=1.0)
    adwin_clock: int = Field(1, ge=1)
    adwin_grace_period: int = Field(10, ge=1)
    adwin_min_window_length: int = Field(5, ge=1)
    ph_min_instances: int = Field(30, ge=1)
    ph_delta: float = Field(0.005, ge=0.0)
    ph_threshold: float = Field(50.0, gt=0.0)
    ph_alpha: float = Field(0.9999, gt=0.0, le=1.0)


class MetricsConfig(_Strict):
    """How metrics are computed (docs/metrics.md)."""

    psi_bins: int = Field(10, ge=2, le=1_000)
    ks_bins: int = Field(100, ge=10, le=10_000)
    eps: float = Field(1e-4, gt=0.0, lt=0.1)
    top_categories: int = Field(100, ge=1, le=100_000)
    allowed_lateness: DurationMs = 30_000
    max_future: DurationMs = 3_600_000
    latency_relative_accuracy: float = Field(0.005, gt=0.0, le=0.01)
    label_horizon: DurationMs = 7 * 86_400_000
    label_join_max_entries: int = Field(1_000_000, ge=1)
    label_rewrite_every: DurationMs = 600_000
    max_segment_values: int = Field(100, ge=1, le=10_000)
    max_segment_attributes: int = Field(
        16,
        ge=1,
        le=1_000,
        description="segment attributes per event (more: dead letter 'too_many_segments') "
        "and per model and window written apart (the ones with the most events)",
    )
    importance: bool = True
    default_reference: Literal["auto", "none"] = Field(
        "auto",
        description="what a model without a reference file gets: 'auto' (a reference built from "
        "its first traffic) or 'none' (serving metrics only)",
    )
    auto_reference_span: DurationMs = Field(
        3_600_000, gt=0, description="event time an automatic reference covers"
    )
    change_detection: ChangeDetectionConfig = Field(default_factory=ChangeDetectionConfig)


class RuleConfig(_Strict):
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

    @field_validator("window")
    @classmethod
    def _window_name(cls, value: str) -> str:
        # A window is named by its shortest spelling (7d is '1w'): match it however it is written.
        return window_name(value)


class RouteConfig(_Strict):
    """An ordered route: alerts whose labels match go to its receivers."""

    match: dict[str, str] = Field(default_factory=dict)
    receivers: list[str]
    group_by: list[str] = Field(default_factory=list)
    group_wait: DurationMs = 30_000
    group_interval: DurationMs = 300_000
    repeat_interval: DurationMs = 4 * 3_600_000
    continue_: bool = Field(False, alias="continue")


class InhibitConfig(_Strict):
    """While a ``source`` alert fires, ``target`` alerts with the same ``equal`` labels are muted."""

    source: dict[str, str]
    target: dict[str, str]
    equal: list[str] = Field(default_factory=list)


def _http_url(value: str | None) -> str | None:
    if value is not None and urlsplit(value).scheme not in {"http", "https"}:
        raise ValueError("expected an http:// or https:// URL")
    return value


class SlackReceiver(_Strict):
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


class PagerDutyReceiver(_Strict):
    type: Literal["pagerduty"]
    routing_key: SecretStr
    url: str | None = None

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        return _http_url(value)


class WebhookReceiver(_Strict):
    type: Literal["webhook"]
    url: SecretStr = Field(description="secret: a webhook's path or query often is its credential")
    headers: dict[str, SecretStr] = Field(default_factory=dict)

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: SecretStr) -> SecretStr:
        _http_url(value.get_secret_value())
        return value


class KafkaReceiver(_Strict):
    type: Literal["kafka"]
    topic: str


class ConsoleReceiver(_Strict):
    type: Literal["console"]


ReceiverConfig = Annotated[
    SlackReceiver | PagerDutyReceiver | WebhookReceiver | KafkaReceiver | ConsoleReceiver,
    Field(discriminator="type"),
]


class AlertingConfig(_Strict):
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


class Config(_Strict):
    """The whole configuration tree."""

    kafka: KafkaConfig = Field(default_factory=KafkaConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)
    windows: list[WindowConfig] = Field(
        default_factory=lambda: [WindowConfig.model_validate({"size": "1h"})]
    )
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    pii: list[str] = Field(
        default_factory=list,
        description="PII names (features, segment attributes, event_id) of every model",
    )
    models: dict[str, ModelConfig] = Field(default_factory=dict)
    rules: list[RuleConfig] = Field(default_factory=list)
    routes: list[RouteConfig] = Field(default_factory=list)
    inhibit: list[InhibitConfig] = Field(default_factory=list)
    receivers: dict[str, ReceiverConfig] = Field(default_factory=dict)
    alerting: AlertingConfig = Field(default_factory=AlertingConfig)
    base_dir: Path = Field(default_factory=Path.cwd, exclude=True)

    @model_validator(mode="after")
    def _global_pii(self) -> Config:
        # The global list applies to every model: merge it in once, so each model's `pii` is
        # the whole truth wherever it is read.
        if self.pii:
            merged = {
                name: model.model_copy(
                    update={"pii": [*model.pii, *(f for f in self.pii if f not in model.pii)]}
                )
                for name, model in self.models.items()
            }
            object.__setattr__(self, "models", merged)
        return self

    @model_validator(mode="after")
    def _cross_refs(self, info: ValidationInfo) -> Config:
        # load_config checks references itself, with a location per problem.
        if info.context and info.context.get("skip_cross_refs"):
            return self
        problems = _reference_problems(
            windows=[(i, w.name) for i, w in enumerate(self.windows)],
            receivers=set(self.receivers),
            routes=[
                (i, j, name)
                for i, r in enumerate(self.routes)
                for j, name in enumerate(r.receivers)
            ],
            rules=[(i, r.window) for i, r in enumerate(self.rules)],
        )
        errors = [f"{_loc(loc)}: {msg}" for loc, msg in problems if not _is_warning(msg)]
        if errors:
            raise ValueError("; ".join(errors))
        return self

    _source: str = PrivateAttr(default="")
    _lines: dict[str, int] = PrivateAttr(default_factory=dict)

    def store_dsn(self) -> str:
        """The clickhouse-connect DSN: ``chdb:///abs/path`` for a folder, else the configured DSN.

        Relative folders resolve against the config file's folder; clickhouse-connect would
        otherwise read ``chdb://./data`` as location ``.`` and database ``data``.
        This is the secret value: log :meth:`masked_store_dsn` instead.
        """
        if self.store.dsn is not None:
            return self.store.dsn.get_secret_value()
        path = self.store.path if self.store.path is not None else Path("drifthouse-data")
        if not path.is_absolute():
            path = (self.base_dir / path).resolve()
        return f"chdb://{path}"

    def sql_token_path(self) -> Path:
        """Where the SQL endpoint's token lives: ``store.serve_token_file``, else in the store's folder."""
        if self.store.serve_token_file is not None:
            return self.resolve_path(self.store.serve_token_file)
        dsn = self.store_dsn()
        if dsn.startswith("chdb://"):
            return Path(dsn[len("chdb://") :]) / "sql-endpoint.token"
        return self.base_dir / "drifthouse-sql.token"

    def masked_store_dsn(self) -> str:
        """:meth:`store_dsn` with any password replaced by ``***``, fit for logs and output."""
        return mask_dsn(self.store_dsn())

    def model(self, name: str) -> ModelConfig:
        """Settings of model ``name`` (defaults, with the global ``pii``, when it is not configured)."""
        return self.models.get(name) or ModelConfig(pii=list(self.pii))

    def resolve_path(self, path: Path) -> Path:
        """``path`` made absolute against the config file's folder."""
        return path if path.is_absolute() else (self.base_dir / path).resolve()

    def reference_path(self, model: str) -> Path | None:
        """The absolute path of ``model``'s reference profile, if one is configured."""
        reference = self.model(model).reference
        return None if reference is None or reference == "auto" else self.resolve_path(reference)

    def auto_reference_span(self, model: str) -> int | None:
        """The span (ms) of ``model``'s automatic reference, or ``None`` when it has none: a
        model runs on an automatic reference when its ``reference`` is ``auto``, or when it
        names no file (listed without one, or not listed) and ``metrics.default_reference`` is
        ``auto``.

        >>> Config().auto_reference_span("unlisted")
        3600000
        >>> Config(models={"m": {"reference": "m.json"}}).auto_reference_span("m") is None
        True
        """
        return auto_span_of(self.model(model), self.metrics)

    def where(self, path: str) -> str:
        """``'drifthouse.yaml:12 rules[0].when'``: a dotted path located in the loaded file.

        Paths the file does not spell out take the line of their nearest ancestor.
        """
        probe = path
        while probe and probe not in self._lines:
            probe = _parent(probe)
        line = self._lines.get(probe)
        place = f"{self._source}:{line}" if line and self._source else self._source
        return f"{place} {path}".strip()

    def describe(self) -> dict[str, Any]:
        """A summary safe to log or print: no secret values, only whether each secret is set.

        >>> Config(store={"dsn": "http://ingest:s3cret@ch:8123/drifthouse"}).describe()["store"]
        'http://ingest:***@ch:8123/drifthouse'
        """
        kafka = self.kafka
        return {
            "source": self._source or None,
            "kafka": {
                "bootstrap": kafka.bootstrap,
                "topics": [kafka.topic, kafka.labels_topic, kafka.metrics_topic],
                "group": kafka.group,
                "security_protocol": kafka.security_protocol,
                "sasl_password": _is_set(kafka.sasl_password),
            },
            "store": self.masked_store_dsn(),
            "database": self.store.database,
            "windows": [w.name for w in self.windows],
            "models": sorted(self.models),
            "rules": [r.name for r in self.rules],
            "routes": len(self.routes),
            "receivers": {
                name: {"type": r.type, **_secret_flags(r)} for name, r in self.receivers.items()
            },
        }


def _is_set(secret: SecretStr | None) -> str:
    return "set" if secret is not None and secret.get_secret_value() else "unset"


def _secret_flags(receiver: BaseModel) -> dict[str, str]:
    return {
        name: _is_set(value)
        for name, value in receiver
        if isinstance(value, SecretStr) or name in {"token", "webhook_url", "routing_key"}
    }


def _is_warning(message: str) -> bool:
    return message.startswith("warning: ")


def _reference_problems(
    *,
    windows: list[tuple[int, str]],
    receivers: set[str] | None,
    routes: list[tuple[int, int, str]],
    rules: list[tuple[int, str]],
) -> list[tuple[tuple[int | str, ...], str]]:
    """Problems between sections: duplicate windows, unknown receivers, rules on no window."""
    problems: list[tuple[tuple[int | str, ...], str]] = []
    first: dict[str, int] = {}
    for i, name in windows:
        if name in first:
            problems.append(
                (("windows", i), f"window {name} is configured twice (also windows[{first[name]}])")
            )
        first.setdefault(name, i)
    if receivers is not None:
        for i, j, name in routes:
            if name not in receivers:
                defined = ", ".join(sorted(receivers)) or "none"
                problems.append(
                    (
                        ("routes", i, "receivers", j),
                        f"receiver {name!r} is not defined under 'receivers' (defined: {defined}); "
                        "add it there or fix the name",
                    )
                )
    names = set(first) or {"1h"}
    for i, window in rules:
        if window != "*" and not any(ch in window for ch in "*?[") and window not in names:
            problems.append(
                (
                    ("rules", i, "window"),
                    f"warning: window {window!r} is not configured (configured: "
                    f"{', '.join(sorted(names))}), so this rule never fires",
                )
            )
    return problems


# -- loading -----------------------------------------------------------------------------------

_ENV = re.compile(r"\$(\$)?\{(file:)?([^}:]+)(?::-([^}]*))?\}")
_SECRET_KEYS = frozenset(
    {"token", "webhook_url", "routing_key", "sasl_password", "dsn", "password", "headers"}
)
_RESOLVER: Any = yaml.resolver.Resolver()
_RECEIVER_TAGS = frozenset({"slack", "pagerduty", "webhook", "kafka", "console"})


@dataclass
class _Loaded:
    """What reading the YAML gave: data, line index, problems so far and secrets to redact."""

    source: str
    base_dir: Path
    data: Any = None
    lines: dict[str, int] = field(default_factory=dict)
    problems: list[tuple[str, str]] = field(default_factory=list)
    secrets: set[str] = field(default_factory=set)
    key_secrets: set[str] = field(default_factory=set)  # values under secret keys only
    unresolved: set[str] = field(default_factory=set)  # paths whose ${...} could not be filled
    visited: set[int] = field(default_factory=set)  # ids of nodes walked (aliases share nodes)

    def where(self, loc: tuple[int | str, ...]) -> str:
        return _where_path(self, _loc(loc))

    def redact(self, message: str) -> str:
        # Any piece of a secret, not only the whole value (see drifthouse.logs.redact).
        message = redact(message, self.secrets)
        return re.sub(r"(\w+://[^/\s:@]*:)[^@\s/]+@", r"\1***@", message)


def _interpolate_nodes(node: yaml.Node, loaded: _Loaded, path: tuple[int | str, ...] = ()) -> None:
    """Substitute ``${...}`` in scalar values (never keys), index lines, find duplicate keys."""
    if id(node) in loaded.visited:
        return  # an alias of a node already walked (or a recursive anchor)
    loaded.visited.add(id(node))
    loaded.lines.setdefault(_loc(path), node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key, value in node.value:
            name = key.value if isinstance(key, yaml.ScalarNode) else str(key.start_mark.line + 1)
            if name in seen:
                loaded.problems.append(
                    (
                        f"{loaded.source}:{key.start_mark.line + 1} {_loc((*path, name))}",
                        f"duplicate key {name!r} (first on line {seen[name]}); "
                        "YAML would silently keep only the last one",
                    )
                )
            seen.setdefault(name, key.start_mark.line + 1)
            child = (*path, name)
            # A problem with a value is reported on its key's line.
            loaded.lines.setdefault(_loc(child), key.start_mark.line + 1)
            _interpolate_nodes(value, loaded, child)
            if name in _SECRET_KEYS:
                _collect_secrets(value, loaded, everywhere=name != "dsn")
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _interpolate_nodes(item, loaded, (*path, i))
    elif isinstance(node, yaml.ScalarNode) and "${" in node.value:
        value = _substitute(node.value, loaded, path, node.start_mark.line + 1)
        if value != node.value:
            node.value = value
            if node.style is None:  # plain scalars get their type from the substituted text
                node.tag = _RESOLVER.resolve(yaml.ScalarNode, value, (True, False))


def _collect_secrets(node: yaml.Node, loaded: _Loaded, *, everywhere: bool = True) -> None:
    """Values under a secret key; ``everywhere``: masked in all output of the process too (a
    DSN is not: its host and database are not secret, and its password is masked as such)."""
    if isinstance(node, yaml.ScalarNode):
        if len(node.value) >= 4:
            loaded.secrets.add(node.value)
            if everywhere:
                loaded.key_secrets.add(node.value)
    elif isinstance(node, yaml.MappingNode):
        for _key, value in node.value:
            _collect_secrets(value, loaded, everywhere=everywhere)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _collect_secrets(item, loaded, everywhere=everywhere)


def _substitute(text: str, loaded: _Loaded, path: tuple[int | str, ...], line: int) -> str:
    def replace(match: re.Match[str]) -> str:
        escaped, is_file, name, default = match.groups()
        if escaped:
            return match.group(0)[1:]
        where = f"{loaded.source}:{line} {_loc(path)}"
        loaded.unresolved.add(_loc(path))
        if is_file:
            secret_path = Path(name.strip())
            if not secret_path.is_absolute():
                secret_path = loaded.base_dir / secret_path
            try:
                value = secret_path.read_text(encoding="utf-8").strip()
                loaded.unresolved.discard(_loc(path))
            except OSError as exc:
                loaded.problems.append(
                    (where, f"secret file {str(secret_path)!r} cannot be read ({exc.strerror})")
                )
                return ""
        else:
            env = os.environ.get(name)
            if env is not None or default is not None:
                loaded.unresolved.discard(_loc(path))
            if env is None:
                if default is not None:
                    return default
                loaded.problems.append(
                    (
                        where,
                        f"environment variable {name} is not set; set it, or write "
                        f"${{{name}:-default}} for a default",
                    )
                )
                return ""
            value = env
        if len(value) >= 4:
            loaded.secrets.add(value)
        return value

    return _ENV.sub(replace, text)


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _parent(path: str) -> str:
    """``'rules[0].when'`` -> ``'rules[0]'`` -> ``'rules'`` -> ``''``."""
    cut = max(path.rfind("."), path.rfind("["))
    return path[: max(cut, 0)]


def _read(path: Path) -> _Loaded:
    """Read, parse and interpolate ``path``; problems so far are collected, not raised."""
    source = str(path)
    loaded = _Loaded(source=source, base_dir=path.resolve().parent)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError(
            f"cannot read config file {source}: {reason}",
            [(source, f"cannot be read ({reason}); pass an existing YAML file with -c")],
        ) from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        what = " ".join(
            str(part)
            for part in (getattr(exc, "context", None), getattr(exc, "problem", None))
            if part
        )
        message = f"not valid YAML: {what or 'syntax error'}"
        line_text = (
            text.splitlines()[mark.line]
            if mark is not None and mark.line < len(text.splitlines())
            else ""
        )
        if "${" in line_text:
            message += (
                '; inside { } or [ ], quote ${...} references, e.g. {token: "${SLACK_BOT_TOKEN}"}'
            )
        raise ConfigError(f"{where}: not valid YAML", [(where, message)]) from None
    if node is None:
        loaded.data = {}
        return loaded
    _interpolate_nodes(node, loaded)
    try:
        loader = yaml.SafeLoader("")
        loaded.data = loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        loaded.problems.append((where, f"not valid YAML: {getattr(exc, 'problem', 'bad value')}"))
        loaded.data = {}
    return loaded


def _raw_reference_problems(data: Mapping[str, Any]) -> list[tuple[tuple[int | str, ...], str]]:
    """:func:`_reference_problems` on raw YAML data, skipping parts that are malformed."""
    windows: list[tuple[int, str]] = []
    for i, item in enumerate(_as_list(data.get("windows"))):
        try:
            windows.append((i, WindowConfig.model_validate(item).name))
        except ValidationError:
            continue
    raw_receivers = data.get("receivers")
    receivers = set(map(str, raw_receivers)) if isinstance(raw_receivers, dict) else None
    if raw_receivers is None:
        receivers = set()
    routes = [
        (i, j, name)
        for i, route in enumerate(_as_list(data.get("routes")))
        if isinstance(route, dict)
        for j, name in enumerate(_as_list(route.get("receivers")))
        if isinstance(name, str)
    ]
    rules = [
        (i, window_name(rule["window"]))
        for i, rule in enumerate(_as_list(data.get("rules")))
        if isinstance(rule, dict) and isinstance(rule.get("window"), str)
    ]
    problems = _reference_problems(windows=windows, receivers=receivers, routes=routes, rules=rules)
    store = data.get("store")
    if isinstance(store, dict) and store.get("path") is not None and store.get("dsn") is not None:
        problems.append(
            (("store",), "give either 'path' (embedded ClickHouse) or 'dsn' (a server), not both")
        )
    return problems


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _pydantic_problems(exc: ValidationError, loaded: _Loaded) -> Iterator[tuple[str, str]]:
    for err in exc.errors(include_input=False, include_url=False, include_context=False):
        loc = tuple(err["loc"])
        # A discriminated union adds the receiver's type tag after its name: drop it.
        if len(loc) >= 3 and loc[0] == "receivers" and loc[2] in _RECEIVER_TAGS:
            loc = loc[:2] + loc[3:]
        if _loc(loc) in loaded.unresolved:
            continue  # the missing variable is the problem, already reported
        message = err["msg"]
        for prefix in ("Value error, ", "Assertion failed, "):
            message = message.removeprefix(prefix)
        yield loaded.where(loc), loaded.redact(message)


def _load(path: str | Path) -> tuple[Config | None, _Loaded, list[tuple[str, str]]]:
    """Everything :func:`load_config` and :func:`check_config` share; never raises on content."""
    loaded = _read(Path(path))
    for secret in loaded.key_secrets:
        hide_secret(secret)  # masked wherever this process prints or logs from now on
    data = loaded.data
    problems = list(loaded.problems)
    warnings: list[tuple[str, str]] = []
    if not isinstance(data, dict):
        problems.append(
            (
                loaded.source,
                "expected a mapping of sections (kafka, store, windows, models, rules, ...) "
                f"(got a {type(data).__name__})",
            )
        )
        return None, loaded, problems
    for loc, message in _raw_reference_problems(data):
        (warnings if _is_warning(message) else problems).append(
            (loaded.where(loc), loaded.redact(message))
        )
    config: Config | None = None
    try:
        config = Config.model_validate(
            {**data, "base_dir": loaded.base_dir}, context={"skip_cross_refs": True}
        )
    except ValidationError as exc:
        problems.extend(_pydantic_problems(exc, loaded))
    if config is not None:
        config._source = loaded.source
        config._lines = loaded.lines
    return config, loaded, sorted(problems, key=_line_key) + sorted(warnings, key=_line_key)


def _line_key(problem: tuple[str, str]) -> int:
    """Sort problems by their line in the file (unlocated ones first)."""
    place = problem[0].split(" ", 1)[0]
    line = place.rpartition(":")[2]
    return int(line) if line.isdigit() else 0


def load_config(path: str | Path) -> Config:
    """Load, interpolate and validate ``drifthouse.yaml``.

    Raises
    ------
    ConfigError
        Listing every problem as ``(location, message)``, the location being
        ``file:line dotted.path`` (e.g. ``drifthouse.yaml:14 receivers.slack.token``).
        Messages never contain secret values.
    """
    config, loaded, found = _load(path)
    problems = [p for p in found if not _is_warning(p[1])]
    if problems or config is None:
        raise ConfigError(f"{len(problems)} problem(s) in {loaded.source}", problems)
    for where, message in found:
        if _is_warning(message):
            log.warning("config.warning", where=where, problem=message.removeprefix("warning: "))
    log.debug("config.loaded", **config.describe())
    return config


def _rule_problems(loaded: _Loaded) -> list[tuple[str, str]]:
    """The rules engine's checks on every rule that is well formed, even if others are not."""
    # Imported here: the rules engine depends on this module, not the other way round.
    from drifthouse.alerts.rules import validate_rules

    data = loaded.data if isinstance(loaded.data, dict) else {}
    rules: list[tuple[int, RuleConfig]] = []
    for i, raw in enumerate(_as_list(data.get("rules"))):
        try:
            rules.append((i, RuleConfig.model_validate(raw)))
        except ValidationError:
            continue  # already reported by load_config
    problems: list[tuple[str, str]] = []
    first: dict[str, int] = {}
    for i, rule in rules:
        if rule.name in first:
            problems.append(
                (
                    loaded.where(("rules", i, "name")),
                    f"duplicate rule name {rule.name!r} (also rules[{first[rule.name]}]); "
                    "names key alert state, so they must be unique",
                )
            )
        first.setdefault(rule.name, i)
        for where, message in validate_rules([rule], prefix="rules"):
            path = f"rules[{i}]" + where.removeprefix("rules[0]")
            problems.append((_where_path(loaded, path), message))
    return problems


def _where_path(loaded: _Loaded, path: str) -> str:
    probe = path
    while probe and probe not in loaded.lines:
        probe = _parent(probe)
    line = loaded.lines.get(probe)
    return f"{loaded.source}:{line} {path}" if line else f"{loaded.source} {path}"


def _pii_key_problems(config: Config, errors: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """A PII key too short is an error; one not set (yet) a warning: `run` needs it."""
    from drifthouse.pii import PII_KEY_ENV, pii_key_from_env

    needing = [f"models.{name}.pii" for name, model in config.models.items() if model.pii]
    if config.pii:
        needing.insert(0, "pii")
    if not needing:
        return []
    where = config.where(needing[0])
    if not os.environ.get(PII_KEY_ENV):
        return [
            (
                where,
                f"PII names are listed but {PII_KEY_ENV} is not set here; `drifthouse run` needs "
                "it (at least 32 bytes, e.g. `openssl rand -hex 32`)",
            )
        ]
    try:
        pii_key_from_env(config.models)
    except ConfigError as exc:
        errors.extend((where, message) for _, message in exc.problems)
    return []


@dataclass(frozen=True)
class ConfigReport:
    """What ``drifthouse check`` found: the config (when it loaded), errors and warnings.

    Each problem is ``(location, message)``; a location is ``file:line dotted.path``.
    """

    config: Config | None
    errors: list[tuple[str, str]]
    warnings: list[tuple[str, str]]

    @property
    def ok(self) -> bool:
        return not self.errors


def check_config(path: str | Path) -> ConfigReport:
    """Every problem in a config file: structure, rules and the files it refers to.

    Beyond :func:`load_config`: rule conditions, templates and globs (errors), unknown metric
    names and windows no rule can match (warnings), reference profiles that do not exist
    (warnings: ``drifthouse profile`` makes them).

    Raises
    ------
    ConfigError
        Only when the file cannot be read or is not YAML at all.
    """
    config, loaded, found = _load(path)
    for where, message in _rule_problems(loaded):
        found.append((where, loaded.redact(message)))
    found.sort(key=_line_key)
    errors = [p for p in found if not _is_warning(p[1])]
    warnings = [(where, msg.removeprefix("warning: ")) for where, msg in found if _is_warning(msg)]
    if config is None:
        return ConfigReport(None, errors, warnings)
    # Imported here: the alerting package depends on this module, not the other way round.
    from drifthouse.alerts.check import validate_routing

    for where, message in validate_routing(config):
        target = warnings if _is_warning(message) else errors
        target.append(
            (_where_path(loaded, where), loaded.redact(message.removeprefix("warning: ")))
        )
    warnings.extend(_pii_key_problems(config, errors))
    for name in sorted(config.models):
        reference = config.reference_path(name)
        if reference is not None and not reference.is_file():
            warnings.append(
                (
                    config.where(f"models.{name}.reference"),
                    f"reference profile {str(reference)!r} does not exist yet; build it with "
                    f"`drifthouse profile INPUT --model {name} --out {reference}`",
                )
            )
    return ConfigReport(config, errors, sorted(warnings, key=_line_key))
