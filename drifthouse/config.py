"""The configuration tree (``drifthouse.yaml``, CONTRACTS section 7).

One typed tree, loaded once by the CLI and passed down. YAML values may use ``${ENV_VAR}``,
``${ENV_VAR:-default}`` and ``${file:/path/to/secret}``; secrets are ``SecretStr`` and never
appear in logs, reprs or error messages.

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
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from drifthouse.errors import ConfigError

__all__ = [
    "AlertingConfig",
    "Config",
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
    "SlackReceiver",
    "StoreConfig",
    "WebhookReceiver",
    "WindowConfig",
    "format_duration",
    "load_config",
    "parse_duration",
]

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


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class KafkaConfig(_Strict):
    """Where prediction, label and metric events come from."""

    bootstrap: str = "localhost:9092"
    topic: str = "predictions"
    labels_topic: str = "labels"
    metrics_topic: str = "metrics"
    group: str = "drifthouse"
    client_id: str = "drifthouse"
    partials_topic: str = "drifthouse-partials"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    max_message_bytes: int = Field(1_000_000, gt=0)
    batch_size: int = Field(1_024, gt=0, description="events per micro-batch")

    @property
    def dlq_topic(self) -> str:
        return f"{self.topic}.dlq"


class StoreConfig(_Strict):
    """Where results go: an embedded ClickHouse folder (``path``) or a server (``dsn``)."""

    path: Path | None = None
    dsn: SecretStr | None = None
    database: str = "drifthouse"
    batch_rows: int = Field(10_000, gt=0)
    flush_interval: DurationMs = 1_000
    spool_dir: Path | None = None
    spool_max_bytes: int = Field(256 * 1024 * 1024, gt=0)
    ttl_days: dict[str, int] = Field(default_factory=lambda: {"predictions": 30})
    serve_port: int | None = Field(
        None, description="read-only local HTTP endpoint for `drifthouse sql` while a worker holds the store"
    )

    @model_validator(mode="after")
    def _one_location(self) -> StoreConfig:
        if self.path is not None and self.dsn is not None:
            raise ValueError("give either 'path' (embedded ClickHouse) or 'dsn' (a server), not both")
        return self

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

    reference: Path | None = None
    pii: list[str] = Field(default_factory=list)
    sample_rate: float = Field(0.01, ge=0.0, le=1.0)
    keep_when: str | None = Field(
        None, description="a rule expression over the prediction; matching predictions are always logged"
    )
    threshold: float = Field(0.5, ge=0.0, le=1.0)
    task: Literal["auto", "classification", "regression"] = "auto"
    bounds: dict[str, tuple[float, float]] = Field(default_factory=dict)


class MetricsConfig(_Strict):
    """How metrics are computed (CONTRACTS section 3)."""

    psi_bins: int = Field(10, ge=2, le=1_000)
    ks_bins: int = Field(100, ge=10, le=10_000)
    eps: float = Field(1e-4, gt=0.0, lt=0.1)
    top_categories: int = Field(100, ge=1, le=100_000)
    allowed_lateness: DurationMs = 30_000
    max_future: DurationMs = 3_600_000
    latency_relative_accuracy: float = Field(0.005, gt=0.0, le=0.01)
    label_horizon: DurationMs = 7 * 86_400_000


class RuleConfig(_Strict):
    """One alerting rule: a metric, a scope, a condition and what to do when it holds."""

    name: str
    metric: str
    when: str
    clear: str | None = None
    for_: int = Field(1, alias="for", ge=1)
    keep_firing_for: int = Field(0, ge=0, description="windows to keep firing after the condition clears")
    severity: Literal["critical", "warning"] = "warning"
    model: str = "*"
    model_version: str = "*"
    feature: str = "*"
    segment: str = "*"
    window: str = "*"
    labels: dict[str, str] = Field(default_factory=dict)
    message: str | None = None


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


class SlackReceiver(_Strict):
    type: Literal["slack"]
    channel: str | None = None
    token: SecretStr | None = None
    webhook_url: SecretStr | None = None
    base_url: str | None = None
    grafana_url: str | None = None

    @model_validator(mode="after")
    def _auth(self) -> SlackReceiver:
        if self.webhook_url is None and (self.token is None or not self.channel):
            raise ValueError("a slack receiver needs 'token' and 'channel', or 'webhook_url'")
        return self


class PagerDutyReceiver(_Strict):
    type: Literal["pagerduty"]
    routing_key: SecretStr
    url: str | None = None


class WebhookReceiver(_Strict):
    type: Literal["webhook"]
    url: str
    headers: dict[str, SecretStr] = Field(default_factory=dict)


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


class Config(_Strict):
    """The whole configuration tree."""

    kafka: KafkaConfig = Field(default_factory=KafkaConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)
    windows: list[WindowConfig] = Field(default_factory=lambda: [WindowConfig(size=3_600_000)])
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    models: dict[str, ModelConfig] = Field(default_factory=dict)
    rules: list[RuleConfig] = Field(default_factory=list)
    routes: list[RouteConfig] = Field(default_factory=list)
    inhibit: list[InhibitConfig] = Field(default_factory=list)
    receivers: dict[str, ReceiverConfig] = Field(default_factory=dict)
    alerting: AlertingConfig = Field(default_factory=AlertingConfig)
    base_dir: Path = Field(default_factory=Path.cwd, exclude=True)

    @model_validator(mode="after")
    def _cross_refs(self) -> Config:
        names = [w.name for w in self.windows]
        if len(set(names)) != len(names):
            raise ValueError(f"windows must be distinct (got {names})")
        for i, route in enumerate(self.routes):
            for receiver in route.receivers:
                if receiver not in self.receivers:
                    raise ValueError(
                        f"routes[{i}] names receiver {receiver!r}, which is not defined under 'receivers' "
                        f"(defined: {sorted(self.receivers)})"
                    )
        return self

    def store_dsn(self) -> str:
        """The clickhouse-connect DSN: ``chdb:///abs/path`` for a folder, else the configured DSN.

        Relative folders resolve against the config file's folder; clickhouse-connect would
        otherwise read ``chdb://./data`` as location ``.`` and database ``data``.
        """
        if self.store.dsn is not None:
            return self.store.dsn.get_secret_value()
        path = self.store.path if self.store.path is not None else Path("drifthouse-data")
        if not path.is_absolute():
            path = (self.base_dir / path).resolve()
        return f"chdb://{path}"

    def model(self, name: str) -> ModelConfig:
        """Settings of model ``name`` (defaults when it is not configured)."""
        return self.models.get(name) or ModelConfig()


_ENV = re.compile(r"\$\{(file:)?([^}:]+)(?::-([^}]*))?\}")


def _interpolate(text: str, source: str) -> str:
    """Replace ``${VAR}``, ``${VAR:-default}`` and ``${file:PATH}`` in the raw YAML text."""
    problems: list[tuple[str, str]] = []

    def replace(match: re.Match[str]) -> str:
        is_file, name, default = match.group(1), match.group(2), match.group(3)
        line = text.count("\n", 0, match.start()) + 1
        if is_file:
            try:
                return Path(name).read_text().strip()
            except OSError as exc:
                problems.append((f"{source}:{line}", f"secret file {name!r} cannot be read ({exc.strerror})"))
                return ""
        value = os.environ.get(name)
        if value is None:
            if default is not None:
                return default
            problems.append(
                (f"{source}:{line}", f"environment variable {name} is not set; set it or write ${{{name}:-default}}")
            )
            return ""
        return value

    result = _ENV.sub(replace, text)
    if problems:
        raise ConfigError(f"{len(problems)} problem(s) in {source}", problems)
    return result


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def _line_of(node: yaml.Node | None, loc: tuple[int | str, ...]) -> int | None:
    """The 1-based line of the YAML node at ``loc`` (or of its nearest ancestor)."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.value == part or (isinstance(part, str) and key.value == part.rstrip("_")):
                    node = value
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            return line
        line = node.start_mark.line + 1
    return line


