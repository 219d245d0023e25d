"""Consumer ceiling: how fast kafka-python alone reads prediction events from a real broker.

The live worker and the replay are compared with this figure: whatever they do on top of
consuming (decode, window, sketch, store) can only make them slower than it.

The topic is filled once with ``--events`` prediction events of 25 features (about 600 bytes of
JSON each, docs/events.md), spread over ``--partitions`` partitions, and reused by later runs
when it already holds them. Then, each ``--repeat`` times, it measures:

* ``kafka-python poll``: a bare ``KafkaConsumer`` (no group, all partitions assigned) polling
  until every record is read: the ceiling;
* ``kafka-python poll, no CRC check``: the same with ``check_crcs=False``, the cost of CRC32C;
* ``KafkaRangeSource``: drifthouse's replay source, which adds the range bookkeeping and builds
  one ``Message`` per record.

Run against a local broker (``scripts/kafka start``)::

    .venv/bin/python bench/bench_kafka.py --quick
    .venv/bin/python bench/bench_kafka.py --events 1000000 --repeat 3

Prints a markdown table. Records/s and MB/s count message values only (not keys or framing).
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import msgspec

from drifthouse.config import KafkaConfig
from drifthouse.kafka import KafkaRangeSource, end_offsets, ensure_topics

FEATURES = 25
MODELS = ("fraud", "churn", "ltv")


def make_event(rng: random.Random, i: int, ts_ms: int) -> dict[str, Any]:
    """One prediction event: 20 numeric and 5 categorical features, as docs/events.md."""
    features: dict[str, Any] = {
        f"num_{j:02d}": round(rng.gauss(j, 1 + j / 10), 6) for j in range(20)
    }
    for j in range(FEATURES - 20):
        features[f"cat_{j}"] = f"c{rng.randrange(12 + j * 4)}"
    return {
        "model": MODELS[i % len(MODELS)],
        "model_version": "1.4.2",
        "ts": ts_ms,
        "event_id": f"evt-{i:012d}",
        "features": features,
        "prediction": {"0": round(1 - (p := rng.random()), 6), "1": round(p, 6)},
        "latency_ms": round(rng.lognormvariate(2.5, 0.4), 3),
        "status": 200 if rng.random() > 0.01 else 503,
    }


def fill(cfg: KafkaConfig, topic: str, events: int, partitions: int) -> tuple[float, int]:
    """Produce ``events`` events to ``topic``; return (seconds, bytes)."""
    from kafka import KafkaProducer

    producer = KafkaProducer(
        bootstrap_servers=cfg.bootstrap,
        acks=1,
        linger_ms=20,
        batch_size=512 * 1024,
        enable_idempotence=False,
    )
    rng = random.Random(7)
    encode = msgspec.json.Encoder().encode
    # Record timestamps (CreateTime) from an hour ago onwards, one every millisecond: in the
    # past, because Kafka 4 refuses records stamped more than an hour ahead.
    t0 = int(time.time() * 1000) - 3_600_000
    # Feature values come from a pool of distinct events, so filling measures Kafka, not the
    # random number generator; event ids and times stay unique.
    pool = [make_event(rng, i, 0) for i in range(min(events, 2_000))]
    size = 0
    started = time.perf_counter()
    for i in range(events):
        ts = t0 + i * 3_600_000 // max(events, 1)
        event = {**pool[i % len(pool)], "ts": ts, "event_id": f"evt-{i:012d}"}
        value = encode(event)
        size += len(value)
        producer.send(
            topic,
            value=value,
            key=event["model"].encode(),
            partition=i % partitions,
            timestamp_ms=ts,
        )
    producer.flush()
    producer.close()
    return time.perf_counter() - started, size


def consume_raw(
    cfg: KafkaConfig, topic: str, total: int, *, check_crcs: bool, batch: int
) -> tuple[float, float, int, int]:
    """A bare kafka-python consumer reading the whole topic: (seconds, CPU seconds, records, value bytes)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=cfg.bootstrap,
        group_id=None,
        enable_auto_commit=False,
        check_crcs=check_crcs,
        max_poll_records=batch,
    )
    parts = sorted(end_offsets(cfg, topic))
    tps = [TopicPartition(topic, p) for p in parts]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    records = size = 0
    started, cpu = time.perf_counter(), time.process_time()
    while records < total:
        for rs in consumer.poll(timeout_ms=1_000, max_records=batch).values():
            records += len(rs)
            for r in rs:
                size += len(r.value)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    consumer.close(autocommit=False)
    return elapsed, cpu, records, size


