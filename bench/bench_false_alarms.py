"""False alarms and detection delays of drift rules, on public data, through drifthouse's sketches.

    .venv/bin/python bench/bench_false_alarms.py [--data DIR] [--windows W] [--seed S] [--quick]

Each dataset is cut in two halves: the first is the reference (a profile built with
``build_profile``, the product's own code), the second the stream, cut into windows. Every
window is sketched with ``ModelSketch.update`` and evaluated with
``drifthouse.stream.results.evaluate_window`` (the rows a live worker writes, q-values
included), and each rule set runs in its own ``RuleEngine`` over those rows. The tables:

- **false alarms** on stationary data (the reference period split against itself), per 1,000
  feature-windows (a feature-window: one feature in one window): the feature-windows in which
  an alert of the rule set is firing, and in parentheses the alerts raised (pages: an alert
  that keeps firing pages once). A dataset in time order keeps it (first half against second
  half); one without order is shuffled first (``--seed``). Windows are consecutive rows of the
  second half while it has rows for ``--windows`` of them, otherwise drawn with replacement
  from it. The 100,000-event rows draw every window with replacement from the second half: a
  live window of a busy model.
- **detection delay**: ``--windows`` windows, an onset half way, after which one numeric
  feature is shifted by a quarter, then a half, of its reference standard deviation (each of
  the four numeric features with the most distinct values in turn). The delay is the index of
  the first window at or after the onset where the rule set raises an alert on that feature,
  minus the onset's index (0: the first shifted window); "found" counts the runs where it did.
- **known drift** (with ``--data``): NannyML's synthetic car loan data, its whole reference
  period against its analysis period in time order, in windows of 1,000 rows. From row 25,000
  four features drift (:data:`CAR_LOAN_DRIFTED`); alerts before the onset and alerts on the
  three others after it are false alarms.

Rule sets: ``psi > 0.25`` (``data-drift``, the only drift rule shipped before), a bare p-value
rule as dashboards ship it (``ks_pvalue < 0.05``, ``chi2_pvalue < 0.05``), the q-value alone
(``ks_qvalue``/``chi2_qvalue < 0.05``), and the drift rules shipped now
(``drifthouse/config/default_rules.yaml``: ``data-drift`` and ``distribution-shift``).

Datasets: river's bundled files (``Phishing``, ``ImageSegments``, ``Shuttle``: in the wheel, no
download), and, when ``--data DIR`` holds what ``--export DIR`` wrote from a scratch venv with
scikit-learn and NannyML (never the project's venv)::

    python3 -m venv /tmp/data-venv && /tmp/data-venv/bin/pip install nannyml scikit-learn
    /tmp/data-venv/bin/python bench/bench_false_alarms.py --export /tmp/fa-data
    .venv/bin/python bench/bench_false_alarms.py --data /tmp/fa-data

scikit-learn's bundled ``breast_cancer`` and ``digits``, and NannyML's bundled synthetic car
loan dataset (its reference period, in time order, and its analysis period). About a minute. The figures of docs/statistics.md
("False alarms") are this command's, with the defaults.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

HOUR = 3_600_000
MODEL = ("m", "1")


@dataclass(frozen=True)
class Dataset:
    name: str
    numeric: dict[str, npt.NDArray[np.float64]]
    categorical: dict[str, npt.NDArray[np.str_]]
    ordered: bool  # rows in time order: keep it

    @property
    def rows(self) -> int:
        first = next(iter({**self.numeric, **self.categorical}.values()))
        return int(first.shape[0])


# ---- export (run in a scratch venv with scikit-learn and nannyml) ------------------------------


def _export(folder: Path) -> None:
    """Write scikit-learn's and NannyML's bundled datasets as .npz files to ``folder``."""
    from sklearn import datasets as skd  # type: ignore[import-not-found]

    folder.mkdir(parents=True, exist_ok=True)
    for name, loader in (("breast_cancer", skd.load_breast_cancer), ("digits", skd.load_digits)):
        bunch = loader()
        names = [str(n) for n in getattr(bunch, "feature_names", range(bunch.data.shape[1]))]
        cols = {f"num:{n}": bunch.data[:, i].astype(float) for i, n in enumerate(names)}
        np.savez(folder / f"sklearn_{name}.npz", ordered=False, **cols)
    import nannyml  # type: ignore[import-not-found]

    reference, analysis, _targets = nannyml.load_synthetic_car_loan_dataset()
    for name, frame in (("nannyml_car_loan", reference), ("nannyml_car_loan_analysis", analysis)):
        cols = {}
        for col in frame.columns:
            if col in {"id", "timestamp", "y_pred_proba", "y_pred", "repaid", "period"}:
                continue
            series = frame[col]
            if series.dtype.kind in "fi":
                cols[f"num:{col}"] = series.to_numpy(dtype=float)
            else:
                cols[f"cat:{col}"] = np.array(series.astype(str).tolist(), dtype=str)
        np.savez(folder / f"{name}.npz", ordered=True, **cols)
    print(json.dumps({"exported": sorted(p.name for p in folder.glob("*.npz"))}))


def _load_exported(folder: Path) -> list[Dataset]:
    out = []
    for path in sorted(folder.glob("*.npz")):
        if path.stem.endswith("_analysis"):
            continue  # the known-drift table's
        with np.load(path, allow_pickle=False) as z:
            num = {k[4:]: z[k].astype(float) for k in z.files if k.startswith("num:")}
            cat = {k[4:]: z[k].astype(str) for k in z.files if k.startswith("cat:")}
            out.append(Dataset(path.stem, num, cat, bool(z["ordered"])))
    return out


def _river_datasets() -> list[Dataset]:
    from river import datasets

    out = []
    for name, ds in (
        ("river_phishing", datasets.Phishing()),
        ("river_image_segments", datasets.ImageSegments()),
        ("river_shuttle", datasets.Shuttle()),
    ):
        rows = [x for x, _ in ds]
        keys = list(rows[0])
        num = {k: np.array([float(r[k]) for r in rows]) for k in keys}
        out.append(Dataset(name, num, {}, ordered=False))
    return out


# ---- drifthouse on windows ---------------------------------------------------------------------


class Monitor:
    """One model's sketches, laid out from the reference half; windows in, metric rows out."""

    def __init__(self, ref: Dataset) -> None:
        from drifthouse.config import MetricsConfig
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
        self.sketches = Sketches({MODEL[0]: profile}, MetricsConfig())
        self.sketch = self.sketches(MODEL[0])

    def rows(self, window: Dataset, index: int) -> list[Any]:
        from drifthouse.categories import category_key
        from drifthouse.detectors.columns import Columns
        from drifthouse.detectors.model_sketch import ModelBatch
        from drifthouse.stream.results import evaluate_window
        from drifthouse.stream.windows import WindowSpec

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
        state = self.sketch.update(self.sketch.empty(), ModelBatch(cols))
        result = evaluate_window(
            WindowSpec.tumbling(HOUR), index * HOUR, MODEL, state, self.sketches,
            changes=None, run_id="bench", computed_at=0,
        )  # fmt: skip
        return result.metrics


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


