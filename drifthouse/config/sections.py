"""The sections of the configuration about data: Kafka, the store, windows, models, metrics.

See docs/configuration.md for every key.
"""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path
from typing import Literal

from pydantic import (
    Field,
    SecretStr,
    ValidationInfo,
    field_serializer,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from drifthouse.config.base import DurationMs, SecretDsn, Strict, mask_dsn
from drifthouse.detectors.change import ChangeConfig
from drifthouse.durations import format_duration

__all__ = [
    "CLUSTER_NAME",
    "ChangeDetectionConfig",
    "KafkaConfig",
    "MetricsConfig",
    "ModelConfig",
    "StoreConfig",
    "TrailingReference",
    "WindowConfig",
    "auto_span_of",
]


class KafkaConfig(Strict):
    """Where prediction, label and metric events come from."""

    bootstrap: str = "localhost:9092"
    topic: str = "predictions"
    labels_topic: str = "labels"
    metrics_topic: str = "metrics"
    group: str = "drifthouse"
    client_id: str = "drifthouse"
    partials_topic: str = "drifthouse-partials"
    partials_partitions: int = Field(
        1,
        ge=1,
        description="merge shards: partitions of the partials topic, each merged by one process "
        "(a model's windows, label join and rules live on one shard)",
    )
    partials_replication: int = Field(
        1, ge=1, description="replication factor of the partials topic when it is created"
    )
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
    snapshot_every: DurationMs = Field(
        30_000,
        ge=0,
        description="how often a merger saves its state (label join, metric-event windows, "
        "change detectors) to the store and commits its partials offset with it; a merge shard "
        "that moves re-reads the partials since; 0: with every batch",
    )
    session_timeout: DurationMs = Field(
        10_000,
        ge=6_000,
        le=1_800_000,
        description="how long the group waits for a worker that died without leaving (a "
        "SIGKILL, a lost host) before its partitions move; within the broker's "
        "group.min/max.session.timeout.ms (6 s to 30 min by default)",
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


#: A ClickHouse cluster as its servers' ``remote_servers`` name it, or a macro such as ``{cluster}``.
CLUSTER_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*|\{[A-Za-z0-9_]+\}")


class StoreConfig(Strict):
    """Where results go: an embedded ClickHouse folder (``path``) or a server (``dsn``)."""

    path: Path | None = None
    dsn: SecretDsn | None = None
    database: str = "drifthouse"
    batch_rows: int = Field(10_000, gt=0)
    flush_interval: DurationMs = 1_000
    spool_dir: Path | None = None
    spool_max_bytes: int = Field(256 * 1024 * 1024, gt=0)
    ttl_days: dict[str, int] = Field(default_factory=lambda: {"predictions": 30})
    cluster: str | None = Field(
        None,
        description="a cluster of the servers' remote_servers: the migrations create every table "
        "ON CLUSTER with a Replicated*MergeTree engine (docs/operations.md, 'A ClickHouse cluster')",
    )
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

    @model_validator(mode="after")
    def _cluster_of_servers(self) -> StoreConfig:
        if self.cluster is None:
            return self
        dsn = None if self.dsn is None else self.dsn.get_secret_value()
        if dsn is None or dsn.lower().startswith("chdb:"):
            raise ValueError(
                "'cluster' needs a ClickHouse server (store.dsn such as 'http://host:8123/drifthouse'"
                "): the embedded engine has no cluster and no Keeper to replicate with"
            )
        return self

    @field_validator("cluster")
    @classmethod
    def _cluster_name(cls, value: str | None) -> str | None:
        if value is not None and not CLUSTER_NAME.fullmatch(value):
            raise ValueError(
                "'cluster' must name a cluster of the servers' remote_servers, such as "
                f"'drifthouse', or a macro such as '{{cluster}}' (got {value!r})"
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


class WindowConfig(Strict):
    """An event-time window: tumbling (``size``) or sliding (``size`` and ``hop``); a window
    with ``from`` (the size of a shorter tumbling window of the list, its *base*) is built by
    the merger from the base windows' stored states instead of stream state
    (docs/configuration.md "windows")."""

    size: DurationMs
    hop: DurationMs | None = None
    base: DurationMs | None = Field(
        None,
        alias="from",
        description="build this window from the stored states of the tumbling window of this "
        "size (e.g. 1h for a 1d window): no stream state outlives the base window",
    )

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
        if self.base is not None:
            if self.base > 0 and self.hop is not None and self.hop % self.base:
                raise ValueError(
                    f"'hop' must be a whole number of base windows with 'from' (got hop "
                    f"{format_duration(self.hop)}, from {format_duration(self.base)}); "
                    "e.g. size 7d, hop 1d, from 1h"
                )
            if self.base <= 0 or self.base >= self.size or self.size % self.base:
                raise ValueError(
                    f"'from' must name a tumbling window of the list shorter than 'size' and "
                    f"dividing it (got size {format_duration(self.size)}, from "
                    f"{format_duration(self.base)}); e.g. size 1d from 1h"
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


class TrailingReference(Strict):
    """``reference: {trailing: 7d}``: each window compared with the merge of the model's
    previous windows over ``trailing``, on the bins of ``profile`` (a file, or ``auto``: the
    automatic reference's); docs/configuration.md "Trailing baselines"."""

    trailing: DurationMs = Field(
        gt=0, description="event time before each window whose windows are its baseline"
    )
    profile: Literal["auto"] | Path = Field(
        "auto", description="where the bins come from: a profile file, or 'auto'"
    )
    min_events: int = Field(
        100, ge=1, description="a baseline with fewer events gives the window no drift rows"
    )

    @field_validator("profile")
    @classmethod
    def _bins(cls, value: Literal["auto"] | Path) -> Literal["auto"] | Path:
        if value != "auto" and str(value) == "none":
            raise ValueError(
                "a trailing baseline compares windows on bins: name a profile file or 'auto' "
                "(bins of the automatic reference), got 'none'"
            )
        return value


class ModelConfig(Strict):
    """Per-model settings."""

    reference: Literal["auto"] | Path | TrailingReference | None = Field(
        None,
        description="a profile file, 'auto' (a reference built from the model's first traffic), "
        "or {trailing: 7d}: the model's previous windows (default: metrics.default_reference)",
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
    log_arrays: Literal["truncate", "hash"] = Field(
        "truncate",
        description="how the prediction log stores a feature that is an array (an embedding): "
        "its length and first log_array_head elements, or a SHA-256 of the whole array",
    )
    log_array_head: int = Field(
        8, ge=0, description="elements of an array the prediction log keeps when truncating"
    )
    threshold: float = Field(0.5, ge=0.0, le=1.0)
    task: Literal["auto", "classification", "regression"] = "auto"
    labels: bool = Field(
        True, description="hold this model's predictions for their delayed labels (label metrics)"
    )
    bounds: dict[str, tuple[float, float]] = Field(default_factory=dict)
    baseline_version: str | None = Field(
        None,
        min_length=1,
        description="the model_version every other version of this model is compared with "
        "(vs_* rows) in each window; default: the version with the most events in the window",
    )
    shadow_of: str | None = Field(
        None,
        description="this model is a shadow of that one: it scores the same requests (same "
        "event_id), and the primary's windows get the agreement of the two",
    )
    shadow_wait: DurationMs = Field(
        300_000,
        gt=0,
        description="event time a shadow's prediction may come after its primary's (and a "
        "primary's window waits for it)",
    )

    @property
    def profile_reference(self) -> Literal["auto"] | Path | None:
        """Where the bins come from: the profile file, ``auto``, or ``None`` (the default)."""
        if isinstance(self.reference, TrailingReference):
            return self.reference.profile
        return self.reference

    @property
    def trailing(self) -> TrailingReference | None:
        """The trailing baseline, when the model's windows are compared with earlier ones."""
        return self.reference if isinstance(self.reference, TrailingReference) else None

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
    reference = settings.profile_reference
    if reference == "auto" or (reference is None and metrics.default_reference == "auto"):
        return settings.reference_span or metrics.auto_reference_span
    return None


class ChangeDetectionConfig(Strict, ChangeConfig):
    """river's ADWIN and Page-Hinkley over each model's series of window metrics: whether they
    run, and their settings, the fields of :class:`~drifthouse.detectors.change.ChangeConfig`
    (defined there once, with their bounds)."""

    # pydantic takes the fields of a dataclass base, with the bounds in their Annotated
    # metadata; the detectors get a plain ChangeConfig (detector_config), which is what their
    # snapshots pickle.
    enabled: bool = True

    @field_validator("series", mode="before")
    @classmethod
    def _series_list(cls, value: object) -> object:
        # A YAML list, held as a tuple: a value that is no list is refused as a list field would.
        if not isinstance(value, list | tuple):
            raise PydanticCustomError("list_type", "Input should be a valid list")
        return value

    def detector_config(self) -> ChangeConfig | None:
        """The settings :class:`~drifthouse.detectors.change.ChangeDetectors` take, or ``None``
        when change detection is off or watches no series.

        >>> ChangeDetectionConfig(warmup=5).detector_config().warmup
        5
        >>> ChangeDetectionConfig(enabled=False).detector_config() is None
        True
        """
        if not (self.enabled and self.series):
            return None
        return ChangeConfig(
            **{f.name: getattr(self, f.name) for f in dataclasses.fields(ChangeConfig)}
        )


class MetricsConfig(Strict):
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
    label_join_max_bytes: int = Field(
        512 * 1024 * 1024,
        ge=1,
        description="per model, the most memory the label join holds (bytes); the oldest "
        "predictions and early labels go first beyond it",
    )
    label_rewrite_every: DurationMs = 600_000
    late_labels: bool = Field(
        False,
        description="store what the label join could not join (labels, unlabelled predictions, "
        "the label panes it forgets) for `drifthouse labels join` in ClickHouse",
    )
    late_labels_every: DurationMs = Field(
        3_600_000,
        description="with late_labels, how often each merge shard's merger joins its models' "
        "late labels in ClickHouse (at whole multiples of it, UTC); 0: never (run "
        "`drifthouse labels join` yourself)",
    )
    max_segment_values: int = Field(100, ge=1, le=10_000)
    max_segment_attributes: int = Field(
        16,
        ge=1,
        le=1_000,
        description="segment attributes per event (more: dead letter 'too_many_segments') "
        "and per model and window written apart (the ones with the most events)",
    )
    importance: bool = True
    # Which rows a window gets depends on its data; a rewrite withdraws the rows of its
    # earlier writes that it does not write again (docs/statistics.md, "Drift attribution").
    attribution_top_k: int = Field(
        3,
        ge=0,
        le=1_000,
        description="drift attribution: per drifted feature, the bins or categories with the "
        "largest PSI terms written (psi_contribution, js_contribution, mass_shift), and per "
        "segment attribute the values with the largest share of its drift (and the prediction's); "
        "0: none",
    )
    attribution_min_psi: float = Field(
        0.1,
        ge=0.0,
        description="drift attribution is written for a feature (or the prediction) whose PSI in "
        "the window is at least this; 0: for every feature with both sides non-empty",
    )
    default_reference: Literal["auto", "none"] = Field(
        "auto",
        description="what a model without a reference file gets: 'auto' (a reference built from "
        "its first traffic) or 'none' (serving metrics only)",
    )
    auto_reference_span: DurationMs = Field(
        3_600_000, gt=0, description="event time an automatic reference covers"
    )
    change_detection: ChangeDetectionConfig = Field(default_factory=ChangeDetectionConfig)
