"""False alarms and detection delays of drift rules, on public data, through drifthouse's sketches.

    .venv/bin/python bench/bench_false_alarms.py [--data DIR] [--windows W] [--seed S] [--quick]

Each dataset is cut in two halves: the first is the reference (a profile built with
``build_profile``, the product's own code, multivariate fit included), the second the stream,
cut into windows of an hour each. Every window is sketched with ``ModelSketch.update`` and
evaluated twice with ``drifthouse.stream.results.evaluate_window`` (the rows a live worker
writes, q-values included): against the profile, and against a trailing baseline of the
:data:`TRAILING` windows before it (``reference: {trailing: 5h}``, merged by
``drifthouse.stream.trailing.TrailingBaselines``). Each rule set runs in its own ``RuleEngine``
over one of the two. The tables:

- **false alarms** on stationary data (the reference period split against itself), per 1,000
  feature-windows (one feature in one window; per 1,000 model-windows for the model-wide
  ``multivariate-drift``): the feature-windows in which an alert of the rule set is firing,
  and in parentheses the alerts raised (an alert that keeps firing pages once). A dataset in
  time order keeps it; one without is shuffled first (``--seed``). Windows are consecutive
  rows of the second half while it has rows for ``--windows`` of them, otherwise drawn with
  replacement from it (the 100,000-event rows always: a live window of a busy model).
- **detection delay**: an onset half way, after which one numeric feature is shifted by a
  quarter, then a half, of its reference standard deviation (each of the four numeric features
  with the most distinct values in turn). The delay is the first window at or after the onset
  where the rule set raises an alert on that feature (``multivariate-drift``: its model-wide
  alert) minus the onset's index; "found" counts the runs where it did. For the shipped rules,
  on either reference, the windows in alarm from the onset on.
- **known drift** (with ``--data``): NannyML's synthetic car loan data, its whole reference
  period against its analysis period in time order, in windows of 1,000 rows. From row 25,000
  four features drift (:data:`CAR_LOAN_DRIFTED`); alerts before the onset and alerts on the
  three others after it are false alarms.

Rule sets: ``psi > 0.25`` (``data-drift``, the only drift rule shipped before), a bare p-value
rule (``ks_pvalue``/``chi2_pvalue < 0.05``), the q-value alone (``< 0.05``), the drift rules
shipped now (``drifthouse/config/default_rules.yaml``: ``data-drift`` and
``distribution-shift``), the same on the trailing baseline, and ``multivariate-drift`` (its PCA
and band are the profile's on either reference).

Datasets: river's bundled files (``Phishing``, ``ImageSegments``, ``Shuttle``: in the wheel, no
download), and, when ``--data DIR`` holds what ``--export DIR`` wrote from a scratch venv with
scikit-learn and NannyML (never the project's venv)::

    python3 -m venv /tmp/data-venv
    /tmp/data-venv/bin/pip install nannyml scikit-learn statsmodels
    /tmp/data-venv/bin/python bench/bench_false_alarms.py --export /tmp/fa-data
    .venv/bin/python bench/bench_false_alarms.py --data /tmp/fa-data

scikit-learn's bundled ``breast_cancer`` and ``digits``, and NannyML's bundled synthetic car
loan dataset (its reference period, in time order, and its analysis period). The figures of
docs/statistics.md ("False alarms") are this command's, with the defaults.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from false_alarm_data import Dataset, export, load_exported, river_datasets

HOUR = 3_600_000
MODEL = ("m", "1")


# ---- drifthouse on windows ---------------------------------------------------------------------


#: The trailing baseline's span, in windows: an eighth of the 40 windows, so a step half way is
#: absorbed well before the end (docs/configuration.md "Trailing baselines").
TRAILING = 5


@dataclass(frozen=True)
class Rows:
    """One window's metric rows: compared with the profile (``fixed``), and with the merge of
    the :data:`TRAILING` windows before it (``trailing``; the first window has no drift rows)."""

    fixed: list[Any]
    trailing: list[Any]


class Monitor:
    """One model's sketches, laid out from the reference half (a profile built by
    ``build_profile``, multivariate fit included); windows in, metric rows out."""

    def __init__(self, ref: Dataset) -> None:
        from drifthouse.config import MetricsConfig, ModelConfig, TrailingReference
        from drifthouse.profiles.columns import build_profile
        from drifthouse.profiles.sketches import Sketches

        kinds: dict[str, Any] = {n: "numeric" for n in ref.numeric}
        kinds.update({n: "categorical" for n in ref.categorical})
        features: dict[str, Any] = {
            **ref.numeric,
            **{k: list(v) for k, v in ref.categorical.items()},
        }
        profile = build_profile(
            model=MODEL[0], model_version=MODEL[1], created_at="2026-01-01T00:00:00Z",
            source_digest="bench", settings=MetricsConfig(), features=features, kinds=kinds,
        )  # fmt: skip
        trailing = TrailingReference(trailing=f"{TRAILING}h")  # windows of an hour
        models = {MODEL[0]: ModelConfig(reference=trailing)}
        self.sketches = Sketches({MODEL[0]: profile}, MetricsConfig(), models)
        self.sketch = self.sketches(MODEL[0])
        #: Whether the profile has a multivariate part (``multivariate-drift`` can fire).
        self.multivariate = self.sketch.multivariate is not None

    def stream(self, windows: Sequence[Dataset]) -> list[Rows]:
        """The rows of ``windows``, one an hour in order, on a fresh trailing baseline."""
        from drifthouse.stream.results import evaluate_window
        from drifthouse.stream.trailing import TrailingBaselines
        from drifthouse.stream.windows import WindowSpec

        spec = WindowSpec.tumbling(HOUR)
        baselines = TrailingBaselines([spec], self.sketches, None, lambda: None, "bench")
        out = []
        for i, window in enumerate(windows):
            state = self._state(window, i)
            rows = [
                evaluate_window(
                    spec, i * HOUR, MODEL, state, self.sketches, changes=None, run_id="bench",
                    computed_at=0, baseline=baseline,
                ).metrics
                for baseline in (None, baselines.baseline(MODEL[0], i * HOUR))
            ]  # fmt: skip
            baselines.note(0, i * HOUR, MODEL, state)
            out.append(Rows(*rows))
        return out

    def _state(self, window: Dataset, index: int) -> Any:
        from drifthouse.categories import category_key
        from drifthouse.detectors.columns import Columns
        from drifthouse.detectors.model_sketch import ModelBatch

        layout, n = self.sketch.layout, window.rows
        numeric = np.ascontiguousarray(
            np.stack([window.numeric[f] for f in layout.numeric], axis=1)
            if layout.numeric
            else np.empty((n, 0))
        )
        codes = np.empty((n, len(layout.categorical)), dtype=np.int32)
        for j, f in enumerate(layout.categorical):
            cmap, unseen = layout.categories[j], layout.unseen[j]
            lookup = {
                v: cmap.get(category_key(v) or "", unseen) for v in set(window.categorical[f])
            }
            codes[:, j] = [lookup[v] for v in window.categorical[f]]
        cols = Columns(
            ts=np.full(n, index * HOUR, dtype=np.int64), numeric=numeric,
            status=np.isnan(numeric).view(np.uint8), codes=codes, latency=np.full(n, np.nan),
            http_status=np.full(n, 200, dtype=np.int32), score=np.full(n, np.nan),
        )  # fmt: skip
        return self.sketch.update(self.sketch.empty(), ModelBatch(cols))


def _take(ds: Dataset, idx: npt.NDArray[np.intp]) -> Dataset:
    return Dataset(
        ds.name,
        {k: v[idx] for k, v in ds.numeric.items()},
        {k: v[idx] for k, v in ds.categorical.items()},
        ds.ordered,
    )


def _split(ds: Dataset, rng: np.random.Generator) -> tuple[Dataset, Dataset]:
    order = np.arange(ds.rows) if ds.ordered else rng.permutation(ds.rows)
    half = ds.rows // 2
    return _take(ds, order[:half]), _take(ds, order[half:])


def _windows(
    pool: Dataset, size: int, count: int, rng: np.random.Generator | None
) -> list[Dataset]:
    if size * count <= pool.rows or rng is None:
        return [_take(pool, np.arange(i * size, (i + 1) * size)) for i in range(count)]
    return [_take(pool, rng.integers(0, pool.rows, size)) for _ in range(count)]


# ---- rule sets ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RuleSet:
    """Rules run together: on the rows compared with the profile, or (``trailing``) with the
    trailing baseline; ``model_wide`` rules alert per model-window (feature ``""``)."""

    rules: list[Any]
    trailing: bool = False
    model_wide: bool = False

    def rows(self, windows: Sequence[Rows]) -> list[list[Any]]:
        return [w.trailing if self.trailing else w.fixed for w in windows]


SHIPPED = "after: shipped (`psi > 0.25`; `ks >= 0.1 and qvalue < 0.01`, for 2)"
SHIPPED_TRAILING = f"shipped, on a trailing baseline of {TRAILING} windows"
MULTIVARIATE = "`multivariate-drift`"


def _rule_sets() -> dict[str, RuleSet]:
    from drifthouse.config import RuleConfig
    from drifthouse.config.default_rules import load_default_rules

    def rule(name: str, metric: str, when: str, **kw: Any) -> Any:
        return RuleConfig.model_validate(
            {"name": name, "metric": metric, "when": when, "segment": "", **kw}
        )

    defaults = {r.name: r for r in load_default_rules()}
    shipped = [defaults["data-drift"], defaults["distribution-shift"]]
    return {
        "before: `psi > 0.25` (for 2)": RuleSet(
            [rule("psi", "psi", "value > 0.25", clear="value < 0.1", **{"for": 2})]
        ),
        "bare p-value `< 0.05`": RuleSet(
            [
                rule("ks-p", "ks_pvalue", "value < 0.05"),
                rule("chi2-p", "chi2_pvalue", "value < 0.05"),
            ]
        ),
        "q-value alone `< 0.05`": RuleSet(
            [
                rule("ks-q", "ks_qvalue", "value < 0.05"),
                rule("chi2-q", "chi2_qvalue", "value < 0.05"),
            ]
        ),
        SHIPPED: RuleSet(shipped),
        SHIPPED_TRAILING: RuleSet(shipped, trailing=True),
        # The PCA and its band stay the profile's on a trailing baseline: one column for both.
        MULTIVARIATE: RuleSet([defaults["multivariate-drift"]], model_wide=True),
    }


@dataclass(frozen=True)
class Fired:
    """What rules did over a stream of windows: every alert raised, ``(window, feature)``,
    and each window's features with an alert firing (a feature once whatever the rules;
    ``""`` for a model-wide alert)."""

    raised: list[tuple[int, str]]
    firing: list[frozenset[str]]

    @property
    def firing_windows(self) -> int:
        """Feature-windows (model-windows for model-wide rules) spent firing."""
        return sum(len(f) for f in self.firing)

    def first(self, feature: str, onset: int) -> int | None:
        """The delay of the first alert on ``feature`` at or after window ``onset``."""
        return next((i - onset for i, f in self.raised if f == feature and i >= onset), None)

    def in_alarm(self, feature: str, onset: int) -> int:
        """Windows at or after ``onset`` in which an alert on ``feature`` is firing."""
        return sum(1 for f in self.firing[onset:] if feature in f)


def fired(rules: Sequence[Any], windows: Sequence[Sequence[Any]]) -> Fired:
    """Run ``rules`` in one ``RuleEngine`` over the windows' rows, in order."""
    from drifthouse.alerts.rules import RuleEngine

    engine = RuleEngine(list(rules))
    raised: list[tuple[int, str]] = []
    firing: list[frozenset[str]] = []
    for i, rows in enumerate(windows):
        raised += [(i, a.feature) for a in engine.process(rows) if a.status == "firing"]
        firing.append(frozenset(a.feature for a in engine.firing()))
    return Fired(raised, firing)


