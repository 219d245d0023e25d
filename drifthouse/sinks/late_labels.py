"""The late join's reads: ClickHouse joins the labels the stream could not join to the
predictions that left the stream's join without one (tables ``labels`` and
``label_predictions``, migration ``0004_late_labels.sql``), and hands back the label panes
the stream is done with (``label_panes``).

The metric values are not computed here: :mod:`drifthouse.stream.labels.late` folds the pairs
into the panes with the stream's own code. Every query reads with ``FINAL`` (a row spilled
twice, after a restart, counts once) and takes the model, run id and times as parameters.
"""

from __future__ import annotations

from dataclasses import dataclass

from clickhouse_connect.driver.client import Client

from drifthouse.rows import MetricRow
from drifthouse.sinks.store import call

__all__ = [
    "LatePair",
    "PaneRow",
    "affected_span",
    "estimates",
    "final_until",
    "late_pairs",
    "models",
    "now_s",
    "panes",
]


@dataclass(frozen=True)
class LatePair:
    """A label joined late to its prediction, as ClickHouse returned it (JSON fields raw)."""

    model_version: str
    ts_ms: int
    event_id: str
    score: float
    pred_class: str | None
    segment: str
    label: str
    label_ts_ms: int
    seq: int
    #: When the later of the label and the prediction was stored (epoch seconds, the store's
    #: clock): a run with ``since`` at or before it finds the pair.
    stored_s: int = 0


@dataclass(frozen=True)
class PaneRow:
    """A stored label pane (``state`` base64 text, ``''`` when it had no labels)."""

    window: str
    pane_start: int
    model_version: str
    segment: str
    state: str
    counters: list[int]


def _fresh(alias: str) -> str:
    return f"{alias}.inserted_at >= toDateTime({{since:Int64}}, 'UTC')"


def now_s(client: Client) -> int:
    """The store's clock (epoch seconds), the clock of the ``inserted_at`` columns."""
    result = call("reading the store's clock", client.query, "SELECT toUnixTimestamp(now())")
    return int(result.result_rows[0][0])


def models(client: Client, database: str, run_id: str, since_s: int) -> list[str]:
    """Models with labels or unlabelled predictions stored since ``since_s`` (epoch seconds)."""
    result = call(
        "listing the models with late labels",
        client.query,
        f"SELECT DISTINCT model FROM `{database}`.labels AS l WHERE run_id = {{run:String}} "
        f"AND {_fresh('l')} UNION DISTINCT "
        f"SELECT DISTINCT model FROM `{database}`.label_predictions AS p "
        f"WHERE run_id = {{run:String}} AND {_fresh('p')}",
        parameters={"run": run_id, "since": since_s},
    )
    return sorted(str(r[0]) for r in result.result_rows)


_FIRST_LABELS = (
    # The first label of each id (in the model's arrival order) wins, as in the stream.
    "SELECT event_id, argMin(label, seq) AS first_label, argMin(ts, seq) AS label_ts, "
    "min(seq) AS first_seq, max(inserted_at) AS inserted_at "
    "FROM `{db}`.labels FINAL WHERE model = {{model:String}} AND run_id = {{run:String}} "
    "GROUP BY event_id"
)
_PREDICTIONS = (
    "SELECT * FROM `{db}`.label_predictions FINAL "
    "WHERE model = {{model:String}} AND run_id = {{run:String}}"
)


def affected_span(
    client: Client, database: str, model: str, run_id: str, since_s: int
) -> tuple[int, int, int] | None:
    """Earliest and latest prediction time (ms) of the pairs with a label or a prediction
    stored since ``since_s``, and how many; ``None`` when there are none."""
    labels, preds = _FIRST_LABELS.format(db=database), _PREDICTIONS.format(db=database)
    result = call(
        "finding the windows late labels touch",
        client.query,
        f"SELECT toUnixTimestamp64Milli(min(p.ts)), toUnixTimestamp64Milli(max(p.ts)), count() "
        f"FROM ({labels}) AS l INNER JOIN ({preds}) AS p ON l.event_id = p.event_id "
        f"WHERE {_fresh('l')} OR {_fresh('p')}",
        parameters={"model": model, "run": run_id, "since": since_s},
    )
    lo, hi, n = result.result_rows[0]
    return (int(lo), int(hi), int(n)) if n else None


