"""Sections: windows and their names (durations: tests/test_durations.py), change detection."""

from __future__ import annotations

import dataclasses

from drifthouse.config import ChangeDetectionConfig, Config, WindowConfig, format_duration
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
