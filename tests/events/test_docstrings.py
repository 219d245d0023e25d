"""The runnable examples in the events package's docstrings stay true."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "drifthouse.events",
    "drifthouse.events.describe",
    "drifthouse.events.timestamps",
    "drifthouse.events.served_class",
    "drifthouse.events.structs",
    "drifthouse.events.decoder",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
    assert result.attempted > 0
