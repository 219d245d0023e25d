"""Durations: parsed to milliseconds, refused with the expected spelling, named for windows."""

from __future__ import annotations

import pytest

from drifthouse.durations import parse_duration, window_name


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


def test_window_name_is_the_shortest_spelling() -> None:
    assert window_name("7d") == "1w"
    assert window_name("60m/30s") == "1h/30s"
    assert window_name("15m/15m") == "15m"
    assert window_name("1*") == "1*"
    assert window_name("not a duration") == "not a duration"
