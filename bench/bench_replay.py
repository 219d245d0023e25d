"""File replay throughput end to end: JSONL events (25 features) -> stored metrics.

    .venv/bin/python bench/bench_replay.py [--quick] [--events N] [--repeat R] [--batch B]

Writes N prediction events of one model (20 numeric + 5 categorical features, one hour of
event time per 100,000 events), builds the reference profile from a separate 100,000-row
sample, then times `drifthouse.app.replay.replay` into the embedded ClickHouse (tumbling
1 h windows) after one warm-up run (Numba compiles once, then loads from its cache). Prints the
events per second and where the time goes (decode, column extraction, sketch kernels,
evaluation and store) measured with cProfile on a separate run. With ``--batch B``, the same
events are also written B to a line as batched messages (docs/events.md, "Batched messages":
rows, and columns) and replayed in the same run, beside the single-event file.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import tempfile
import time
from pathlib import Path

import msgspec
import numpy as np

from drifthouse.app.replay import replay
from drifthouse.config import Config
from drifthouse.profiles.columns import build_profile
from drifthouse.sinks import ClickHouseSink, migrate, open_store

NUMERIC, CATEGORICAL = 20, 5
CATEGORIES = [f"c{i}" for i in range(12)]


def _events(rng: np.random.Generator, n: int, start_ms: int) -> list[dict]:
    numeric = rng.normal(size=(n, NUMERIC)).round(4)
    cats = rng.integers(0, len(CATEGORIES), size=(n, CATEGORICAL))
    ts = start_ms + np.sort(rng.integers(0, 3_600_000 * max(1, n // 100_000), size=n))
    out = []
    for i in range(n):
        features: dict[str, object] = {f"n{j}": float(numeric[i, j]) for j in range(NUMERIC)}
        features.update({f"c{j}": CATEGORIES[int(cats[i, j])] for j in range(CATEGORICAL)})
        out.append(
            {
                "model": "bench",
                "model_version": "1",
                "ts": int(ts[i]),
                "event_id": f"e{i}",
                "features": features,
                "prediction": float(rng.random()),
                "latency_ms": float(rng.gamma(3, 4)),
                "status": 200,
            }
        )
    return out


def _write_batches(folder: Path, events: list[dict], size: int) -> dict[str, Path]:
    """The events ``size`` to a line, in rows and in columns."""
    from drifthouse.events import PredictionEvent, encode_batch, encode_columns

    typed = [msgspec.convert(e, PredictionEvent) for e in events]
    out = {}
    for form, encode in (("rows", encode_batch), ("columns", encode_columns)):
        out[form] = folder / f"events-{form}.jsonl"
        with out[form].open("wb") as fh:
            for i in range(0, len(typed), size):
                fh.write(encode(typed[i : i + size]) + b"\n")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--batch", type=int, default=0, help="also replay B events a line")
    args = parser.parse_args()
    n = 100_000 if args.quick else args.events
    rng = np.random.default_rng(0)
    folder = Path(tempfile.mkdtemp(prefix="drifthouse-bench-"))
    ref = _events(rng, 100_000, 0)
    cfg = Config.model_validate(
        {"store": {"path": str(folder / "store")}, "windows": [{"size": "1h"}]}
    )
    profile = build_profile(
        model="bench",
        model_version="1",
        created_at="2026-01-01T00:00:00Z",
        source_digest="bench",
        settings=cfg.metrics,
        features={k: [e["features"][k] for e in ref] for k in ref[0]["features"]},
        prediction=[e["prediction"] for e in ref],
        latency_ms=[e["latency_ms"] for e in ref],
        status=[e["status"] for e in ref],
    )
    path = folder / "events.jsonl"
    events = _events(rng, n, 1_767_225_600_000)
    with path.open("w") as fh:
        for e in events:
            fh.write(json.dumps(e) + "\n")
    batched = _write_batches(folder, events, args.batch) if args.batch > 1 else {}
    size_mb = path.stat().st_size / 1e6
    client = open_store(cfg.store_dsn(), cfg.store.database)
    migrate(client, cfg.store.database)

    def once(run_id: str, source: Path = path) -> tuple[float, int]:
        sink = ClickHouseSink(client, database=cfg.store.database, batch_rows=50_000)
        t = time.perf_counter()
        summary = replay(
            cfg, source=f"file:{source}", sink=sink, run_id=run_id, profiles={"bench": profile}
        )
        return time.perf_counter() - t, summary.stats.rows

    once("warmup")
    best = min(once(f"r{i}")[0] for i in range(args.repeat))
    print(
        f"\n{n:,} events x {NUMERIC + CATEGORICAL} features, {size_mb:.0f} MB of JSONL, 1 h windows\n"
    )
    print("| run | seconds | events/s | MB/s |\n|---|---:|---:|---:|")
    print(
        f"| file replay to the embedded ClickHouse (best of {args.repeat}) | {best:.2f} | {n / best:,.0f} | {size_mb / best:.0f} |"
    )
    for form, source in batched.items():
        once(f"warmup-{form}", source)
        took = min(once(f"{form}{i}", source)[0] for i in range(args.repeat))
        mb = source.stat().st_size / 1e6
        print(
            f"| the same, {args.batch} events a line in {form} (best of {args.repeat}) | {took:.2f} | {n / took:,.0f} | {mb / took:.0f} |"
        )

    prof = cProfile.Profile()
    prof.enable()
    once("profiled")
    prof.disable()
    stats = pstats.Stats(prof)
    total = sum(v[3] for k, v in stats.stats.items() if k[2] == "replay")  # type: ignore[attr-defined]
    parts = {
        "decode (msgspec)": ("decode_batch",),
        "column extraction": ("extract",),
        "sketch kernels": (
            "_numeric_update",
            "_categorical_update",
            "_quantile_update",
            "_status_update",
        ),
        "evaluate + rows": ("_evaluate",),
        "store inserts": ("flush",),
    }
    print("\n| stage (profiled run) | share of replay time |\n|---|---:|")
    for name, funcs in parts.items():
        spent = max(
            (v[3] for k, v in stats.stats.items() if k[2] in funcs),  # type: ignore[attr-defined]
            default=0.0,
        )
        spent = (
            sum(v[3] for k, v in stats.stats.items() if k[2] in funcs and "drifthouse" in k[0])
            or spent
        )  # type: ignore[attr-defined]
        print(f"| {name} | {100 * spent / total:.0f}% |")


if __name__ == "__main__":
    main()
