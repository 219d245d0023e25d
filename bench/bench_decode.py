"""Single-event JSON messages into the stage's columns: msgspec against polars and pyarrow.

    .venv/bin/python bench/bench_decode.py [--quick] [--events N] [--repeat R] [--chunks C,C,...]

Makes N prediction events of ``bench_replay.py``'s shape (20 numeric + 5 categorical features,
an ``event_id``, a float prediction, latency and status, one JSON object per line) and turns
them, chunk by chunk (C lines a chunk: 1,024 is a file replay's micro-batch and the worker's
``kafka.batch_size``; 200,000 is the whole input in one call), into
what the partition stage folds into its sketches: :class:`drifthouse.detectors.columns.Columns`
(event times, a float64 matrix of the numeric features with its missing/type-error status,
int32 category codes under the reference's layout, latency, HTTP status, score, event ids).
Three ways, one thread each, on the same bytes:

- msgspec, today's path: :func:`drifthouse.events.decode_messages` with the model's typed fast
  decoder (``drifthouse/detectors/typed_decode.py``), then
  :func:`drifthouse.detectors.columns.extract`;
- polars: ``pl.read_ndjson`` of the chunk's lines joined by newlines, with an explicit schema,
  ``unnest`` of ``features``, the numeric block to NumPy and the categories coded by
  ``replace_strict`` against the layout;
- pyarrow: ``pyarrow.json.read_json`` with an explicit schema (``use_threads=False``,
  unexpected fields an error), ``flatten`` of ``features``, the numeric block to NumPy and
  the categories coded by ``pyarrow.compute.index_in`` against the layout.

The columnar paths produce no per-event objects and do none of the checks the msgspec path
makes as it goes (times within bounds, names' lengths, a category typed as a number: polars
reads ``2`` in a string column as ``"2"``, silently); a real path would add them. Every run
checks that the three give identical columns. Each figure is the median of R runs (after one
warm-up) with the spread (fastest, slowest), the three taken in turn in each round so that load
on a shared machine falls on all alike, with the cyclic collector's thresholds `drifthouse`
runs with (``drifthouse/cli/__init__.py``). polars is not a dependency of drifthouse: without
it, its row is left out.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import io
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_replay import CATEGORICAL, NUMERIC, _events

from drifthouse.config import Config
from drifthouse.detectors.columns import Columns, extract
from drifthouse.detectors.layout import FeatureLayout
from drifthouse.detectors.typed_decode import TypedDecoders
from drifthouse.events import EventDecoder, PredictionEvent, decode_messages
from drifthouse.profiles.columns import build_profile
from drifthouse.profiles.sketches import Sketches

Chunk = list[bytes]


def _layout(rng: np.random.Generator) -> FeatureLayout:
    ref = _events(rng, 20_000, 0)
    cfg = Config.model_validate({"windows": [{"size": "1h"}]})
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
    return Sketches({"bench": profile}, cfg.metrics, cfg.models)("bench").layout


def msgspec_path(layout: FeatureLayout) -> Callable[[Chunk], Columns]:
    decoder = EventDecoder(PredictionEvent)
    typed = TypedDecoders(lambda model: layout if model == "bench" else None)
    first, first_rows = typed.decoder("bench"), typed.rows("bench")

    def run(raws: Chunk) -> Columns:
        decoded = decode_messages(decoder, raws, first=first, first_rows=first_rows)
        return extract([e for _, e in decoded.ok], layout)

    return run


def polars_path(layout: FeatureLayout) -> Callable[[Chunk], Columns]:
    os.environ.setdefault("POLARS_MAX_THREADS", "1")  # before polars starts its pool
    import polars as pl

    features = pl.Struct(
        [pl.Field(n, pl.Float64) for n in layout.numeric]
        + [pl.Field(n, pl.String) for n in layout.categorical]
    )
    schema = {
        "model": pl.String,
        "model_version": pl.String,
        "ts": pl.Int64,
        "event_id": pl.String,
        "features": features,
        "prediction": pl.Float64,
        "latency_ms": pl.Float64,
        "status": pl.Int64,
    }
    maps = [
        (name, list(layout.categories[j]), list(layout.categories[j].values()), layout.unseen[j])
        for j, name in enumerate(layout.categorical)
    ]
    numeric = list(layout.numeric)

    def run(raws: Chunk) -> Columns:
        df = pl.read_ndjson(io.BytesIO(b"\n".join(raws)), schema=schema).unnest("features")
        values = df.select(numeric).to_numpy().astype(np.float64, copy=False)
        codes = df.select(
            pl.col(name)
            .replace_strict(keys, vals, default=unseen, return_dtype=pl.Int32)
            .fill_null(-1)
            for name, keys, vals, unseen in maps
        ).to_numpy()
        return Columns(
            ts=df["ts"].to_numpy(),
            numeric=np.ascontiguousarray(values),
            status=np.isnan(values).view(np.uint8),
            codes=np.ascontiguousarray(codes, dtype=np.int32),
            latency=df["latency_ms"].to_numpy(),
            http_status=df["status"].to_numpy().astype(np.int32),
            score=df["prediction"].to_numpy(),
            event_ids=df["event_id"].to_list(),
        )

    return run


def pyarrow_path(layout: FeatureLayout) -> Callable[[Chunk], Columns]:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.json as pj

    features = pa.struct(
        [(n, pa.float64()) for n in layout.numeric] + [(n, pa.string()) for n in layout.categorical]
    )
    schema = pa.schema(
        [
            ("model", pa.string()),
            ("model_version", pa.string()),
            ("ts", pa.int64()),
            ("event_id", pa.string()),
            ("features", features),
            ("prediction", pa.float64()),
            ("latency_ms", pa.float64()),
            ("status", pa.int64()),
        ]
    )
    parse = pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="error")
    maps = [
        (
            pa.array(list(layout.categories[j]), pa.string()),
            np.append(np.fromiter(layout.categories[j].values(), np.int32), layout.unseen[j]),
        )
        for j in range(len(layout.categorical))
    ]
    n_num = len(layout.numeric)

    def run(raws: Chunk) -> Columns:
        data = b"\n".join(raws)
        read = pj.ReadOptions(use_threads=False, block_size=max(len(data) + 1, 1 << 20))
        table = pj.read_json(io.BytesIO(data), read_options=read, parse_options=parse)
        feats = table.column("features").combine_chunks().flatten()
        n = len(table)
        values = np.empty((n, n_num), dtype=np.float64)
        for j in range(n_num):
            values[:, j] = feats[j].to_numpy(zero_copy_only=False)  # null -> NaN
        codes = np.empty((n, len(maps)), dtype=np.int32)
        for j, (names, code_of) in enumerate(maps):
            col = feats[n_num + j]
            idx = pc.index_in(col, value_set=names).to_numpy(zero_copy_only=False)
            found = np.where(np.isnan(idx), len(names), idx).astype(np.intp)
            codes[:, j] = np.where(col.is_null().to_numpy(zero_copy_only=False), -1, code_of[found])
        return Columns(
            ts=table.column("ts").to_numpy(),
            numeric=values,
            status=np.isnan(values).view(np.uint8),
            codes=codes,
            latency=table.column("latency_ms").to_numpy(),
            http_status=table.column("status").to_numpy().astype(np.int32),
            score=table.column("prediction").to_numpy(),
            event_ids=table.column("event_id").to_pylist(),
        )

    return run


def _same(a: Columns, b: Columns) -> bool:
    arrays = ("ts", "numeric", "status", "codes", "latency", "http_status", "score")
    return all(
        np.array_equal(getattr(a, k), getattr(b, k), equal_nan=k in ("numeric", "latency", "score"))
        for k in arrays
    ) and (a.event_ids == b.event_ids)


def _concat(parts: Sequence[Columns]) -> Columns:
    first = parts[0]
    return Columns(
        **{
            k: np.concatenate([getattr(p, k) for p in parts])
            for k in ("ts", "numeric", "status", "codes", "latency", "http_status", "score")
        },
        event_ids=[i for p in parts for i in p.event_ids],
        pred_codes=first.pred_codes,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--chunks", default="1024,200000", help="lines per call, comma-separated")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    n = 20_000 if args.quick else args.events
    repeat = 3 if args.quick else args.repeat
    rng = np.random.default_rng(0)
    layout = _layout(rng)
    lines = [json.dumps(e).encode() for e in _events(rng, n, 1_767_225_600_000)]
    paths = {"msgspec + extract (today)": msgspec_path(layout)}
    if importlib.util.find_spec("polars") is not None:
        paths["polars.read_ndjson"] = polars_path(layout)
    paths["pyarrow.json.read_json"] = pyarrow_path(layout)
    gc.set_threshold(50_000, 20, 10)  # as `drifthouse replay` and the worker run
    for size in (int(c) for c in args.chunks.split(",")):
        _compare(paths, lines, min(size, n), repeat)


def _compare(
    paths: dict[str, Callable[[Chunk], Columns]], lines: Chunk, size: int, repeat: int
) -> None:
    n = len(lines)
    chunks = [lines[i : i + size] for i in range(0, n, size)]
    expected = _concat([paths["msgspec + extract (today)"](c) for c in chunks])
    for name, run in paths.items():
        if not _same(_concat([run(c) for c in chunks]), expected):
            raise SystemExit(f"{name} gives other columns than msgspec")
    times: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(repeat):
        for name, run in paths.items():
            t = time.perf_counter()
            for c in chunks:
                run(c)
            times[name].append(time.perf_counter() - t)
    load = os.getloadavg()[0]
    mb = sum(map(len, lines)) / 1e6
    print(
        f"\n{n:,} events x {NUMERIC + CATEGORICAL} features ({mb:.0f} MB of JSON), "
        f"{len(chunks)} calls of {size:,} lines, one thread, median of {repeat} "
        f"(load average {load:.1f} at the end)\n"
    )
    base = statistics.median(times["msgspec + extract (today)"])
    print(
        "| path | median s | fastest s | slowest s | events/s | µs per event | × msgspec |\n"
        "|---|---:|---:|---:|---:|---:|---:|"
    )
    for name, spent in times.items():
        med = statistics.median(spent)
        print(
            f"| {name} | {med:.3f} | {min(spent):.3f} | {max(spent):.3f} | {n / med:,.0f} | "
            f"{1e6 * med / n:.2f} | {base / med:.2f} |"
        )


if __name__ == "__main__":
    main()