def _rule_sets() -> dict[str, list[Any]]:
    from drifthouse.config import RuleConfig
    from drifthouse.config.default_rules import load_default_rules

    def rule(name: str, metric: str, when: str, **kw: Any) -> Any:
        return RuleConfig.model_validate(
            {"name": name, "metric": metric, "when": when, "segment": "", **kw}
        )

    shipped = [r for r in load_default_rules() if r.name in {"data-drift", "distribution-shift"}]
    assert len(shipped) == 2, [r.name for r in load_default_rules()]
    return {
        "before: `psi > 0.25` (for 2)": [
            rule("psi", "psi", "value > 0.25", clear="value < 0.1", **{"for": 2})
        ],
        "bare p-value `< 0.05`": [
            rule("ks-p", "ks_pvalue", "value < 0.05"),
            rule("chi2-p", "chi2_pvalue", "value < 0.05"),
        ],
        "q-value alone `< 0.05`": [
            rule("ks-q", "ks_qvalue", "value < 0.05"),
            rule("chi2-q", "chi2_qvalue", "value < 0.05"),
        ],
        "after: shipped (`psi > 0.25`; `ks >= 0.1 and qvalue < 0.01`, for 2)": shipped,
    }


def _fired(rules: list[Any], windows: Sequence[list[Any]]) -> tuple[list[tuple[int, str]], int]:
    """(window index, feature) of every alert the rules raise over the windows' rows, and the
    feature-windows spent firing (a feature counted once per window whatever the rules)."""
    from drifthouse.alerts.rules import RuleEngine

    engine = RuleEngine(rules)
    raised, firing = [], 0
    for i, rows in enumerate(windows):
        raised += [(i, a.feature) for a in engine.process(rows) if a.status == "firing"]
        firing += len({a.feature for a in engine.firing()})
    return raised, firing


# ---- the two tables ----------------------------------------------------------------------------


