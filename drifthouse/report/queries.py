"""The report's reads: one run's rows of ``metrics``, ``sketches``, ``alerts`` and
``references`` (docs/clickhouse.md), as the typed values of :mod:`~drifthouse.report.data`.

Every read goes through ``FINAL`` (one row per key), filters on the run id, the model, one
window spec and the report's range (window starts in ``[start, end)``), and passes every value
as a query parameter. Metrics are the model-wide rows (``segment = ''``); where a window holds
rows of several model versions, the version with the most events gives the value.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from drifthouse.errors import UsageError
from drifthouse.profiles.auto import AUTO_VERSION
from drifthouse.report.data import (
    AlertEvent,
    Categories,
    Comparison,
    Contributors,
    Point,
    Series,
)
from drifthouse.sinks.store import call

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

__all__ = [
    "Range",
    "choose_run",
    "read_alerts",
    "read_categories",
    "read_comparisons",
    "read_contributors",
    "read_metrics",
    "read_numeric_bins",
    "read_profiles_json",
    "read_run_features",
    "read_run_models",
]

REFERENCE_RUN = "reference"
_FAR_FUTURE_MS = 10_413_791_999_000  # 2299-12-31T23:59:59Z, the last time DateTime64 holds


@dataclass(frozen=True)
class Range:
    """What one model's reads share: the run, model, window spec and time range (ms, UTC)."""

    run_id: str
    model: str
    window: str
    start_ms: int | None
    end_ms: int | None

    def params(self, **more: Any) -> dict[str, Any]:
        return {
            "run": self.run_id,
            "model": self.model,
            "window": self.window,
            "start": (self.start_ms or 0) / 1000,
            "end": (self.end_ms if self.end_ms is not None else _FAR_FUTURE_MS) / 1000,
            **more,
        }


_IN_RANGE = (
    "run_id = {run:String} AND model = {model:String} AND window = {window:String} "
    "AND window_start >= fromUnixTimestamp64Milli(toInt64({start:Float64} * 1000), 'UTC') "
    "AND window_start < fromUnixTimestamp64Milli(toInt64({end:Float64} * 1000), 'UTC')"
)


def _rows(client: Client, sql: str, params: Mapping[str, Any]) -> Sequence[Sequence[Any]]:
    result = call("reading the report's rows", client.query, sql, parameters=dict(params))
    return list(result.result_rows)


def choose_run(client: Client, run_id: str | None) -> str:
    """``run_id`` if the store has metrics of it; without one, the run written last.

    Raises :class:`UsageError` naming the runs the store has when ``run_id`` is not one.
    """
    runs = _rows(
        client,
        "SELECT run_id, max(inserted_at) AS written FROM metrics GROUP BY run_id "
        "ORDER BY written DESC, run_id LIMIT 1000",
        {},
    )
    names = [str(r[0]) for r in runs]
    if run_id is None:
        if not names:
            raise UsageError("the store has no metrics yet: run a worker, a replay or the demo")
        return names[0]
    if run_id not in names:
        shown = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
        raise UsageError(
            f"--run-id {run_id!r}: the store has no metrics of that run "
            f"(runs it has: {shown or 'none'})"
        )
    return run_id


def read_run_models(client: Client, run_id: str) -> list[str]:
    """The models with metrics in the run, by name."""
    rows = _rows(
        client,
        "SELECT DISTINCT model FROM metrics WHERE run_id = {run:String} ORDER BY model",
        {"run": run_id},
    )
    return [str(r[0]) for r in rows]


def read_run_features(client: Client, run_id: str, models: Sequence[str]) -> set[str]:
    """The features with metrics in the run, of any of ``models``."""
    rows = _rows(
        client,
        "SELECT DISTINCT feature FROM metrics WHERE run_id = {run:String} "
        "AND model IN {models:Array(String)}",
        {"run": run_id, "models": list(models)},
    )
    return {str(r[0]) for r in rows}


def read_metrics(client: Client, rng: Range) -> tuple[dict[tuple[str, str], Series], list[str]]:
    """Every model-wide metric of the model in the range, by ``(metric, feature)``, and the
    model versions seen."""
    rows = _rows(
        client,
        "SELECT metric, feature, toUnixTimestamp64Milli(window_start) AS ws, "
        "argMax(value, n) AS v, max(n) AS events, groupUniqArray(model_version) AS versions "
        f"FROM metrics FINAL WHERE {_IN_RANGE} AND segment = '' AND bin = '' "
        "GROUP BY metric, feature, ws ORDER BY metric, feature, ws",
        rng.params(),
    )
    points: dict[tuple[str, str], list[Point]] = {}
    versions: set[str] = set()
    for metric, feature, ws, value, n, vs in rows:
        if not math.isfinite(value):
            continue  # a value the window could not compute (no events): a gap in the chart
        points.setdefault((str(metric), str(feature)), []).append(
            Point(int(ws), float(value), int(n))
        )
        versions.update(str(v) for v in vs)
    series = {key: Series(key[0], key[1], tuple(p)) for key, p in points.items()}
    return series, sorted(versions)


