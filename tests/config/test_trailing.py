"""``reference: {trailing: 7d}``: a model's windows compared with the merge of its previous
windows on the bins of its profile or automatic reference (docs/configuration.md "Trailing
baselines")."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from drifthouse.app.assembly import load_profiles
from drifthouse.config import Config, TrailingReference
from tests.config.helpers import WriteConfig, problems_of

HOUR = 3_600_000


@pytest.mark.parametrize(
    ("reference", "profile", "span", "min_events"),
    [
        pytest.param({"trailing": "7d"}, "auto", 7 * 24 * HOUR, 100, id="auto-bins"),
        pytest.param({"trailing": "3h", "profile": "auto", "min_events": 5}, "auto", 3 * HOUR, 5,
                     id="auto-named"),
        pytest.param({"trailing": "1d", "profile": "fraud.json"}, Path("fraud.json"), 24 * HOUR,
                     100, id="profile-bins"),
    ],
)  # fmt: skip
def test_a_trailing_reference_is_parsed(
    reference: dict[str, Any], profile: Any, span: int, min_events: int
) -> None:
    config = Config.model_validate({"models": {"fraud": {"reference": reference}}})
    settings = config.model("fraud")
    trailing = settings.trailing
    assert isinstance(trailing, TrailingReference)
    assert (trailing.trailing, trailing.profile, trailing.min_events) == (span, profile, min_events)
    assert settings.profile_reference == profile
    if profile == "auto":  # bins from the automatic reference, built as for `reference: auto`
        assert config.auto_reference_span("fraud") == HOUR
        assert config.reference_path("fraud") is None
    else:
        assert config.auto_reference_span("fraud") is None
        assert config.reference_path("fraud") == config.resolve_path(Path("fraud.json"))


def test_models_without_trailing_have_none() -> None:
    config = Config.model_validate({"models": {"a": {"reference": "auto"}, "b": {}}})
    assert config.model("a").trailing is None
    assert config.model("b").trailing is None
    assert config.model("unlisted").trailing is None


@pytest.mark.parametrize(
    ("model", "windows", "message"),
    [
        pytest.param({"reference": {"trailing": "0s"}}, None, "trailing", id="zero"),
        pytest.param({"reference": {"trailing": "7d", "profile": "none"}}, None, "profile",
                     id="no-bins"),
        pytest.param({"reference": {"trailing": "7d", "min_events": 0}}, None, "min_events",
                     id="no-floor"),
        pytest.param({"reference": {"trailing": "7d", "span": "1h"}}, None, "span", id="unknown"),
        pytest.param({"reference": {"profile": "fraud.json"}}, None, "trailing", id="no-span"),
        pytest.param({"reference": {"trailing": "90m"}}, None,
                     "whole number of 1h windows.*got 90m", id="not-whole-bases"),
        pytest.param({"reference": {"trailing": "7d"}}, [{"size": "1h", "hop": "30m"}],
                     "tumbling", id="sliding-base"),
    ],
)  # fmt: skip
def test_a_bad_trailing_reference_is_refused_with_what_and_where(
    model: dict[str, Any], windows: list[dict[str, Any]] | None, message: str
) -> None:
    data: dict[str, Any] = {"models": {"fraud": model}}
    if windows is not None:
        data["windows"] = windows
    with pytest.raises(ValidationError, match=message) as info:
        Config.model_validate(data)
    assert "fraud" in str(info.value)


def test_windows_off_the_base_grid_are_accepted() -> None:
    """A window off the base grid is compared with the base windows wholly before it."""
    config = Config.model_validate(
        {"windows": [{"size": "1h"}, {"size": "15m", "hop": "5m"}],
         "models": {"fraud": {"reference": {"trailing": "7d"}}}}
    )  # fmt: skip
    assert config.model("fraud").trailing is not None


def test_check_reports_a_bad_trailing_span_at_its_line(write_config: WriteConfig) -> None:
    path = write_config(
        """
        windows: [{size: 1h}]
        models:
          fraud:
            reference: {trailing: 90m}
        """
    )
    problems = problems_of(path)
    assert any("fraud" in where and "90m" in what for where, what in problems), problems


def test_a_profile_named_beside_trailing_is_loaded(tmp_path: Path) -> None:
    config = Config.model_validate(
        {"models": {"fraud": {"reference": {"trailing": "1d", "profile": "missing.json"}}}},
    ).model_copy(update={"base_dir": tmp_path})
    with pytest.raises(Exception, match=r"models.fraud.reference: cannot read"):
        load_profiles(config)
