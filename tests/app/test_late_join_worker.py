"""The live worker runs the late label join on its schedule (``metrics.late_labels_every``),
against the real broker and the embedded engine: with a 30-minute label horizon and labels up to
two hours late, its merger joins the late labels itself, and a ``drifthouse labels join --since
all`` afterwards changes no row."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from drifthouse.config import load_config
from tests.workers import (
    PARTITIONS,
    Workers,
    produce_side_inputs,
    produce_stream,
    stored_rows,
    write_config,
)

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def test_the_worker_joins_late_labels_on_its_schedule(
    tmp_path: Path, kafka_bootstrap: str, make_topic: Any, small_stream: Any
) -> None:
    topic = make_topic(partitions=PARTITIONS)
    produce_stream(kafka_bootstrap, topic, small_stream.records)
    produce_side_inputs(kafka_bootstrap, topic, small_stream.scenario)
    metrics = {
        "label_rewrite_every": "1ms",
        "label_horizon": "30m",  # labels come 5 to 120 minutes late: many are later than this
        "late_labels": True,
        "late_labels_every": "2s",
    }
    config = write_config(
        tmp_path, kafka_bootstrap, topic, "late", small_stream.profiles,
        extra={"metrics": metrics},
    )  # fmt: skip
    workers = Workers(config, PARTITIONS)
    try:
        workers.start()
        workers.wait_done(load_config(config), len(small_stream.records))
        time.sleep(6)  # a run after everything is stored
    finally:
        workers.stop_all()
    logs = workers.logs()
    pairs = [int(n) for n in re.findall(r"late_join\.done.*?pairs=(\d+)", logs)]
    assert pairs, logs[-3000:]
    assert sum(pairs) > 0
    live = stored_rows(config)
    again = subprocess.run(
        [sys.executable, "-m", "drifthouse", "labels", "join", "-c", str(config), "--since", "all"],
        cwd=config.parent, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert "windows rewritten" in again.stdout
    after = stored_rows(config)
    changed = {k: (live.get(k), v) for k, v in after.items() if live.get(k) != v}
    assert not changed, f"{len(changed)} rows changed, e.g. {list(changed.items())[:3]}"
    assert any(k[-1] == "accuracy" for k in live)
