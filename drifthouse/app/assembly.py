"""The one place a run is put together: its stages, merger, sink and alert stage.

Every run takes its parts from here: the live worker (:mod:`drifthouse.app.worker`), file and
topic replays (:mod:`drifthouse.app.replay`, ``drifthouse replay``), the in-process
:class:`~drifthouse.app.pipeline.Pipeline` and the demo. Nothing else builds a
:class:`~drifthouse.stream.stage.PartitionStage` or a :class:`~drifthouse.stream.merge.MergeStage`,
so a setting reaches every run alike. The flow is the one ``docs/architecture.md`` draws:

1. :func:`load_profiles`: the reference profiles the configuration names;
2. :class:`RunParts`: the window specs and model sketches every stage of a run shares, and from
   them each source partition's stage (decode -> window -> sketch) and the merge stage
   (merge -> evaluate -> sink);
3. :func:`open_sink`: the store, migrated, with the references stored;
4. :class:`AlertStage`: the rules over each written window, alert rows to the sink.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from drifthouse.alerts import Alerting
from drifthouse.alerts.rules import Baselines
from drifthouse.config import Config, MetricsConfig
from drifthouse.detectors.model_sketch import ModelSketch
from drifthouse.detectors.reference import Profile
from drifthouse.errors import ConfigError
from drifthouse.profiles.sketches import Sketches
from drifthouse.rows import MetricRow
from drifthouse.sinks import ClickHouseSink, migrate, open_store, store_reference
from drifthouse.sinks.alert_state import AlertStateStore
from drifthouse.sinks.base import Sink
from drifthouse.sinks.predictions import PredictionLog
from drifthouse.stream.dead_letters import DeadLetters
from drifthouse.stream.merge import MergeStage, WindowResult
from drifthouse.stream.stage import Checkpoint, PartitionStage
from drifthouse.stream.windows import WindowSpec

__all__ = [
    "AlertStage",
    "RunParts",
    "baselines_for",
    "live_alerting",
    "load_profiles",
    "open_alerting",
    "open_sink",
    "replay_alerts",
]

OnWindow = Callable[[WindowResult], None]


def load_profiles(config: Config) -> dict[str, Profile]:
    """The reference profiles named under ``models:`` (paths relative to the config file); a
    file that cannot be read, or that is another model's, is a :class:`ConfigError` (a profile
    that cannot be decoded stays a :class:`ProfileError`)."""
    out: dict[str, Profile] = {}
    for model, settings in config.models.items():
        named = settings.profile_reference
        if named is None or named == "auto":
            continue  # an automatic reference is built from the traffic (stream.auto_reference)
        path = named if named.is_absolute() else config.base_dir / named
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ConfigError(
                f"models.{model}.reference: cannot read {path} ({exc.strerror}); build it with "
                f"`drifthouse profile INPUT --model {model} --out {named}`"
            ) from exc
        profile = Profile.from_json(data)
        pii = sorted({f.name for f in profile.features} & set(settings.pii))
        if pii:
            raise ConfigError(
                f"models.{model}.reference: {path} profiles PII feature(s) {pii}, whose values would "
                f"reach the store; rebuild it with `drifthouse profile ... -c CONFIG` (which leaves "
                f"them out) or `--exclude {pii[0]}`"
            )
        if profile.model != model:
            raise ConfigError(
                f"models.{model}.reference: {path} is the profile of model {profile.model!r}"
            )
        out[model] = profile
    return out


def baselines_for(profiles: Mapping[str, Profile]) -> Baselines:
    """``(model, version, feature, metric) -> baseline`` from reference profiles, for rules."""
    sketches: dict[str, ModelSketch] = {}

    def baseline(model: str, _version: str, feature: str, metric: str) -> float | None:
        profile = profiles.get(model)
        if profile is None:
            return None
        sketch = sketches.get(model)
        if sketch is None:
            sketch = sketches[model] = ModelSketch(model, profile, MetricsConfig())
        return sketch.baseline(feature, metric)

    return baseline


def open_sink(config: Config, profiles: Mapping[str, Profile] | None = None) -> ClickHouseSink:
    """The store's sink, with the schema migrated (safe at every start).

    ``profiles`` (the configured references) are stored too, as :func:`store_reference` does:
    SQL over any time range (recipe ``psi_range``) compares windows with them. Writing them again
    at every start is harmless: their rows have the same keys and collapse.
    """
    client = open_store(config.store_dsn(), config.store.database)
    migrate(client, config.store.database, config.store.ttl_days, cluster=config.store.cluster)
    # A spool by default: while the store is away, results wait on disk (bounded) and the
    # merger slows down before it fills, instead of failing.
    spool = config.store.spool_dir or Path(f"drifthouse-spool-{config.store.database}")
    if not spool.is_absolute():
        spool = config.base_dir / spool
    overrides: dict[str, Any] = {"spool_dir": spool}
    sink = ClickHouseSink.from_config(client, config.store, **overrides)
    for model, profile in (profiles or {}).items():
        where = config.reference_path(model)
        store_reference(sink, profile, source=str(where) if where is not None else "")
    return sink


@dataclass(frozen=True)
class RunParts:
    """What every stage of one run shares: the configuration, the reference profiles, the
    window specs and the model sketches (layouts and baselines); and the builders of the
    stages themselves.

    Examples
    --------
    >>> from drifthouse.config import Config
    >>> from drifthouse.sinks.base import MemorySink
    >>> from drifthouse.stream.dead_letters import MemoryDeadLetters
    >>> parts = RunParts.of(Config(), {})
    >>> stage = parts.partition_stage(0, MemoryDeadLetters())
    >>> merge = parts.merge_stage(MemorySink(), run_id="example")
    >>> (stage.partition, merge.run_id)
    (0, 'example')
    """

    config: Config
    profiles: Mapping[str, Profile]
    specs: tuple[WindowSpec, ...]
    sketches: Sketches

    @classmethod
    def of(cls, config: Config, profiles: Mapping[str, Profile]) -> RunParts:
        specs = tuple(WindowSpec.from_config(w) for w in config.windows)
        return cls(config, profiles, specs, Sketches(profiles, config.metrics, config.models))

    def prediction_log(self) -> PredictionLog | None:
        """The sampled prediction log the configuration asks for (``None`` without one)."""
        return PredictionLog.for_config(self.config, profiles=self.profiles)

    def partition_stage(
        self,
        partition: int,
        dead_letters: DeadLetters,
        *,
        now_ms: Callable[[], int] | None = None,
        prediction_log: PredictionLog | None = None,
        collect_labels: bool = True,
        checkpoint: Checkpoint | None = None,
    ) -> PartitionStage:
        """decode -> window -> sketch for one source partition, resumed from ``checkpoint``.

        ``now_ms`` is the clock of the far-future guard (``None``: no guard, as replays of
        history want); ``collect_labels`` keeps what the label join needs of each prediction.
        """
        stage = PartitionStage(
            partition,
            self.config,
            self.specs,
            self.sketches,
            dead_letters,
            now_ms,
            prediction_log=prediction_log,
            collect_labels=collect_labels,
        )
        if checkpoint is not None:
            stage.restore(checkpoint)
        return stage

    def merge_stage(
        self,
        sink: Sink,
        *,
        run_id: str = "live",
        on_window: Sequence[OnWindow] = (),
        computed_at: Callable[[], int] | None = None,
    ) -> MergeStage:
        """merge -> evaluate -> sink; ``on_window`` (the alert stage) sees every window
        written, in the order the windows end."""
        return MergeStage.from_config(
            self.config,
            self.profiles,
            self.sketches,
            sink,
            run_id=run_id,
            on_window=on_window,
            computed_at=computed_at,
        )

    def alerting(
        self, *, notify: bool = True, state_dir: Path | None = None, resume: bool = True
    ) -> Alerting:
        """The rules, routes and receivers, with baselines from the reference profiles."""
        return open_alerting(
            self.config, self.profiles, notify=notify, state_dir=state_dir, resume=resume
        )


def open_alerting(
    config: Config,
    profiles: Mapping[str, Profile],
    *,
    notify: bool = True,
    state_dir: Path | None = None,
    resume: bool = True,
) -> Alerting:
    """The rules, routes and receivers, with baselines from the reference profiles."""
    return Alerting(
        config,
        baselines=baselines_for(profiles),
        notify=notify,
        state_dir=state_dir,
        resume=resume,
    )


def live_alerting(config: Config, profiles: Mapping[str, Profile], *, shard: str = "") -> Alerting:
    """The live merger's alerting: rule, delivery and Slack state in the store (table
    ``alert_state``, under the consumer group and ``shard``), so that a merger that moves to
    another host neither pages twice nor misses a resolve. The store is reached through a
    client of its own (the delivery threads write through it while the sink's writes rows),
    closed with the alerting."""
    client = open_store(config.store_dsn(), config.store.database)
    state = AlertStateStore(client, config.store.database, cluster=config.store.cluster)
    return Alerting(config, baselines=baselines_for(profiles), state_store=state, shard=shard)


@dataclass
class AlertStage:
    """The alert stage behind a merge stage (one of its ``on_window`` callbacks): the rules
    over each written window's metrics, alert rows to ``sink``.

    ``keep_rows`` keeps every metric row seen (a backtest of other rules runs over them).
    """

    alerting: Alerting
    sink: Sink
    keep_rows: bool = False
    #: Alert rows written so far.
    alerts: int = 0
    rows: list[MetricRow] = field(default_factory=list)

    def __call__(self, result: WindowResult) -> None:
        alerts = self.alerting.process(result.metrics, watermark=result.end)
        if alerts:
            self.sink.write(alerts)
            self.alerts += len(alerts)
        if self.keep_rows:
            self.rows.extend(result.metrics)

    def finish(self) -> None:
        """End of a bounded run: notifications still due are handed on, then closed."""
        self.alerting.drain()
        self.alerting.close()


def replay_alerts(
    config: Config,
    sink: Sink,
    profiles: Mapping[str, Profile],
    *,
    run_id: str,
    notify: bool,
    keep_rows: bool,
) -> AlertStage:
    """The alert stage of a replay (or the demo). Its state lives apart from the live
    worker's, so a backtest neither resumes nor disturbs live alerts."""
    base = config.alerting.outbox_dir
    if base is not None and not base.is_absolute():
        base = config.base_dir / base
    state_dir = (
        (base / f"replay-{run_id}")
        if base is not None
        else Path(tempfile.mkdtemp(prefix="drifthouse-replay-"))
    )
    alerting = open_alerting(config, profiles, notify=notify, state_dir=state_dir, resume=False)
    return AlertStage(alerting, sink, keep_rows=keep_rows)
