"""The package's shape: imports point down the layers of ``drifthouse._layers``, no circles, and
small rooms (modules and functions a reader can hold in mind; ``docs/architecture.md``)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from drifthouse import _layers

PACKAGE = Path(_layers.__file__).parent
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 80


def _is_kernel(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """A Numba kernel, decorated with ``njit``/``jit`` (with or without arguments), or a
    factory whose body defines one."""
    nested = [n for n in ast.walk(node) if n is not node and isinstance(n, ast.FunctionDef)]
    if any(_is_kernel(n) for n in nested):
        return True
    for deco in node.decorator_list:
        target = deco.func if isinstance(deco, ast.Call) else deco
        name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
        if name in {"njit", "jit", "vectorize", "guvectorize"}:
            return True
    return False


def test_every_import_points_down_and_none_circles() -> None:
    assert _layers.problems() == []


def test_every_module_is_in_a_layer() -> None:
    for name in _layers.modules(PACKAGE):
        _layers.layer_of(name)  # raises KeyError naming the module otherwise


@pytest.mark.parametrize(
    ("importer", "imported", "upward"),
    [
        pytest.param("drifthouse.stream.merge", "drifthouse.sinks.base", False, id="down"),
        pytest.param("drifthouse.stream.merge", "drifthouse.stream.windows", False, id="sideways"),
        pytest.param("drifthouse.detectors.numeric", "drifthouse.config", True, id="up"),
        pytest.param("drifthouse.events.decode", "drifthouse.errors", False, id="to-base"),
        pytest.param("drifthouse.errors", "drifthouse.cli", True, id="base-to-top"),
    ],
)
def test_the_check_tells_up_from_down(importer: str, imported: str, upward: bool) -> None:
    found = [_layers.Import(importer, imported, 1)]
    assert bool(_layers.upward(found)) is upward


def test_the_check_finds_circles_through_several_modules() -> None:
    found = [
        _layers.Import("drifthouse.stream.a", "drifthouse.stream.b", 1),
        _layers.Import("drifthouse.stream.b", "drifthouse.stream.c", 1),
        _layers.Import("drifthouse.stream.c", "drifthouse.stream.a", 1),
        _layers.Import("drifthouse.stream", "drifthouse.stream.a", 1),  # a package's re-export
    ]
    assert _layers.circles(found) == [
        ["drifthouse.stream.a", "drifthouse.stream.b", "drifthouse.stream.c"]
    ]


def test_modules_are_small() -> None:
    big = {
        str(path.relative_to(PACKAGE.parent)): lines
        for path in PACKAGE.rglob("*.py")
        if (lines := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert big == {}


def test_functions_are_short_except_kernels() -> None:
    long: dict[str, int] = {}
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and not _is_kernel(node):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long[f"{path.relative_to(PACKAGE.parent)}::{node.name}"] = lines
    assert long == {}
