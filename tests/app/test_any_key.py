"""Any key: producers may key prediction events by model, by event id or not at all.

The session's keyed topic (``tests/keyed_topic.py``) has 12 partitions: one hot model keyed
by event id (Kafka's own partitioner spreads it over every partition), two small models keyed
by model (one partition each, beside the hot one), and some events of each with no key (a
partition of the producer's choosing). Live ``drifthouse run`` workers (one, and two, as
deployments side by side) must store the ``metrics`` rows of an in-process replay of the same
topic to the last digit, labels included (keyed the same three ways); a replay of the same
events from files agrees on every count, and on float sums to rounding.

The small models send an event every ~30 s of event time on their partitions: a partition's
windows wait for the slowest model on it (docs/architecture.md, "watermark"), so a small model
keyed by model paces its partition, not the whole topic.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from drifthouse.app.replay import replay
from drifthouse.config import load_config
from drifthouse.sinks import MemorySink
from tests.keyed_topic import HOT, PARTITIONS, SMALL, KeyedTopic
from tests.workers import (
    FLOAT_SUMS,
    Metrics,
    Workers,
    assert_same,
    metric_rows,
    stop_together,
    stored_rows,
    wait_all_done,
    write_config,
)

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def test_any_key_gives_the_rows_of_a_replay_with_one_and_two_workers(
    tmp_path: Path,
    kafka_bootstrap: str,
    keyed_topic: KeyedTopic,
    keyed_replay: tuple[Path, Metrics],
) -> None:
    partitions = keyed_topic.partitions
    # The hot model is on every partition; a small one keyed by model on a partition of its
    # own, beside the hot model; events without a key anywhere.
    assert partitions[HOT, True] == set(range(PARTITIONS))
    assert [partitions[m, True] for m in SMALL] == [{2}, {0}]
    assert all(len(partitions[m, False]) > 1 for m in (HOT, *SMALL))

    runs: dict[str, Workers] = {}
    try:
        for name, count in {"one": 1, "two": 2}.items():
            config = write_config(
                tmp_path, kafka_bootstrap, keyed_topic.topic, name, keyed_topic.profiles
            )
            workers = runs[name] = Workers(config, PARTITIONS)
            workers.next_port += 10 * len(runs)
            for _ in range(count):
                workers.start()
        wait_all_done(runs.values())
    finally:
        stop_together(runs.values())
    config, want = keyed_replay
    assert any(k[-1] == "vs_psi" for k in want), "the hot model's canary is compared"
    for name, workers in runs.items():
        assert_same(stored_rows(workers.config), want, name)

    # The same events replayed from files, one partition holding every model.
    preds, labels = tmp_path / "predictions.jsonl", tmp_path / "labels.jsonl"
    preds.write_bytes(b"".join(r.value + b"\n" for r in keyed_topic.predictions))
    labels.write_bytes(b"".join(r.value + b"\n" for r in keyed_topic.labels))
    sink = MemorySink()
    replay(load_config(config), source=f"file:{preds}", sink=sink, labels=f"file:{labels}")
    from_file = metric_rows(sink.rows("metrics"), keyed_topic.closed_until)  # type: ignore[arg-type]
    _assert_same_to_rounding(from_file, want)


def _assert_same_to_rounding(got: Metrics, want: Metrics) -> None:
    """A file holds the events in another order than the topic's partitions: every count-based
    metric agrees exactly, float accumulators (``mean``, ``std``, a canary's ``vs_mean_diff``,
    the regression label metrics) to rounding (docs/architecture.md, "Sketches and exactness")."""
    only = sorted(got.keys() ^ want.keys(), key=repr)
    assert not only, f"file: {len(only)} rows in one only, e.g. {only[:8]}"
    rounded = FLOAT_SUMS | {"mean", "std", "vs_mean_diff"}  # the last: a difference of means
    differ = [
        k
        for k, (value, n) in want.items()
        if got[k][1] != n
        or not (
            math.isclose(got[k][0], value, rel_tol=1e-12, abs_tol=1e-12)
            if k[-1] in rounded
            else got[k][0] == value or (got[k][0] != got[k][0] and value != value)
        )
    ]
    assert not differ, (
        f"file: {len(differ)} rows differ, e.g. {[(k, got[k], want[k]) for k in differ[:8]]}"
    )
