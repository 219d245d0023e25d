"""The allow-list of read-only SQL: node types, functions and tables a statement may name.

Both readings of a statement's tree use it: the JSON form of ``parseQueryToJSON``
(:mod:`drifthouse.sinks.sql_guard`) and the text of ``EXPLAIN AST`` on older servers
(:mod:`drifthouse.sinks.sql_explain`). :class:`Catalog` holds what the engine says of the
database (its tables, the functions it must not run); :func:`refuse` is the one error both give.

>>> str(refuse("SETTINGS is not allowed")).split(";")[0]
'only one SELECT over the drifthouse tables is answered (SETTINGS is not allowed)'
"""

from __future__ import annotations

from drifthouse.errors import UsageError
from drifthouse.sinks.store import Client, call

__all__ = ["IN_FUNCTIONS", "NODE_TYPES", "Catalog", "check_table", "refuse"]

# Node types of a SELECT's tree (``parseQueryToJSON``); anything else is refused.
NODE_TYPES = frozenset(
    {
        "SelectWithUnionQuery",
        "SelectIntersectExceptQuery",
        "SelectQuery",
        "ExpressionList",
        "Function",
        "Literal",
        "Identifier",
        "QueryParameter",
        "Asterisk",
        "QualifiedAsterisk",
        "ColumnsRegexpMatcher",
        "ColumnsListMatcher",
        "QualifiedColumnsRegexpMatcher",
        "QualifiedColumnsListMatcher",
        "ColumnsTransformerList",
        "ColumnsExceptTransformer",
        "ColumnsReplaceTransformer",
        "ColumnsReplaceTransformerReplacement",
        "ColumnsApplyTransformer",
        "TablesInSelectQuery",
        "TablesInSelectQueryElement",
        "TableExpression",
        "TableIdentifier",
        "TableJoin",
        "ArrayJoin",
        "Subquery",
        "WithElement",
        "OrderByElement",
        "SampleRatio",
        "WindowDefinition",
        "WindowListElement",
        "InterpolateElement",
    }
)
IN_FUNCTIONS = frozenset(
    {
        "in",
        "notin",
        "globalin",
        "globalnotin",
        "nullin",
        "notnullin",
        "globalnullin",
        "globalnotnullin",
    }
)
# Functions that read outside the drifthouse tables (files, URLs, dictionaries, other tables,
# settings, the host) or wait; compared in lower case. Every table function name is added.
_DENIED_FUNCTIONS = frozenset(
    {
        "file",
        "url",
        "input",
        "executable",
        "hascolumnintable",
        "getmacro",
        "getclienthttpheader",
        "showcertificate",
        "generateserialid",
        "globalvariable",
        "sleep",
        "sleepeachrow",
        "logtrace",
        "getserverport",
        "tcpport",
        "hostname",
        "fqdn",
        "serveruuid",
        "getoskernelversion",
        "buildid",
        "currentuser",
        "authenticateduser",
        "currentroles",
        "enabledroles",
        "defaultroles",
        "currentprofiles",
        "enabledprofiles",
        "defaultprofiles",
        "currentrequesturl",
        "catboostevaluate",
        "modelevaluate",
        "mergetreepartinfo",
    }
)
_DENIED_PREFIXES = (
    "dict",  # dictGet*, dictHas, dictIsIn: dictionaries read files, URLs, other databases
    "joinget",
    "getsetting",
    "getserversetting",
    "getmergetreesetting",
    "filesystem",
    "address",  # introspection
    "demangle",
    "region",  # embedded dictionaries (files on disk)
    "transaction",
    "zookeeper",
)
# Names shared by a table function and a harmless scalar function.
_SCALAR_TWINS = frozenset({"format"})


_engine_denied: frozenset[str] | None = None


def _denied_functions(client: Client) -> frozenset[str]:
    """The denied function names: the list above, every table function and user-defined function.

    Read from the engine once per process (listing its functions takes about 30 ms): the table
    functions are fixed by its build, and user-defined functions need DDL, which is never
    answered here.
    """
    global _engine_denied
    if _engine_denied is None:
        table_functions, user_functions = call(
            "listing the engine's functions",
            client.query,
            "SELECT (SELECT groupArray(name) FROM system.table_functions), "
            "(SELECT groupArray(name) FROM system.functions WHERE origin != 'System')",
        ).result_rows[0]
        _engine_denied = (
            _DENIED_FUNCTIONS
            | {str(name).lower() for name in table_functions} - _SCALAR_TWINS
            | {str(name).lower() for name in user_functions}
        )
    return _engine_denied


class Catalog:
    """The names the guard checks against: the database's tables (read each time), denied functions."""

    def __init__(self, client: Client, database: str) -> None:
        rows = call(
            "listing the drifthouse tables",
            client.query,
            "SELECT name FROM system.tables WHERE database = {d:String}",
            parameters={"d": database},
        ).result_rows
        self.database = database
        self.tables = frozenset(str(r[0]) for r in rows)
        self.denied = _denied_functions(client)

    def function_allowed(self, name: str) -> bool:
        lowered = name.lower()
        return lowered not in self.denied and not lowered.startswith(_DENIED_PREFIXES)


def refuse(what: str) -> UsageError:
    """The error for a statement the allow-list refuses, saying ``what`` and the way out."""
    return UsageError(
        f"only one SELECT over the drifthouse tables is answered ({what}); "
        "use `drifthouse sql --recipe NAME` or a SELECT ... FROM metrics/sketches/alerts/..."
    )


def check_table(parts: list[str], catalog: Catalog, ctes: set[str]) -> None:
    """Refuse a table (``parts`` of its dotted name) that is neither the database's nor a
    ``WITH`` name in ``ctes``."""
    if len(parts) == 1 and (parts[0] in catalog.tables or parts[0] in ctes):
        return
    if len(parts) == 2 and parts[0] == catalog.database and parts[1] in catalog.tables:
        return
    raise refuse(
        f"table {'.'.join(parts)!r} is not one of {catalog.database}'s tables "
        f"({', '.join(sorted(catalog.tables)) or 'none yet'})"
    )
