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
