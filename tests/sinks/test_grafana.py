"""Every panel and variable of the Grafana dashboards runs against a filled store and returns rows.

The ClickHouse data source's macros are expanded here as the plugin expands them
(grafana-clickhouse-datasource ``pkg/macros``), then the SQL runs through clickhouse-connect.
"""

from __future__ import annotations

import importlib.util
import json
import re
import time
from pathlib import Path
from typing import Any

import pytest

from drifthouse.sinks.clickhouse import ClickHouseSink
from tests.sinks import rowgen

DASHBOARDS = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "dashboards"
UID = "drifthouse-clickhouse"
INTERVAL_S = 300


def fill_with_rows(client: Any, database: str) -> None:
    """Results as the pipeline writes them, through the sink."""
    metrics, sketches, alerts = rowgen.results(hours=12)
    sink = ClickHouseSink(client, database=database)
    sink.write([*metrics, *sketches, *alerts])
    sink.flush()


# The one line to change when the store is filled by the pipeline instead.
FILL = fill_with_rows


def expand(
    sql: str, variables: dict[str, str], start_s: int, end_s: int, interval_s: int = INTERVAL_S
) -> str:
    """Expand the plugin's macros and Grafana's template variables in ``sql``."""

    def dt(seconds: int) -> str:
        return f"toDateTime({seconds})"

    def dt_ms(seconds: int) -> str:
        return f"fromUnixTimestamp64Milli({seconds * 1000})"

    macros = [
        (r"\$__timeFilter_ms\(([^)]+)\)", lambda m: f"{m[1]} >= {dt_ms(start_s)} AND {m[1]} <= {dt_ms(end_s)}"),
        (r"\$__timeFilter\(([^)]+)\)", lambda m: f"{m[1]} >= {dt(start_s)} AND {m[1]} <= {dt(end_s)}"),
        (r"\$__timeInterval_ms\(([^)]+)\)",
         lambda m: f"toStartOfInterval(toDateTime64({m[1]}, 3), INTERVAL {interval_s * 1000} millisecond)"),
        (r"\$__timeInterval\(([^)]+)\)",
         lambda m: f"toStartOfInterval(toDateTime({m[1]}), INTERVAL {interval_s} second)"),
        (r"\$__fromTime_ms\b", lambda m: dt_ms(start_s)),
        (r"\$__toTime_ms\b", lambda m: dt_ms(end_s)),
        (r"\$__fromTime\b", lambda m: dt(start_s)),
        (r"\$__toTime\b", lambda m: dt(end_s)),
        (r"\$__interval_s\b", lambda m: str(interval_s)),
    ]  # fmt: skip
    for pattern, replace in macros:
        sql = re.sub(pattern, replace, sql)
    for name, value in variables.items():
        sql = sql.replace("${" + name + "}", value)
        sql = re.sub(r"\$" + name + r"\b", value, sql)
    assert "$" not in sql, f"unexpanded macro or variable in:\n{sql}"
    return sql


def _dashboards() -> list[tuple[str, dict[str, Any]]]:
    return [(p.name, json.loads(p.read_text())) for p in sorted(DASHBOARDS.glob("*.json"))]


@pytest.fixture
def grafana_store(store_client: Any, database: str) -> Any:
    FILL(store_client, database)
    return store_client


def test_dashboards_exist_and_are_built_from_build_py() -> None:
    spec = importlib.util.spec_from_file_location("dashboard_build", DASHBOARDS / "build.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert dict(_dashboards())["drifthouse.json"] == module.build(), (
        "run deploy/grafana/dashboards/build.py"
    )


@pytest.mark.parametrize("version", ["__all", "2.0.0"])
def test_every_panel_and_variable_returns_rows(grafana_store: Any, version: str) -> None:
    end_s = int(time.time())
    start_s = end_s - 24 * 3600
    variables = {"model": "fraud", "version": version, "window": "1h"}
    checked = 0
    for name, board in _dashboards():
        for var in board["templating"]["list"]:
            assert var["datasource"]["uid"] == UID
            rows = grafana_store.query(expand(var["query"], variables, start_s, end_s)).result_rows
            assert rows, f"{name}: variable {var['name']} has no values"
            values = {str(r[0]) for r in rows}
            assert variables[var["name"]] in values | {"__all"}
        for panel in board["panels"]:
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == UID
                sql = expand(target["rawSql"], variables, start_s, end_s)
                try:
                    result = grafana_store.query(sql)
                except Exception as exc:
                    pytest.fail(f"{name}: panel {panel['title']!r} failed: {exc}\n{sql}")
                assert result.result_rows, (
                    f"{name}: panel {panel['title']!r} returned no rows\n{sql}"
                )
                if target["format"] == 0:  # time series: time first, then the series and the value
                    assert result.column_names[0] == "time", panel["title"]
                checked += 1
    assert checked >= 12


def test_macro_expansion_matches_the_plugin() -> None:
    sql = "SELECT $__timeInterval(ts) WHERE $__timeFilter(ts) AND x = '${model}' AND y = '$model' LIMIT $__interval_s"
    assert expand(sql, {"model": "m"}, 10, 20, 60) == (
        "SELECT toStartOfInterval(toDateTime(ts), INTERVAL 60 second) WHERE ts >= toDateTime(10) "
        "AND ts <= toDateTime(20) AND x = 'm' AND y = 'm' LIMIT 60"
    )


def test_dashboard_provisioning_points_at_the_mounted_folder() -> None:
    import yaml

    root = DASHBOARDS.parents[1]
    provider = yaml.safe_load(
        (root / "grafana/provisioning/dashboards/drifthouse.yaml").read_text()
    )
    (entry,) = provider["providers"]
    assert entry["type"] == "file"
    compose = root.parent / "docker-compose.yml"
    if compose.exists():  # the folder docker compose mounts the dashboards at
        assert f"./deploy/grafana/dashboards:{entry['options']['path']}" in compose.read_text()
