"""A user's whole job, whole processes: hourly PSI + KS of 25 features over a day's file.

    .venv/bin/python bench/bench_job.py [--runs N] [--evidently-runs M] [--quick]
        [--evidently-python PATH | --no-evidently]

Writes (seed 19) a 20,000-row reference CSV and 100,000 prediction events as JSONL spread
over 12 hours (25 numeric features: normal, lognormal, exponential, integer and uniform, the
later hours shifted), then times whole processes, as a user runs them, with warm caches (one
untimed run of each first), round-robin so that load elsewhere falls on all alike:

- **drifthouse**: ``drifthouse replay --source file:events.jsonl`` into a new embedded store
  in a temp folder, tumbling 1 h windows (it computes PSI and KS and also JS, Wasserstein,
  the quality and serving metrics and writes every row); the profile
  (``drifthouse profile ref.csv``) is built once and timed apart;
- **pandas + scipy**: one script a user could write: ``pd.read_json(lines=True)``, the
  features unpacked into a frame, per hour and feature PSI by ``np.histogram`` on the
  reference's deciles and ``scipy.stats.ks_2samp`` on the raw values;
- **Evidently** 0.7.23 (in its own virtualenv, ``--evidently-python``, default
  ``/tmp/dh-evidently/bin/python``: it does not import with pandas 3), one script reading
  the same files with pandas and running one ``Report`` per hour with
  ``ValueDrift(method="psi")`` and ``ValueDrift(method="ks")`` per feature.

Floors in the same run: ``python -c pass`` and ``python -c 'import numpy, scipy.stats'``.
Also prints the size of one model-window's state at 25 features (``ModelState.to_bytes()``
and its arrays' ``nbytes``) after the busiest hour, against issue 19's 64 KiB ceiling.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import fields, is_dataclass
from pathlib import Path

import numpy as np

N_FEATURES = 25
N_REF = 20_000
N_EVENTS = 100_000
HOURS = 12
START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z

_PANDAS_SCRIPT = r"""
import json, sys
import numpy as np
import pandas as pd
from scipy.stats import ks_2samp

folder = sys.argv[1]
ref = pd.read_csv(f"{folder}/ref.csv")
events = pd.read_json(f"{folder}/events.jsonl", lines=True)
feats = pd.DataFrame(events["features"].tolist())
hour = events["ts"] // 3_600_000
cols = [c for c in ref.columns if c.startswith("f")]
refs = {c: ref[c].to_numpy(float) for c in cols}
bins = {c: np.concatenate(([-np.inf], np.quantile(refs[c], np.linspace(0, 1, 11)[1:-1]), [np.inf]))
        for c in cols}
ref_p = {c: np.clip(np.histogram(refs[c], bins[c])[0] / len(refs[c]), 1e-4, None) for c in cols}
out = []
for h, cur in feats.groupby(hour):
    row = {}
    for c in cols:
        x = cur[c].to_numpy(float)
        q = np.clip(np.histogram(x, bins[c])[0] / len(x), 1e-4, None)
        row[c + ":psi"] = float(np.sum((q - ref_p[c]) * np.log(q / ref_p[c])))
        row[c + ":ks"] = float(ks_2samp(refs[c], x).statistic)
    out.append(row)
print(json.dumps({"hours": len(out), "sample": out[-1]["f0:psi"]}))
"""

_EVIDENTLY_SCRIPT = r"""
import json, sys
import pandas as pd
from evidently import Report
from evidently.metrics import ValueDrift

folder = sys.argv[1]
ref = pd.read_csv(f"{folder}/ref.csv")
events = pd.read_json(f"{folder}/events.jsonl", lines=True)
feats = pd.DataFrame(events["features"].tolist())
hour = events["ts"] // 3_600_000
cols = [c for c in ref.columns if c.startswith("f")]
ref = ref[cols]
out = []
for h, cur in feats.groupby(hour):
    metrics = [ValueDrift(column=c, method=m) for c in cols for m in ("psi", "ks")]
    snapshot = Report(metrics).run(current_data=cur[cols], reference_data=ref)
    out.append([m.get("value") for m in snapshot.dict()["metrics"]][:2])