def false_alarms(
    datasets: Sequence[Dataset], sizes: Mapping[str, Sequence[int]], count: int, seed: int
) -> list[str]:
    sets = _rule_sets()
    lines = [
        "| dataset | rows per window | feature-windows | " + " | ".join(sets) + " |",
        "|---|---:|---:|" + "---:|" * len(sets),
    ]
    for ds in datasets:
        for size in sizes.get(ds.name, sizes["*"]):
            rng = np.random.default_rng(seed)
            ref, pool = _split(ds, rng)
            monitor = Monitor(ref)
            rows = [monitor.rows(w, i) for i, w in enumerate(_windows(pool, size, count, rng))]
            feature_windows = (len(ds.numeric) + len(ds.categorical)) * count
            cells = []
            for rules in sets.values():
                raised, firing = _fired(rules, rows)
                per = 1000 / feature_windows
                cells.append(f"{firing * per:.1f} ({len(raised) * per:.1f})")
            lines.append(
                f"| {ds.name} | {size:,} | {feature_windows:,} | " + " | ".join(cells) + " |"
            )
    return lines


def delays(datasets: Sequence[Dataset], size: int, count: int, seed: int, sds: float) -> list[str]:
    sets = _rule_sets()
    onset = count // 2
    lines = [
        "| dataset | rows per window | " + " | ".join(sets) + " |",
        "|---|---:|" + "---:|" * len(sets),
    ]
    for ds in datasets:
        rng = np.random.default_rng(seed)
        ref, pool = _split(ds, rng)
        monitor = Monitor(ref)
        windows = _windows(pool, size, count, rng)
        distinct = sorted(ds.numeric, key=lambda f: -len(np.unique(ref.numeric[f])))[:4]
        found: dict[str, list[int | None]] = {name: [] for name in sets}
        for feature in distinct:
            shift = sds * float(np.std(ref.numeric[feature]))
            rows = []
            for i, w in enumerate(windows):
                if i >= onset:
                    w = Dataset(w.name, {**w.numeric, feature: w.numeric[feature] + shift},
                                w.categorical, w.ordered)  # fmt: skip
                rows.append(monitor.rows(w, i))
            for name, rules in sets.items():
                hits = [i for i, f in _fired(rules, rows)[0] if f == feature and i >= onset]
                found[name].append(hits[0] - onset if hits else None)
        cells = []
        for runs in found.values():
            got = [d for d in runs if d is not None]
            median = f"{statistics.median(got):.1f}" if got else "–"
            cells.append(f"{median} ({len(got)}/{len(runs)})")
        lines.append(f"| {ds.name} | {size:,} | " + " | ".join(cells) + " |")
    return lines


#: NannyML's synthetic car loan analysis period: from row 25,000 on, these features drift
#: (means of car_value 29.9k -> 48.7k, loan_length 14.4 -> 16.3, repaid_loan_on_prev_car
#: "True" 55% -> 80%, salary_range a few points); the others keep the reference's law.
CAR_LOAN_ONSET_ROW = 25_000
CAR_LOAN_DRIFTED = ("car_value", "loan_length", "repaid_loan_on_prev_car", "salary_range")


def known_drift(folder: Path, size: int) -> list[str]:
    """NannyML's car loan data: its whole reference period against its analysis period in
    time order, windows of ``size`` rows; the onset is known (:data:`CAR_LOAN_ONSET_ROW`)."""
    (ref,) = [d for d in _load_exported(folder) if d.name == "nannyml_car_loan"]
    with np.load(folder / "nannyml_car_loan_analysis.npz", allow_pickle=False) as z:
        num = {k[4:]: z[k].astype(float) for k in z.files if k.startswith("num:")}
        cat = {k[4:]: z[k].astype(str) for k in z.files if k.startswith("cat:")}
    analysis = Dataset("analysis", num, cat, True)
    monitor = Monitor(ref)
    count, onset = analysis.rows // size, CAR_LOAN_ONSET_ROW // size
    rows = [monitor.rows(w, i) for i, w in enumerate(_windows(analysis, size, count, None))]
    features = [*ref.numeric, *ref.categorical]
    still = [f for f in features if f not in CAR_LOAN_DRIFTED]
    lines = [
        "| rule set | false alarms before the onset | on the 3 unchanged features after it | "
        "delay, median (found/4 drifted features) |",
        "|---|---:|---:|---:|",
    ]
    for name, rules in _rule_sets().items():
        raised, _ = _fired(rules, rows)
        before = sum(1 for i, _ in raised if i < onset)
        after = sum(1 for i, f in raised if i >= onset and f in still)
        first = {f: min((i for i, g in raised if g == f and i >= onset), default=None)
                 for f in CAR_LOAN_DRIFTED}  # fmt: skip
        got = [i - onset for i in first.values() if i is not None]
        median = f"{statistics.median(got):.1f}" if got else "–"
        lines.append(
            f"| {name} | {1000 * before / (onset * len(features)):.1f} | "
            f"{1000 * after / ((count - onset) * len(still)):.1f} | {median} ({len(got)}/4) |"
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
        _export(args.export)
        return 0
    started = time.perf_counter()
    datasets = _river_datasets() + (_load_exported(args.data) if args.data else [])
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
