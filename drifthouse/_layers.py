"""The package's layers, lowest first, and a check that every import points down or sideways.

``python -m drifthouse._layers`` prints each import that points up a layer and each import
circle between modules, and exits 1 if there is any; ``tests/test_layers.py`` runs the same
check. Every import counts: at module level, inside functions, and under ``TYPE_CHECKING``.
``docs/architecture.md`` draws the layers and says what each folder holds.

A module belongs to the first layer one of whose prefixes names it or a package above it. A
module may import modules of its own layer and of the layers below; an import circle is refused
even inside one layer.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "drifthouse"

#: Lowest first. Each entry: (layer name, module prefixes relative to the package).
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("base", ("errors", "logs", "files", "categories", "rows", "expr", "durations", "_layers")),
    ("events", ("events",)),
    ("detectors", ("detectors",)),
    ("config", ("config", "pii")),
    ("profiles", ("profiles",)),
    ("sinks", ("sinks",)),
    ("alerts", ("alerts",)),
    ("report", ("report",)),
    ("stream", ("stream",)),
    ("kafka", ("kafka",)),
    ("app", ("app",)),
    ("tools", ("simulate", "produce", "demo", "sql_output")),
    ("cli", ("cli", "__main__", "")),
)


@dataclass(frozen=True)
class Import:
    """One import of a package module by another, where it is written."""

    importer: str
    imported: str
    line: int


def layer_of(module: str) -> int:
    """Index in :data:`LAYERS` of ``module`` (dotted, with or without the package prefix)."""
    name = module.removeprefix(PACKAGE).removeprefix(".")
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if name == prefix or (prefix and name.startswith(prefix + ".")):
                return index
    raise KeyError(f"module {module!r} is in no layer of drifthouse._layers.LAYERS")


def modules(root: Path) -> dict[str, Path]:
    """Every module of the package under ``root`` (the package folder), by dotted name."""
    out: dict[str, Path] = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def imports(root: Path) -> Iterator[Import]:
    """Every import of a package module, resolved to the module it names."""
    known = modules(root)
    for name, path in known.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    target = ".".join([*base, *([node.module] if node.module else [])])
                else:
                    target = node.module or ""
                if not target.startswith(PACKAGE):
                    continue
                for alias in node.names:
                    full = f"{target}.{alias.name}"
                    yield Import(name, full if full in known else target, node.lineno)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith(PACKAGE):
                        yield Import(name, alias.name, node.lineno)


def upward(found: list[Import]) -> list[Import]:
    """The imports that point from a lower layer up to a higher one."""
    return [i for i in found if layer_of(i.imported) > layer_of(i.importer)]


def circles(found: list[Import]) -> list[list[str]]:
    """Import circles between modules (strongly connected groups of more than one), sorted."""
    graph: dict[str, set[str]] = {}
    for i in found:
        # a package's __init__ re-exporting its own modules is not a circle with them
        nested = i.importer.startswith(i.imported + ".") or i.imported.startswith(i.importer + ".")
        if i.imported != i.importer and not nested:
            graph.setdefault(i.importer, set()).add(i.imported)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's algorithm; the graph is a few hundred nodes
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(groups)


def problems(root: Path | None = None) -> list[str]:
    """One line per upward import and per import circle; empty when the layers hold."""
    root = root or Path(__file__).parent
    found = list(imports(root))
    lines = []
    for i in upward(found):
        lines.append(
            f"{i.importer} (layer {LAYERS[layer_of(i.importer)][0]}, line {i.line}) imports "
            f"{i.imported} (layer {LAYERS[layer_of(i.imported)][0]}, higher)"
        )
    for group in circles(found):
        lines.append("import circle: " + " -> ".join(group))
    return list(dict.fromkeys(lines))


def main() -> int:
    found = problems()
    for line in found:
        print(line)
    if not found:
        print("layers hold: " + " < ".join(name for name, _ in LAYERS))
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
