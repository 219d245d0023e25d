"""Capacity inputs: what each component costs per unit of work, measured in one run.

    KAFKA_BOOTSTRAP=127.0.0.1:9092 .venv/bin/python bench/bench_capacity.py [--quick] [--repeat R] \
        [--events N] [--windows W] [--labels N] [--rows N] [--worker-events N] [--no-http-store] \
        [--out FILE.json] [--inputs FILE.json]

The figures ``docs/operations.md`` ("Capacity") multiplies out, each timed on the project's own
code paths in CPU time (``time.process_time``: what a core spends, whatever else the machine
runs), the median of R repeats, and each next to a floor or peer timed in the same run:

- **source worker, per event** (20 numeric + 5 categorical features, batches of 4,096, no
  Kafka): the worker's partition stage (``PartitionStage.process``: decoding, columns, windows,
  sketches, the prediction log's sampling, the label join's records) and what it publishes
  (``encode_records``, ``encode_partial``, ``encode_watermark``); floor: ``msgspec.json.decode``
  of the same bytes into plain objects. Then ``bench_worker.py --events N`` runs as it is (0
  skips it): the real broker, aiokafka's ceiling, the worker's stages behind it, and one
  ``drifthouse run`` process end to end, whose CPU per event is the source worker's cost;
- **merger, per partial** (a partials message decoded into its state, merged into its window)
  and **per window evaluated** (25 and 50 features; metric and sketch rows built), and all of it
  at once through ``MergeSide.process``, the merger's entry point, on what four partition
  stages published for W one-minute windows; floors: an untyped ``msgspec.msgpack.decode`` of
  the same bytes, a NumPy add over as many bytes;
- **merger, per prediction and per label**: the label join and label windows on
  ``bench_merger.py``'s records messages, timed once the join holds its million entries; a
  label decoded, joined and windowed; a label window flushed; floor: an untyped decode of the
  label JSON;
- **sizes**: bytes of a partials message per model-window, of a prediction record; metric and
  sketch rows per model-window, label metric rows per label window;
- **store, per row**: ``ClickHouseSink.write`` + ``flush`` of the merger's metric, sketch and
  prediction-log rows into the embedded engine, and through HTTP to the engine in a process of
  its own (``tests/sinks/chhttp.py``; ``--no-http-store`` skips it), where this process's CPU is
  the merger's share of a row; peer: ``client.insert`` of the same columns, built beforehand.

Last it prints the model's inputs and the capacity table (``capacity_model.py``); ``--out``
saves the inputs, ``--inputs`` prints the table from saved ones without measuring.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_merger import _messages as _record_messages
from capacity_model import Inputs, table
from capacity_store import measure_stores

from drifthouse.app.assembly import RunParts
from drifthouse.app.merger import MergeSide
from drifthouse.app.worker import tune_gc
from drifthouse.config import Config
from drifthouse.detectors.reference import Profile
from drifthouse.events import LabelEvent, encode_event
from drifthouse.kafka.partials import (
    PartialMessage,
    RecordsMessage,
    decode,
    encode_partial,
    encode_records,
    encode_watermark,
    side_decoders,
)
from drifthouse.profiles.columns import build_profile
from drifthouse.sinks.base import MemorySink
from drifthouse.stream.dead_letters import MemoryDeadLetters
from drifthouse.stream.labels import LabelStage
from drifthouse.stream.results import evaluate_window
from drifthouse.stream.sources import Message
from drifthouse.stream.stage import Partial

BATCH = 4096
PARTITIONS = 4
CATEGORIES = [f"c{i}" for i in range(12)]
T0 = 1_767_225_600_000
Figures = dict[str, float]


def _events(rng: np.random.Generator, n: int, features: int, span_ms: int) -> list[dict[str, Any]]:
    """``bench_replay.py``'s events with ``features`` features (4 numeric to 1 categorical),
    time-ordered over ``span_ms`` from ``T0``."""
    numeric, categorical = features * 4 // 5, features // 5
    values = rng.normal(size=(n, numeric)).round(4)
    cats = rng.integers(0, len(CATEGORIES), size=(n, categorical))
    ts = T0 + np.sort(rng.integers(0, span_ms, size=n))
    out = []
    for i in range(n):
        f: dict[str, object] = {f"n{j}": float(values[i, j]) for j in range(numeric)}
        f.update({f"c{j}": CATEGORIES[int(cats[i, j])] for j in range(categorical)})
        out.append(
            {
                "model": "bench", "model_version": "1", "ts": int(ts[i]), "event_id": f"e{i}",
                "features": f, "prediction": float(rng.random()),
                "latency_ms": float(rng.gamma(3, 4)), "status": 200,
            }
        )  # fmt: skip
    return out


def _parts(features: int, windows: list[dict[str, str]]) -> tuple[Config, RunParts]:
    rng = np.random.default_rng(7)
    cfg = Config.model_validate({"windows": windows, "models": {"bench": {}}})
    ref = _events(rng, 20_000, features, 3_600_000)
    profile: Profile = build_profile(
        model="bench", model_version="1", created_at="2026-01-01T00:00:00Z", source_digest="bench",
        settings=cfg.metrics, features={k: [e["features"][k] for e in ref] for k in ref[0]["features"]},
        prediction=[e["prediction"] for e in ref],
    )  # fmt: skip
    return cfg, RunParts.of(cfg, {"bench": profile})


def _cpu(fn: Callable[[], object]) -> float:
    t = time.process_time()
    fn()
    return time.process_time() - t


def _median(runs: list[Figures]) -> Figures:
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


# -- source worker -----------------------------------------------------------------------------


def measure_source(n: int, repeat: int, log_rows: list[Any]) -> Figures:
    """µs of CPU per event: the partition stage, what it publishes, and the decode floor;
    the prediction-log rows it sampled go to ``log_rows``."""
    _, parts = _parts(25, [{"size": "1h"}])
    rng = np.random.default_rng(1)
    raws = [json.dumps(e).encode() for e in _events(rng, n, 25, 3_600_000 * max(1, n // 100_000))]
    batches = [
        [Message(raw, 0, start + i) for i, raw in enumerate(raws[start : start + BATCH])]
        for start in range(0, n, BATCH)
    ]
    now = T0 + 10 * 86_400_000
    log = parts.prediction_log()
    runs: list[Figures] = []
    warm = parts.partition_stage(-1, MemoryDeadLetters(), now_ms=lambda: now, prediction_log=log)
    warm.process(batches[0][:1000])  # Numba's kernels loaded before timing
    record_bytes = 0
    for _ in range(repeat):
        stage = parts.partition_stage(
            0, MemoryDeadLetters(), now_ms=lambda: now, prediction_log=log, collect_labels=True
        )
        stage_s = publish_s = 0.0
        record_bytes = 0
        for batch in batches:
            t0 = time.process_time()
            partials = stage.process(batch)
            sampled = stage.take_prediction_rows()
            offsets, records = stage.take_label_records()
            t1 = time.process_time()
            out = [encode_partial(p, parts.specs[p.spec_index].name) for p in partials]
            out.append(encode_records(0, offsets, records))
            out.append(encode_watermark(0, stage.watermark))
            publish_s += time.process_time() - t1
            stage_s += t1 - t0
            if not runs:
                log_rows += sampled
            record_bytes += len(out[-2])
        floor = _cpu(lambda: [msgspec.json.decode(r) for r in raws])
        runs.append(
            {
                "floor_us": floor / n * 1e6,
                "stage_us": stage_s / n * 1e6,
                "publish_us": publish_s / n * 1e6,
                "record_bytes": record_bytes / n,
            }
        )
    return _median(runs)


def run_worker_bench(n: int) -> tuple[list[str], float]:
    """``bench_worker.py --events n`` (the broker, aiokafka's ceiling, the worker's stages behind
    it, and one ``drifthouse run`` process end to end): its reader table, and the worker's
    CPU µs per event end to end."""
    done = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("bench_worker.py")), "--events", str(n)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    lines = done.stdout.splitlines()
    found = re.search(r"one core; ([\d,]+) events per CPU-second\)", done.stdout)
    if found is None:
        raise SystemExit(f"bench_worker.py printed no CPU figure:\n{done.stdout[-2000:]}")
    readers = [line for line in lines if line.startswith("|")]
    return readers, 1e6 / float(found.group(1).replace(",", ""))


# -- merger: partials and windows --------------------------------------------------------------


def _published(parts: RunParts, windows: int, per_window: int) -> list[tuple[int, bytes]]:
    """The partials topic as four partition stages publish it: per batch of each partition,
    its closed partials, then its watermark."""
    rng = np.random.default_rng(3)
    features = len(parts.profiles["bench"].features)
    n = windows * per_window * PARTITIONS
    events = _events(rng, n, features, windows * 60_000)
    stages = [parts.partition_stage(p, MemoryDeadLetters()) for p in range(PARTITIONS)]
    out: list[bytes] = []
    step = per_window * PARTITIONS // 4  # four batches per window and partition
    for start in range(0, n, step):
        for p, stage in enumerate(stages):
            batch = [
                Message(json.dumps(e).encode(), p, start + i)
                for i, e in enumerate(events[start : start + step])
                if i % PARTITIONS == p
            ]
            out += [encode_partial(q, parts.specs[q.spec_index].name) for q in stage.process(batch)]
            out.append(encode_watermark(p, stage.watermark))
    for p, stage in enumerate(stages):
        out += [encode_partial(q, parts.specs[q.spec_index].name) for q in stage.finish()]
        out.append(encode_watermark(p, 2**62))
    return list(enumerate(out))


def measure_windows(features: int, windows: int, repeat: int) -> Figures:
    """µs per partial (decode, merge), ms per window (evaluate; all of it through MergeSide)."""
    _, parts = _parts(features, [{"size": "1m"}])
    messages = _published(parts, windows, 250)
    raws = [m for _, m in messages if isinstance(decode(m), PartialMessage)]
    return _median([_windows_once(parts, messages, raws) for _ in range(repeat)])


def _windows_once(parts: RunParts, messages: list[tuple[int, bytes]], raws: list[bytes]) -> Figures:
    sketch = parts.sketches("bench")
    side = MergeSide(parts, MemorySink(), range(PARTITIONS))
    t = time.process_time()
    for i in range(0, len(messages), 500):  # merge batches of 500 messages
        side.process(messages[i : i + 500])
    whole = time.process_time() - t
    written = side.stage.stats.windows

    t = time.process_time()
    partials = [_partial(r) for r in raws]
    dec = time.process_time() - t
    t = time.process_time()
    for r in raws:
        msgspec.msgpack.decode(r)
    floor_dec = time.process_time() - t

    by_window: dict[int, list[Partial]] = {}
    for p in partials:
        by_window.setdefault(p.start, []).append(p)
    merged = []
    t = time.process_time()
    for start, ps in sorted(by_window.items()):
        state = ps[0].state
        for p in ps[1:]:
            state = sketch.merge(state, p.state)
        merged.append((start, sketch.resolve(state)))
    merge = time.process_time() - t
    merges = max(1, len(partials) - len(by_window))
    a = np.ones(int(statistics.mean(len(r) for r in raws)) // 8)
    t = time.process_time()
    for _ in range(merges):
        np.add(a, a)
    floor_merge = time.process_time() - t

    changes = parts.merge_stage(MemorySink()).changes
    t = time.process_time()
    results = [
        evaluate_window(parts.specs[0], start, ("bench", "1"), state, parts.sketches,
                        changes=changes, run_id="live", computed_at=0)
        for start, state in merged
    ]  # fmt: skip
    evaluate = time.process_time() - t
    return {
        "windows": written,
        "partials_per_window": len(raws) / len(by_window),
        "whole_ms": whole / written * 1e3,
        "decode_us": dec / len(raws) * 1e6,
        "floor_decode_us": floor_dec / len(raws) * 1e6,
        "merge_us": merge / merges * 1e6,
        "floor_merge_us": floor_merge / merges * 1e6,
        "evaluate_ms": evaluate / len(merged) * 1e3,
        "partial_bytes": statistics.median(len(r) for r in raws),
        "metric_rows": statistics.median(len(r.metrics) for r in results),
        "sketch_rows": statistics.median(len(r.sketches) for r in results),
    }


def _partial(raw: bytes) -> Partial:
    msg = decode(raw)
    assert isinstance(msg, PartialMessage)
    return msg.to_partial()


# -- merger: predictions and labels ------------------------------------------------------------


def measure_labels(n: int, repeat: int) -> Figures:
    """µs per prediction record and per label once the join is full; label windows' rows."""
    cfg = Config.model_validate({"windows": [{"size": "1h"}, {"size": "15m", "hop": "5m"}]})
    messages = _record_messages(n, np.random.default_rng(0))
    label_batches = [
        [
            encode_event(
                LabelEvent(
                    event_id=f"e{i}",
                    model="bench",
                    ts_ms=T0 + 2 * i + 60_000,
                    label=int(i % 3 == 0),
                )
            )
            for i in range(m * BATCH, min(n, (m + 1) * BATCH))
            if i % 2 == 0
        ]
        for m in range(len(messages))
    ]
    return _median([_labels_once(cfg, messages, label_batches) for _ in range(repeat)])


