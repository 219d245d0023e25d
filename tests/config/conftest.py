"""Fixtures of the configuration tests."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import structlog

from drifthouse import logs
from tests.config.helpers import WriteConfig


@pytest.fixture
def write_config(tmp_path: Path) -> WriteConfig:
    def write(text: str) -> Path:
        path = tmp_path / "drifthouse.yaml"
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    return write


@pytest.fixture
def captured_logs(capsys: pytest.CaptureFixture[str]) -> Iterator[Callable[[], str]]:
    """``start()`` sends drifthouse's JSON logs (DEBUG and up) to the captured stderr."""
    started = False

    def read() -> str:
        nonlocal started
        if not started:
            # Configured here, not at fixture setup: capsys swaps the stream between phases.
            logs.configure(level="DEBUG", json=True)
            started = True
            return ""
        out, err = capsys.readouterr()
        return out + err

    yield read
    structlog.reset_defaults()
