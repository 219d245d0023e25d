"""An hourly drift job: PSI and KS of every numeric feature against a 100,000-row reference.

Three ways to compute the same numbers for each hour of events:

- **drifthouse**: ``NumericBlock.update`` in micro-batches of 1,024, then ``evaluate`` (which
  also yields JS, Wasserstein and the quality metrics);
- **scipy**: ``np.histogram`` on the PSI edges (reference histogram computed once) and
  ``scipy.stats.ks_2samp`` per feature;
- **Evidently**: one ``Report`` per hour with ``ValueDrift(method="psi")`` and
  ``ValueDrift(method="ks")`` per feature. Evidently 0.7 does not import with pandas 3 (the
  project's dev environment), so it runs in a separate virtualenv given by
  ``--evidently-python`` (default ``/tmp/dh-evidently/bin/python``; create it with
  ``python -m venv /tmp/dh-evidently && /tmp/dh-evidently/bin/pip install 'pandas<3' evidently``).
  Building the pandas frames is left out of Evidently's time.

The one-off profile build is timed separately. Prints a markdown table of seconds and ratios.

Usage::

    .venv/bin/python bench/bench_drift_job.py [--quick] [--hours H] [--events-per-hour N]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy import stats as sst

from drifthouse.config import MetricsConfig
from drifthouse.detectors import NumericBlock
from drifthouse.detectors import stats as dstats
from drifthouse.detectors.numeric import NumericBatch
from drifthouse.profiles.columns import build_profile

N_REF = 100_000
N_NUM = 20

_EVIDENTLY_SCRIPT = r"""
import json, sys, time
import numpy as np
import pandas as pd
from evidently import Report
from evidently.metrics import ValueDrift

folder, n_hours = sys.argv[1], int(sys.argv[2])
ref = np.load(f"{folder}/ref.npy")
cols = [f"num_{i}" for i in range(ref.shape[1])]
ref_df = pd.DataFrame(ref, columns=cols)
total = 0.0
values = []
for h in range(n_hours):
    cur_df = pd.DataFrame(np.load(f"{folder}/hour_{h}.npy"), columns=cols)
    metrics = [ValueDrift(column=c, method=m) for c in cols for m in ("psi", "ks")]
    t = time.perf_counter()
    snapshot = Report(metrics).run(current_data=cur_df, reference_data=ref_df)
    total += time.perf_counter() - t
    if h == 0:
        values = [m.get("value") for m in snapshot.dict()["metrics"]][:4]