def consume_source(
    cfg: KafkaConfig, topic: str, total: int, *, batch: int
) -> tuple[float, float, int, int]:
    """drifthouse's :class:`KafkaRangeSource` over the whole topic."""
    source = KafkaRangeSource(cfg, topic, batch_size=batch)
    records = size = 0
    started, cpu = time.perf_counter(), time.process_time()
    for messages, _progress in source.batches():
        records += len(messages)
        for m in messages:
            size += len(m.value)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    assert records == total, f"read {records} of {total}"
    return elapsed, cpu, records, size


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:9092"))
    parser.add_argument("--events", type=int, default=500_000)
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument(
        "--batch", type=int, default=1_024, help="max records per poll (kafka.batch_size)"
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--topic", default=None, help="default: bench-kafka-<events>-p<partitions>")
    parser.add_argument("--quick", action="store_true", help="100k events, one run each")
    args = parser.parse_args(argv)
    if args.quick:
        args.events, args.repeat = 100_000, 1

    try:
        import crc32c  # noqa: F401

        crc = "crc32c (C)"
    except ImportError:
        crc = "pure Python (install crc32c!)"
    import kafka.record.util as record_util

    if record_util.crc32c_c is None:
        crc = "pure Python (install crc32c!)"

    cfg = KafkaConfig(bootstrap=args.bootstrap)
    topic = args.topic or f"bench-kafka-{args.events}-p{args.partitions}"
    ensure_topics(cfg, {topic: args.partitions})
    have = sum(end_offsets(cfg, topic).values())
    fill_note = "reused"
    if have == 0:
        seconds, size = fill(cfg, topic, args.events, args.partitions)
        fill_note = f"filled in {seconds:.1f}s ({args.events / seconds:,.0f} events/s, {size / args.events:,.0f} B/event)"
        have = sum(end_offsets(cfg, topic).values())
    elif have != args.events:
        print(
            f"topic {topic} holds {have} events, not {args.events}; pass another --topic",
            file=sys.stderr,
        )
        return 2

    runs: dict[str, list[tuple[float, float, int, int]]] = {}
    cases: list[tuple[str, Callable[[], tuple[float, float, int, int]]]] = [
        (
            "kafka-python poll (ceiling)",
            lambda: consume_raw(cfg, topic, have, check_crcs=True, batch=args.batch),
        ),
        (
            "kafka-python poll, no CRC check",
            lambda: consume_raw(cfg, topic, have, check_crcs=False, batch=args.batch),
        ),
        ("KafkaRangeSource.batches()", lambda: consume_source(cfg, topic, have, batch=args.batch)),
    ]
    consume_raw(cfg, topic, have, check_crcs=True, batch=args.batch)  # warm the broker's page cache
    for _ in range(args.repeat):
        for name, run in cases:
            runs.setdefault(name, []).append(run())

    import kafka

    print(
        f"\n{have:,} events on {args.partitions} partitions of `{topic}` ({fill_note}); "
        f"kafka-python {kafka.__version__}, CRC32C: {crc}; Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs (load average {os.getloadavg()[0]:.1f} at the end); batch {args.batch}; "
        f"median of {args.repeat} run(s)\n"
    )
    print("| reader | records/s | MB/s | seconds | records per CPU-second |")
    print("|---|---:|---:|---:|---:|")
    for name, results in runs.items():
        seconds = statistics.median(r[0] for r in results)
        cpu = statistics.median(r[1] for r in results)
        records, size = results[0][2], results[0][3]
        print(
            f"| {name} | {records / seconds:,.0f} | {size / seconds / 1e6:,.1f} | {seconds:.2f} "
            f"| {records / cpu:,.0f} |"
        )
    print(
        "\nrecords/s and MB/s are wall-clock rates; records per CPU-second divides by the CPU "
        "time of this process (all its threads), which a busy machine disturbs less."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
