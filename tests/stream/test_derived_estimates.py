"""A derived window's ``estimation_error_*`` (docs/configuration.md "windows",
docs/model-performance.md "Estimated next to realized"): a ``{size: 1d, from: 1h}`` day writes
the same estimated, realized and error rows as the ``{size: 1d}`` day kept in the stream, for a
calibrated classifier (CBPE) and a regressor with a loss model (DLE): in a replay, in a merger
resumed from its snapshot, and when the late join in ClickHouse rewrites its label metrics.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from drifthouse.app.assembly import RunParts
from drifthouse.app.pipeline import Pipeline
from drifthouse.app.replay import replay
from drifthouse.config import Config
from drifthouse.detectors.reference import Profile
from drifthouse.errors import StoreUnavailable
from drifthouse.rows import MetricRow
from drifthouse.simulate import Record, Scenario, simulate
from drifthouse.sinks import ClickHouseSink, migrate
from drifthouse.sinks.base import MemorySink
from drifthouse.stream.dead_letters import MemoryDeadLetters
from drifthouse.stream.labels.estimates import ERROR_PREFIX, METRICS
from drifthouse.stream.labels.late import join_late_labels
from drifthouse.stream.sources import Message
from tests.stream.test_derived_windows import assert_same_rows
from tests.workers import profiles_from

STREAM = {"size": "1d"}
DERIVED = {"size": "1d", "from": "1h"}
_ESTIMATED = tuple(f"estimated_{m}" for m in METRICS)
_ERRORS = tuple(ERROR_PREFIX + m for m in METRICS)


@dataclass(frozen=True)
class Labelled:
    """Two and a half simulated days of a fraud classifier and an ETA regressor, labelled,
    with profiles of their first six hours (a calibration and a loss model)."""

    predictions: list[Record]
    labels: list[Record]
    profiles: dict[str, Profile]


@cache
def labelled(delay_min: tuple[int, int] = (1, 90)) -> Labelled:
    sc = Scenario.demo(days=2.5, rate_per_min=2, reference_hours=6)
    records = list(simulate(sc, seed=11, label_delay_min=delay_min))
    predictions = [r for r in records if r.topic == "predictions"]
    labels = [r for r in records if r.topic == "labels"]
    by_id = {(e := json.loads(r.value))["event_id"]: e["label"] for r in labels}
    reference = [r for r in predictions if r.ts_ms < sc.reference_end_ms]
    profiles = profiles_from(reference, Config(), labels=by_id)
    assert profiles["fraud"].calibration is not None
    assert profiles["eta"].loss_model is not None
    return Labelled(predictions, labels, profiles)


def _config(long: dict[str, Any], **extra: Any) -> Config:
    return Config.model_validate({"windows": [{"size": "1h"}, long], **extra})


def _key(row: MetricRow) -> tuple[Any, ...]:
    return (row.window, row.window_start, row.model, row.model_version, row.feature,
            row.segment, row.metric, row.value, row.n)  # fmt: skip


def _latest(rows: Sequence[MetricRow], window: str) -> list[tuple[Any, ...]]:
    """The newest model-level estimated, realized and error rows of ``window`` (as the store's
    ``FINAL`` reads them: the last written wins)."""
    wanted = set(_ESTIMATED) | set(METRICS) | set(_ERRORS)
    newest: dict[tuple[Any, ...], MetricRow] = {}
    for r in rows:
        if r.window == window and r.metric in wanted and not r.segment and not r.feature:
            newest[_key(r)[:7]] = r
    return sorted(_key(r) for r in newest.values())


def _check_errors(rows: list[tuple[Any, ...]]) -> None:
    """Each error is its window's estimate minus its realized value, to the last digit."""
    by_window: dict[tuple[Any, ...], dict[str, float]] = {}
    for r in rows:
        by_window.setdefault(r[:4], {})[r[6]] = r[7]
    for values in by_window.values():
        for m in METRICS:
            if ERROR_PREFIX + m in values:
                assert values[ERROR_PREFIX + m] == values[f"estimated_{m}"] - values[m]


def _write(path: Path, records: Sequence[Record]) -> str:
    path.write_bytes(b"".join(r.value + b"\n" for r in records))
    return f"file:{path}"


def _replay(tmp_path: Path, long: dict[str, Any]) -> list[tuple[Any, ...]]:
    data = labelled()
    sink = MemorySink()
    replay(_config(long), source=_write(tmp_path / "preds.jsonl", data.predictions),
           labels=_write(tmp_path / "labels.jsonl", data.labels), sink=sink, run_id="r",
           profiles=data.profiles, dead_letters=MemoryDeadLetters())  # fmt: skip
    return _latest(sink.rows("metrics"), "1d")


def test_a_derived_day_has_the_estimation_errors_of_the_stream_day(tmp_path: Path) -> None:
    expected = _replay(tmp_path, STREAM)
    errors = {(r[1], r[2], r[6]) for r in expected if r[6] in _ERRORS}
    # Three days (the last a half) of both models: CBPE's five metrics, DLE's two.
    assert {(m, e) for _, m, e in errors} == {
        *(("fraud", ERROR_PREFIX + m) for m in ("accuracy", "precision", "recall", "f1",
                                                "roc_auc")),
        ("eta", "estimation_error_mae"), ("eta", "estimation_error_rmse"),
    }  # fmt: skip
    assert len(errors) == 3 * 7
    _check_errors(expected)
    got = _replay(tmp_path, DERIVED)
    _check_errors(got)
    assert_same_rows(got, expected)