print(json.dumps({"hours": len(out), "sample": out[-1]}))
"""

_CONFIG = """\
store: {path: ./store}
windows: [{size: 1h}]
metrics:
  change_detection: {enabled: false}
models:
  bench: {reference: ref.json, labels: false}
"""


def _columns(rng: np.random.Generator, n: int, shift: float) -> np.ndarray:
    cols = []
    for i in range(N_FEATURES):
        kind = i % 5
        if kind == 0:
            cols.append(rng.normal(shift, 1.0, n))
        elif kind == 1:
            cols.append(rng.lognormal(shift, 1.0, n))
        elif kind == 2:
            cols.append(rng.exponential(1.0 + shift, n))
        elif kind == 3:
            cols.append(rng.integers(0, 20, n).astype(np.float64))
        else:
            cols.append(rng.uniform(shift, 1.0 + shift, n))
    return np.column_stack(cols).round(4)


def write_inputs(folder: Path, n_events: int, seed: int = 19, event_ids: bool = False) -> None:
    rng = np.random.default_rng(seed)
    names = [f"f{j}" for j in range(N_FEATURES)]
    ref = _columns(rng, N_REF, 0.0)
    pred = rng.random(N_REF).round(4)
    with open(folder / "ref.csv", "w") as fh:
        fh.write(",".join([*names, "prediction"]) + "\n")
        for i in range(N_REF):
            fh.write(",".join([*map(repr, ref[i].tolist()), repr(float(pred[i]))]) + "\n")
    per_hour = n_events // HOURS
    with open(folder / "events.jsonl", "w") as fh:
        for h in range(HOURS):
            n = per_hour if h < HOURS - 1 else n_events - per_hour * (HOURS - 1)
            cur = _columns(rng, n, 0.05 * h).tolist()
            ts = np.sort(rng.integers(0, 3_600_000, n)) + START_MS + h * 3_600_000
            pr = rng.random(n).round(4).tolist()
            for i in range(n):
                event = {
                    "model": "bench",
                    "model_version": "1",
                    "ts": int(ts[i]),
                    **({"event_id": f"h{h}-{i}"} if event_ids else {}),
                    "features": dict(zip(names, cur[i], strict=True)),
                    "prediction": pr[i],
                    "latency_ms": 12.5,
                    "status": 200,
                }
                fh.write(json.dumps(event, separators=(",", ":")) + "\n")
    (folder / "drifthouse.yaml").write_text(_CONFIG)
    (folder / "pandas_job.py").write_text(_PANDAS_SCRIPT)
    (folder / "evidently_job.py").write_text(_EVIDENTLY_SCRIPT)


def _run(cmd: list[str], cwd: Path, before: list[str] | None = None) -> float:
    if before:
        shutil.rmtree(cwd / before[0], ignore_errors=True)
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return wall


def _nbytes(obj: object, seen: set[int] | None = None) -> int:
    """Bytes held by the numpy arrays reachable from a state (dataclasses, dicts, tuples)."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return 0
    seen.add(id(obj))
    if isinstance(obj, np.ndarray):
        return int(obj.nbytes)
    if is_dataclass(obj) and not isinstance(obj, type):
        return sum(_nbytes(getattr(obj, f.name), seen) for f in fields(obj))
    if isinstance(obj, dict):
        return sum(_nbytes(v, seen) for v in obj.values())
    if isinstance(obj, list | tuple):
        return sum(_nbytes(v, seen) for v in obj)
    slots = getattr(type(obj), "__slots__", ())
    return sum(_nbytes(getattr(obj, s, None), seen) for s in slots)


