"""What per-feature segment attribution costs: rows, state bytes and update time.

    .venv/bin/python bench/bench_segment_attribution.py [--quick] [--days D] [--rate R]

Runs the simulated demo scenario (two models, ``fraud`` segmented by ``country`` and ``churn``
by ``vehicle``; faults after the reference) through the in-memory pipeline with one-hour
windows, twice: attribution at its defaults (``attribution_top_k: 3``, ``attribution_min_psi:
0.1``: each segment value keeps counts on every feature's PSI bins) and off (``0``: none kept).
Prints markdown tables:

- rows per window: all ``metrics`` rows, the attribution rows, and the per-feature segment
  shares (``psi_segment_share`` of a feature, not of the prediction) among them;
- per model: the features' PSI bins (the counts each segment value keeps), their bytes, and one
  segment value's state with and without them, raw and serialised (``ModelState.to_bytes``,
  segments zlib-compressed as in a partial message);
- update time: the pipeline's wall time over the stream, best of ``--repeat``, both ways,
  measured in the same run (the ratio is the figure; the machine is shared).

The figures in docs/statistics.md ("Drift attribution") come from the defaults.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from typing import Any

import numpy as np

from drifthouse.app.pipeline import Pipeline
from drifthouse.config import Config
from drifthouse.detectors.model_state import ModelState
from drifthouse.profiles.columns import build_profile
from drifthouse.rows import ATTRIBUTION_METRICS
from drifthouse.simulate import Scenario, simulate
from drifthouse.sinks import MemorySink
from drifthouse.stream.dead_letters import MemoryDeadLetters
from drifthouse.stream.sources import Message


def profiles_from(records: list[Any], settings: Config) -> dict[str, Any]:
    """Reference profiles of every model in ``records`` (as ``drifthouse profile`` builds them)."""
    by_model: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        event = json.loads(r.value)
        by_model.setdefault(event["model"], []).append(event)
    out = {}
    for model, events in by_model.items():
        pii = set(settings.model(model).pii)
        names = [n for n in events[0]["features"] if n not in pii]
        out[model] = build_profile(
            model=model,
            model_version=events[0]["model_version"],
            created_at="2026-01-01T00:00:00Z",
            source_digest="bench",
            settings=settings.metrics,
            features={n: [e["features"].get(n) for e in events] for n in names},
            prediction=[e["prediction"] for e in events],
            latency_ms=[e["latency_ms"] for e in events],
            status=[e["status"] for e in events],
        )
    return out


def _run(records: list[Any], profiles: dict[str, Any], top_k: int) -> tuple[MemorySink, float]:
    config = Config.model_validate(
        {"windows": [{"size": "1h"}], "metrics": {"attribution_top_k": top_k}}
    )
    sink = MemorySink()
    pipeline = Pipeline(
        config=config, profiles=profiles, sink=sink, dead_letters=MemoryDeadLetters()
    )
    messages = [Message(r.value, 0, i, "predictions", r.key) for i, r in enumerate(records)]
    t0 = time.perf_counter()
    for lo in range(0, len(messages), 1024):
        pipeline.process(messages[lo : lo + 1024])
    pipeline.finish()
    sink.flush()
    return sink, time.perf_counter() - t0


def _state_bytes(records: list[Any], profiles: dict[str, Any]) -> list[list[str]]:
    from drifthouse.detectors.columns import extract
    from drifthouse.detectors.model_sketch import ModelBatch, ModelSketch
    from drifthouse.events.decoder import decoder_for

    config = Config.model_validate({"metrics": {"attribution_top_k": 3}})
    decoder = decoder_for("prediction")
    out = []
    for model, profile in sorted(profiles.items()):
        sketch = ModelSketch(model, profile, config.metrics)
        events = [e for r in records if (e := decoder.decode(r.value)).model == model][:20_000]
        state = sketch.update(sketch.empty(), ModelBatch(extract(events, sketch.layout)))
        key = max(state.segments, key=lambda k: state.segments[k].events)
        seg = state.segments[key]
        assert seg.features is not None
        assert sketch.segment.features is not None
        one = ModelState(**{**state.__dict__, "segments": {key: seg}})
        bare_seg = type(seg)(seg.counters, seg.latency, seg.status, seg.prediction, None)
        bare = ModelState(**{**state.__dict__, "segments": {key: bare_seg}})
        raw_with = seg.latency.counts.nbytes + seg.features.nbytes
        out.append(
            [
                model,
                str(len(sketch.segment.features.names)),
                str(sketch.segment.features.size),
                f"{seg.features.nbytes:,}",
                f"{seg.latency.counts.nbytes:,} → {raw_with:,}",
                f"{len(bare.to_bytes()):,} → {len(one.to_bytes()):,}",
            ]
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--days", type=float, default=1.0)
    parser.add_argument("--rate", type=int, default=20, help="events per minute per model")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    days, repeat = (0.25, 1) if args.quick else (args.days, args.repeat)
    sc = Scenario.demo(days=days, rate_per_min=args.rate, reference_hours=4)
    records = [r for r in simulate(sc, seed=5) if r.topic == "predictions"]
    reference = [r for r in records if r.ts_ms < sc.reference_end_ms]
    profiles = profiles_from(reference, Config())
    runs: dict[int, tuple[MemorySink, float]] = {}
    for top_k in (3, 0):
        best = min((_run(records, profiles, top_k) for _ in range(repeat)), key=lambda t: t[1])
        runs[top_k] = best
    sink = runs[3][0]
    rows = sink.rows("metrics")
    windows = len(
        {
            (r.model, r.model_version, r.window_start)
            for r in rows
            if r.metric == "events" and not r.segment
        }
    )
    by = Counter(
        "feature shares" if r.metric == "psi_segment_share" and r.feature != "__prediction__"
        else "other attribution" if r.metric in ATTRIBUTION_METRICS else "rest"
        for r in rows
    )  # fmt: skip
    off = len(runs[0][0].rows("metrics"))
    print(f"{len(records):,} events, {windows} model-windows of 1h\n")
    print("| rows per window | attribution off | defaults | of which per-feature segment shares |")
    print("|---|---:|---:|---:|")
    print(
        f"| metrics | {off / windows:.1f} | {len(rows) / windows:.1f} | "
        f"{by['feature shares'] / windows:.1f} |\n"
    )
    print(
        "| model | features | PSI bins kept per segment value | bytes | one segment value raw (latency sketch → + counts) | serialised model state with one segment value |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for line in _state_bytes(records, profiles):
        print("| " + " | ".join(line) + " |")
    t_on, t_off = runs[3][1], runs[0][1]
    print(f"\n| pipeline wall time | s |\n|---|---:|\n| attribution off | {t_off:.2f} |")
    print(f"| defaults | {t_on:.2f} |\n| ratio | {t_on / t_off:.2f} |")
    np.testing.assert_equal(windows > 0, True)


if __name__ == "__main__":
    main()