def _labels_once(cfg: Config, messages: list[bytes], label_batches: list[list[bytes]]) -> Figures:
    """The label path as ``bench_merger.py`` runs it: each records message, then the labels
    of the message before (a minute of event time later); timed once the join is full."""
    labels_decoder = side_decoders(cfg.kafka)["labels"]
    cap = cfg.metrics.label_join_max_entries
    stage = LabelStage.from_config(cfg, profiles={})
    rec_s = lab_s = 0.0
    n_rec = n_lab = 0
    for m, raw in enumerate(messages):
        full = stage.join.entries >= cap
        t0 = time.process_time()
        msg = decode(raw)
        assert isinstance(msg, RecordsMessage)
        stage.add_records(msg.records)
        t1 = time.process_time()
        if m:
            ok, _ = labels_decoder.decode_batch(label_batches[m - 1])
            stage.add_labels([e for _, e in ok])
        t2 = time.process_time()
        if full:
            rec_s, lab_s = rec_s + t1 - t0, lab_s + t2 - t1
            n_rec, n_lab = n_rec + len(msg.records), n_lab + len(label_batches[m - 1])
    gc.collect()  # a full collection over the join is not the flush's cost
    t = time.process_time()
    flushed = stage.flush_windows(None, run_id="live", computed_at=0)
    flush = time.process_time() - t
    everything = [raw for b in label_batches for raw in b]
    t = time.process_time()
    for raw in everything:
        msgspec.json.decode(raw)
    floor = time.process_time() - t
    return {
        "record_us": rec_s / max(1, n_rec) * 1e6,
        "label_us": lab_s / max(1, n_lab) * 1e6,
        "floor_label_us": floor / len(everything) * 1e6,
        "label_windows": len(flushed),
        "label_window_ms": flush / max(1, len(flushed)) * 1e3,
        "label_rows": statistics.median(len(rows) for _, rows in flushed) if flushed else 0,
        "steady_records": n_rec,
    }