def _median(values: Sequence[float]) -> str:
    return f"{statistics.median(values):.1f}" if values else "–"


# ---- the tables --------------------------------------------------------------------------------


def false_alarms(
    datasets: Sequence[Dataset], sizes: Mapping[str, Sequence[int]], count: int, seed: int
) -> list[str]:
    sets = _rule_sets()
    lines = [
        "| dataset | rows per window | feature-windows | "
        + " | ".join(
            f"{k} (per 1,000 model-windows)" if v.model_wide else k for k, v in sets.items()
        )
        + " |",
        "|---|---:|---:|" + "---:|" * len(sets),
    ]
    for ds in datasets:
        for size in sizes.get(ds.name, sizes["*"]):
            rng = np.random.default_rng(seed)
            ref, pool = _split(ds, rng)
            monitor = Monitor(ref)
            rows = monitor.stream(_windows(pool, size, count, rng))
            feature_windows = (len(ds.numeric) + len(ds.categorical)) * count
            cells = []
            for rule_set in sets.values():
                if rule_set.model_wide and not monitor.multivariate:
                    cells.append("no fit")
                    continue
                got = fired(rule_set.rules, rule_set.rows(rows))
                per = 1000 / (count if rule_set.model_wide else feature_windows)
                cells.append(f"{got.firing_windows * per:.1f} ({len(got.raised) * per:.1f})")
            lines.append(
                f"| {ds.name} | {size:,} | {feature_windows:,} | " + " | ".join(cells) + " |"
            )
    return lines


