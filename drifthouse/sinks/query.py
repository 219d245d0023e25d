"""Named SQL recipes and ``drifthouse sql``'s way of running statements.

Statements from users go through :func:`~drifthouse.sinks.sql_guard.run_select` (one SELECT
over the drifthouse tables, read-only, within limits), directly or through the worker's endpoint
(:mod:`drifthouse.sinks.sql_endpoint`). :func:`run_recipe` runs the shipped recipes the same way,
with their parameters bound. :func:`run_sql` runs trusted SQL (drifthouse's own) unchecked.

Recipes are the named queries of ``sql/queries.sql`` (also ``deploy/clickhouse/queries.sql``):

>>> sorted(load_recipes())[:3]
['alert_history', 'compare_versions', 'metric_series']
>>> load_recipes()["top_drifting_features"].params["model"]
'String'
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from drifthouse.errors import UsageError
from drifthouse.sinks.sql_endpoint import ReadonlyServer, query_readonly, serve_readonly
from drifthouse.sinks.sql_guard import Limits, run_select
from drifthouse.sinks.store import Client, call

__all__ = [
    "Limits",
    "ReadonlyServer",
    "Recipe",
    "load_recipes",
    "query_readonly",
    "recipe",
    "run_recipe",
    "run_select",
    "run_sql",
    "serve_readonly",
]

_PARAM = re.compile(r"\{(\w+):([^}]+)\}")
_HEADER = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)


@dataclass(frozen=True)
class Recipe:
    """A named query: its SQL, parameters (name -> ClickHouse type) and defaults."""

    name: str
    description: str
    sql: str
    params: dict[str, str] = field(default_factory=dict)
    defaults: dict[str, str] = field(default_factory=dict)

    def bind(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """Defaults overlaid with ``given``; a :class:`UsageError` naming what is missing or unknown."""
        unknown = sorted(set(given) - set(self.params))
        if unknown:
            raise UsageError(
                f"recipe {self.name!r} has no parameter {unknown}; it takes {sorted(self.params)}"
            )
        values: dict[str, Any] = {**self.defaults, **given}
        missing = sorted(set(self.params) - set(values))
        if missing:
            hint = " ".join(f"--param {name}=..." for name in missing)
            raise UsageError(f"recipe {self.name!r} needs {missing}: pass {hint}")
        return values


def load_recipes(path: str | Path | None = None) -> dict[str, Recipe]:
    """The recipes of ``path`` (default: the ``queries.sql`` shipped in the package), by name."""
    if path is None:
        text = (
            resources.files("drifthouse.sinks")
            .joinpath("sql", "queries.sql")
            .read_text(encoding="utf-8")
        )
    else:
        text = Path(path).read_text(encoding="utf-8")
    recipes: dict[str, Recipe] = {}
    headers = list(_HEADER.finditer(text))
    for i, header in enumerate(headers):
        body = text[header.end() : headers[i + 1].start() if i + 1 < len(headers) else len(text)]
        description: list[str] = []
        defaults: dict[str, str] = {}
        sql_lines: list[str] = []
        for line in body.splitlines():
            stripped = line.strip()
            if stripped.startswith("-- defaults:"):
                for pair in stripped[len("-- defaults:") :].split():
                    key, _, value = pair.partition("=")
                    defaults[key] = value
            elif stripped.startswith("--") and not sql_lines:
                description.append(stripped[2:].strip())
            elif stripped or sql_lines:
                sql_lines.append(line)
        sql = "\n".join(sql_lines).strip().rstrip(";").strip()
        params = {name: ptype for name, ptype in _PARAM.findall(sql)}
        recipes[header.group(1)] = Recipe(
            header.group(1), " ".join(description), sql, params, defaults
        )
    return recipes


def run_sql(
    client: Client,
    sql: str,
    parameters: Mapping[str, Any] | None = None,
    *,
    settings: Mapping[str, Any] | None = None,
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run one statement; return its column names and rows (statements without a result give none)."""
    result = call(
        "running a query",
        client.query,
        sql,
        parameters=dict(parameters or {}),
        settings=dict(settings or {}),
    )
    return list(result.column_names), [tuple(row) for row in result.result_rows]


def recipe(name: str) -> Recipe:
    """The shipped recipe ``name``; a :class:`UsageError` listing the recipes if there is none."""
    recipes = load_recipes()
    if name not in recipes:
        raise UsageError(f"no recipe named {name!r}; the recipes are {sorted(recipes)}")
    return recipes[name]


def run_recipe(
    client: Client,
    name: str,
    parameters: Mapping[str, Any] | None = None,
    *,
    limits: Limits | None = None,
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run the recipe ``name`` with ``parameters`` over its defaults, read-only within ``limits``."""
    chosen = recipe(name)
    return run_select(
        client,
        chosen.sql,
        chosen.bind(parameters or {}),
        limits=limits,
    )
