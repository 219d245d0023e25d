"""File replay throughput end to end: JSONL events (25 features) -> stored metrics.

    .venv/bin/python bench/bench_replay.py [--quick] [--events N] [--repeat R] [--batch B]

Writes N prediction events of one model (20 numeric + 5 categorical features, one hour of
event time per 100,000 events), builds the reference profile from a separate 100,000-row
sample, then times `drifthouse.app.replay.replay` into the embedded ClickHouse (tumbling
1 h windows) after one warm-up run (Numba compiles once, then loads from its cache), with the
cyclic collector's thresholds `drifthouse replay` sets (``drifthouse/cli/__init__.py``). Prints
the events per second (wall, and per CPU-second of the process: on a shared machine the latter
moves less with the load) next to two ceilings timed in the same run, in turn with the replays:
reading the file's lines into messages (``FileSource``) and reading plus decoding them
(``decode_messages`` with the model's typed decoder, what the partition stage does first),
beside the same replay with the model configured without labels (``models.bench.labels:
false``: no label join), and where the time goes (decode, column extraction, sketch kernels, evaluation and store) measured
with cProfile on a separate run. With ``--batch B``, the same
events are also written B to a line as batched messages (docs/events.md, "Batched messages":
rows, and columns) and replayed in the same run, beside the single-event file.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import os
import pstats
import statistics
import tempfile
import time
from pathlib import Path

import msgspec
import numpy as np

from drifthouse.app.replay import replay
from drifthouse.config import Config
from drifthouse.detectors.typed_decode import TypedDecoders
from drifthouse.events import EventDecoder, PredictionEvent, decode_messages
from drifthouse.profiles.columns import build_profile
from drifthouse.profiles.sketches import Sketches
from drifthouse.sinks import ClickHouseSink, migrate, open_store
from drifthouse.stream.sources import FileSource

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
    parser.add_argument("--repeat", type=int, default=3)
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

    # The same model configured without labels: its predictions are not held for a label join.
    unlabelled = Config.model_validate(
        {
            "store": {"path": str(folder / "store")},
            "windows": [{"size": "1h"}],
            "models": {"bench": {"labels": False}},
        }
    )

    def once(
        run_id: str, source: Path = path, config: Config = cfg, key: str = ""
    ) -> tuple[float, int]:
        sink = ClickHouseSink(client, database=cfg.store.database, batch_rows=50_000)
        t, c = time.perf_counter(), time.process_time()
        summary = replay(
            config, source=f"file:{source}", sink=sink, run_id=run_id, profiles={"bench": profile}
        )
        key = key or ("replay" if config is cfg else "unlabelled")
        cpu.setdefault(key, []).append(time.process_time() - c)
        return time.perf_counter() - t, summary.stats.rows

    layout = Sketches({"bench": profile}, cfg.metrics, cfg.models)("bench").layout
    typed = TypedDecoders(lambda model: layout if model == "bench" else None)
    decoder = EventDecoder(PredictionEvent)

    cpu: dict[str, list[float]] = {"replay": [], "unlabelled": [], "read": [], "decode": []}

    def read_only() -> float:
        t, c = time.perf_counter(), time.process_time()
        for _ in FileSource(path, batch_size=cfg.kafka.batch_size).batches():
            pass
        cpu["read"].append(time.process_time() - c)
        return time.perf_counter() - t

    def read_and_decode() -> float:
        t, c = time.perf_counter(), time.process_time()
        first, rows = typed.decoder("bench"), typed.rows("bench")
        for msgs, _ in FileSource(path, batch_size=cfg.kafka.batch_size).batches():
            decode_messages(decoder, [m.value for m in msgs], first=first, first_rows=rows)
        cpu["decode"].append(time.process_time() - c)
        return time.perf_counter() - t

    gc.set_threshold(50_000, 20, 10)  # as `drifthouse replay` runs
    once("warmup")
    once("warmup-unlabelled", config=unlabelled)
    cpu["replay"].clear()
    cpu["unlabelled"].clear()
    runs: dict[str, list[float]] = {"replay": [], "unlabelled": [], "read": [], "decode": []}
    for i in range(args.repeat):  # in turn, so that load elsewhere falls on all alike
        runs["replay"].append(once(f"r{i}")[0])
        runs["unlabelled"].append(once(f"u{i}", config=unlabelled)[0])
        runs["read"].append(read_only())
        runs["decode"].append(read_and_decode())
    print(
        f"\n{n:,} events x {NUMERIC + CATEGORICAL} features, {size_mb:.0f} MB of JSONL, 1 h windows, "
        f"median of {args.repeat} (load average {os.getloadavg()[0]:.1f} at the end)\n"
    )
    print(
        "| run | median s | fastest s | slowest s | events/s (median) | MB/s | "
        "events per CPU-second (median) |\n|---|---:|---:|---:|---:|---:|---:|"
    )
    names = {
        "read": "ceiling: reading the lines into messages (FileSource)",
        "decode": "ceiling: reading + decoding (decode_messages, typed decoder)",
        "replay": "file replay to the embedded ClickHouse",
        "unlabelled": "the same, the model without labels (no label join)",
    }
    for key, label in names.items():
        med = statistics.median(runs[key])
        print(
            f"| {label} | {med:.2f} | {min(runs[key]):.2f} | {max(runs[key]):.2f} | "
            f"{n / med:,.0f} | {size_mb / med:.0f} | {n / statistics.median(cpu[key]):,.0f} |"
        )
    for form, source in batched.items():
        once(f"warmup-{form}", source)
        took = [once(f"{form}{i}", source, key=form)[0] for i in range(args.repeat)]
        med, mb = statistics.median(took), source.stat().st_size / 1e6
        print(
            f"| the same, {args.batch} events a line in {form} | {med:.2f} | {min(took):.2f} | "
            f"{max(took):.2f} | {n / med:,.0f} | {mb / med:.0f} | "
            f"{n / statistics.median(cpu[form]):,.0f} |"
        )

    prof = cProfile.Profile()
    prof.enable()
    once("profiled")
    prof.disable()
    stats = pstats.Stats(prof)
    total = sum(v[3] for k, v in stats.stats.items() if k[2] == "replay")  # type: ignore[attr-defined]
    parts = {
        "decode (msgspec)": ("decode_messages",),
        "column extraction": ("extract",),
        "sketch kernels": (
            "_numeric_update",
            "_categorical_update",
            "_quantile_update",
            "_status_update",
        ),
        "evaluate + rows": ("_evaluate",),
        "label join (records and join)": ("_keep_label_records", "add_label_records"),
        "prediction log (sampling)": ("rows",),
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