def load_config(path: str | Path) -> Config:
    """Load, interpolate and validate ``drifthouse.yaml``; raise :class:`ConfigError` listing every problem.

    Error messages never contain the values of secrets: pydantic is told not to echo inputs.
    """
    path = Path(path)
    source = str(path)
    try:
        raw = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"cannot read config file {source}: {exc.strerror}",
            [(source, f"cannot be read ({exc.strerror}); pass an existing file with -c")],
        ) from exc
    text = _interpolate(raw, source)
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        raise ConfigError(f"{where}: not valid YAML", [(where, f"not valid YAML: {getattr(exc, 'problem', exc)}")]) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{source}: expected a mapping at the top level",
            [(source, f"expected a mapping of sections (kafka, store, windows, ...) (got a {type(data).__name__})")],
        )
    data["base_dir"] = path.resolve().parent
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        problems: list[tuple[str, str]] = []
        for err in exc.errors(include_input=False, include_url=False):
            loc = tuple(err["loc"])
            # Union members add their tag to the location; drop it for readability.
            loc = tuple(p for p in loc if not (isinstance(p, str) and p in {"slack", "pagerduty", "webhook", "kafka", "console"} and loc.index(p) > 0 and loc[loc.index(p) - 1] != "receivers"))
            line = _line_of(node, loc)
            where = f"{source}:{line}" if line else source
            problems.append((f"{where} {_loc(loc)}", err["msg"]))
        raise ConfigError(f"{len(problems)} problem(s) in {source}", problems) from None
