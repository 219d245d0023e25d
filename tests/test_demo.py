"""``drifthouse demo``: the faults it must catch, the SQL it prints, and a second run."""

from __future__ import annotations

import io
import os
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from rich.console import Console

from drifthouse.cli import main
from drifthouse.demo import DemoSummary, run_demo
from drifthouse.demo.findings import find
from drifthouse.rows import AlertRow
from drifthouse.simulate import Fault

DAYS = 1.5  # the first day is the reference; the faults come in the next twelve hours

# fault name -> (the metric that must catch it, the feature or "" for the model)
CAUGHT = {
    "gradual drift": ("psi", "amount"),
    "sudden drift": ("psi", "distance_km"),
    "new category": ("new_category", "device"),
    "rising missing values": ("missing_rate", "age"),
    "latency regression": ("latency_p95", ""),
    "5xx spike": ("error_rate_5xx", ""),
}


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    # `main` points the logs at this test's captured stderr, closed once the test ends.
    yield None
    structlog.reset_defaults()


@pytest.fixture(scope="module")
def demo_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the module's demo runs (it makes ``demo-data`` there)."""
    return tmp_path_factory.mktemp("demo")


@pytest.fixture(scope="module")
def demo(ch_dsn: str, demo_folder: Path) -> tuple[DemoSummary, str]:
    """One demo run into the session's embedded store (one data folder per process)."""
    here = os.getcwd()
    os.chdir(demo_folder)
    out = io.StringIO()
    try:
        summary = run_demo(
            store=ch_dsn, days=DAYS, console=Console(file=out, width=160, soft_wrap=True)
        )
    finally:
        os.chdir(here)
    return summary, out.getvalue()


@pytest.mark.parametrize("name", list(CAUGHT))
def test_the_demo_catches_the_fault(demo: tuple[DemoSummary, str], name: str) -> None:
    summary, _ = demo
    finding = summary.finding(name)
    metric, feature = CAUGHT[name]
    assert finding.alert is not None, finding.note
    assert finding.alert.metric == metric
    assert finding.alert.feature == feature
    assert finding.alert.window_end > finding.fault.start_ms
    assert finding.windows_after is not None
    assert finding.windows_after >= 1


def test_the_accuracy_drop_is_caught_from_delayed_labels(demo: tuple[DemoSummary, str]) -> None:
    summary, printed = demo
    finding = summary.finding("accuracy drop")
    assert finding.alert is not None, finding.note
    assert finding.alert.rule == "accuracy-drop"
    assert finding.alert.severity == "critical"
    assert finding.alert.window_end > finding.fault.start_ms
    # Nothing fired on accuracy before the fault: the labels of the clean days agree with the
    # reference profile's baseline.
    early = [a for a in summary.alerts if a.rule == "accuracy-drop" and a.status == "firing"
             and a.window_end <= finding.fault.start_ms]  # fmt: skip
    assert early == []
    assert "accuracy-drop" in printed


def test_alerts_are_routed_by_severity(demo: tuple[DemoSummary, str]) -> None:
    summary, printed = demo
    firing = [a for a in summary.alerts if a.status == "firing"]
    assert {a.severity for a in firing} == {"critical", "warning"}
    for a in firing:
        expected = ["pagerduty", "slack"] if a.severity == "critical" else ["slack"]
        assert a.receivers == expected, a
    assert "-> pagerduty, slack" in printed
    assert "injected faults and what caught them" in printed


def test_the_printed_queries_run_and_return_rows(
    demo: tuple[DemoSummary, str], capsys: pytest.CaptureFixture[str]
) -> None:
    summary, printed = demo
    assert len(summary.queries) == 5
    capsys.readouterr()
    for query in summary.queries:
        assert query.command in printed
        args = shlex.split(query.command)
        assert args[:3] == ["drifthouse", "sql", "-c"]
        assert main(args[1:]) == 0, query.title
        shown = capsys.readouterr().out
        count = int(shown.strip().splitlines()[-1].split()[0])
        assert count > 0, f"{query.title}: no rows\n{shown}"


def test_a_second_run_into_the_same_folder_and_store_replaces_the_first(
    demo: tuple[DemoSummary, str],
    demo_folder: Path,
    ch_dsn: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    summary, _ = demo
    here = os.getcwd()
    os.chdir(demo_folder)  # its demo-data, made by the first run, is made again
    try:
        again = run_demo(store=ch_dsn, days=DAYS, console=Console(file=io.StringIO()))
    finally:
        os.chdir(here)
    assert [a.dedup_key for a in again.alerts] == [a.dedup_key for a in summary.alerts]
    capsys.readouterr()
    sql = "SELECT count() FROM alerts WHERE run_id = 'demo'"
    assert main(["sql", "-c", str(again.config_path), sql]) == 0
    assert f"│ {len(again.alerts)} " in capsys.readouterr().out


def test_the_command_as_a_user_runs_it(tmp_path: Path) -> None:
    """`drifthouse demo` in an empty folder (its own embedded store), then its SQL."""
    exe = Path(sys.executable).with_name("drifthouse")
    env = {**os.environ, "COLUMNS": "200"}

    def run(*args: str) -> str:
        done = subprocess.run(
            [str(exe), *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    printed = run("demo", "--days", str(DAYS))
    assert "not detected" not in printed
    commands = [line for line in printed.splitlines() if line.startswith("drifthouse sql ")]
    assert len(commands) == 5
    shown = run(*shlex.split(commands[0])[1:])
    assert "serving-errors" in shown
    assert "pagerduty" in shown


def test_a_folder_the_demo_did_not_make_is_left_alone(tmp_path: Path) -> None:
    (tmp_path / "demo-data").mkdir()
    (tmp_path / "demo-data" / "notes.txt").write_text("mine")
    done = subprocess.run(
        [str(Path(sys.executable).with_name("drifthouse")), "demo", "--days", "1.5"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "was not made by `drifthouse demo`" in done.stderr
    assert (tmp_path / "demo-data" / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize(
    ("alert_end", "expected"),
    [
        pytest.param(None, "not detected", id="no-alert"),
        pytest.param(3_600_000, "not detected", id="alert-before-onset"),
        pytest.param(7_200_000, "", id="alert-after-onset"),
    ],
)
def test_a_fault_is_caught_only_by_an_alert_after_its_onset(
    alert_end: int | None, expected: str
) -> None:
    fault = Fault("drift", "m", "sudden_shift", 3_600_000, "x", expect="psi")
    alerts = []
    if alert_end is not None:
        alerts.append(
            AlertRow(
                ts=alert_end,
                rule="data-drift",
                severity="warning",
                status="firing",
                model="m",
                model_version="1",
                feature="x",
                segment="",
                metric="psi",
                value=1.0,
                threshold=0.25,
                window_start=alert_end - 3_600_000,
                window_end=alert_end,
                message="",
                receivers=["slack"],
                dedup_key="k",
                run_id="demo",
            )
        )
    found = find(fault, alerts, windows={3_600_000: ("1h", 3_600_000)}, reached_ms=None)
    assert found.note == expected
    if expected == "":
        assert (found.window, found.windows_after, found.delay_ms) == ("1h", 1, 3_600_000)


def test_faults_after_a_minutes_stop_are_not_reached() -> None:
    fault = Fault("drift", "m", "sudden_shift", 3_600_000, "x", expect="psi")
    found = find(fault, [], windows={}, reached_ms=3_000_000)
    assert found.note.startswith("not reached")
