"""What the configuration tests share: writing a config file and reading its problems."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from drifthouse.config import load_config
from drifthouse.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
MARKER = "MARKER-7f3a-do-not-print"

WriteConfig = Callable[[str], Path]


def problems_of(path: Path) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return info.value.problems