def final_until(client: Client, database: str, model: str, run_id: str) -> int:
    """The stream's largest ``final_until`` for the model (``0`` when it stored no pane)."""
    result = call(
        "reading how far the label panes are final",
        client.query,
        f"SELECT max(final_until) FROM `{database}`.label_panes "
        "WHERE model = {model:String} AND run_id = {run:String}",
        parameters={"model": model, "run": run_id},
    )
    rows = result.result_rows
    return int(rows[0][0]) if rows and rows[0][0] is not None else 0


def panes(
    client: Client, database: str, model: str, run_id: str, lo_ms: int, hi_ms: int
) -> list[PaneRow]:
    """The stored panes of the model starting in ``[lo_ms, hi_ms)``."""
    result = call(
        "reading label panes",
        client.query,
        "SELECT window, toUnixTimestamp64Milli(pane_start), model_version, segment, state, "
        f"counters FROM `{database}`.label_panes FINAL "
        "WHERE model = {model:String} AND run_id = {run:String} "
        "AND pane_start >= fromUnixTimestamp64Milli({lo:Int64}, 'UTC') "
        "AND pane_start < fromUnixTimestamp64Milli({hi:Int64}, 'UTC') "
        "ORDER BY window, pane_start, model_version, segment",
        parameters={"model": model, "run": run_id, "lo": lo_ms, "hi": hi_ms},
    )
    return [
        PaneRow(str(w), int(start), str(v), str(seg), str(state), [int(c) for c in counters])
        for w, start, v, seg, state, counters in result.result_rows
    ]


def late_pairs(
    client: Client, database: str, model: str, run_id: str, lo_ms: int, hi_ms: int
) -> list[LatePair]:
    """Every label joined in ClickHouse to a prediction of ``[lo_ms, hi_ms)``, in the order
    the labels arrived."""
    labels, preds = _FIRST_LABELS.format(db=database), _PREDICTIONS.format(db=database)
    result = call(
        "joining late labels",
        client.query,
        "SELECT p.model_version, toUnixTimestamp64Milli(p.ts), p.event_id, p.score, "
        "p.pred_class, p.segment, l.first_label, toUnixTimestamp64Milli(l.label_ts), l.first_seq, "
        "toUnixTimestamp(greatest(l.inserted_at, p.inserted_at)) "
        f"FROM ({labels}) AS l INNER JOIN ({preds} "
        "AND ts >= fromUnixTimestamp64Milli({lo:Int64}, 'UTC') "
        "AND ts < fromUnixTimestamp64Milli({hi:Int64}, 'UTC')) AS p "
        "ON l.event_id = p.event_id ORDER BY l.first_seq, p.ts",
        parameters={"model": model, "run": run_id, "lo": lo_ms, "hi": hi_ms},
    )
    return [
        LatePair(
            str(v),
            int(ts),
            str(eid),
            float(score),
            cls,
            str(seg),
            str(lab),
            int(lts),
            int(q),
            int(stored),
        )
        for v, ts, eid, score, cls, seg, lab, lts, q, stored in result.result_rows
    ]


def estimates(
    client: Client, database: str, model: str, run_id: str, lo_ms: int, hi_ms: int
) -> list[MetricRow]:
    """The model-level ``estimated_<metric>`` rows of the windows starting in ``[lo_ms,
    hi_ms)``, for the late join's ``estimation_error_*`` (docs/model-performance.md)."""
    result = call(
        "reading estimated metrics",
        client.query,
        "SELECT toUnixTimestamp64Milli(window_start), toUnixTimestamp64Milli(window_end), "
        f"window, model_version, metric, value, n FROM `{database}`.metrics FINAL "
        "WHERE model = {model:String} AND run_id = {run:String} AND segment = '' "
        "AND feature = '' AND metric IN ('estimated_accuracy', 'estimated_precision', "
        "'estimated_recall', 'estimated_f1', 'estimated_roc_auc', 'estimated_mae', "
        "'estimated_rmse') "
        "AND window_start >= fromUnixTimestamp64Milli({lo:Int64}, 'UTC') "
        "AND window_start < fromUnixTimestamp64Milli({hi:Int64}, 'UTC') "
        "ORDER BY window, window_start, model_version, metric",
        parameters={"model": model, "run": run_id, "lo": lo_ms, "hi": hi_ms},
    )
    return [
        MetricRow(
            window_start=int(start),
            window_end=int(end),
            window=str(w),
            model=model,
            model_version=str(v),
            feature="",
            segment="",
            metric=str(m),
            value=float(value),
            n=int(n),
            run_id=run_id,
        )
        for start, end, w, v, m, value, n in result.result_rows
    ]
