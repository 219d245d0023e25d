"""The capacity model of docs/operations.md ("Capacity"): measured costs multiplied out.

``bench_capacity.py`` measures the :class:`Inputs`; :func:`capacity` turns them into cores,
messages, bytes and rows per second for a deployment, under the assumptions named here and in
the docs. ``tests/test_capacity_docs.py`` recomputes the docs' table from the docs' inputs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

__all__ = ["CLOSES_PER_S", "LABELLED", "LOG_SAMPLE", "Capacity", "Inputs", "capacity", "table"]

#: Window closes per model and second with the example configuration's windows (1h tumbling,
#: 15m sliding every 1m, 1d tumbling): a sliding window is evaluated at every hop.
CLOSES_PER_S = 1 / 3_600 + 1 / 60 + 1 / 86_400
#: The prediction log's default sampling (``prediction_log.sample_rate``).
LOG_SAMPLE = 0.01
#: Share of predictions that get a label, when labels are on.
LABELLED = 0.5

EVENTS = (100_000, 1_000_000, 10_000_000)
MODELS = (100, 10_000)


@dataclass(frozen=True)
class Inputs:
    """Measured costs (µs of CPU, ms where named) and sizes, 25-feature models."""

    source_us: float  # an event through a source worker process, reading to publishing
    partial_us: float  # a partials message decoded and merged into its window
    window_ms: float  # a model-window evaluated, its rows built
    record_us: float  # a prediction record through the label join (join full)
    label_us: float  # a label decoded, joined and counted in its label windows
    label_window_ms: float  # a label window flushed, its rows built
    metric_row_us: float  # the merger's CPU per row handed to a ClickHouse server
    sketch_row_us: float
    log_row_us: float
    partial_bytes: float  # a partials message (one model, one window, one source partition)
    record_bytes: float  # a prediction record on the partials topic
    metric_rows: float  # per model-window
    sketch_rows: float  # per model-window
    label_rows: float  # per label window

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in fields(cls)]


@dataclass(frozen=True)
class Capacity:
    """One row of the table: a deployment of ``events``/s over ``models`` models."""

    events: int
    models: int
    source_cores: float
    partitions: int
    partials_by_model: float  # messages/s when every model is keyed by model (one partition)
    partials_spread: float  # messages/s when every model is on every partition
    partials_mb: float  # MB/s of partials, spread
    records_mb: float  # MB/s of prediction records for the label join (labels on)
    merger_cores: float  # spread, no labels
    merger_cores_labels: float  # spread, every prediction with an id, half labelled
    rows: float  # ClickHouse rows/s, no labels
    rows_labels: float


def capacity(i: Inputs, events: int, models: int) -> Capacity:
    """The formulas of docs/operations.md ("Capacity") for ``events``/s over ``models``."""
    source = events * i.source_us / 1e6
    partitions = max(1, math.ceil(source))  # one partition per source worker process
    windows = models * CLOSES_PER_S  # model-windows evaluated per second
    spread = windows * partitions
    log_rows = events * LOG_SAMPLE
    merger_us = (
        spread * i.partial_us
        + windows * (1e3 * i.window_ms + i.metric_rows * i.metric_row_us + i.sketch_rows * i.sketch_row_us)
        + log_rows * i.log_row_us
    )  # fmt: skip
    label_rows = windows * i.label_rows  # a label window per model-window, written once
    label_us = (
        events * (i.record_us + LABELLED * i.label_us)
        + windows * (1e3 * i.label_window_ms + i.label_rows * i.metric_row_us)
    )  # fmt: skip
    rows = windows * (i.metric_rows + i.sketch_rows) + log_rows
    return Capacity(
        events=events,
        models=models,
        source_cores=source,
        partitions=partitions,
        partials_by_model=windows,
        partials_spread=spread,
        partials_mb=spread * i.partial_bytes / 1e6,
        records_mb=events * i.record_bytes / 1e6,
        merger_cores=merger_us / 1e6,
        merger_cores_labels=(merger_us + label_us) / 1e6,
        rows=rows,
        rows_labels=rows + label_rows,
    )


HEADER = (
    "| events/s | models | source worker cores | partitions | partials/s, keyed by model "
    "| partials/s, spread | partials MB/s, spread | label records MB/s | merger cores "
    "| merger cores, labels | ClickHouse rows/s | rows/s, labels |"
)


def table(i: Inputs) -> list[str]:
    """The capacity table of docs/operations.md, as markdown lines."""
    out = [HEADER, "|" + "---:|" * 12]
    for events in EVENTS:
        for models in MODELS:
            c = capacity(i, events, models)
            out.append(
                f"| {events:,} | {models:,} | {c.source_cores:,.1f} | {c.partitions:,} "
                f"| {c.partials_by_model:,.1f} | {c.partials_spread:,.0f} | {c.partials_mb:,.1f} "
                f"| {c.records_mb:,.1f} | {c.merger_cores:,.2f} | {c.merger_cores_labels:,.2f} "
                f"| {c.rows:,.0f} | {c.rows_labels:,.0f} |"
            )
    return out
