"""Build ``drifthouse.json``, the Grafana dashboard, from the panel SQL below.

Run ``python deploy/grafana/dashboards/build.py`` after editing; ``tests/sinks/test_grafana.py``
expands the plugin's macros and runs every panel's SQL against a filled store.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

DS = {"type": "grafana-clickhouse-datasource", "uid": "drifthouse-clickhouse"}
TIMESERIES, TABLE = 0, 1  # the plugin's `format` values


def var(name: str) -> str:
    """A template variable as a ClickHouse string, whatever its value holds.

    Model and version names come from events, so any producer chooses them. Grafana's
    `sqlstring` format only doubles quotes, and ClickHouse reads a backslash as an escape (a
    name ending in `\\` would end the string early); `percentencode` leaves nothing but
    `A-Z a-z 0-9 - _ . ~ %` in the SQL, and ClickHouse decodes it back to the exact value.
    """
    return f"decodeURLComponent('${{{name}:percentencode}}')"


MODEL, VERSION, WINDOW = var("model"), var("version"), var("window")
# Shared filters. `${version}` is `__all` for every version; series then carry the version.
SCOPE = (
    f"model = {MODEL} AND ({VERSION} = '__all' OR model_version = {VERSION}) "
    f"AND window = {WINDOW} AND run_id = 'live' AND segment = ''"
)
SERIES = f"if({VERSION} = '__all', concat({{name}}, ' @ ', model_version), {{name}})"
# The same, for the rows of segment values (`country=DE`; not the fairness gaps, whose segment is
# the attribute's name).
SEGMENTS = SCOPE.replace("segment = ''", "position(segment, '=') > 0")


def _series(
    metric_filter: str, name: str = "feature", agg: str = "max(value)", scope: str = SCOPE
) -> str:
    return (
        f"SELECT $__timeInterval(window_start) AS time, {SERIES.replace('{name}', name)} AS series, {agg} AS value\n"
        f"FROM metrics FINAL\n"
        f"WHERE $__timeFilter(window_start) AND {scope} AND {metric_filter}\n"
        f"GROUP BY time, series\nORDER BY time"
    )


PANELS: list[tuple[str, str, str, str, dict[str, Any]]] = [
    # (title, panel type, format, sql, field defaults)
    ("Drift per feature (PSI)", "timeseries", "ts",
     _series("metric = 'psi' AND feature != ''"), {"unit": "none", "thresholds": [0.1, 0.25]}),
    ("Drift heatmap (PSI by feature)", "heatmap", "ts",
     _series("metric = 'psi' AND feature NOT IN ('', '__prediction__')", name="feature"), {}),
    ("Jensen-Shannon distance per feature", "timeseries", "ts",
     _series("metric = 'js' AND feature != ''"), {"unit": "none"}),
    ("Top drifting features in range", "table", "table",
     "SELECT feature, max(value) AS peak_psi, argMax(value, window_start) AS latest_psi,\n"
     "       argMax(window_start, value) AS peak_window\n"
     "FROM metrics FINAL\n"
     f"WHERE $__timeFilter(window_start) AND {SCOPE} AND metric = 'psi' AND feature != ''\n"
     "GROUP BY feature\nORDER BY peak_psi DESC\nLIMIT 20", {}),
    ("Missing rate per feature", "timeseries", "ts",
     _series("metric = 'missing_rate' AND feature != ''"), {"unit": "percentunit"}),
    ("Quality problems per feature in range", "table", "table",
     "SELECT feature,\n"
     "       sumIf(value, metric = 'missing') AS missing,\n"
     "       avgIf(value, metric = 'missing_rate') AS missing_rate,\n"
     "       sumIf(value, metric = 'out_of_range') AS out_of_range,\n"
     "       sumIf(value, metric = 'type_error') AS type_errors,\n"
     "       sumIf(value, metric = 'non_finite') AS non_finite,\n"
     "       sumIf(value, metric = 'new_category') AS new_categories\n"
     "FROM metrics FINAL\n"
     f"WHERE $__timeFilter(window_start) AND {SCOPE} AND feature NOT IN ('', '__prediction__')\n"
     "  AND metric IN ('missing', 'missing_rate', 'out_of_range', 'type_error', 'non_finite', 'new_category')\n"
     "GROUP BY feature\nORDER BY out_of_range DESC, missing_rate DESC", {}),
    ("Latency percentiles", "timeseries", "ts",
     _series("metric IN ('latency_p50', 'latency_p95', 'latency_p99') AND feature = ''", name="metric"),
     {"unit": "ms"}),
    ("Error rates", "timeseries", "ts",
     _series("metric IN ('error_rate_4xx', 'error_rate_5xx') AND feature = ''", name="metric"),
     {"unit": "percentunit"}),
    ("Throughput", "timeseries", "ts",
     _series("metric = 'throughput_rps' AND feature = ''", name="metric", agg="avg(value)"), {"unit": "reqps"}),
    ("Events, invalid and late events per interval", "timeseries", "ts",
     _series("metric IN ('events', 'invalid_events', 'late_events') AND feature = ''", name="metric",
             agg="sum(value)"), {"unit": "short"}),
    ("Label metrics", "timeseries", "ts",
     _series("metric IN ('accuracy', 'precision', 'recall', 'f1', 'roc_auc', 'mae', 'rmse', 'r2', 'mape') "
             "AND feature = ''", name="metric", agg="avg(value)"), {"unit": "none"}),
    ("Prediction drift (PSI of the output)", "timeseries", "ts",
     _series("metric = 'psi' AND feature = '__prediction__'", name="metric"), {"unit": "none"}),
    ("5xx error rate per segment value", "timeseries", "ts",
     _series("metric = 'error_rate_5xx' AND feature = ''", name="segment", scope=SEGMENTS),
     {"unit": "percentunit"}),
    ("p95 latency per segment value", "timeseries", "ts",
     _series("metric = 'latency_p95' AND feature = ''", name="segment", scope=SEGMENTS),
     {"unit": "ms"}),
    ("Alerts firing now", "stat", "table",
     "SELECT count() AS firing FROM (\n"
     "  SELECT dedup_key, argMax(status, ts) AS last_status\n"
     "  FROM alerts FINAL\n"
     f"  WHERE model = {MODEL} AND run_id = 'live' AND ts <= $__toTime\n"
     "  GROUP BY dedup_key\n) WHERE last_status = 'firing'", {}),
    ("Alert history", "table", "table",
     "SELECT ts, status, severity, rule, model_version, feature, segment, metric, value, threshold, message,\n"
     "       arrayStringConcat(receivers, ', ') AS receivers\n"
     "FROM alerts FINAL\n"
     f"WHERE model = {MODEL} AND run_id = 'live' AND ts >= $__fromTime AND ts <= $__toTime\n"
     "ORDER BY ts DESC\nLIMIT 500", {}),
]  # fmt: skip

VARIABLES = [
    ("model", "Model", "SELECT DISTINCT model FROM metrics ORDER BY model", False),
    ("version", "Version",
     f"SELECT DISTINCT model_version FROM metrics WHERE model = {MODEL} ORDER BY model_version", True),
    ("window", "Window", f"SELECT DISTINCT window FROM metrics WHERE model = {MODEL} ORDER BY window", False),
]  # fmt: skip


def _panel(
    i: int, title: str, kind: str, fmt: str, sql: str, defaults: dict[str, Any]
) -> dict[str, Any]:
    width = 12 if kind != "stat" else 6
    field_defaults: dict[str, Any] = {}
    if "unit" in defaults:
        field_defaults["unit"] = defaults["unit"]
    if "thresholds" in defaults:
        steps = [{"color": "green", "value": None}]
        steps += [
            {"color": c, "value": v}
            for c, v in zip(("orange", "red"), defaults["thresholds"], strict=False)
        ]
        field_defaults["thresholds"] = {"mode": "absolute", "steps": steps}
    panel: dict[str, Any] = {
        "id": i + 1,
        "title": title,
        "type": kind,
        "datasource": DS,
        "gridPos": {"h": 8, "w": width, "x": (i % 2) * 12, "y": (i // 2) * 8},
        "fieldConfig": {"defaults": field_defaults, "overrides": []},
        "options": {},
        "targets": [
            {
                "refId": "A",
                "datasource": DS,
                "editorType": "sql",
                "queryType": "timeseries" if fmt == "ts" else "table",
                "format": TIMESERIES if fmt == "ts" else TABLE,
                "rawSql": sql,
            }
        ],
    }
    if kind == "heatmap":
        panel["options"] = {
            "calculate": False,
            "yAxis": {"axisPlacement": "left"},
            "color": {"scheme": "Oranges"},
        }
    return panel


def build() -> dict[str, Any]:
    templating = []
    for name, label, query, include_all in VARIABLES:
        var: dict[str, Any] = {
            "name": name,
            "label": label,
            "type": "query",
            "datasource": DS,
            "query": query,
            "definition": query,
            "refresh": 2,
            "sort": 1,
            "multi": False,
            "includeAll": include_all,
        }
        if include_all:
            var["allValue"] = "__all"
        templating.append(var)
    return {
        "uid": "drifthouse-overview",
        "title": "drifthouse: model monitoring",
        "tags": ["drifthouse", "ml-monitoring"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "refresh": "1m",
        "time": {"from": "now-24h", "to": "now"},
        "templating": {"list": templating},
        "panels": [_panel(i, *spec) for i, spec in enumerate(PANELS)],
    }


if __name__ == "__main__":
    out = Path(__file__).with_name("drifthouse.json")
    out.write_text(json.dumps(build(), indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}")
