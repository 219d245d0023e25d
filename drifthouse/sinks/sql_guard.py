"""Read-only SQL by construction: the engine's parser decides what a statement does.

``drifthouse sql`` and the worker's SQL endpoint answer one ``SELECT`` (with ``WITH``, ``UNION``,
``INTERSECT``, ``EXCEPT``, joins, subqueries) over the drifthouse database's tables, nothing else.
No pattern over the text decides it: ClickHouse accepts ``#``, ``--`` and ``/* */`` comments,
query parameters and nesting that a regular expression cannot follow, and the embedded engine
runs several ``;``-separated statements in one call. Instead, :func:`guard_select`

1. hands the text to the engine only as a *bound parameter* of ``formatQuerySingleLine`` and
   ``parseQueryToJSON``: it is parsed, never executed, and more than one statement is a syntax
   error;
2. walks the parsed tree (the JSON form of the engine's AST; on servers without
   ``parseQueryToJSON``, the text of ``EXPLAIN AST`` over the canonical statement, see
   :mod:`drifthouse.sinks.sql_explain`) with the allow-list of :mod:`drifthouse.sinks.sql_allow`: a
   ``SelectWithUnionQuery`` root, known node types only, no ``INTO OUTFILE``, ``FORMAT``,
   ``COMPRESSION`` or ``SETTINGS``, no table function anywhere, no function that reaches outside
   the drifthouse tables (every name in ``system.table_functions``, dictionaries, ``joinGet``,
   settings, the file system, introspection), no ``{name:Identifier}`` parameter, and every table
   (``FROM``, ``JOIN``, ``IN table``) one of the database's own tables or a ``WITH`` name;
3. returns the canonical text, which :func:`run_select` executes (what was checked is what runs)
   with ``readonly = 1`` and the limits of :class:`Limits`: execution time, memory, rows and bytes
   of the result.

>>> Limits(timeout_s=5).settings()["max_execution_time"]
5.0
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from drifthouse.errors import StoreError, StoreUnavailable, UsageError
from drifthouse.sinks.sql_allow import IN_FUNCTIONS, NODE_TYPES, Catalog, check_table, refuse
from drifthouse.sinks.sql_explain import check_explain
from drifthouse.sinks.store import Client, call

if TYPE_CHECKING:
    from drifthouse.config import StoreConfig

__all__ = ["Limits", "guard_select", "run_select"]

# Clauses that write files, change the output or change the limits.
_FORBIDDEN_KEYS = {
    "out_file": "INTO OUTFILE",
    "format_ast": "FORMAT",
    "compression": "COMPRESSION",
    "compression_level": "COMPRESSION",
    "settings": "SETTINGS",
    "settings_ast": "SETTINGS",
}
# Engine errors of a statement past its limits: the statement's fault, not the store's.
_LIMIT_CODES = frozenset({158, 159, 241, 307, 396})
_ENGINE_DATABASES = frozenset({"system", "information_schema"})


@dataclass(frozen=True)
class Limits:
    """What one statement may take: seconds, memory, result rows and bytes (engine settings)."""

    timeout_s: float = 30.0
    max_memory: int = 1 << 30
    max_rows: int = 100_000
    max_bytes: int = 64 << 20

    @classmethod
    def of(cls, store: StoreConfig) -> Limits:
        """The limits ``store.serve_timeout``, ``serve_max_memory`` and ``serve_max_rows`` give."""
        return cls(
            timeout_s=store.serve_timeout,
            max_memory=store.serve_max_memory,
            max_rows=store.serve_max_rows,
        )

    def settings(self) -> dict[str, Any]:
        """The engine settings of these limits; ``readonly = 1`` last, so they cannot be changed."""
        return {
            "max_execution_time": float(self.timeout_s),
            "timeout_overflow_mode": "throw",
            "max_memory_usage": int(self.max_memory),
            "max_result_rows": int(self.max_rows),
            "max_result_bytes": int(self.max_bytes),
            "result_overflow_mode": "throw",
            "readonly": 1,
        }


def _nodes(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _nodes(value)
    elif isinstance(node, list):
        for value in node:
            yield from _nodes(value)


def _table_name(node: dict[str, Any]) -> list[str]:
    if any(child.get("type") == "QueryParameter" for child in node.get("children", [])):
        raise refuse("a table named by a query parameter is not allowed")
    parts = node.get("name_parts")
    return [str(p) for p in parts] if parts else [str(node.get("name", ""))]


def _check_tree(tree: dict[str, Any], catalog: Catalog) -> None:
    if tree.get("type") != "SelectWithUnionQuery":
        raise refuse(f"got {tree.get('type', 'another statement')}")
    nodes = list(_nodes(tree))
    ctes = {str(n.get("name")) for n in nodes if n.get("type") == "WithElement"}
    for node in nodes:
        kind = node.get("type")
        for key, clause in _FORBIDDEN_KEYS.items():
            if key in node:
                raise refuse(f"{clause} is not allowed")
        if node.get("is_into_outfile_with_stdout"):
            raise refuse("INTO OUTFILE is not allowed")
        if kind is None:
            continue  # a literal's value, not a node
        if kind not in NODE_TYPES:
            raise refuse(f"{kind} is not allowed")
        if kind == "TableExpression" and "table_function" in node:
            name = node["table_function"].get("name", "?")
            raise refuse(f"table function {name}() is not allowed")
        if kind == "QueryParameter" and "identifier" in str(node.get("param_type", "")).lower():
            raise refuse("an Identifier query parameter is not allowed")
        if kind == "TableIdentifier":
            check_table(_table_name(node), catalog, ctes)
        if kind == "Function":
            name = str(node.get("name", ""))
            if not catalog.function_allowed(name):
                raise refuse(f"function {name}() reaches outside the drifthouse tables")
            args = node.get("arguments", {}).get("children", [])
            if name.lower() in IN_FUNCTIONS and len(args) == 2:
                right = args[1]
                if right.get("type") == "Identifier":
                    parts = right.get("name_parts") or [right.get("name", "")]
                    check_table([str(p) for p in parts], catalog, ctes)


def _statement_error(exc: StoreError) -> UsageError:
    # Whatever the parser refuses is the statement's fault: syntax, two statements, clauses that
    # do not fit together, statements the JSON form does not cover (DESCRIBE, SHOW...).
    detail = str(exc).split("DB::Exception:", 1)[-1].split(": In scope", 1)[0].strip()
    return UsageError(f"not one SELECT statement: {detail}")


def _engine_query(client: Client, doing: str, sql: str, **kwargs: Any) -> Any:
    try:
        return call(doing, client.query, sql, **kwargs)
    except StoreUnavailable:
        raise
    except StoreError as exc:
        raise _statement_error(exc) from None


def guard_select(
    client: Client,
    sql: str,
    database: str,
    parameters: Mapping[str, Any] | None = None,
    *,
    parser: str = "auto",
) -> str:
    """The canonical text of ``sql`` if it is one SELECT over ``database``'s tables; else :class:`UsageError`.

    ``parser``: ``json`` reads the tree with ``parseQueryToJSON``, ``explain`` with ``EXPLAIN AST``
    (servers before 26.x, :mod:`drifthouse.sinks.sql_explain`), ``auto`` the first the engine has.
    """
    if not sql.strip():
        raise UsageError("give a SELECT statement (got an empty one)")
    if database.lower() in _ENGINE_DATABASES:
        raise UsageError(
            f"store.database {database!r} is one of the engine's own databases; "
            "drifthouse answers SQL over its own database only"
        )
    canonical = str(
        _engine_query(
            client,
            "formatting the statement",
            "SELECT formatQuerySingleLine({q:String})",
            parameters={"q": sql},
            settings={"readonly": 1},
        ).result_rows[0][0]
    )
    if parser in ("auto", "json"):
        try:
            tree = call(
                "parsing the statement",
                client.query,
                "SELECT parseQueryToJSON({q:String})",
                parameters={"q": canonical},
                settings={"readonly": 1},
            ).result_rows[0][0]
        except StoreUnavailable:
            raise
        except StoreError as exc:
            unknown = getattr(exc.__cause__, "code", None) == 46 or "UNKNOWN_FUNCTION" in str(exc)
            if not (unknown and parser == "auto"):
                raise _statement_error(exc) from None
        else:
            _check_tree(json.loads(tree), Catalog(client, database))
            return canonical
    # EXPLAIN AST parses only; the canonical text is one statement. Query parameters are
    # substituted by the parser, so {name:Identifier} shows as the table it names.
    lines = _engine_query(
        client,
        "parsing the statement",
        f"EXPLAIN AST {canonical}",
        parameters=dict(parameters or {}),
    ).result_rows
    check_explain([str(row[0]) for row in lines], Catalog(client, database))
    return canonical


def run_select(
    client: Client,
    sql: str,
    parameters: Mapping[str, Any] | None = None,
    *,
    limits: Limits | None = None,
    parser: str = "auto",
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Check ``sql`` with :func:`guard_select`, run it within ``limits``; its columns and rows.

    Unqualified tables are the client's current database (``client.database``): the one the
    statement is checked against is the one it runs in.
    """
    canonical = guard_select(client, sql, str(client.database), parameters, parser=parser)
    try:
        result = call(
            "running a query",
            client.query,
            canonical,
            parameters=dict(parameters or {}),
            settings=(limits or Limits()).settings(),
        )
    except StoreError as exc:
        if getattr(exc.__cause__, "code", None) in _LIMIT_CODES:
            raise UsageError(
                f"the statement went past its limits ({exc}); narrow it (a shorter time range, "
                "LIMIT) or raise store.serve_timeout / serve_max_rows / serve_max_memory"
            ) from exc
        if isinstance(exc, StoreUnavailable):
            raise
        raise UsageError(str(exc)) from exc  # the statement's fault: unknown column, types...
    return list(result.column_names), [tuple(row) for row in result.result_rows]
