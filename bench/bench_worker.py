"""The live worker against a real broker: events per second per worker process, end to end.

    KAFKA_BOOTSTRAP=127.0.0.1:9092 .venv/bin/python bench/bench_worker.py [--quick] [--events N] [--web-port P]
        [--per-message K [--form rows|columns]] [--no-labels]

Pre-fills a 4-partition topic with N prediction events (20 numeric + 5 categorical features),
one event per message, or ``--per-message K`` events per message as batched messages
(docs/events.md, "Batched messages") in rows or columns,
then (1) reads it with aiokafka alone, the client the worker reads with, counting records
(times the events a record holds): the ceiling; beside it confluent-kafka alone (librdkafka,
the client of the worker's group membership), and msgspec alone decoding the same message
values in memory with the struct the worker's path decodes them into (the decode-only
ceiling);
(2) reads it twice more with the same client and, in the loop, the worker's decoder, then the
worker's partition stages (decoding, columns, windows, sketches, the prediction log's sampling
and the label join's records; no merger, no store): what each costs on top of reading;
(3) starts one `drifthouse run` worker process and polls its health endpoint until every event
is consumed and the merger has read all the source published and written every closed window:
the end-to-end rate, measured from
the worker's first event to the last, the worker's CPU time over that span (every thread, from
/proc: the figure that does not depend on what else the machine runs) and where the source
loop spent its time (the health page's `source_seconds`: fetching, processing, publishing the
partials, committing); (4) runs the partition stages in process over the same values, timed
and then under cProfile: where a stage's time goes (decode, staging into columns, windows and
sketch kernels, label records, the prediction log). Start a broker first (`scripts/kafka start`).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from kafka import KafkaProducer

sys.path.insert(0, str(Path(__file__).parent))
from bench_replay import _events

from drifthouse.app.assembly import RunParts
from drifthouse.app.worker import tune_gc
from drifthouse.config import Config
from drifthouse.detectors.reference import Profile
from drifthouse.detectors.typed_decode import TypedDecoders
from drifthouse.kafka.admin import end_offsets, ensure_topics
from drifthouse.profiles.columns import build_profile
from drifthouse.sinks.predictions import PredictionLog
from drifthouse.stream.dead_letters import MemoryDeadLetters
from drifthouse.stream.sources import Message
from drifthouse.stream.stage import PartitionStage


async def _consume(
    bootstrap: str,
    topic: str,
    n: int,
    work: Callable[[int, list[Any]], object] | None = None,
    per_message: int = 1,
) -> tuple[float, float]:
    """Events per second and per CPU-second (the process's, every thread) through a bare
    aiokafka consumer (``n`` events, ``per_message`` to a record), with
    ``work(partition, records)`` run on each fetched batch (none: the client alone, the
    ceiling)."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    seen, t0, cpu0 = 0, None, 0.0
    try:
        while seen < n:
            batch = await consumer.getmany(timeout_ms=1000, max_records=5000)
            for tp, records in batch.items():
                if t0 is None:
                    t0, cpu0 = time.perf_counter(), time.process_time()
                if work is not None:
                    work(tp.partition, records)
                seen += len(records) * per_message
    finally:
        await consumer.stop()
    events, cpu = min(seen, n), time.process_time() - cpu0
    return events / (time.perf_counter() - (t0 or time.perf_counter())), events / cpu


def _confluent(bootstrap: str, topic: str, n: int, per_message: int = 1) -> tuple[float, float]:
    """Events per second and per CPU-second through a bare confluent-kafka consumer, timed
    from the assignment of the partitions (librdkafka fetches in a thread of its own from
    then on)."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"ceiling-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    seen, t0, cpu0 = 0, time.perf_counter(), time.process_time()
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(4)])
    try:
        while seen < n:
            batch = consumer.consume(num_messages=5000, timeout=1.0)
            for m in batch:
                if m.error() is None and m.value() is not None:
                    seen += per_message
    finally:
        consumer.close()
    events, cpu = min(seen, n), time.process_time() - cpu0
    return events / (time.perf_counter() - t0), events / cpu


def _decode_only(values: list[bytes], per_message: int, form: str, first: Any) -> float:
    """Events per CPU-second of msgspec alone decoding ``values`` into the struct the worker's
    path takes them into (single events: the model's typed decoder), best of three."""
    from drifthouse.events import batch_columns, batch_rows

    if per_message == 1:
        decode = first
    else:
        decode = batch_columns._DECODE if form == "columns" else batch_rows._DECODE
    best = float("inf")
    for _ in range(3):
        c = time.process_time()
        for v in values:
            decode(v)
        best = min(best, time.process_time() - c)
    return len(values) * per_message / best


_PARTS = {
    "decode (decode_messages: msgspec and checks)": ("decode_messages",),
    "staging into columns (extract, extract_columns, joined, concat)": (
        "extract",
        "extract_columns",
        "joined",
        "concat",
    ),
    "routing to windows (route)": ("route",),
    "windows and sketch kernels (_update)": ("_update",),
    "label join records": ("_keep_label_records",),
    "prediction log (sampling, rows)": ("block_rows", "rows"),
}


def _in_process(
    new_stage: Callable[[int], PartitionStage], values: list[bytes], per_message: int
) -> tuple[float, list[tuple[str, float]]]:
    """The partition stages over ``values`` in process (no Kafka), ``4,000`` events a call:
    events per CPU-second (best of three), then the shares of a cProfile'd run."""
    chunk = max(1, 4000 // per_message)
    calls = [
        [Message(v, 0, i + j) for j, v in enumerate(values[i : i + chunk])]
        for i in range(0, len(values), chunk)
    ]

    def run() -> None:
        stage = new_stage(0)
        for msgs in calls:
            stage.process(msgs)
            stage.take_prediction_rows()
            stage.take_label_records()

    best = float("inf")
    for _ in range(3):
        c = time.process_time()
        run()
        best = min(best, time.process_time() - c)
    prof = cProfile.Profile()
    prof.runcall(run)
    stats: Any = pstats.Stats(prof)
    total = sum(v[3] for k, v in stats.stats.items() if k[2] == "process" and "stage" in k[0])
    shares = []
    for name, funcs in _PARTS.items():
        found = [
            v[3]
            for k, v in stats.stats.items()
            if k[2] in funcs and "drifthouse" in k[0] and "labels" not in k[0]
        ]
        # block_rows calls rows: the outer one holds both.
        spent = max(found, default=0.0) if "rows" in funcs else sum(found)
        shares.append((name, spent / total))
    shares.append(("the rest of PartitionStage.process", 1 - sum(x for _, x in shares)))
    return len(values) * per_message / best, shares


def _floors(
    bootstrap: str,
    topic: str,
    n: int,
    cfg: Config,
    profile: Profile,
    warm_up: list[dict[str, Any]],
    per_message: int,
) -> list[tuple[str, tuple[float, float]]]:
    """The same client with the worker's first stages in the loop, no merger and no store:
    what each stage costs on top of reading, on the same records."""
    parts = RunParts.of(cfg, {"bench": profile})
    sketches = parts.sketches
    log = PredictionLog(cfg.models)
    now = int(time.time() * 1000)

    def new_stage(partition: int) -> PartitionStage:
        return parts.partition_stage(
            partition, MemoryDeadLetters(), now_ms=lambda: now, prediction_log=log,
            collect_labels=True,
        )  # fmt: skip

    # Numba's compiled kernels loaded before timing; the worker's decoder, as a stage builds it.
    warm = new_stage(-1)
    warm.process([Message(json.dumps(e).encode(), -1, i) for i, e in enumerate(warm_up)])
    decoder = warm.decoder
    typed = TypedDecoders(lambda model: sketches(model).layout if model == "bench" else None)
    first = typed.decoder("bench")

    def decode(partition: int, records: list[Any]) -> object:
        return decoder.decode_batch([r.value for r in records], now_ms=now, first=first)

    stages: dict[int, PartitionStage] = {}

    def stage(partition: int, records: list[Any]) -> object:
        found = stages.get(partition)
        if found is None:
            found = stages[partition] = new_stage(partition)
        out = found.process(records)
        found.take_prediction_rows()
        found.take_label_records()
        return out

    staged = (
        "aiokafka + the partition stages (decoding, columns, windows, sketches, "
        "prediction log, label records; no merger, no store)",
        asyncio.run(_consume(bootstrap, topic, n, stage, per_message)),
    )
    _FIRST.append(first)
    _NEW_STAGE.append(new_stage)
    if per_message > 1:  # the single-event decoder does not take batched messages
        return [staged]
    return [
        ("aiokafka + the worker's decoder", asyncio.run(_consume(bootstrap, topic, n, decode))),
        staged,
    ]


# What _floors built, for the in-process passes.
_FIRST: list[Any] = []
_NEW_STAGE: list[Callable[[int], PartitionStage]] = []


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=500_000)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--batch-size", type=int, default=4096, help="kafka.batch_size")
    parser.add_argument("--web-port", type=int, default=16999, help="the worker's web port")
    parser.add_argument(
        "--per-message", type=int, default=1, help="events per message (batched messages)"
    )
    parser.add_argument("--form", choices=("rows", "columns"), default="rows")
    parser.add_argument(
        "--no-labels", action="store_true", help="the model without labels: no label join"
    )
    args = parser.parse_args()
    k = args.per_message
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    n = 50_000 if args.quick else args.events
    n -= n % k  # whole messages
    rng = np.random.default_rng(1)
    folder = Path(tempfile.mkdtemp(prefix="drifthouse-bench-worker-"))
    topic = f"bench-{uuid.uuid4().hex[:8]}"
    cfg = Config.model_validate({"kafka": {"bootstrap": bootstrap, "topic": topic}})
    ensure_topics(cfg.kafka, {topic: 4})
    ref = _events(rng, 50_000, 0)
    profile = build_profile(
        model="bench", model_version="1", created_at="2026-01-01T00:00:00Z", source_digest="bench",
        settings=cfg.metrics, features={k: [e["features"][k] for e in ref] for k in ref[0]["features"]},
        prediction=[e["prediction"] for e in ref],
    )  # fmt: skip
    (folder / "bench.json").write_bytes(profile.to_json())
    producer = KafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=50, batch_size=1 << 20, compression_type=None
    )
    t = time.perf_counter()
    values = _messages(_events(rng, n, 1_767_225_600_000), k, args.form)
    for i, msg in enumerate(values):
        producer.send(topic, value=msg, partition=i % 4)
    producer.flush()
    print(
        f"filled {topic} with {n:,} events in {n // k:,} messages ({k} per message"
        + (f", {args.form}" if k > 1 else "")
        + f") in {time.perf_counter() - t:.1f} s"
    )

    config = {
        "kafka": {"bootstrap": bootstrap, "topic": topic, "group": f"g-{topic}", "partials_topic": f"{topic}-partials",
                  "web_port": args.web_port, "batch_size": args.batch_size},
        "store": {"path": "./store"},
        "windows": [{"size": "1h"}],
        "models": {"bench": {"reference": "bench.json", "labels": not args.no_labels}},
    }  # fmt: skip
    cfg_run = Config.model_validate(config)
    tune_gc()  # every reading pass with the worker's collector settings
    ceiling, ceiling_cpu = asyncio.run(_consume(bootstrap, topic, n, per_message=k))
    confluent = _confluent(bootstrap, topic, n, k)
    floors = _floors(bootstrap, topic, n, cfg_run, profile, ref[:1000], k)
    decode_only = _decode_only(values, k, args.form, _FIRST[0])
    in_process, shares = _in_process(_NEW_STAGE[0], values, k)

    (folder / "drifthouse.yaml").write_text(json.dumps(config))
    log = (folder / "worker.log").open("wb")
    worker = subprocess.Popen(
        [sys.executable, "-m", "drifthouse", "run", "-c", "drifthouse.yaml"],
        cwd=folder,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    first = last = read_all = None
    cpu_first = cpu_last = 0.0
    steady: tuple[float, int, float] | None = None  # (time, events, cpu) once the merger is up
    candidate: tuple[float, float] | None = None

    def partials_end() -> int:
        return end_offsets(cfg.kafka, f"{topic}-partials").get(0, 0)

    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            time.sleep(0.5)
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{args.web_port}/drifthouse/health/", timeout=2
                ) as resp:
                    health = json.loads(resp.read())
            except OSError:
                continue
            if health["events"] and first is None:
                first = time.perf_counter() - 0.5
                cpu_first = _cpu_seconds(worker.pid)
            if steady is None and health.get("merger") and health["events"] < n:
                steady = (time.perf_counter(), health["events"], _cpu_seconds(worker.pid))
            if read_all is None and health["events"] >= n:
                read_all = time.perf_counter()
            merger = health.get("merger") or {}
            if (
                health["events"] >= n
                and merger.get("pending_windows", 1) == 0
                and merger.get("label_windows_waiting", 0) == 0
                and merger.get("next_offset", -1) >= partials_end()
            ):
                # Done once the merger has read everything the source published (partials,
                # the label join's records, prediction-log rows): seen twice in a row, so a
                # message published just after a poll is not missed; timed at the first.
                if candidate is None:
                    candidate = (time.perf_counter(), _cpu_seconds(worker.pid))
                    continue
                last, cpu_last = candidate
                break
            candidate = None
    finally:
        worker.terminate()
        worker.wait(timeout=60)
    if first is None or last is None:
        raise SystemExit(f"the worker did not finish; see {folder / 'worker.log'}")
    rate = n / (last - first)
    cpu = cpu_last - cpu_first
    where = health.get("source_seconds", {})
    load = os.getloadavg()[0]
    print(
        f"\nload average {load:.2f} on {os.cpu_count()} cores; kafka.batch_size {args.batch_size}; "
        f"{k} event(s) per message"
        + (f" in {args.form}" if k > 1 else "")
        + ("; the model without labels" if args.no_labels else "")
    )
    print("\n| reader | events/s | events per CPU-second |\n|---|---:|---:|")
    print(f"| aiokafka consumer only (the ceiling) | {ceiling:,.0f} | {ceiling_cpu:,.0f} |")
    print(f"| confluent-kafka consumer only | {confluent[0]:,.0f} | {confluent[1]:,.0f} |")
    print(f"| msgspec decoding alone, in memory (decode-only ceiling) | | {decode_only:,.0f} |")
    print(f"| the partition stages in process, no Kafka | | {in_process:,.0f} |")
    for name, (value, per_cpu) in floors:
        print(
            f"| {name} | {value:,.0f} ({100 * value / ceiling:.0f}% of the ceiling) "
            f"| {per_cpu:,.0f} ({100 * per_cpu / ceiling_cpu:.0f}%) |"
        )
    print(
        f"| drifthouse worker, one process, end to end | {rate:,.0f} ({100 * rate / ceiling:.0f}% of the ceiling) "
        f"| {n / (cpu_last - cpu_first):,.0f} ({100 * n / (cpu_last - cpu_first) / ceiling_cpu:.0f}%) |"
    )
    print(
        f"\nworker CPU: {cpu:.1f} s for {n:,} events in {last - first:.1f} s "
        f"({100 * cpu / (last - first):.0f}% of one core; {n / cpu:,.0f} events per CPU-second)"
    )
    if read_all is not None:
        print(
            f"the merger had read everything {last - read_all:.1f} s after the source "
            f"(the source read the last event {read_all - first:.1f} s in; polled every 0.5 s)"
        )
    if steady is not None:
        t_s, events_s, cpu_s = steady
        print(
            f"from the moment the merger had opened the store: {(n - events_s) / (last - t_s):,.0f} "
            f"events/s, {(n - events_s) / (cpu_last - cpu_s):,.0f} events per CPU-second "
            f"({n - events_s:,} events in {last - t_s:.1f} s)"
        )
    busy = sum(where.values())
    if busy:
        print(
            "source loop: "
            + ", ".join(f"{k} {100 * v / busy:.0f}%" for k, v in where.items())
            + f" of {busy:.1f} s"
        )
    us = 1e6 / in_process
    print(
        f"\nthe partition stages in process: {us:.2f} µs per event; under cProfile "
        "(shares of PartitionStage.process):\n\n| part | share | µs per event |\n|---|---:|---:|"
    )
    for name, share in shares:
        print(f"| {name} | {100 * share:.0f}% | {share * us:.2f} |")


def _messages(events: list[dict[str, Any]], k: int, form: str) -> list[bytes]:
    """The events as message values: one JSON event each, or ``k`` to a batched message."""
    if k == 1:
        return [json.dumps(e).encode() for e in events]
    import msgspec

    from drifthouse.events import PredictionEvent, encode_batch, encode_columns

    encode = encode_columns if form == "columns" else encode_batch
    typed = [msgspec.convert(e, PredictionEvent) for e in events]
    return [encode(typed[i : i + k]) for i in range(0, len(typed), k)]


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process, every thread included (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


if __name__ == "__main__":
    main()
