"""The statement check for servers without ``parseQueryToJSON``: the engine's ``EXPLAIN AST``.

ClickHouse before 26.x has no JSON form of its parse tree, but every version prints the tree
with ``EXPLAIN AST``: one node a line, indented by depth (``Function file (children 1)``,
``TableIdentifier system.tables``). :func:`check_explain` applies the same allow-list (:mod:`drifthouse.sinks.sql_allow`) as
:func:`~drifthouse.sinks.sql_guard.guard_select` to that text. ``EXPLAIN AST`` only parses: it
runs on the canonical text of ``formatQuerySingleLine`` (one statement, no comments), so
nothing of the statement executes, and an ``INTO OUTFILE`` in it is printed, not written.

>>> [(n.depth, n.kind, n.name) for n in parse_explain([
...     "SelectWithUnionQuery (children 1)", " ExpressionList (children 1)",
...     "  Function plus (alias x) (children 1)"])]
[(0, 'SelectWithUnionQuery', ''), (1, 'ExpressionList', ''), (2, 'Function', 'plus')]
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from drifthouse.sinks.sql_allow import IN_FUNCTIONS, NODE_TYPES, Catalog, check_table, refuse

__all__ = ["ExplainNode", "check_explain", "parse_explain"]

_CHILDREN = re.compile(r" ?\(children \d+\)$")
# EXPLAIN AST spells one node type of the JSON form differently, and prints some without the
# expressions they hold: those are refused here (`* APPLY(x -> file(...))` would hide a call).
_EXTRA_TYPES = frozenset({"ColumnsReplaceTransformer::Replacement"})
_OPAQUE_TYPES = frozenset({"ColumnsApplyTransformer"})
# The client appends `FORMAT Native` to every query: EXPLAIN AST shows it as the statement's own.
_CLIENT_FORMAT = "Native"


@dataclass(frozen=True)
class ExplainNode:
    """One line of ``EXPLAIN AST``: its depth, node type and first word (a name, if any)."""

    depth: int
    kind: str
    name: str


def parse_explain(lines: Sequence[str]) -> list[ExplainNode]:
    """The nodes of an ``EXPLAIN AST`` output, in order."""
    nodes = []
    for line in lines:
        body = line.lstrip(" ")
        kind, _, rest = _CHILDREN.sub("", body).partition(" ")
        nodes.append(ExplainNode(len(line) - len(body), kind, rest.split(" ", 1)[0]))
    return nodes


def _parts(name: str) -> list[str]:
    return [part.strip("`") for part in name.split(".")]


def _check_table(parts: list[str], catalog: Catalog) -> None:
    """Like the JSON check, but any plain name passes: EXPLAIN AST does not print WITH names,
    and a plain name can only be the current (drifthouse) database's table or a WITH name."""
    check_table(parts, catalog, {parts[0]} if len(parts) == 1 else set())


def _children(nodes: list[ExplainNode], at: int) -> list[int]:
    depth = nodes[at].depth
    out = []
    for i in range(at + 1, len(nodes)):
        if nodes[i].depth <= depth:
            break
        if nodes[i].depth == depth + 1:
            out.append(i)
    return out


def check_explain(lines: Sequence[str], catalog: Catalog) -> None:
    """A :class:`~drifthouse.errors.UsageError` unless ``lines`` are one allowed SELECT's tree."""
    nodes = parse_explain(lines)
    if not nodes or nodes[0].kind != "SelectWithUnionQuery" or nodes[0].depth != 0:
        raise refuse(f"got {nodes[0].kind if nodes else 'nothing'}")
    top = _children(nodes, 0)
    extra = [nodes[i] for i in top[1:]]
    if extra and extra[-1] == ExplainNode(1, "Identifier", _CLIENT_FORMAT):
        extra.pop()
    for node in extra:
        clause = {"Literal": "INTO OUTFILE", "Identifier": "FORMAT", "Set": "SETTINGS"}
        raise refuse(f"{clause.get(node.kind, node.kind)} is not allowed")
    for i, node in enumerate(nodes):
        if node.kind == "Set":
            raise refuse("SETTINGS is not allowed")
        if node.kind in _OPAQUE_TYPES or (
            node.kind not in NODE_TYPES and node.kind not in _EXTRA_TYPES
        ):
            raise refuse(f"{node.kind} is not allowed")
        if node.kind == "TableExpression":
            first = _children(nodes, i)[:1]
            if first and nodes[first[0]].kind == "Function":
                raise refuse(f"table function {nodes[first[0]].name}() is not allowed")
        if node.kind == "TableIdentifier":
            _check_table(_parts(node.name), catalog)
        if node.kind == "Function":
            if not catalog.function_allowed(node.name):
                raise refuse(f"function {node.name}() reaches outside the drifthouse tables")
            if node.name.lower() in IN_FUNCTIONS:
                lists = [c for c in _children(nodes, i) if nodes[c].kind == "ExpressionList"]
                args = _children(nodes, lists[0]) if lists else []
                if len(args) == 2 and nodes[args[1]].kind == "Identifier":
                    _check_table(_parts(nodes[args[1]].name), catalog)