def _pipeline_run(
    long: dict[str, Any],
    cut: int | None,
    *,
    data: Labelled | None = None,
    store_away_at: int | None = None,
) -> list[tuple[Any, ...]]:
    """Predictions and labels through a pipeline in event-time order, 200 records a batch;
    at record ``cut`` its merger is replaced by one resumed from its snapshot (taking the
    partials not written yet, as a restarted worker re-reads them); the store is away for the
    batch holding the first prediction at or after ``store_away_at``."""
    data = data or labelled()
    config = _config(long)
    sink = MemorySink()
    pipe = Pipeline(config=config, profiles=data.profiles, sink=sink,
                    dead_letters=MemoryDeadLetters(), run_id="r", computed_at=lambda: 0)  # fmt: skip
    records = sorted([*data.predictions, *data.labels], key=lambda r: r.ts_ms)
    for lo in range(0, len(records), 200):
        if lo == cut:
            old = pipe.merge
            pipe.merge = RunParts.of(config, data.profiles).merge_stage(
                sink, run_id="r", computed_at=lambda: 0
            )
            pipe.merge.restore_snapshot(old.snapshot())
            pipe.merge.restore_final_horizon(old.final_horizon)
            pipe.merge.add(old.unwritten(0))
        chunk = [Message(r.value, 0, lo + i, topic=r.topic)
                 for i, r in enumerate(records[lo : lo + 200])]  # fmt: skip
        pipe.add_labels([m for m in chunk if m.topic == "labels"])
        if store_away_at is not None and any(
            r.topic == "predictions" and r.ts_ms >= store_away_at for r in records[lo : lo + 200]
        ):
            sink.fail_next.append(StoreUnavailable("the store is away"))
            store_away_at = None
        pipe.process([m for m in chunk if m.topic == "predictions"])
    pipe.finish()
    sink.flush()
    return _latest(sink.rows("metrics"), "1d")


@pytest.mark.parametrize("cut", [None, 9_000], ids=["whole", "resumed"])
def test_a_merger_writes_the_derived_days_estimation_errors(cut: int | None) -> None:
    expected = _pipeline_run(STREAM, None)
    assert sum(1 for r in expected if r[6] in _ERRORS) == 3 * 7
    got = _pipeline_run(DERIVED, cut)
    _check_errors(got)
    assert_same_rows(got, expected)


def test_a_derived_day_written_after_its_label_window_still_gets_its_errors() -> None:
    """The store is away when the first day is due: the derived day is written a base window
    later, after the label window (whose labels all came within two minutes) was written."""
    data = labelled((1, 2))
    day_end = 1_767_225_600_000 + 86_400_000
    expected = _pipeline_run(STREAM, None, data=data)
    assert sum(1 for r in expected if r[6] in _ERRORS) == 3 * 7
    got = _pipeline_run(DERIVED, None, data=data, store_away_at=day_end + 60_000)
    _check_errors(got)
    assert_same_rows(got, expected)


def _stored_latest(client: Any, database: str, run_id: str) -> list[tuple[Any, ...]]:
    result = client.query(
        "SELECT window, toUnixTimestamp64Milli(window_start), model, model_version, feature, "
        f"segment, metric, value, n FROM `{database}`.metrics FINAL WHERE window = '1d' "
        "AND run_id = {r:String} AND segment = '' AND feature = '' AND metric IN {m:Array(String)}",
        parameters={"r": run_id, "m": [*_ESTIMATED, *METRICS, *_ERRORS]},
    )
    return sorted(tuple(r) for r in result.result_rows)


def test_the_late_join_rewrites_the_derived_days_estimation_errors(
    tmp_path: Path, ch_database: tuple[Any, str]
) -> None:
    """Labels later than a 20-minute horizon are joined in ClickHouse: the derived day's label
    rows and their errors end as the stream day's (run ``s``), and as those of a replay whose
    horizon holds every label (the late join folds the pairs in another order: regression
    sums may differ in the last digit)."""
    data = labelled()
    client, database = ch_database
    migrate(client, database)
    expected = _replay(tmp_path, STREAM)
    sink = ClickHouseSink(client, database=database)
    got: dict[str, list[tuple[Any, ...]]] = {}
    for run_id, long in (("s", STREAM), ("d", DERIVED)):
        config = _config(long, metrics={"label_horizon": "20m", "late_labels": True})
        replay(config, source=_write(tmp_path / "preds.jsonl", data.predictions),
               labels=_write(tmp_path / "labels.jsonl", data.labels), sink=sink, run_id=run_id,
               profiles=data.profiles, dead_letters=MemoryDeadLetters())  # fmt: skip
        before = _stored_latest(client, database, run_id)
        assert [r for r in before if r[6] in METRICS] != [r for r in expected if r[6] in METRICS]
        report = join_late_labels(client, database, config, data.profiles, sink, run_id=run_id)
        assert report.windows > 0
        got[run_id] = _stored_latest(client, database, run_id)
        _check_errors(got[run_id])
        assert [r[:7] + r[8:] for r in got[run_id]] == [r[:7] + r[8:] for r in expected]
        for g, e in zip(got[run_id], expected, strict=True):
            assert g[7] == pytest.approx(e[7], rel=1e-12, abs=1e-12), (g, e)
    assert_same_rows(got["d"], got["s"])
