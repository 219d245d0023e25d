"""Checks across sections: windows configured twice, routes to receivers that do not exist,
rules on windows that are not configured, a store given both a folder and a server.

:class:`~drifthouse.config.schema.Config` runs them on a tree built in code;
:func:`~drifthouse.config.loading.load_config` on the raw YAML, so that each problem gets its
own location beside the field errors.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from drifthouse.config.sections import WindowConfig
from drifthouse.durations import window_name

__all__ = ["as_list", "raw_reference_problems", "reference_problems"]


def reference_problems(
    *,
    windows: list[tuple[int, str]],
    receivers: set[str] | None,
    routes: list[tuple[int, int, str]],
    rules: list[tuple[int, str]],
) -> list[tuple[tuple[int | str, ...], str]]:
    """Problems between sections: duplicate windows, unknown receivers, rules on no window."""
    problems: list[tuple[tuple[int | str, ...], str]] = []
    first: dict[str, int] = {}
    for i, name in windows:
        if name in first:
            problems.append(
                (("windows", i), f"window {name} is configured twice (also windows[{first[name]}])")
            )
        first.setdefault(name, i)
    if receivers is not None:
        for i, j, name in routes:
            if name not in receivers:
                defined = ", ".join(sorted(receivers)) or "none"
                problems.append(
                    (
                        ("routes", i, "receivers", j),
                        f"receiver {name!r} is not defined under 'receivers' (defined: {defined}); "
                        "add it there or fix the name",
                    )
                )
    names = set(first) or {"1h"}
    for i, window in rules:
        if window != "*" and not any(ch in window for ch in "*?[") and window not in names:
            problems.append(
                (
                    ("rules", i, "window"),
                    f"warning: window {window!r} is not configured (configured: "
                    f"{', '.join(sorted(names))}), so this rule never fires",
                )
            )
    return problems


def raw_reference_problems(data: Mapping[str, Any]) -> list[tuple[tuple[int | str, ...], str]]:
    """:func:`reference_problems` on raw YAML data, skipping parts that are malformed."""
    windows: list[tuple[int, str]] = []
    for i, item in enumerate(as_list(data.get("windows"))):
        try:
            windows.append((i, WindowConfig.model_validate(item).name))
        except ValidationError:
            continue
    raw_receivers = data.get("receivers")
    receivers = set(map(str, raw_receivers)) if isinstance(raw_receivers, dict) else None
    if raw_receivers is None:
        receivers = set()
    routes = [
        (i, j, name)
        for i, route in enumerate(as_list(data.get("routes")))
        if isinstance(route, dict)
        for j, name in enumerate(as_list(route.get("receivers")))
        if isinstance(name, str)
    ]
    rules = [
        (i, window_name(rule["window"]))
        for i, rule in enumerate(as_list(data.get("rules")))
        if isinstance(rule, dict) and isinstance(rule.get("window"), str)
    ]
    problems = reference_problems(windows=windows, receivers=receivers, routes=routes, rules=rules)
    store = data.get("store")
    if isinstance(store, dict) and store.get("path") is not None and store.get("dsn") is not None:
        problems.append(
            (("store",), "give either 'path' (embedded ClickHouse) or 'dsn' (a server), not both")
        )
    return problems


def as_list(value: Any) -> list[Any]:
    """``value`` if it is a list, else an empty one (raw YAML may hold anything)."""
    return value if isinstance(value, list) else []