def read_comparisons(client: Client, rng: Range) -> list[Comparison]:
    """The model's comparison rows in the range (segments ``vs=...`` and ``shadow=...``), per
    version, segment and metric: windows, the mean weighted by ``n``, the peak, ``n`` summed."""
    rows = _rows(
        client,
        "SELECT model_version, segment, metric, count() AS windows, "
        "if(sum(n) > 0, sum(value * n) / sum(n), avg(value)) AS mean, max(value) AS peak, "
        f"sum(n) AS events FROM metrics FINAL WHERE {_IN_RANGE} "
        "AND (startsWith(segment, 'vs=') OR startsWith(segment, 'shadow=')) "
        "GROUP BY model_version, segment, metric ORDER BY segment, model_version, metric",
        rng.params(),
    )
    return [
        Comparison(str(v), str(seg), str(m), int(w), float(mean), float(peak), int(n))
        for v, seg, m, w, mean, peak, n in rows
    ]


def read_profiles_json(client: Client, model: str, versions: Sequence[str]) -> list[str]:
    """The stored reference profiles (JSON) of the model's versions, newest first."""
    rows = _rows(
        client,
        "SELECT profile FROM references FINAL WHERE model = {model:String} "
        "AND model_version IN {versions:Array(String)} ORDER BY created_at DESC",
        {"model": model, "versions": list(versions)},
    )
    return [str(r[0]) for r in rows]


def _reference_sketches(
    client: Client, rng: Range, versions: Sequence[str], kind: str, metric: str
) -> dict[str, tuple[str, list[float], list[str], list[int]]]:
    """The newest reference sketch of each feature: ``feature -> (version, edges, labels,
    counts)``; an automatic reference (version ``auto``) is every version's."""
    rows = _rows(
        client,
        "SELECT feature, argMax(model_version, window_start), argMax(edges, window_start), "
        "argMax(labels, window_start), argMax(counts, window_start) FROM sketches FINAL "
        "WHERE run_id = {ref:String} AND model = {model:String} AND kind = {kind:String} "
        "AND metric = {metric:String} AND model_version IN {versions:Array(String)} "
        "GROUP BY feature",
        {
            "ref": REFERENCE_RUN,
            "model": rng.model,
            "kind": kind,
            "metric": metric,
            "versions": [*versions, AUTO_VERSION],
        },
    )
    return {
        str(f): (str(v), [float(x) for x in e], [str(x) for x in la], [int(x) for x in c])
        for f, v, e, la, c in rows
    }


def _summed(
    client: Client,
    rng: Range,
    feature: str,
    versions: Sequence[str],
    kind: str,
    peak_ms: int | None = None,
) -> tuple[list[float], list[str], list[int]] | None:
    """A feature's window sketches summed over the range (or the one window at ``peak_ms``):
    the most common bins or labels of the versions, and their counts."""
    extra = "" if peak_ms is None else "AND toUnixTimestamp64Milli(window_start) = {peak:Int64} "
    rows = _rows(
        client,
        "SELECT edges, labels, sumForEach(counts) AS c, count() AS windows FROM sketches FINAL "
        f"WHERE {_IN_RANGE} AND feature = {{feature:String}} AND kind = {{kind:String}} "
        f"AND metric = '' AND model_version IN {{versions:Array(String)}} {extra}"
        "GROUP BY edges, labels ORDER BY windows DESC LIMIT 1",
        rng.params(feature=feature, kind=kind, versions=list(versions), peak=peak_ms or 0),
    )
    if not rows:
        return None
    edges, labels, counts, _ = rows[0]
    return [float(x) for x in edges], [str(x) for x in labels], [int(x) for x in counts]


def _compared(reference_version: str, versions: Sequence[str]) -> list[str]:
    """The window versions a reference is compared with: its own, or, for an automatic
    reference, every version of the model."""
    return list(versions) if reference_version == AUTO_VERSION else [reference_version]


def coarsen(
    fine_edges: Sequence[float], counts: Sequence[int], edges: Sequence[float]
) -> list[int]:
    """Counts on a fine grid summed onto coarser ``edges`` (a subset of the fine edges).

    Fine bin ``i`` is ``[fine_edges[i-1], fine_edges[i])`` (bin 0 below the first edge); it
    falls in the coarse bin counting the coarse edges at or below its lower edge
    (docs/clickhouse.md, "PSI over any time range").
    """
    out = [0] * (len(edges) + 1)
    for i, c in enumerate(counts):
        k = 0 if i == 0 else sum(1 for e in edges if e <= fine_edges[i - 1])
        out[k] += c
    return out