print(json.dumps({"seconds": total, "sample": values}))
"""


def _numeric(rng: np.random.Generator, n: int, shift: float) -> np.ndarray:
    cols = []
    for i in range(N_NUM):
        kind = i % 4
        if kind == 0:
            cols.append(rng.normal(shift, 1.0, n))
        elif kind == 1:
            cols.append(rng.lognormal(shift, 1.0, n))
        elif kind == 2:
            cols.append(rng.exponential(1.0 + shift, n))
        else:
            cols.append(rng.integers(0, 20, n).astype(np.float64))
    return np.ascontiguousarray(np.column_stack(cols))


def run_ours(
    ref: np.ndarray, hours: list[np.ndarray]
) -> tuple[float, float, list[dict[str, float]]]:
    names = [f"num_{i}" for i in range(ref.shape[1])]
    t = time.perf_counter()
    profile = build_profile(
        model="bench",
        model_version="1",
        created_at="2026-01-01T00:00:00Z",
        source_digest="",
        settings=MetricsConfig(),
        features={n: ref[:, j] for j, n in enumerate(names)},
    )
    block = NumericBlock.from_profile(profile)
    t_profile = time.perf_counter() - t
    block.update(block.empty(), NumericBatch(hours[0][:8]))  # load the compiled kernel
    out = []
    t = time.perf_counter()
    for cur in hours:
        state = block.empty()
        status = np.zeros(cur.shape, np.uint8)
        for i in range(0, cur.shape[0], 1_024):
            block.update(state, NumericBatch(cur[i : i + 1_024], status[i : i + 1_024]))
        res = block.evaluate(state)
        out.append({f"{r.feature}:{r.metric}": r.value for r in res if r.metric in ("psi", "ks")})
    return t_profile, time.perf_counter() - t, out


def run_scipy(
    ref: np.ndarray, hours: list[np.ndarray], psi_edges: list[np.ndarray]
) -> tuple[float, list[dict[str, float]]]:
    out = []
    t = time.perf_counter()
    ref_hist = [
        np.histogram(ref[:, j], bins=np.concatenate(([-np.inf], e, [np.inf])))[0]
        for j, e in enumerate(psi_edges)
    ]
    for cur in hours:
        res: dict[str, float] = {}
        for j, e in enumerate(psi_edges):
            cur_hist = np.histogram(cur[:, j], bins=np.concatenate(([-np.inf], e, [np.inf])))[0]
            res[f"num_{j}:psi"] = dstats.psi(ref_counts=ref_hist[j], cur_counts=cur_hist)
            res[f"num_{j}:ks"] = float(sst.ks_2samp(ref[:, j], cur[:, j]).statistic)
        out.append(res)
    return time.perf_counter() - t, out


def run_evidently(
    python: str, ref: np.ndarray, hours: list[np.ndarray]
) -> tuple[float | None, str]:
    if not Path(python).exists():
        return None, f"no interpreter at {python}"
    with tempfile.TemporaryDirectory() as folder:
        np.save(f"{folder}/ref.npy", ref)
        for h, cur in enumerate(hours):
            np.save(f"{folder}/hour_{h}.npy", cur)
        script = Path(folder) / "run.py"
        script.write_text(_EVIDENTLY_SCRIPT)
        proc = subprocess.run(
            [python, str(script), folder, str(len(hours))],
            capture_output=True,
            text=True,
            check=False,
        )
    if proc.returncode != 0:
        return None, proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed"
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return float(result["seconds"]), f"sample values {result['sample']}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="2 hours of 20,000 events")
    parser.add_argument("--hours", type=int, default=None)
    parser.add_argument("--events-per-hour", type=int, default=None)
    parser.add_argument("--evidently-python", default="/tmp/dh-evidently/bin/python")
    parser.add_argument("--no-evidently", action="store_true")
    args = parser.parse_args()
    n_hours = args.hours or (2 if args.quick else 6)
    per_hour = args.events_per_hour or (20_000 if args.quick else 100_000)

    rng = np.random.default_rng(0)
    ref = _numeric(rng, N_REF, 0.0)
    hours = [_numeric(rng, per_hour, 0.05 * h) for h in range(n_hours)]
    print(
        f"reference {N_REF:,} rows x {N_NUM} numeric features; {n_hours} hours x {per_hour:,} events"
    )
    print(
        f"load average at start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores (shared machine)\n"
    )

    t_profile, t_ours, ours = run_ours(ref, hours)
    block_edges = [
        np.unique(np.quantile(ref[:, j], np.arange(1, 100) / 100)[np.arange(10, 100, 10) - 1])
        for j in range(N_NUM)
    ]
    t_scipy, exact = run_scipy(ref, hours, block_edges)
    t_evid, evid_note = (
        (None, "skipped") if args.no_evidently else run_evidently(args.evidently_python, ref, hours)
    )

    ks_gap = max(
        abs(o[k] - e[k]) for o, e in zip(ours, exact, strict=True) for k in o if k.endswith(":ks")
    )
    psi_gap = max(
        abs(o[k] - e[k]) for o, e in zip(ours, exact, strict=True) for k in o if k.endswith(":psi")
    )

    print("| engine | seconds for all hours | per hour (s) | ours is x faster |")
    print("|---|---:|---:|---:|")
    print(f"| drifthouse sketches | {t_ours:.3f} | {t_ours / n_hours:.4f} | 1.0 |")
    print(
        f"| scipy ks_2samp + np.histogram | {t_scipy:.3f} | {t_scipy / n_hours:.4f} | {t_scipy / t_ours:.1f} |"
    )
    if t_evid is not None:
        print(
            f"| Evidently ValueDrift psi + ks | {t_evid:.3f} | {t_evid / n_hours:.4f} | {t_evid / t_ours:.1f} |"
        )
    else:
        print(f"| Evidently | not run: {evid_note} | | |")
    print(f"\nprofile build (once, 100k rows x {N_NUM}): {t_profile:.3f} s")
    print(f"largest |KS(binned) - KS(exact)| over all features and hours: {ks_gap:.4f}")
    print(f"largest |PSI(sketch) - PSI(np.histogram, same edges)|: {psi_gap:.2e}")
    if t_evid is not None:
        print(f"Evidently: {evid_note}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
