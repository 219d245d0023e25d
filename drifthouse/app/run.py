"""``drifthouse run``: put a worker together from the configuration and run it until stopped."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from drifthouse.alerts import Alerting
from drifthouse.app.replay import load_profiles
from drifthouse.app.worker import build_app, run_worker
from drifthouse.config import Config
from drifthouse.detectors.reference import Profile
from drifthouse.kafka.admin import ensure_topics
from drifthouse.kafka.dead_letters import KafkaDeadLetters
from drifthouse.logs import get_logger
from drifthouse.sinks import (
    ClickHouseSink,
    Limits,
    migrate,
    open_store,
    serve_readonly,
    store_reference,
)
from drifthouse.sinks.base import Sink

__all__ = ["baselines_for", "build_worker", "open_sink", "run"]

log = get_logger("run")


def open_sink(config: Config, profiles: Mapping[str, Profile] | None = None) -> Sink:
    """The store's sink, with the schema migrated (safe at every start).

    ``profiles`` (the configured references) are stored too, as :func:`store_reference` does:
    SQL over any time range (recipe ``psi_range``) compares windows with them. Writing them again
    at every start is harmless: their rows have the same keys and collapse.
    """
    client = open_store(config.store_dsn(), config.store.database)
    migrate(client, config.store.database, config.store.ttl_days)
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


def baselines_for(profiles: dict[str, Any]) -> Any:
    """``(model, version, feature, metric) -> baseline`` from reference profiles, for rules."""
    from drifthouse.detectors.model_sketch import ModelSketch

    sketches: dict[str, ModelSketch] = {}

    def baseline(model: str, _version: str, feature: str, metric: str) -> float | None:
        profile = profiles.get(model)
        if profile is None:
            return None
        sketch = sketches.get(model)
        if sketch is None:
            from drifthouse.config import MetricsConfig

            sketch = sketches[model] = ModelSketch(model, profile, MetricsConfig())
        return sketch.baseline(feature, metric)

    return baseline


def build_worker(config: Config, *, datadir: Path | None = None) -> Any:
    """The faust app of one worker process.

    Creates the predictions topic (``kafka.topic``, ``kafka.partitions`` partitions) when it
    does not exist yet; an existing topic is left as it is.
    """
    ensure_topics(config.kafka, {config.kafka.topic: config.kafka.partitions})
    profiles = load_profiles(config)
    dead = KafkaDeadLetters(config.kafka, config.kafka.topic)

    def alerting() -> Alerting:
        return Alerting(config, baselines=baselines_for(profiles))

    def serve_sql() -> Any:
        port = config.store.serve_port
        assert port is not None
        # A client of its own: the sink's is busy with writes on another thread.
        return serve_readonly(
            open_store(config.store_dsn(), config.store.database),
            port,
            token_file=config.sql_token_path(),
            limits=Limits.of(config.store),
            max_request_bytes=config.store.serve_max_request_bytes,
        )

    return build_app(
        config,
        profiles=profiles,
        open_sink=lambda: open_sink(config, profiles),
        dead_letters=dead,
        alerting=alerting,
        serve_sql=serve_sql if config.store.serve_port is not None else None,
        web_port=config.kafka.web_port,
        datadir=datadir,
        side_dead_letters={
            topic: KafkaDeadLetters(config.kafka, topic)
            for topic in (config.kafka.labels_topic, config.kafka.metrics_topic)
        },
    )


def run(config: Config, *, loglevel: str = "WARNING") -> None:
    """Run a worker until SIGTERM or SIGINT."""
    # faust wants a data folder; the worker keeps no state there (its tables are in memory),
    # so each process gets a fresh one.
    with tempfile.TemporaryDirectory(prefix="drifthouse-worker-") as datadir:
        app = build_worker(config, datadir=Path(datadir))
        log.info("worker.start", topic=config.kafka.topic, group=config.kafka.group)
        run_worker(app, loglevel=loglevel)
