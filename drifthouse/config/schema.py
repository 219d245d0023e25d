"""The whole configuration tree, :class:`Config`: every section, and what it answers (the
store's DSN, a model's settings and reference, where a path is in the loaded file)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, PrivateAttr, SecretStr, ValidationInfo, model_validator

from drifthouse.config.alerting import (
    AlertingConfig,
    InhibitConfig,
    ReceiverConfig,
    RouteConfig,
    RuleConfig,
)
from drifthouse.config.base import Strict, mask_dsn
from drifthouse.config.checks import reference_problems, trailing_problems
from drifthouse.config.default_rules import load_default_rules
from drifthouse.config.locations import dotted, is_warning, locate
from drifthouse.config.sections import (
    KafkaConfig,
    MetricsConfig,
    ModelConfig,
    StoreConfig,
    WindowConfig,
    auto_span_of,
)
from drifthouse.durations import format_duration

__all__ = ["Config"]


class Config(Strict):
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
    # Left out, the shipped rules (drifthouse/config/default_rules.yaml); `rules: []` is none.
    rules: list[RuleConfig] = Field(default_factory=load_default_rules)
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
    def _window_bases(self) -> Config:
        # A derived window's base must be a tumbling window of the list that is itself kept in
        # the stream: its stored states are what the derived window is built from.
        bases = {w.size for w in self.windows if w.base is None and w.hop in (None, w.size)}
        for i, w in enumerate(self.windows):
            if w.base is not None and w.base not in bases:
                raise ValueError(
                    f"windows.{i}.from: {format_duration(w.base)} must be the size of a tumbling "
                    f"window of the list kept in the stream (tumbling sizes: "
                    f"{', '.join(format_duration(b) for b in sorted(bases)) or 'none'}); "
                    f"add {{size: {format_duration(w.base)}}} to 'windows'"
                )
        return self

    @model_validator(mode="after")
    def _shadows(self) -> Config:
        # A shadow pairs with a primary that is a model of the list and no shadow itself.
        for name, model in self.models.items():
            primary = model.shadow_of
            if primary is None:
                continue
            if primary == name or primary not in self.models:
                raise ValueError(
                    f"models.{name}.shadow_of: {primary!r} must be another model listed under "
                    f"'models' (got {primary!r}; listed: {', '.join(sorted(self.models))})"
                )
            off = [m for m in (name, primary) if not self.models[m].labels]
            if off:
                raise ValueError(
                    f"models.{name}.shadow_of: pairing reads the predictions held for labels, "
                    f"but {off[0]!r} has labels: false; remove it"
                )
            if self.models[primary].shadow_of is not None:
                raise ValueError(
                    f"models.{name}.shadow_of: {primary!r} is itself a shadow (of "
                    f"{self.models[primary].shadow_of!r}); name the model it shadows"
                )
        return self

    @model_validator(mode="after")
    def _cross_refs(self, info: ValidationInfo) -> Config:
        # load_config checks references itself, with a location per problem.
        if info.context and info.context.get("skip_cross_refs"):
            return self
        problems = reference_problems(
            windows=[(i, w.name) for i, w in enumerate(self.windows)],
            receivers=set(self.receivers),
            routes=[
                (i, j, name)
                for i, r in enumerate(self.routes)
                for j, name in enumerate(r.receivers)
            ],
            rules=[(i, r.window) for i, r in enumerate(self.rules)],
        )
        problems += trailing_problems(
            {name: m.trailing.trailing for name, m in self.models.items() if m.trailing},
            self.windows,
        )
        errors = [f"{dotted(where)}: {msg}" for where, msg in problems if not is_warning(msg)]
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
        reference = self.model(model).profile_reference
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
        return locate(self._source, self._lines, path)

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