def read_numeric_bins(
    client: Client,
    rng: Range,
    versions: Sequence[str],
    features: Sequence[str],
    peaks: Mapping[str, int],
) -> dict[str, tuple[list[float], list[int], list[int], list[int]]]:
    """Per numeric feature: PSI edges, reference counts, current counts over the range and at
    its peak window, all on the reference's PSI bins."""
    refs = _reference_sketches(client, rng, versions, "hist", "psi")
    out: dict[str, tuple[list[float], list[int], list[int], list[int]]] = {}
    for feature in features:
        if feature not in refs:
            continue
        version, edges, _, reference = refs[feature]
        compared = _compared(version, versions)
        current = _summed(client, rng, feature, compared, "hist")
        if current is None or not set(edges) <= set(current[0]):
            continue
        peak = _summed(client, rng, feature, compared, "hist", peaks.get(feature))
        at_peak = coarsen(peak[0], peak[2], edges) if peak and feature in peaks else []
        out[feature] = (edges, reference, coarsen(current[0], current[2], edges), at_peak)
    return out


def read_categories(
    client: Client,
    rng: Range,
    versions: Sequence[str],
    features: Sequence[str],
    new: Mapping[str, int],
) -> list[Categories]:
    """Reference and current category counts of the categorical features."""
    refs = _reference_sketches(client, rng, versions, "categories", "")
    out = []
    for feature in features:
        if feature not in refs:
            continue
        version, _, labels, reference = refs[feature]
        current = _summed(client, rng, feature, _compared(version, versions), "categories")
        if current is None:
            continue
        cur = dict(zip(current[1], current[2], strict=True))
        out.append(
            Categories(
                feature,
                tuple(labels),
                tuple(reference),
                tuple(cur.get(label, 0) for label in labels),
                new.get(feature, 0),
            )
        )
    return out


def read_alerts(client: Client, rng: Range) -> list[AlertEvent]:
    """The model's alert state changes in the run whose window starts in the range, by time."""
    rows = _rows(
        client,
        "SELECT toUnixTimestamp64Milli(ts), toUnixTimestamp64Milli(window_start), "
        "toUnixTimestamp64Milli(window_end), rule, severity, status, feature, metric, value, "
        "threshold, receivers FROM alerts FINAL WHERE run_id = {run:String} "
        "AND model = {model:String} "
        "AND window_start >= fromUnixTimestamp64Milli(toInt64({start:Float64} * 1000), 'UTC') "
        "AND window_start < fromUnixTimestamp64Milli(toInt64({end:Float64} * 1000), 'UTC') "
        "ORDER BY ts, rule, feature, status",
        rng.params(),
    )
    return [
        AlertEvent(
            int(ts),
            int(ws),
            int(we),
            str(rule),
            str(sev),
            str(st),
            str(feat),
            str(met),
            float(val),
            float(thr),
            tuple(str(r) for r in recv),
        )
        for ts, ws, we, rule, sev, st, feat, met, val, thr, recv in rows
    ]


def read_contributors(
    client: Client, rng: Range, peaks: Mapping[str, tuple[int, float]]
) -> list[Contributors]:
    """The drift attribution rows of each feature of ``peaks`` (``{feature: (window start,
    psi)}``) in that window: its bins ranked by PSI term with their mass shift, and its segment
    values ranked by share of the drift. Features without attribution
    rows there are left out; the rest in the order of ``peaks``."""
    if not peaks:
        return []
    rows = _rows(
        client,
        "SELECT feature, toUnixTimestamp64Milli(window_start) AS ws, metric, bin, segment, "
        "argMax(value, n) AS v FROM metrics FINAL "
        f"WHERE {_IN_RANGE} AND feature IN {{features:Array(String)}} AND ("
        "(metric IN ('psi_contribution', 'mass_shift') AND bin != '' AND segment = '') OR "
        "(metric = 'psi_segment_share' AND segment != '')) "
        "GROUP BY feature, ws, metric, bin, segment ORDER BY feature, ws, metric, bin, segment",
        rng.params(features=sorted(peaks)),
    )
    terms: dict[str, dict[str, float]] = {}
    shifts: dict[str, dict[str, float]] = {}
    shares: dict[str, dict[str, float]] = {}
    for feature, ws, metric, bin_, segment, value in rows:
        f = str(feature)
        if int(ws) != peaks[f][0]:
            continue
        if metric == "psi_segment_share":
            shares.setdefault(f, {})[str(segment)] = float(value)
        else:
            (terms if metric == "psi_contribution" else shifts).setdefault(f, {})[str(bin_)] = (
                float(value)
            )
    out = []
    for f, (start, psi) in peaks.items():
        if f not in terms and f not in shares:
            continue
        bins = sorted(
            ((b, v, shifts.get(f, {}).get(b, 0.0)) for b, v in terms.get(f, {}).items()),
            key=lambda t: (-t[1], t[0]),
        )
        segs = sorted(shares.get(f, {}).items(), key=lambda t: (-t[1], t[0]))
        out.append(Contributors(f, start, psi, tuple(bins), tuple(segs)))
    return out
