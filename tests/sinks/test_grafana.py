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
from urllib.parse import quote

import msgspec
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
    # Grafana's variable formats (grafana/scenes ``formatRegistry``) for single values:
    # `percentencode` is encodeURIComponent plus !'()* (Python's quote with nothing safe).
    formats = {
        "": lambda v: v,
        "raw": lambda v: v,
        "percentencode": lambda v: quote(v, safe=""),
        "sqlstring": lambda v: "'" + v.replace("'", "''").replace('"', '\\"') + "'",
    }
    names = "|".join(re.escape(n) for n in variables)
    pattern = re.compile(r"\$\{(" + names + r")(?::(\w+))?\}|\$(" + names + r")\b")

    def variable(m: re.Match[str]) -> str:
        name = m[1] or m[3]
        return formats[m[2] or ""](variables[name])

    # one pass, so a value holding `$x` or `${x}` is never expanded again
    unexpanded = pattern.sub("", sql) if variables else sql
    assert "$" not in unexpanded, f"unexpanded macro or variable in:\n{sql}"
    return pattern.sub(variable, sql) if variables else sql


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


# ---- values from events are data, never SQL ----------------------------------------------------

BENIGN = ("benign", "9.9.9")


def _renamed(rows: list[Any], model: str, version: str) -> list[Any]:
    """The rows of ``fraud`` 2.0.0 as rows of ``model`` ``version``."""
    return [
        msgspec.structs.replace(r, model=model, model_version=version)
        for r in rows
        if r.model == "fraud" and r.model_version == "2.0.0"
    ]


def _normalised(rows: list[tuple[Any, ...]], model: str, version: str) -> list[tuple[Any, ...]]:
    def cell(v: Any) -> Any:
        return v.replace(model, BENIGN[0]).replace(version, BENIGN[1]) if isinstance(v, str) else v

    return sorted((tuple(cell(v) for v in row) for row in rows), key=repr)


@pytest.mark.parametrize(
    ("model", "version"),
    [
        pytest.param("x'", "1'", id="quote"),
        pytest.param("x\\", "1\\", id="backslash"),  # doubling quotes ('sqlstring') is not enough
        pytest.param("x\\' OR 1=1 --", "' OR '1'='1", id="backslash-quote"),
        pytest.param("x' OR model != '", "2.0.0' OR 1 --", id="or-clause"),
        pytest.param("x'); SELECT 1; --", "1 /*", id="statement"),
        pytest.param('modèle %41 "q" 🚀 $__all', "v%2F1 ${model}", id="unicode-percent-dollar"),
    ],
)
def test_a_model_name_cannot_break_out_of_the_sql(
    store_client: Any, database: str, model: str, version: str
) -> None:
    """Every panel and variable gives for a hostile model and version name exactly what it gives
    for the same rows under a plain name, while other models' rows sit beside them."""
    metrics, _, alerts = rowgen.results(hours=3)
    sink = ClickHouseSink(store_client, database=database)
    rows = [*metrics, *alerts]  # churn and fraud 1.0.0 stay as the other models' rows
    sink.write([*rows, *_renamed(rows, model, version), *_renamed(rows, *BENIGN)])
    sink.flush()
    start_s, end_s = _range()
    queries = [(v["name"], v["query"]) for _, b in _dashboards() for v in b["templating"]["list"]]
    queries += [
        (p["title"], t["rawSql"])
        for _, b in _dashboards()
        for p in b["panels"]
        for t in p["targets"]
    ]
    checked = 0
    for chosen in (version, "__all"):
        hostile = {"model": model, "version": chosen, "window": "1h"}
        plain = {
            "model": BENIGN[0],
            "version": BENIGN[1] if chosen == version else "__all",
            "window": "1h",
        }
        for title, sql in queries:
            try:
                got = store_client.query(expand(sql, hostile, start_s, end_s)).result_rows
            except Exception as exc:
                pytest.fail(f"{title!r} failed for model {model!r}: {exc}")
            want = _normalised(
                store_client.query(expand(sql, plain, start_s, end_s)).result_rows, model, version
            )
            if title == "model":  # the list of models: both names are in it, as they are
                assert {model, BENIGN[0]} <= {r[0] for r in got}
                continue
            assert _normalised(got, model, version) == want, title
            checked += bool(want)
    assert checked >= 20


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("foo()bar BAZ", "foo%28%29bar%20BAZ", id="grafana-docs"),
        pytest.param("x\\' -- ü", "x%5C%27%20--%20%C3%BC", id="quote-backslash-utf8"),
        pytest.param("a-b_c.d~e!*", "a-b_c.d~e%21%2A", id="unreserved"),
    ],
)
def test_percentencode_matches_grafana(value: str, expected: str) -> None:
    assert expand("${v:percentencode}", {"v": value}, 0, 1) == expected
