"""evaluate -> rows: a model's versions compared with each other in each closed window.

When two or more ``model_version`` values of one model have events in the same window (a
canary beside the main version), the merge stage hands this module every version's merged
state of that window, and each version other than the **baseline** gets ``vs_*`` rows
(:func:`~drifthouse.detectors.compare.compare_states`) with ``segment = 'vs=<baseline>'``,
plus ``vs_traffic_share``, its share of the model's events in the window. The baseline is the
model's ``baseline_version`` when configured (no rows in a window where it has no events), else
the version with the most events in the window (ties: the smallest name), so a canary on a few
percent of the traffic is compared with the version serving the rest, with nothing to
configure (docs/metrics.md, "Version comparisons and shadows").

A model's versions all go to one merge shard (the shard is a function of the model name,
:mod:`drifthouse.kafka.shards`), and the merge stage closes every version's window of a span
at the same watermark, so every version's state is at hand when the comparison is written:
the rows are written once per window, from the same merged states as the versions' own rows,
and so agree to the last digit between a live run, a replay, a restart and any number of
workers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from drifthouse.detectors.compare import PREFIX, compare_states
from drifthouse.detectors.model_sketch import EVENTS, ModelSketch, ModelState
from drifthouse.logs import get_logger
from drifthouse.profiles.sketches import Sketches
from drifthouse.rows import MetricRow
from drifthouse.stream.results import WindowResult, window_rows
from drifthouse.stream.stage import Key, Partial
from drifthouse.stream.windows import WindowSpec

__all__ = ["SEGMENT_PREFIX", "baseline_version", "compare_windows", "comparison_rows"]

WindowKey = tuple[int, int, Key]  # (spec index, start, (model, version)), as the merge stage's

log = get_logger("merge")

#: The segment of a comparison row: ``vs=`` and the baseline version.
SEGMENT_PREFIX = "vs="


def baseline_version(events: Mapping[str, int], configured: str | None = None) -> str | None:
    """``configured`` when it has events (``None`` when it has none), else the version with the
    most events (ties: the smallest name)."""
    if not events:
        raise ValueError("a baseline needs at least one version")
    if configured is not None:
        return configured if configured in events else None
    return min(events, key=lambda v: (-events[v], v))


def comparison_rows(
    spec: WindowSpec,
    start: int,
    model: str,
    states: Mapping[str, ModelState],
    sketch: ModelSketch,
    *,
    run_id: str,
    computed_at: int,
    configured: str | None = None,
) -> dict[str, list[MetricRow]]:
    """The ``vs_*`` rows of every version but the baseline (``configured``, else the one with
    the most events), by version; none with fewer than two versions with events, or when the
    configured baseline has none. ``n`` is the compared version's events in the window."""
    events = {v: int(s.counters[EVENTS]) for v, s in states.items() if int(s.counters[EVENTS])}
    if len(events) < 2:
        return {}
    base = baseline_version(events, configured)
    if base is None:  # retired, or a misspelt name: say which versions the window has
        log.warning(
            "merge.baseline_version_absent", model=model, window=spec.name, start=start,
            baseline_version=configured, versions=sorted(events),
        )  # fmt: skip
        return {}
    total = sum(events.values())
    out: dict[str, list[MetricRow]] = {}
    for version in sorted(events):
        if version == base:
            continue
        n = events[version]
        results = compare_states(sketch, states[version], states[base])
        values = [(r.feature, r.metric, r.value, n, "") for r in results]
        values.append(("", PREFIX + "traffic_share", n / total, n, ""))
        out[version] = window_rows(
            spec, start, model, version, SEGMENT_PREFIX + base, values,
            run_id=run_id, computed_at=computed_at,
        )  # fmt: skip
    return out


def compare_windows(
    results: Sequence[WindowResult],
    merged: Mapping[WindowKey, ModelState],
    written: Mapping[WindowKey, Mapping[int, Partial]],
    *,
    specs: Sequence[WindowSpec],
    sketches: Sketches,
    run_id: str,
    computed_at: int,
) -> list[WindowResult]:
    """Add the comparison rows of the windows just written (``merged``: their states) to
    ``results``, the merge stage's windows of this emit, in place; return the windows of
    versions that only get comparison rows now (their own window was written before and the
    baseline's is rewritten). The versions of a window not in ``merged`` are taken from
    ``written``, the partials of windows written earlier and open to a rewrite, merged in
    partition order as when they were written."""
    spans: dict[tuple[int, int, str], dict[str, ModelState]] = {}
    for (k, start, (model, version)), state in merged.items():
        spans.setdefault((k, start, model), {})[version] = state
    if not spans:
        return []
    for wkey in written:
        k, start, (model, version) = wkey
        states = spans.get((k, start, model))
        if states is not None and version not in states:
            states[version] = _merge_parts(sketches(model), written[wkey])
    by_key = {(r.spec.name, r.start, r.model, r.model_version): r for r in results}
    extra: list[WindowResult] = []
    for (k, start, model), states in sorted(spans.items(), key=lambda t: t[0]):
        sketch = sketches(model)
        spec = specs[k]
        settings = sketches.models.get(model)
        rows = comparison_rows(
            spec, start, model, states, sketch, run_id=run_id, computed_at=computed_at,
            configured=settings.baseline_version if settings is not None else None,
        )  # fmt: skip
        for version, vs in rows.items():
            result = by_key.get((spec.name, start, model, version))
            if result is not None:
                result.metrics.extend(vs)
            else:
                extra.append(
                    WindowResult(spec, start, start + spec.size_ms, model, version, vs, [])
                )
    return extra


def _merge_parts(sketch: ModelSketch, parts: Mapping[int, Partial]) -> ModelState:
    state: ModelState | None = None
    for p in sorted(parts):  # the merge stage's order
        state = parts[p].state if state is None else sketch.merge(state, parts[p].state)
    assert state is not None
    return sketch.resolve(state)
