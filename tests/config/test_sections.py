"""Sections: windows and their names (durations: tests/test_durations.py), change detection."""

from __future__ import annotations

import dataclasses

import pytest
from pydantic import ValidationError

from drifthouse.config import ChangeDetectionConfig, Config, WindowConfig, format_duration
from drifthouse.config.sections import StoreConfig
from drifthouse.detectors.change import ChangeConfig


def test_window_names() -> None:
    assert WindowConfig(size="1h").name == "1h"
    assert WindowConfig(size="15m", hop="1m").name == "15m/1m"
    assert format_duration(90_000) == "90s"
    assert format_duration(1) == "1ms"


def test_change_detection_is_the_detectors_settings_plus_enabled() -> None:
    cd = Config.model_validate(
        {"metrics": {"change_detection": {"series": ["error_rate_5xx"], "warmup": 5}}}
    ).metrics.change_detection
    assert set(ChangeDetectionConfig.model_fields) == {
        f.name for f in dataclasses.fields(ChangeConfig)
    } | {"enabled"}
    assert cd.detector_config() == ChangeConfig(series=("error_rate_5xx",), warmup=5)
    assert ChangeDetectionConfig(enabled=False).detector_config() is None
    assert ChangeDetectionConfig(series=()).detector_config() is None


@pytest.mark.parametrize(
    "cluster",
    [
        pytest.param("drifthouse", id="name"),
        pytest.param("prod-ch.eu_1", id="dashes-and-dots"),
        pytest.param("{cluster}", id="macro"),
    ],
)
def test_store_cluster_names_a_cluster_of_a_server(cluster: str) -> None:
    store = StoreConfig(dsn="http://ch:8123/drifthouse", cluster=cluster)
    assert store.cluster == cluster
    assert StoreConfig().cluster is None  # no switch: one server, or the embedded engine


@pytest.mark.parametrize(
    ("store", "message"),
    [
        pytest.param({"dsn": "http://ch:8123", "cluster": "a'b"}, "cluster", id="quote"),
        pytest.param({"dsn": "http://ch:8123", "cluster": ""}, "cluster", id="empty"),
        pytest.param({"cluster": "drifthouse"}, "server", id="embedded-default"),
        pytest.param({"path": "./data", "cluster": "drifthouse"}, "server", id="embedded-path"),
        pytest.param({"dsn": "chdb:///tmp/x", "cluster": "drifthouse"}, "server", id="chdb-dsn"),
    ],
)
def test_store_cluster_is_refused_where_it_cannot_work(store: dict[str, str], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        StoreConfig.model_validate(store)


def test_kafka_session_timeout_reaches_the_workers_group_membership() -> None:
    """How long the group waits for a worker that died without leaving (a SIGKILL, a lost
    host) before its partitions move: an operator's trade between false alarms and recovery."""
    from drifthouse.app.worker import _faust_app
    from drifthouse.config import KafkaConfig

    assert KafkaConfig().session_timeout == 10_000
    kcfg = Config.model_validate({"kafka": {"session_timeout": "6s"}}).kafka
    assert kcfg.session_timeout == 6_000
    app = _faust_app(kcfg, None, None)
    assert app.conf.broker_session_timeout == 6.0
    assert app.conf.broker_heartbeat_interval <= 6.0 / 3


@pytest.mark.parametrize("value", ["5s", "31m"])
def test_kafka_session_timeout_outside_the_brokers_bounds_is_refused(value: str) -> None:
    # Kafka's brokers refuse a member outside group.min/max.session.timeout.ms (6 s, 30 min).
    with pytest.raises(ValidationError, match=r"session_timeout[\s\S]*(greater|less) than"):
        Config.model_validate({"kafka": {"session_timeout": value}})


def test_a_dumped_configuration_reads_back_as_itself() -> None:
    """Durations are milliseconds inside and ``"30s"`` or integer *seconds* outside: a dump
    must write what reads back to the same milliseconds, not 1,000 times more."""
    cfg = Config.model_validate(
        {
            "kafka": {"idle_after": "1500ms", "session_timeout": "6s", "snapshot_every": 0},
            "windows": [{"size": "1h"}, {"size": "15m", "hop": "1m"}],
            "metrics": {"label_horizon": "7d"},
        }
    )
    for mode in ("python", "json"):
        again = Config.model_validate(cfg.model_dump(mode=mode, exclude={"base_dir"}))
        assert again.kafka == cfg.kafka
        assert again.windows == cfg.windows
        assert again.metrics == cfg.metrics
        assert again.alerting == cfg.alerting