def delays(datasets: Sequence[Dataset], size: int, count: int, seed: int, sds: float) -> list[str]:
    """Per dataset and rule set: the median delay (found/runs); for the shipped rules on either
    reference, the median windows in alarm from the onset on."""
    sets = _rule_sets()
    spans = (SHIPPED, SHIPPED_TRAILING)
    onset = count // 2
    lines = [
        "| dataset | rows per window | "
        + " | ".join(sets)
        + f" | in alarm (of {count - onset}): shipped | on a trailing baseline |",
        "|---|---:|" + "---:|" * (len(sets) + 2),
    ]
    for ds in datasets:
        rng = np.random.default_rng(seed)
        ref, pool = _split(ds, rng)
        monitor = Monitor(ref)
        windows = _windows(pool, size, count, rng)
        distinct = sorted(ds.numeric, key=lambda f: -len(np.unique(ref.numeric[f])))[:4]
        found: dict[str, list[int | None]] = {name: [] for name in sets}
        early = 0  # runs a model-wide rule was in alarm before the onset: its delay is chance
        alarm: dict[str, list[int]] = {name: [] for name in spans}
        for feature in distinct:
            shift = sds * float(np.std(ref.numeric[feature]))
            shifted = [
                w if i < onset else Dataset(w.name, {**w.numeric, feature: w.numeric[feature] + shift},
                                            w.categorical, w.ordered)
                for i, w in enumerate(windows)
            ]  # fmt: skip
            rows = monitor.stream(shifted)
            for name, rule_set in sets.items():
                got = fired(rule_set.rules, rule_set.rows(rows))
                target = "" if rule_set.model_wide else feature
                found[name].append(got.first(target, onset))
                early += int(rule_set.model_wide and target in got.firing[onset - 1])
                if name in alarm:
                    alarm[name].append(got.in_alarm(target, onset))
        cells = []
        for name, runs in found.items():
            if sets[name].model_wide and not monitor.multivariate:
                cells.append("no fit")
                continue
            hits = [d for d in runs if d is not None]
            before = f", {early} in alarm before" if sets[name].model_wide and early else ""
            cells.append(f"{_median(hits)} ({len(hits)}/{len(runs)}{before})")
        cells += [_median(alarm[name]) for name in spans]
        lines.append(f"| {ds.name} | {size:,} | " + " | ".join(cells) + " |")
    return lines


