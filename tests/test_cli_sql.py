"""``drifthouse sql`` as a user runs it: recipes after a plain ``profile`` + ``replay``, a store
held by a worker, output formats.

The command runs in subprocesses: each opens its own embedded store, and one process may hold
only one embedded data folder at a time.
"""

from __future__ import annotations

import csv
import io
import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from drifthouse.simulate import Scenario, simulate
from tests.cli_process import run_cli as _cli
from tests.cli_process import store_held

ROOT = Path(__file__).resolve().parents[1]
MODEL, VERSION = "fraud", "2.3.0"
ENGINE_NOISE = ("Cannot lock file", "Code: 76", "DB::Exception", "EmbeddedServer")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with a config, a reference file and a stream, after `profile` and `replay`."""
    cwd = tmp_path_factory.mktemp("sqlcli")
    sc = Scenario.demo(days=0.5, rate_per_min=6, reference_hours=6)
    records = [r for r in simulate(sc, seed=3) if r.topic == "predictions"]
    with (cwd / "reference.jsonl").open("wb") as ref, (cwd / "stream.jsonl").open("wb") as live:
        for r in records:
            (ref if r.ts_ms < sc.reference_end_ms else live).write(r.value + b"\n")
    config = {
        "store": {"path": "./data", "serve_port": _free_port()},
        "windows": [{"size": "1h"}],
        "models": {MODEL: {"reference": f"refs/{MODEL}.json"}},
    }
    (cwd / "drifthouse.yaml").write_text(json.dumps(config))
    profiled = _cli(
        "profile", "reference.jsonl", "--model", MODEL, "--model-version", VERSION,
        "--out", f"refs/{MODEL}.json", "-c", "drifthouse.yaml", cwd=cwd,
    )  # fmt: skip
    assert profiled.returncode == 0, profiled.stderr
    replayed = _cli(
        "replay", "-c", "drifthouse.yaml", "--source", "file:stream.jsonl", "--run-id", "live2",
        cwd=cwd,
    )  # fmt: skip
    assert replayed.returncode == 0, replayed.stderr
    return cwd


def test_psi_range_works_after_a_plain_profile_and_replay(workspace: Path) -> None:
    result = _cli(
        "sql", "-c", "drifthouse.yaml", "--recipe", "psi_range", "--format", "json",
        "--param", f"model={MODEL}", "--param", f"model_version={VERSION}",
        "--param", "run_id=live2",
        "--param", "start=2026-01-01 06:00:00", "--param", "end=2026-01-01 12:00:00",
        cwd=workspace,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert rows, "psi_range found no reference histograms"
    assert {"feature", "bins", "n", "psi"} <= set(rows[0])
    assert all(r["n"] > 0 and r["psi"] >= 0 for r in rows)


@pytest.mark.parametrize(
    ("args", "expect"),
    [
        pytest.param(
            ["--recipe", "top_drifting_features", "--param", f"model={MODEL}",
             "--param", "run_id=live2", "--param", "days=100000"],
            "feature", id="recipe-defaults",
        ),
        pytest.param(["--recipe", "nope"], "no recipe named 'nope'", id="unknown-recipe"),
        pytest.param(["--recipe", "psi_range"], "--param model=", id="missing-parameter"),
        pytest.param(["SELECT 1", "--recipe", "alert_history"], "not both", id="both"),
        pytest.param(["SELECT 1", "--format", "xml"], "--format must be", id="bad-format"),
    ],
)  # fmt: skip
def test_recipe_and_format_options(workspace: Path, args: list[str], expect: str) -> None:
    result = _cli("sql", "-c", "drifthouse.yaml", "--format", "csv", *args, cwd=workspace)
    if expect == "feature":
        assert result.returncode == 0, result.stderr
        header, *rows = list(csv.reader(io.StringIO(result.stdout)))
        assert header[0] == "feature"
        assert rows
    else:
        assert result.returncode == 2
        assert expect in result.stderr


@pytest.fixture
def held(workspace: Path) -> Iterator[Path]:
    """The workspace's store held by another process serving its SQL endpoint, as a worker does."""
    with store_held(workspace):
        yield workspace


def test_sql_asks_the_worker_that_holds_the_store_without_engine_noise(held: Path) -> None:
    token = held / "data" / "sql-endpoint.token"
    assert oct(token.stat().st_mode & 0o777) == "0o600"
    ok = _cli(
        "sql", "-c", "drifthouse.yaml", "--format", "csv",
        "SELECT count() AS n FROM metrics FINAL WHERE run_id = {r:String}", "--param", "r=live2",
        cwd=held,
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert not any(noise in ok.stderr for noise in ENGINE_NOISE), ok.stderr
    assert int(ok.stdout.splitlines()[1]) > 0
    refused = _cli("sql", "-c", "drifthouse.yaml", "DROP TABLE metrics", cwd=held)
    assert refused.returncode == 2
    assert "only one SELECT" in refused.stderr
    no_port = held / "no-port.yaml"
    no_port.write_text(json.dumps({"store": {"path": "./data"}}))
    unserved = _cli("sql", "-c", "no-port.yaml", "SELECT 1", cwd=held)
    assert unserved.returncode == 1
    assert "store.serve_port" in unserved.stderr
    assert not any(noise in unserved.stderr for noise in ENGINE_NOISE), unserved.stderr
    assert len(unserved.stderr.strip().splitlines()) <= 3


def test_a_store_that_cannot_be_opened_is_one_clear_line(tmp_path: Path) -> None:
    (tmp_path / "notadir").write_text("x")
    (tmp_path / "drifthouse.yaml").write_text(json.dumps({"store": {"path": "./notadir"}}))
    result = _cli("sql", "-c", "drifthouse.yaml", "SELECT 1", cwd=tmp_path)
    assert result.returncode == 1
    assert "notadir" in result.stderr
    assert "Stack trace" not in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 2
