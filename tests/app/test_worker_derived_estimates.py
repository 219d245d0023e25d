"""The live worker against the real broker with a derived window (``{size: 3h, from: 1h}``,
docs/configuration.md "windows") and labels: the derived windows' ``estimation_error_*`` are
stored as an in-process replay writes them, and are those of the same window kept in the
stream (docs/model-performance.md "Estimated next to realized")."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from drifthouse.config import Config, load_config
from tests.workers import (
    PARTITIONS,
    Workers,
    assert_same,
    produce_side_inputs,
    produce_stream,
    profiles_from,
    replayed_rows,
    stored_rows,
    write_config,
)

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

DERIVED = [{"size": "1h"}, {"size": "3h", "from": "1h"}]
STREAM = [{"size": "1h"}, {"size": "3h"}]
ERRORS = ("estimation_error_",)


def test_a_live_derived_window_writes_the_estimation_errors_of_the_stream_window(
    tmp_path: Path, kafka_bootstrap: str, make_topic: Any, small_stream: Any
) -> None:
    from drifthouse.simulate import simulate

    sc = small_stream.scenario
    labels = {  # the labels produce_side_inputs sends: the profiles are calibrated on them
        (e := json.loads(r.value))["event_id"]: e["label"]
        for r in simulate(sc, seed=3)
        if r.topic == "labels"
    }
    reference = [r for r in small_stream.records if r.ts_ms < sc.reference_end_ms]
    profiles = profiles_from(reference, Config(), labels=labels)
    assert profiles["fraud"].calibration is not None
    assert profiles["eta"].loss_model is not None
    topic = make_topic(partitions=PARTITIONS)
    closed_until = produce_stream(kafka_bootstrap, topic, small_stream.records)
    produce_side_inputs(kafka_bootstrap, topic, sc)
    config = write_config(
        tmp_path, kafka_bootstrap, topic, "derived", profiles, extra={"windows": DERIVED}
    )
    workers = Workers(config, PARTITIONS)
    try:
        workers.start()
        workers.wait_done(load_config(config), len(small_stream.records))
    finally:
        workers.stop_all()
    live = stored_rows(config)
    errors = {k for k in live if k[1] == "3h" and k[-1].startswith(ERRORS)}
    assert {(k[2], k[-1]) for k in errors} >= {
        ("fraud", "estimation_error_accuracy"), ("eta", "estimation_error_mae"),
    }  # fmt: skip
    assert_same(live, replayed_rows(config, closed_until, side_inputs=True))
    stream = write_config(
        tmp_path, kafka_bootstrap, topic, "stream", profiles, extra={"windows": STREAM}
    )
    want = {
        k: v
        for k, v in replayed_rows(stream, closed_until, side_inputs=True).items()
        if k[1] == "3h" and k[-1].startswith(ERRORS)
    }
    assert errors == set(want)
    for k in want:
        assert live[k][1] == want[k][1]
        assert live[k][0] == pytest.approx(want[k][0], rel=1e-12, abs=1e-12), k
