"""Sections: durations, windows and their names."""

from __future__ import annotations

import pytest

from drifthouse.config import WindowConfig, format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        pytest.param("500ms", 500, id="ms"),
        pytest.param("30s", 30_000, id="s"),
        pytest.param("15m", 900_000, id="m"),
        pytest.param("1h", 3_600_000, id="h"),
        pytest.param("7d", 604_800_000, id="d"),
        pytest.param(" 2w ", 1_209_600_000, id="w-spaces"),
        pytest.param(90, 90_000, id="int-seconds"),
    ],
)
def test_parse_duration(text: str | int, ms: int) -> None:
    assert parse_duration(text) == ms


@pytest.mark.parametrize("bad", ["1.5h", "h", "", "-1s", True, -5, None, "1y"])
def test_parse_duration_rejects(bad: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)


def test_window_names() -> None:
    assert WindowConfig(size="1h").name == "1h"
    assert WindowConfig(size="15m", hop="1m").name == "15m/1m"
    assert format_duration(90_000) == "90s"
    assert format_duration(1) == "1ms"
