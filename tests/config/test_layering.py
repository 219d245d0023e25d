"""The configuration's place in the layers (``drifthouse._layers``, docs/architecture.md): it
imports nothing from a layer above it (alerts check rules with the config's own checks, not the
other way round) and is in no import circle (``drifthouse.pii`` is of its layer)."""

from __future__ import annotations

from pathlib import Path

import pytest

import drifthouse
from drifthouse import _layers


def _of_config(module: str) -> bool:
    return _layers.LAYERS[_layers.layer_of(module)][0] == "config"


@pytest.fixture(scope="module")
def found() -> list[_layers.Import]:
    return list(_layers.imports(Path(drifthouse.__file__).parent))


def test_config_imports_nothing_from_a_higher_layer(found: list[_layers.Import]) -> None:
    upward = [
        f"{i.importer} (line {i.line}) imports {i.imported}"
        for i in _layers.upward(found)
        if _of_config(i.importer)
    ]
    assert upward == []


def test_config_is_in_no_import_circle(found: list[_layers.Import]) -> None:
    circles = [c for c in _layers.circles(found) if any(_of_config(m) for m in c)]
    assert circles == []
