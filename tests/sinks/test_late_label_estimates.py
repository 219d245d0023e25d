"""The late join reads back every stored model-level estimate it can write an
``estimation_error_*`` for: the classifiers' (CBPE) and the regression models' (DLE)."""

from __future__ import annotations

from typing import Any

from drifthouse.rows import MetricRow
from drifthouse.sinks import ClickHouseSink, migrate
from drifthouse.sinks.late_labels import estimates
from drifthouse.stream.labels.estimates import METRICS

HOUR = 3_600_000


def _row(metric: str, value: float, **kw: Any) -> MetricRow:
    base: dict[str, Any] = {
        "window_start": 0,
        "window_end": HOUR,
        "window": "1h",
        "model": "m",
        "model_version": "1",
        "feature": "",
        "segment": "",
        "metric": metric,
        "value": value,
        "n": 10,
        "run_id": "r",
    }
    return MetricRow(**(base | kw))


def test_estimates_of_every_estimated_metric_are_read(ch_database: tuple[Any, str]) -> None:
    client, database = ch_database
    migrate(client, database)
    wanted = [_row(f"estimated_{m}", float(i)) for i, m in enumerate(METRICS)]
    others = [
        _row("estimated_mae_upper", 9.0),  # a band: no error of its own
        _row("estimated_mae", 9.0, segment="country=DE"),  # segments are not estimated
        _row("estimated_rmse", 9.0, window_start=2 * HOUR, window_end=3 * HOUR),  # out of range
    ]
    sink = ClickHouseSink(client, database=database)
    sink.write([*wanted, *others])
    sink.flush()
    got = estimates(client, database, "m", "r", 0, HOUR)
    assert sorted((r.metric, r.value) for r in got) == sorted((r.metric, r.value) for r in wanted)
    assert {"estimated_mae", "estimated_rmse"} <= {r.metric for r in got}
