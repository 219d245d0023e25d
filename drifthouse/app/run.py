"""``drifthouse run``: put a worker together from the configuration and run it until stopped."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from drifthouse.alerts import Alerting
from drifthouse.app.assembly import live_alerting, load_profiles, open_sink
from drifthouse.app.worker import Role, build_app, run_worker
from drifthouse.config import Config
from drifthouse.kafka.admin import ensure_topics
from drifthouse.kafka.dead_letters import KafkaDeadLetters
from drifthouse.logs import get_logger
from drifthouse.report.serve import report_page
from drifthouse.sinks import Limits, open_store, serve_readonly

__all__ = ["build_worker", "open_sink", "run", "shard_config"]

log = get_logger("run")


def build_worker(config: Config, *, datadir: Path | None = None, role: Role = "all") -> Any:
    """The faust app of one worker process (``role``: see :mod:`drifthouse.app.worker`).

    Creates the predictions topic (``kafka.topic``, ``kafka.partitions`` partitions) when it
    does not exist yet; an existing topic is left as it is.
    """
    ensure_topics(config.kafka, {config.kafka.topic: config.kafka.partitions})
    profiles = load_profiles(config)
    dead = KafkaDeadLetters(config.kafka, config.kafka.topic)

    def alerting(shard: int) -> Alerting:
        # The one merger's state under "", as before shards; with several, each shard's own.
        scope = "" if config.kafka.partials_partitions == 1 else str(shard)
        return live_alerting(config, profiles, shard=scope)

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
            pages={"/report": report_page(config)},
        )

    return build_app(
        config,
        profiles=profiles,
        open_sink=lambda shard: open_sink(shard_config(config, shard), profiles),
        dead_letters=dead,
        alerting=alerting,
        serve_sql=serve_sql if config.store.serve_port is not None else None,
        web_port=config.kafka.web_port,
        datadir=datadir,
        side_dead_letters={
            topic: KafkaDeadLetters(config.kafka, topic)
            for topic in (config.kafka.labels_topic, config.kafka.metrics_topic)
        },
        role=role,
    )


def shard_config(config: Config, shard: int) -> Config:
    """With several merge shards, each shard's store spool goes to ``shard-<n>`` under the
    configured folder: two shards' mergers may run in one process, or on one machine, and
    neither may replay the other's. One shard keeps the folder as it is."""
    if config.kafka.partials_partitions == 1:
        return config
    store = config.store
    spool = store.spool_dir or Path(f"drifthouse-spool-{store.database}")
    store = store.model_copy(update={"spool_dir": spool / f"shard-{shard}"})
    return config.model_copy(update={"store": store})


def run(config: Config, *, loglevel: str = "WARNING", role: Role = "all") -> None:
    """Run a worker until SIGTERM or SIGINT."""
    # faust wants a data folder; the worker keeps no state there (its tables are in memory),
    # so each process gets a fresh one.
    with tempfile.TemporaryDirectory(prefix="drifthouse-worker-") as datadir:
        app = build_worker(config, datadir=Path(datadir), role=role)
        log.info("worker.start", topic=config.kafka.topic, group=config.kafka.group, role=role)
        run_worker(app, loglevel=loglevel)
