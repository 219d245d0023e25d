"""Sections: windows and their names (durations: tests/test_durations.py)."""

from __future__ import annotations

from drifthouse.config import WindowConfig, format_duration


def test_window_names() -> None:
    assert WindowConfig(size="1h").name == "1h"
    assert WindowConfig(size="15m", hop="1m").name == "15m/1m"
    assert format_duration(90_000) == "90s"
    assert format_duration(1) == "1ms"
