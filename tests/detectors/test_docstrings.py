"""The runnable examples in the detectors' docstrings stay true."""

from __future__ import annotations

import doctest
import importlib
from types import ModuleType

import pytest

MODULES = [
    "drifthouse.detectors.stats",
    "drifthouse.detectors.attribution",
    "drifthouse.detectors.numeric",
    "drifthouse.detectors.categorical",
    "drifthouse.detectors.quantiles",
    "drifthouse.detectors.status",
    "drifthouse.detectors.reference",
    "drifthouse.detectors.importance",
    "drifthouse.detectors.label_kinds",
    "drifthouse.detectors.label_sketch",
    "drifthouse.detectors.typed_decode",
    "drifthouse.detectors.pca",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module: ModuleType = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
    assert result.attempted > 0