# -- store --------------------------------------------------------------------------------------


def _rows(n: int, log_rows: list[Any]) -> dict[str, list[Any]]:
    """Metric, sketch and prediction-log rows of real 25-feature windows and events, repeated
    at later times: n metric rows, n / 5 of the others."""
    _, parts = _parts(25, [{"size": "1m"}])
    side = MergeSide(parts, MemorySink(), range(PARTITIONS))
    messages = _published(parts, 3, 250)
    results = side.process(messages)
    metric = [r for w in results for r in w.metrics]
    sketch = [r for w in results for r in w.sketches]

    def more(rows: list[Any], n: int, field: str) -> list[Any]:
        return [
            msgspec.structs.replace(
                rows[i % len(rows)],
                **{field: getattr(rows[i % len(rows)], field) + 60_000 * (i // len(rows))},
            )
            for i in range(n)
        ]

    return {
        "metric": more(metric, n, "window_start"),
        "sketch": more(sketch, n // 5, "window_start"),
        "prediction": more(log_rows, n // 5, "ts"),
    }


# -- report -------------------------------------------------------------------------------------


def main() -> None:
    args = _arguments()
    if args.inputs is not None:
        print("\n".join(table(Inputs(**json.loads(args.inputs.read_text())))))
        return
    tune_gc()  # the worker's collector settings
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the start; "
          f"CPU time per unit, median of {args.repeat}")  # fmt: skip
    log_rows: list[Any] = []
    src = measure_source(args.events, args.repeat, log_rows)
    print("\n| source worker, per 25-feature event, no Kafka | µs CPU |\n|---|---:|")
    print(f"| floor: msgspec.json.decode into plain objects | {src['floor_us']:.2f} |")
    print(
        f"| partition stage (decode, columns, windows, sketches, log, label records) | {src['stage_us']:.2f} |"
    )
    print(f"| publishing (label records, partials, watermark encoded) | {src['publish_us']:.2f} |")
    print(f"\nbytes per prediction record sent to the merger: {src['record_bytes']:.1f}")
    worker_us = None
    if args.worker_events:
        readers, worker_us = run_worker_bench(args.worker_events)
        print(f"\nbench_worker.py --events {args.worker_events}:\n" + "\n".join(readers))
        print(
            f"| the worker, end to end, per CPU-second | {1e6 / worker_us:,.0f} ({worker_us:.2f} µs) |"
        )
    win = {f: measure_windows(f, args.windows, args.repeat) for f in (25, 50)}
    print("\n| merger, per unit | 25 features | 50 features |\n|---|---:|---:|")
    for key, label in _WINDOW_FIGURES:
        print(f"| {label} | {win[25][key]:,.2f} | {win[50][key]:,.2f} |")
    lab = measure_labels(args.labels, args.repeat)
    print(
        f"\n| merger, label path (join full, {lab['steady_records']:,.0f} records) | µs CPU |\n|---|---:|"
    )
    print(f"| a prediction record: decoded, joined, counted | {lab['record_us']:.2f} |")
    print(f"| floor: msgspec.json.decode of a label, untyped | {lab['floor_label_us']:.2f} |")
    print(f"| a label: decoded, joined, label windows | {lab['label_us']:.2f} |")
    print(
        f"| a label window flushed, rows built ({lab['label_rows']:.0f} rows) | {1e3 * lab['label_window_ms']:.0f} |"
    )
    stores = measure_stores(_rows(args.rows, log_rows), args.repeat, http=not args.no_http_store)
    print(f"\nload average {os.getloadavg()[0]:.1f} at the end")
    # Through HTTP the engine runs in a process of its own, as a ClickHouse server would: the
    # sink's CPU is then the merger's share of a row.
    store = stores.get("HTTP", stores["embedded"])
    inputs = Inputs(
        # The worker end to end, less the label join it ran as the merger of its own events
        # (every bench event has an id); without it, the in-process stages (a lower bound).
        source_us=(worker_us - lab["record_us"])
        if worker_us
        else src["stage_us"] + src["publish_us"],
        partial_us=win[25]["decode_us"] + win[25]["merge_us"],
        window_ms=win[25]["evaluate_ms"],
        record_us=lab["record_us"],
        label_us=lab["label_us"],
        label_window_ms=lab["label_window_ms"],
        metric_row_us=store["metric_cpu_us"],
        sketch_row_us=store["sketch_cpu_us"],
        log_row_us=store["prediction_cpu_us"],
        partial_bytes=win[25]["partial_bytes"],
        record_bytes=src["record_bytes"],
        metric_rows=win[25]["metric_rows"],
        sketch_rows=win[25]["sketch_rows"],
        label_rows=lab["label_rows"],
    )
    print("\n| input | value |\n|---|---:|")
    for name, value in asdict(inputs).items():
        print(f"| `{name}` | {value:,.3f} |")
    if args.out is not None:
        args.out.write_text(json.dumps(asdict(inputs), indent=1))
    print()
    print("\n".join(table(inputs)))


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, one repeat")
    parser.add_argument("--repeat", type=int, default=3, help="repeats; medians are reported")
    parser.add_argument("--events", type=int, default=200_000, help="source events per repeat")
    parser.add_argument("--windows", type=int, default=40, help="one-minute windows merged")
    parser.add_argument("--labels", type=int, default=1_500_000, help="predictions to the join")
    parser.add_argument("--rows", type=int, default=100_000, help="metric rows to the store")
    parser.add_argument(
        "--worker-events", type=int, default=2_000_000, help="bench_worker.py's events; 0: skip"
    )
    parser.add_argument("--no-http-store", action="store_true", help="embedded engine only")
    parser.add_argument("--out", type=Path, help="write the model's inputs to this JSON file")
    parser.add_argument("--inputs", type=Path, help="print the table from these inputs only")
    args = parser.parse_args()
    if args.quick:
        args.repeat, args.events, args.windows, args.labels = 1, 20_000, 6, 1_100_000
        args.rows, args.worker_events = 10_000, 50_000
    return args


_WINDOW_FIGURES = (
    ("floor_decode_us", "floor: msgpack.decode of a partial, untyped (µs)"),
    ("decode_us", "a partial decoded into its state (µs)"),
    ("floor_merge_us", "floor: np.add over the partial's bytes (µs)"),
    ("merge_us", "a partial merged into its window (µs)"),
    ("evaluate_ms", "a window evaluated, rows built (ms)"),
    ("whole_ms", "a window through MergeSide.process, its partials included (ms)"),
    ("partials_per_window", "partials per window"),
    ("partial_bytes", "bytes of a partials message"),
    ("metric_rows", "metric rows per model-window"),
    ("sketch_rows", "sketch rows per model-window"),
)


if __name__ == "__main__":
    main()
