"""The merger's per-prediction work: what bounds a deployment however many workers it has.

    .venv/bin/python bench/bench_merger.py [--events N] [--labelled F] [--quick]

Every source worker sends the merger, beside its partial windows, the on-time predictions that
carry an ``event_id`` (a records message per batch), and the merger holds them in the label
join until their labels come. That is the one per-event stage that does not spread over
workers: this script times it alone, in one process, without Kafka or a store, on N predictions
of one model cut into batches of 4,096 from four source partitions (``event_id`` on each,
timestamps 2 ms apart), with a fraction F of them labelled a minute later. It reports the
microseconds per prediction of the two parts the merger runs, decoding the records messages and
the label stage (join, label windows), and so how many predictions a second one merger can
take. The join is capped at ``metrics.label_join_max_entries`` (a million by default): once it
is full, each new prediction evicts one, so runs longer than a million predictions show the
steady cost.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from drifthouse.config import Config
from drifthouse.events import LabelEvent, encode_event
from drifthouse.kafka.partials import RecordsMessage, decode, encode_records, side_decoders
from drifthouse.stream.labels import LabelStage, PredictionRecord

BATCH = 4096
PARTITIONS = 4


def _messages(n: int, rng: np.random.Generator) -> list[bytes]:
    """Records messages as four source partitions publish them, round robin."""
    out: list[bytes] = []
    scores = rng.random(n)
    for start in range(0, n, BATCH):
        stop = min(n, start + BATCH)
        records = [
            PredictionRecord(
                f"e{i}", "bench", "1", 1_767_225_600_000 + 2 * i, float(scores[i]), None
            )
            for i in range(start, stop)
        ]
        partition = (start // BATCH) % PARTITIONS
        out.append(encode_records(partition, list(range(start, stop)), records))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--labelled", type=float, default=0.5, help="share of predictions labelled")
    parser.add_argument("--quick", action="store_true", help="200,000 predictions")
    args = parser.parse_args()
    n = 200_000 if args.quick else args.events
    rng = np.random.default_rng(0)
    messages = _messages(n, rng)
    config = Config.model_validate({"windows": [{"size": "1h"}, {"size": "15m", "hop": "5m"}]})
    stage = LabelStage.from_config(config, profiles={})
    labels_decoder = side_decoders(config.kafka)["labels"]
    labelled = rng.random(n) < args.labelled
    decode_s = join_s = label_s = 0.0
    for m, raw in enumerate(messages):
        t0 = time.perf_counter()
        msg = decode(raw)
        t1 = time.perf_counter()
        assert isinstance(msg, RecordsMessage)
        stage.add_records(msg.records)
        t2 = time.perf_counter()
        decode_s += t1 - t0
        join_s += t2 - t1
        # The labels of the batch before, a minute of event time later (30,000 predictions).
        if m:
            first = (m - 1) * BATCH
            raws = [
                encode_event(
                    LabelEvent(
                        event_id=f"e{i}",
                        model="bench",
                        ts_ms=1_767_225_600_000 + 2 * i + 60_000,
                        label=int(rng.random() < 0.5),
                    )
                )
                for i in range(first, first + BATCH)
                if labelled[i]
            ]
            t3 = time.perf_counter()
            ok, _ = labels_decoder.decode_batch(raws)
            stage.add_labels([e for _, e in ok])
            label_s += time.perf_counter() - t3
    per = (decode_s + join_s) / n * 1e6
    n_labels = max(1, int(labelled[: (len(messages) - 1) * BATCH].sum()))
    per_label = label_s / n_labels * 1e6
    with_labels = per + args.labelled * per_label
    print(f"{n:,} predictions in batches of {BATCH:,}, {args.labelled:.0%} labelled")
    print()
    print("| merger step | µs per prediction |")
    print("|---|---:|")
    print(f"| decoding the records messages | {decode_s / n * 1e6:.2f} |")
    print(f"| label stage: join and label windows | {join_s / n * 1e6:.2f} |")
    print(f"| a prediction, together | {per:.2f} |")
    print(f"| a label: decoding, joining, label windows | {per_label:.2f} |")
    print(f"| a prediction and its share of labels | {with_labels:.2f} |")
    print()
    print(
        f"one merger takes about {1e6 / per:,.0f} predictions/s with event ids and no labels, "
        f"{1e6 / with_labels:,.0f}/s with {args.labelled:.0%} of them labelled"
    )
    print(f"join entries at the end: {stage.join.entries:,}")


if __name__ == "__main__":
    main()
