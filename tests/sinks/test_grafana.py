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


def fill_with_rows(request: pytest.FixtureRequest) -> Any:
    """Results as the pipeline writes them (``rowgen``), through the sink, in a fresh database."""
    client = request.getfixturevalue("store_client")
    database = request.getfixturevalue("database")
    metrics, sketches, alerts = rowgen.results(hours=12)
    sink = ClickHouseSink(client, database=database)
    sink.write([*metrics, *sketches, *alerts])
    sink.flush()
    return client


def fill_with_pipeline(request: pytest.FixtureRequest) -> Any:
    """A simulated stream through the real pipeline and alert stage (``pipeline_store``)."""
    return request.getfixturevalue("pipeline_store").client


# The one line to change to fill the store with generated rows instead of the pipeline.
FILL = fill_with_pipeline
MODEL = "fraud"
VERSIONS = ["__all", "2.3.0", "2.4.0"] if FILL is fill_with_pipeline else ["__all", "2.0.0"]


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
def grafana_store(request: pytest.FixtureRequest) -> Any:
    return FILL(request)


def _targets() -> list[Any]:
    """One case per panel query and dashboard version filter."""
    cases = []
    for name, board in _dashboards():
        for panel in board["panels"]:
            for i, target in enumerate(panel["targets"]):
                for version in VERSIONS:
                    cases.append(
                        pytest.param(
                            panel["title"], target, version,
                            id=f"{name}:{panel['title']}:{i}:{version}",
                        )
                    )  # fmt: skip
    return cases


def test_dashboards_exist_and_are_built_from_build_py() -> None:
    spec = importlib.util.spec_from_file_location("dashboard_build", DASHBOARDS / "build.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert dict(_dashboards())["drifthouse.json"] == module.build(), (
        "run deploy/grafana/dashboards/build.py"
    )


def _variables(version: str) -> dict[str, str]:
    return {"model": MODEL, "version": version, "window": "1h"}


def _range() -> tuple[int, int]:
    end_s = int(time.time())
    return end_s - 24 * 3600, end_s


@pytest.mark.parametrize("version", VERSIONS)
def test_every_variable_has_values(grafana_store: Any, version: str) -> None:
    variables = _variables(version)
    start_s, end_s = _range()
    for name, board in _dashboards():
        for var in board["templating"]["list"]:
            assert var["datasource"]["uid"] == UID
            rows = grafana_store.query(expand(var["query"], variables, start_s, end_s)).result_rows
            assert rows, f"{name}: variable {var['name']} has no values"
            values = {str(r[0]) for r in rows}
            assert variables[var["name"]] in values | {"__all"}


@pytest.mark.parametrize(("title", "target", "version"), _targets())
def test_every_panel_returns_rows(
    grafana_store: Any, title: str, target: dict[str, Any], version: str
) -> None:
    assert target["datasource"]["uid"] == UID
    start_s, end_s = _range()
    sql = expand(target["rawSql"], _variables(version), start_s, end_s)
    try:
        result = grafana_store.query(sql)
    except Exception as exc:
        pytest.fail(f"panel {title!r} failed: {exc}\n{sql}")
    assert result.result_rows, f"panel {title!r} returned no rows\n{sql}"
    if target["format"] == 0:  # time series: time first, then the series and the value
        assert result.column_names[0] == "time", title


def test_enough_panels_are_checked() -> None:
    assert len(_targets()) >= 12 * len(VERSIONS)


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
