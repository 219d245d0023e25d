"""The late join in ClickHouse (real embedded engine): a stream with a 7-day label horizon plus
``join_late_labels`` ends with the label rows of a stream whose horizon holds every label."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from drifthouse.config import Config
from drifthouse.events import LabelEvent
from drifthouse.rows import MetricRow, Row
from drifthouse.sinks import ClickHouseSink, migrate
from drifthouse.stream.labels import LabelStage, PredictionRecord
from drifthouse.stream.labels.late import join_late_labels
from tests.stream.labels.samples import DAY, HOUR

MODEL = "parcel-eta-risk"  # a model nobody profiled: its task comes from its labels
RUN = "replay-late"
# What the stream could not join is counted in the windows of the labels' own time, under
# version "unknown": those rows say what the stream missed and stay as it wrote them.
COUNTERS = {"labels_unmatched", "labels_expired", "labels_duplicate"}


def _kept(version: str, metric: str) -> bool:
    return version != "unknown" and metric not in COUNTERS


def _config(horizon: str, *, late: bool) -> Config:
    return Config.model_validate(
        {
            "windows": [{"size": "1h"}, {"size": "1d", "hop": "6h"}],
            "metrics": {"label_horizon": horizon, "late_labels": late},
        }
    )


def _inputs(seed: int = 7) -> list[tuple[int, int, PredictionRecord | LabelEvent]]:
    """Three months of predictions (string ids, a carrier segment), four in five labelled:
    half within two days, half 10 to 75 days later, and some labels for ids never predicted.
    As the merger sees them: (time, kind, item) in arrival order, predictions first on ties."""
    rng = np.random.default_rng(seed)
    start = 1_767_225_600_000  # 2026-01-01
    items: list[tuple[int, int, PredictionRecord | LabelEvent]] = []
    for i in range(2_400):
        ts = start + i * 54 * 60_000 + int(rng.integers(0, 50 * 60_000))
        eid = "shp_" + hashlib.sha1(f"{seed}-{i}".encode()).hexdigest()[:20]
        score = float(rng.beta(2, 3))
        carrier = ["dhl", "ups", "la-poste"][int(rng.integers(0, 3))]
        items.append(
            (ts, 0, PredictionRecord(eid, MODEL, "v3", ts, score, None, (("carrier", carrier),)))
        )
        if rng.random() < 0.8:
            quick = rng.random() < 0.5
            delay = (
                int(rng.integers(HOUR, 2 * DAY)) if quick else int(rng.integers(10 * DAY, 75 * DAY))
            )
            label = int(rng.random() < score)
            items.append((ts + delay, 1, LabelEvent(event_id=eid, model=MODEL, ts_ms=ts + delay, label=label)))  # fmt: skip
    for g in range(25):
        ts = start + g * 3 * DAY
        items.append((ts, 1, LabelEvent(event_id=f"ghost-{g:03d}", model=MODEL, ts_ms=ts, label=1)))
    items.sort(key=lambda t: (t[0], t[1]))
    return items


def _run(config: Config, items: list[tuple[int, int, Any]], out: list[Row]) -> LabelStage:
    """Feed the stage in chunks as the merge stage does, flushing behind the predictions."""
    stage = LabelStage.from_config(config, profiles={})
    for k in range(0, len(items), 150):
        chunk = items[k : k + 150]
        steps: list[tuple[list[PredictionRecord], list[LabelEvent]]] = []
        for _, kind, item in chunk:
            if kind == 0:
                steps.append(([item], []))
            else:
                steps.append(([], [item]))
        stage.add_interleaved(steps)
        ready = chunk[-1][0] - HOUR
        out += stage.flush(ready, run_id=RUN, computed_at=k + 1)
        out += stage.take_spill_rows(run_id=RUN, computed_at=k + 1)
    out += stage.flush(None, run_id=RUN, computed_at=10**6)
    out += stage.take_spill_rows(run_id=RUN, computed_at=10**6)
    return stage


def _latest(rows: list[Row]) -> dict[tuple[Any, ...], tuple[float, int]]:
    out: dict[tuple[Any, ...], tuple[float, int]] = {}
    for r in rows:
        if isinstance(r, MetricRow) and _kept(r.model_version, r.metric):
            out[(r.window, r.window_start, r.model_version, r.segment, r.feature, r.metric)] = (
                r.value,
                r.n,
            )
    return out


def _stored(client: Any, database: str) -> dict[tuple[Any, ...], tuple[float, int]]:
    result = client.query(
        "SELECT window, toUnixTimestamp64Milli(window_start), model_version, segment, feature, "
        f"metric, value, n FROM `{database}`.metrics FINAL WHERE run_id = {{run:String}}",
        parameters={"run": RUN},
    )
    return {
        (w, int(s), v, seg, f, m): (float(value), int(n))
        for w, s, v, seg, f, m, value, n in result.result_rows
        if _kept(v, m)
    }


def test_late_join_gives_the_rows_of_a_long_enough_horizon(ch_database: tuple[Any, str]) -> None:
    client, database = ch_database
    migrate(client, database)
    items = _inputs()
    long_rows: list[Row] = []
    _run(_config("400d", late=False), items, long_rows)
    expected = _latest(long_rows)
    assert not [r for r in long_rows if not isinstance(r, MetricRow)]  # nothing spilled when off

    short_rows: list[Row] = []
    stage = _run(_config("7d", late=True), items, short_rows)
    assert (
        stage.join.stats.expired + stage.join.stats.unmatched > 500
    )  # the short horizon loses many
    sink = ClickHouseSink(client, database=database)
    sink.write(short_rows)
    sink.flush()
    before = _stored(client, database)
    assert before.keys() <= expected.keys()
    differ = [k for k in expected if before.get(k) != expected[k]]
    assert len(differ) > 100, "the stream alone should miss the late labels"

    report = join_late_labels(client, database, _config("7d", late=True), {}, sink, run_id=RUN)
    assert report.pairs > 500
    assert report.waiting == 0
    after = _stored(client, database)
    assert after.keys() == expected.keys()
    wrong = {k: (after[k], expected[k]) for k in expected if after[k] != expected[k]}
    assert not wrong, f"{len(wrong)} rows differ, e.g. {list(wrong.items())[:3]}"
    # Every label metric is there, per carrier too.
    metrics = {k[5] for k in after}
    assert {"accuracy", "roc_auc", "labels_coverage", "labels"} <= metrics
    assert any(k[3] == "carrier=la-poste" for k in after)

    # Idempotent: a second run (all of it again) changes nothing, cut in chunks of any size.
    for chunk in (7 * DAY, DAY, 400 * DAY):
        again = join_late_labels(
            client, database, _config("7d", late=True), {}, sink, run_id=RUN, chunk_ms=chunk
        )
        assert (again.windows, again.pairs) == (report.windows, report.pairs)
        assert _stored(client, database) == after


def test_a_pair_for_a_pane_already_handed_on_goes_to_the_late_join(
    ch_database: tuple[Any, str],
) -> None:
    """The windows forget panes by the clock of every model, the join by each model's own: a
    model far behind another can pair a prediction whose pane is already stored. That pair
    must not open a fresh, partial pane (a row with only it, and a stored pane that replaces
    the whole one): it goes to the late join, which ends with the rows of a long horizon."""
    client, database = ch_database
    migrate(client, database)
    t0 = 1_767_225_600_000
    slow = [
        PredictionRecord(f"slow-{i}", "slow", "s1", t0 + i * 60_000, 0.9, None) for i in range(5)
    ]
    fast = [PredictionRecord(f"fast-{d}", "fast", "f1", t0 + d * DAY, 0.2, None) for d in range(21)]
    labels = [
        LabelEvent(event_id=f"slow-{i}", model="slow", ts_ms=t0 + HOUR, label=1) for i in range(5)
    ]
    items: list[tuple[int, int, Any]] = [(r.ts_ms, 0, r) for r in slow + fast]
    items += [(t0 + 21 * DAY, 1, lab) for lab in labels]  # the slow model's labels come last

    def run(horizon: str, late: bool) -> list[Row]:
        out: list[Row] = []
        stage = LabelStage.from_config(_config(horizon, late=late), profiles={})
        for _, kind, item in items:
            stage.add_interleaved([([item], [])] if kind == 0 else [([], [item])])
            out += stage.flush(item.ts_ms - HOUR, run_id=RUN, computed_at=len(out) + 1)
            out += stage.take_spill_rows(run_id=RUN, computed_at=len(out) + 1)
        out += stage.flush(None, run_id=RUN, computed_at=10**6)
        out += stage.take_spill_rows(run_id=RUN, computed_at=10**6)
        return out

    expected = _latest(run("400d", False))
    sink = ClickHouseSink(client, database=database)
    sink.write(run("7d", True))
    sink.flush()
    coverage = ("1h", t0, "s1", "", "", "labels_coverage")
    assert _stored(client, database)[coverage] == (0.0, 5)  # the stream wrote it before the labels
    join_late_labels(client, database, _config("7d", late=True), {}, sink, run_id=RUN)
    after = _stored(client, database)
    assert after[coverage] == expected[coverage] == (1.0, 5)
    assert {k: v for k, v in after.items() if k in expected} == expected


def test_the_late_join_rewrites_estimation_errors(ch_database: tuple[Any, str]) -> None:
    """Windows with an estimate (as a calibrated model's prediction windows write them) get
    ``estimation_error_*`` from the late join too, against the rewritten realized metrics."""
    client, database = ch_database
    migrate(client, database)
    items = _inputs(seed=11)
    config = _config("7d", late=True)
    starts = sorted({ts // HOUR * HOUR for ts, kind, _ in items if kind == 0})
    estimated = [
        MetricRow(
            window_start=s,
            window_end=s + HOUR,
            window="1h",
            model=MODEL,
            model_version="v3",
            feature="",
            segment="",
            metric="estimated_accuracy",
            value=0.6 + (s // HOUR % 7) / 100,
            n=1,
            run_id=RUN,
        )
        for s in starts
    ]
    rows: list[Row] = list(estimated)
    stage = LabelStage.from_config(config, profiles={})
    stage.note_estimates(estimated)  # as the merge stage does while it writes them
    for k in range(0, len(items), 150):
        chunk = items[k : k + 150]
        stage.add_interleaved([([i], []) if kind == 0 else ([], [i]) for _, kind, i in chunk])
        rows += stage.flush(chunk[-1][0] - HOUR, run_id=RUN, computed_at=k + 1)
        rows += stage.take_spill_rows(run_id=RUN, computed_at=k + 1)
    rows += stage.flush(None, run_id=RUN, computed_at=10**6)
    rows += stage.take_spill_rows(run_id=RUN, computed_at=10**6)
    sink = ClickHouseSink(client, database=database)
    sink.write(rows)
    sink.flush()
    report = join_late_labels(client, database, config, {}, sink, run_id=RUN)
    assert report.pairs > 500
    after = _stored(client, database)
    checked = 0
    for (w, s, v, seg, f, m), (value, _) in after.items():
        if m == "accuracy" and w == "1h" and seg == "":
            est = 0.6 + (s // HOUR % 7) / 100
            assert after[(w, s, v, seg, f, "estimation_error_accuracy")][0] == est - value
            checked += 1
    assert checked > 1_000


def _spoiled(items: list[tuple[int, int, Any]]) -> list[tuple[int, int, Any]]:
    """One label in ten ``"?"``, one ``""``, one sent as text (``"1"``, ``"0"``)."""
    out: list[tuple[int, int, Any]] = []
    for k, (ts, kind, item) in enumerate(items):
        if kind == 1 and not item.event_id.startswith("ghost"):
            spoil = {0: "?", 1: "", 2: str(item.label)}.get(k % 10)
            if spoil is not None:
                item = LabelEvent(event_id=item.event_id, model=MODEL, ts_ms=ts, label=spoil)
        out.append((ts, kind, item))
    return out


def test_the_late_join_counts_unusable_labels_as_the_stream_does(
    ch_database: tuple[Any, str],
) -> None:
    """``labels_unusable`` (and every other label row) from the late join in ClickHouse equals
    a stream whose horizon holds every label: one sketch decides what a label is worth."""
    client, database = ch_database
    migrate(client, database)
    items = _spoiled(_inputs(seed=9))
    long_rows: list[Row] = []
    _run(_config("400d", late=False), items, long_rows)
    expected = _latest(long_rows)
    assert (
        sum(v for k, (v, _) in expected.items() if k[5] == "labels_unusable" and k[0] == "1h") > 200
    )

    short_rows: list[Row] = []
    _run(_config("7d", late=True), items, short_rows)
    sink = ClickHouseSink(client, database=database)
    sink.write(short_rows)
    sink.flush()
    join_late_labels(client, database, _config("7d", late=True), {}, sink, run_id=RUN)
    after = _stored(client, database)
    assert after.keys() == expected.keys()
    wrong = {k: (after[k], expected[k]) for k in expected if after[k] != expected[k]}
    assert not wrong, f"{len(wrong)} rows differ, e.g. {list(wrong.items())[:3]}"