def state_size(folder: Path) -> tuple[int, int, int]:
    """One hour of events through the model's sketch: (events, to_bytes length, nbytes)."""
    import msgspec

    from drifthouse.config import MetricsConfig
    from drifthouse.detectors.columns import extract
    from drifthouse.detectors.model_sketch import ModelBatch, ModelSketch
    from drifthouse.detectors.reference import Profile
    from drifthouse.events import PredictionEvent

    profile = msgspec.json.decode((folder / "ref.json").read_bytes(), type=Profile)
    sketch = ModelSketch("bench", profile, MetricsConfig())
    decode = msgspec.json.Decoder(PredictionEvent)
    end = START_MS + 3_600_000
    with open(folder / "events.jsonl", "rb") as fh:
        events = [e for e in map(decode.decode, fh) if e.ts_ms < end]
    state = sketch.empty()
    for i in range(0, len(events), 1_024):
        sketch.update(state, ModelBatch(extract(events[i : i + 1_024], sketch.layout)))
    return len(events), len(state.to_bytes()), _nbytes(state)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--evidently-runs", type=int, default=1)
    parser.add_argument("--events", type=int, default=N_EVENTS)
    parser.add_argument("--quick", action="store_true", help="10,000 events, 2 runs")
    parser.add_argument("--evidently-python", default="/tmp/dh-evidently/bin/python")
    parser.add_argument("--no-evidently", action="store_true")
    parser.add_argument(
        "--event-ids", action="store_true", help="events carry an event_id (default: none)"
    )
    args = parser.parse_args()
    if args.quick:
        args.events, args.runs = 10_000, 2
    py = sys.executable
    cli = [py, "-m", "drifthouse"]
    evidently = None if args.no_evidently else args.evidently_python
    if evidently and not Path(evidently).exists():
        print(f"Evidently left out: no interpreter at {evidently}")
        evidently = None
    with tempfile.TemporaryDirectory(prefix="dh-job-") as tmp:
        folder = Path(tmp)
        t = time.perf_counter()
        write_inputs(folder, args.events, event_ids=args.event_ids)
        print(f"inputs written in {time.perf_counter() - t:.1f} s ({folder})")
        profile_cmd = [*cli, "profile", "ref.csv", "--model", "bench", "--model-version", "1"]
        profile_cmd += ["--out", "ref.json"]
        jobs: dict[str, tuple[list[str], list[str] | None]] = {
            "*python -c pass*": ([py, "-c", "pass"], None),
            "*python -c 'import numpy, scipy.stats'*": (
                [py, "-c", "import numpy, scipy.stats"],
                None,
            ),
            "drifthouse profile ref.csv (once per reference)": (profile_cmd, None),
            "drifthouse replay (new store)": (
                [*cli, "replay", "-c", "drifthouse.yaml", "--source", "file:events.jsonl"],
                ["store"],
            ),
            "pandas + scipy script": ([py, "pandas_job.py", folder.as_posix()], None),
        }
        times: dict[str, list[float]] = {k: [] for k in jobs}
        for cmd, before in jobs.values():  # warm caches (and the profile the replay reads)
            _run(cmd, folder, before)
        for _ in range(args.runs):
            for name, (cmd, before) in jobs.items():
                times[name].append(_run(cmd, folder, before))
        if evidently:
            ev_cmd = [evidently, "evidently_job.py", folder.as_posix()]
            name = "Evidently 0.7.23 script"
            times[name] = [_run(ev_cmd, folder) for _ in range(args.evidently_runs)]
        n_state, wire, held = state_size(folder)
    med = {k: statistics.median(v) for k, v in times.items()}
    ours = med["drifthouse replay (new store)"]
    total = ours + med["drifthouse profile ref.csv (once per reference)"]
    print(f"\n{args.events:,} events, 12 hours, {N_FEATURES} numeric features, {N_REF:,}-row")
    print(f"reference; median of {args.runs} runs (Evidently: {args.evidently_runs});")
    print(f"load average {os.getloadavg()[0]:.1f} at the end\n")
    print("| process | median wall s | fastest s | / drifthouse replay | / replay + profile |")
    print("|---|---:|---:|---:|---:|")
    for name, vals in times.items():
        m = med[name]
        print(f"| {name} | {m:.3f} | {min(vals):.3f} | {m / ours:.2f} | {m / total:.2f} |")
    print(f"\nState of one model-window after hour 0 ({n_state:,} events, {N_FEATURES} features):")
    print(f"to_bytes {wire:,} B ({wire / 1024:.1f} KiB), arrays' nbytes {held:,} B")
    print(f"({held / 1024:.1f} KiB); ceiling 64 KiB")


if __name__ == "__main__":
    main()
