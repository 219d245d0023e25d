"""What a closed window writes: its metric rows carry the window's key, its time and run."""

from __future__ import annotations

from drifthouse.config import Config
from drifthouse.detectors.base import Result
from drifthouse.profiles.sketches import Sketches
from drifthouse.rows import MetricRow
from drifthouse.stream.results import evaluate_window, metric_rows
from drifthouse.stream.windows import WindowSpec

HOUR = 3_600_000


def test_metric_rows_are_model_level_rows_of_the_window() -> None:
    spec = WindowSpec(HOUR, 15 * 60_000)
    results = [Result("", "cpu_util", 0.5, None, 0, 4), Result("amount", "psi", 0.1, None, 9, 8)]
    rows = metric_rows(spec, 2 * HOUR, "m", "1", results, run_id="r", computed_at=7)
    assert rows == [
        MetricRow(
            window_start=2 * HOUR, window_end=3 * HOUR, window="1h/15m", model="m",
            model_version="1", feature="", segment="", metric="cpu_util", value=0.5, n=4,
            run_id="r", computed_at=7,
        ),
        MetricRow(
            window_start=2 * HOUR, window_end=3 * HOUR, window="1h/15m", model="m",
            model_version="1", feature="amount", segment="", metric="psi", value=0.1, n=8,
            run_id="r", computed_at=7,
        ),
    ]  # fmt: skip


def test_an_empty_window_counts_no_events() -> None:
    sketches = Sketches({}, Config().metrics)
    sketch = sketches("m")
    spec = WindowSpec.tumbling(HOUR)
    result = evaluate_window(
        spec, HOUR, ("m", "1"), sketch.resolve(sketch.empty()), sketches,
        changes=None, run_id="r", computed_at=7,
    )  # fmt: skip
    assert (result.spec, result.start, result.end) == (spec, HOUR, 2 * HOUR)
    assert (result.model, result.model_version) == ("m", "1")
    events = {r.metric: r for r in result.metrics}["events"]
    assert (events.value, events.n, events.window, events.run_id) == (0.0, 0, "1h", "r")
    assert {(r.window_start, r.window_end, r.computed_at) for r in result.metrics} == {
        (HOUR, 2 * HOUR, 7)
    }