#: NannyML's synthetic car loan analysis period: from row 25,000 on, these features drift
#: (means of car_value 29.9k -> 48.7k, loan_length 14.4 -> 16.3, repaid_loan_on_prev_car
#: "True" 55% -> 80%, salary_range a few points); the others keep the reference's law.
CAR_LOAN_ONSET_ROW = 25_000
CAR_LOAN_DRIFTED = ("car_value", "loan_length", "repaid_loan_on_prev_car", "salary_range")


def known_drift(folder: Path, size: int) -> list[str]:
    """NannyML's car loan data: its whole reference period against its analysis period in
    time order, windows of ``size`` rows; the onset is known (:data:`CAR_LOAN_ONSET_ROW`).
    A model-wide rule has one series: its false alarms are per 1,000 model-windows before the
    onset, its delay that of its first alert from the onset on."""
    (ref,) = [d for d in load_exported(folder) if d.name == "nannyml_car_loan"]
    with np.load(folder / "nannyml_car_loan_analysis.npz", allow_pickle=False) as z:
        num = {k[4:]: z[k].astype(float) for k in z.files if k.startswith("num:")}
        cat = {k[4:]: z[k].astype(str) for k in z.files if k.startswith("cat:")}
    analysis = Dataset("analysis", num, cat, True)
    monitor = Monitor(ref)
    count, onset = analysis.rows // size, CAR_LOAN_ONSET_ROW // size
    rows = monitor.stream(_windows(analysis, size, count, None))
    features = [*ref.numeric, *ref.categorical]
    still = [f for f in features if f not in CAR_LOAN_DRIFTED]
    lines = [
        "| rule set | false alarms before the onset | on the 3 unchanged features after it | "
        f"delay, median (found/drifted) | windows in alarm from the onset (of {count - onset}), "
        "median |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, rule_set in _rule_sets().items():
        got = fired(rule_set.rules, rule_set.rows(rows))
        drifted = [""] if rule_set.model_wide else list(CAR_LOAN_DRIFTED)
        before = sum(1 for i, _ in got.raised if i < onset)
        after = sum(1 for i, f in got.raised if i >= onset and f in still)
        delay = [d for d in (got.first(f, onset) for f in drifted) if d is not None]
        alarm = [got.in_alarm(f, onset) for f in drifted]
        wide = 1 if rule_set.model_wide else len(features)
        unchanged = (
            "–" if rule_set.model_wide else f"{1000 * after / ((count - onset) * len(still)):.1f}"
        )
        lines.append(
            f"| {name} | {1000 * before / (onset * wide):.1f} | {unchanged} | "
            f"{_median(delay)} ({len(delay)}/{len(drifted)}) | {_median(alarm)} |"
        )
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, help="folder written by --export")
    parser.add_argument("--export", type=Path, help="write scikit-learn's and NannyML's data")
    parser.add_argument("--windows", type=int, default=40)
    parser.add_argument("--seed", type=int, default=21)
    parser.add_argument("--quick", action="store_true", help="fewer, smaller windows")
    args = parser.parse_args(argv)
    if args.export:
        export(args.export)
        return 0
    started = time.perf_counter()
    datasets = river_datasets() + (load_exported(args.data) if args.data else [])
    count = 10 if args.quick else args.windows
    big = [] if args.quick else [100_000]
    sizes: dict[str, Sequence[int]] = {"*": [200, 1_000, *big]}
    print(
        f"## False alarms per 1,000 feature-windows ({count} windows each): feature-windows "
        "firing (alerts raised)\n"
    )
    print("\n".join(false_alarms(datasets, sizes, count, args.seed)))
    for sds in (0.25, 0.5):
        print(
            f"\n## Detection delay in windows after a {sds} sd shift of one feature "
            f"(median (found/runs); onset at window {count // 2} of {count})\n"
        )
        print("\n".join(delays(datasets, 1_000, count, args.seed, sds)))
    if args.data:
        print(
            "\n## Known drift: NannyML's car loan analysis period, windows of 1,000 rows "
            "(alerts raised per 1,000 feature-windows; delay in windows)\n"
        )
        print("\n".join(known_drift(args.data, 1_000)))
    print(f"\n({time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
