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

from drifthouse.config.sections import TrailingReference, WindowConfig
from drifthouse.durations import format_duration, window_name

__all__ = ["as_list", "raw_reference_problems", "reference_problems", "trailing_problems"]


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
    parsed: list[WindowConfig] = []
    for i, item in enumerate(as_list(data.get("windows"))):
        try:
            parsed.append(WindowConfig.model_validate(item))
            windows.append((i, parsed[-1].name))
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
    models = data.get("models")
    spans: dict[str, int] = {}
    for name, model in models.items() if isinstance(models, dict) else ():
        reference = model.get("reference") if isinstance(model, dict) else None
        if isinstance(reference, dict):
            try:
                spans[str(name)] = TrailingReference.model_validate(reference).trailing
            except ValidationError:
                continue  # reported with the fields
    if spans and (parsed or "windows" not in data):
        problems += trailing_problems(
            spans, parsed or [WindowConfig.model_validate({"size": "1h"})]
        )
    store = data.get("store")
    if isinstance(store, dict) and store.get("path") is not None and store.get("dsn") is not None:
        problems.append(
            (("store",), "give either 'path' (embedded ClickHouse) or 'dsn' (a server), not both")
        )
    return problems


def as_list(value: Any) -> list[Any]:
    """``value`` if it is a list, else an empty one (raw YAML may hold anything)."""
    return value if isinstance(value, list) else []


def trailing_problems(
    spans: Mapping[str, int], windows: list[WindowConfig]
) -> list[tuple[tuple[int | str, ...], str]]:
    """Problems of the models' trailing baselines (``spans``: model -> span, ms)."""
    return [
        (("models", name, "reference", "trailing"), problem)
        for name, span in spans.items()
        if (problem := trailing_problem(span, windows)) is not None
    ]


def trailing_problem(span: int, windows: list[WindowConfig]) -> str | None:
    """What is wrong with a trailing baseline of ``span`` ms over ``windows``, if anything.

    A trailing baseline merges stored states of the first window kept in the stream (its
    *base*): the base must be tumbling and the span a whole number of base windows
    (docs/configuration.md "Trailing baselines").
    """
    base = next((w for w in windows if w.base is None), None)
    if base is None:
        return "needs a window kept in the stream (one without 'from') to store states of"
    if base.hop not in (None, base.size):
        return (
            f"the first window kept in the stream ({base.name}) must be tumbling: its stored "
            f"states are the baseline's parts; list a tumbling window such as "
            f"{{size: {format_duration(base.hop or base.size)}}} first"
        )
    size = base.size
    if span % size:
        return (
            f"must be a whole number of {base.name} windows (the first window kept in the "
            f"stream), got {format_duration(span)}; e.g. {format_duration(-(-span // size) * size)}"
        )
    return None
