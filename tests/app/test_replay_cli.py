"""``drifthouse replay`` end to end through the command line: alerts recorded under the run id,
receivers told only with ``--notify``, and ``--rules`` counting what other rules would raise.

The CLI runs in a subprocess: it opens its own embedded store, and one process may hold only
one embedded data folder at a time.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.cli_process import run_cli as _cli
from tests.datasets import replay_sp500
from tests.fakes import FakeApi


@pytest.fixture
def workspace(tmp_path: Path, small_stream: Any) -> tuple[Path, FakeApi]:
    (tmp_path / "refs").mkdir()
    for model, profile in small_stream.profiles.items():
        (tmp_path / "refs" / f"{model}.json").write_bytes(profile.to_json())
    with (tmp_path / "stream.jsonl").open("wb") as fh:
        for r in small_stream.records:
            fh.write(r.value + b"\n")
    api = FakeApi()
    config = {
        "store": {"path": "./data"},
        "windows": [{"size": "1h"}],
        "models": {m: {"reference": f"refs/{m}.json"} for m in small_stream.profiles},
        "rules": [
            {
                "name": "serving-errors",
                "metric": "error_rate_5xx",
                "when": "value > 0.05",
                "severity": "critical",
            },
            {
                "name": "data-drift",
                "metric": "psi",
                "when": "value > 0.25",
                "clear": "value < 0.1",
                "severity": "warning",
            },
        ],
        "routes": [
            {"match": {"severity": "critical"}, "receivers": ["pagerduty"], "group_wait": 0},
            {"match": {"severity": "warning"}, "receivers": ["slack"], "group_wait": 0},
        ],
        "receivers": {
            "pagerduty": {
                "type": "pagerduty",
                "routing_key": "test-key",
                "url": f"{api.url}/v2/enqueue",
            },
            "slack": {"type": "slack", "webhook_url": f"{api.url}/hooks/test"},
        },
        "alerting": {"outbox_dir": "./outbox"},
    }
    (tmp_path / "drifthouse.yaml").write_text(json.dumps(config))
    yield tmp_path, api
    api.close()


def _count(cwd: Path, sql: str) -> int:
    result = _cli("sql", "-c", "drifthouse.yaml", sql, cwd=cwd)
    assert result.returncode == 0, result.stderr
    digits = [line for line in result.stdout.splitlines() if line.strip("│ ").isdigit()]
    return int(digits[0].strip("│ "))


def test_replay_records_alerts_and_notifies_only_when_asked(
    workspace: tuple[Path, FakeApi],
) -> None:
    cwd, api = workspace
    quiet = _cli(
        "replay",
        "-c",
        "drifthouse.yaml",
        "--source",
        "file:stream.jsonl",
        "--run-id",
        "bt1",
        cwd=cwd,
    )
    assert quiet.returncode == 0, quiet.stderr
    assert "receivers not notified" in quiet.stdout
    assert api.requests == []
    recorded = _count(
        cwd, "SELECT count() FROM alerts FINAL WHERE run_id = 'bt1' AND rule = 'serving-errors'"
    )
    assert recorded >= 1

    loud = _cli(
        "replay",
        "-c",
        "drifthouse.yaml",
        "--source",
        "file:stream.jsonl",
        "--run-id",
        "bt2",
        "--notify",
        cwd=cwd,
    )
    assert loud.returncode == 0, loud.stderr
    triggers = [e for e in api.pd_events() if e["event_action"] == "trigger"]
    assert triggers, "the critical alert should page"
    assert all(e["routing_key"] == "test-key" for e in triggers)
    # The same history gives the same alerts whatever the run id.
    again = _count(
        cwd, "SELECT count() FROM alerts FINAL WHERE run_id = 'bt2' AND rule = 'serving-errors'"
    )
    assert again == recorded


def test_replay_backtests_other_rules(workspace: tuple[Path, FakeApi]) -> None:
    cwd, api = workspace
    (cwd / "other.yaml").write_text(
        json.dumps(
            {
                "rules": [
                    {
                        "name": "strict-errors",
                        "metric": "error_rate_5xx",
                        "when": "value > 0.001",
                        "severity": "critical",
                    },
                    {
                        "name": "lax-errors",
                        "metric": "error_rate_5xx",
                        "when": "value > 0.9",
                        "severity": "critical",
                    },
                ]
            }
        )
    )
    result = _cli(
        "replay",
        "-c",
        "drifthouse.yaml",
        "--source",
        "file:stream.jsonl",
        "--run-id",
        "bt3",
        "--rules",
        "other.yaml",
        cwd=cwd,
    )
    assert result.returncode == 0, result.stderr
    lines = {
        line.split("│")[1].strip(): line
        for line in result.stdout.splitlines()
        if line.count("│") >= 6
    }
    strict = [c.strip() for c in lines["strict-errors"].split("│")]
    lax = [c.strip() for c in lines["lax-errors"].split("│")]
    assert int(strict[3]) > int(lax[3]) == 0  # the 'fired' column
    assert api.requests == []


def test_bad_rules_file_is_a_usage_error(workspace: tuple[Path, FakeApi]) -> None:
    cwd, _ = workspace
    (cwd / "bad.yaml").write_text("rules: [{name: x, metric: psi}]\n")
    result = _cli(
        "replay",
        "-c",
        "drifthouse.yaml",
        "--source",
        "file:stream.jsonl",
        "--rules",
        "bad.yaml",
        cwd=cwd,
    )
    assert result.returncode == 2
    assert "when" in result.stdout + result.stderr


def test_replay_with_labels_and_metric_events_writes_their_metrics(
    workspace: tuple[Path, FakeApi], small_stream: Any
) -> None:
    from drifthouse.simulate import simulate

    cwd, _ = workspace
    labels = [r for r in simulate(small_stream.scenario, seed=3) if r.topic == "labels"]
    with (cwd / "labels.jsonl").open("wb") as fh:
        for r in labels:
            fh.write(r.value + b"\n")
        fh.write(b'{"event_id": "nobody", "model": "fraud", "ts": "not a time", "label": 1}\n')
    start = small_stream.scenario.start_ms
    with (cwd / "metrics.jsonl").open("w") as fh:
        for i in range(12):
            event = {"model": "fraud", "model_version": "2.3.0", "ts": start + i * 3_600_000,
                     "metrics": {"cpu_util": 0.5 + i / 100}}  # fmt: skip
            fh.write(json.dumps(event) + "\n")
    result = _cli(
        "replay", "-c", "drifthouse.yaml", "--source", "file:stream.jsonl",
        "--labels", "file:labels.jsonl", "--metric-events", "file:metrics.jsonl",
        "--run-id", "lab", cwd=cwd,
    )  # fmt: skip
    # One label refused: stored is everything else, but the run says so and fails.
    assert result.returncode == 1, result.stderr
    assert "1 label was not used" in " ".join(result.stderr.split()), result.stderr
    windows = _count(
        cwd,
        "SELECT uniqExact(window_start) FROM metrics FINAL WHERE run_id = 'lab' "
        "AND model = 'fraud' AND metric = 'accuracy' AND segment = ''",
    )
    assert windows == 12
    labelled = _count(
        cwd,
        "SELECT toUInt64(sum(value)) FROM metrics FINAL WHERE run_id = 'lab' "
        "AND metric = 'labels' AND segment = ''",
    )
    joined = {json.loads(r.value)["event_id"] for r in labels}
    assert labelled == len(joined)
    cpu = _count(
        cwd,
        "SELECT count() FROM metrics FINAL WHERE run_id = 'lab' AND metric = 'cpu_util'",
    )
    assert cpu == 12
    # The label without a readable time went to the dead letters beside the labels file.
    assert "not a time" in (cwd / "stream.jsonl.dlq").read_text()
    # The summary says what became of the labels.
    summary = " ".join(result.stdout.split())
    want = f"{len(labels) + 1:,}: {len(joined):,} joined, 0 unmatched, 0 expired (late), "
    assert want + "0 duplicate, 1 refused" in summary, result.stdout


def test_a_config_without_rules_gets_the_shipped_rules(
    workspace: tuple[Path, FakeApi],
) -> None:
    """docs/configuration.md: without `rules`, the shipped rules apply. A config that leaves
    them out (and names no receiver) still records the shipped rules' alerts."""
    cwd, _api = workspace
    config = json.loads((cwd / "drifthouse.yaml").read_text())
    for section in ("rules", "routes", "receivers"):
        del config[section]
    (cwd / "drifthouse.yaml").write_text(json.dumps(config))
    checked = _cli("check", "-c", "drifthouse.yaml", cwd=cwd)
    assert checked.returncode == 0, checked.stderr
    assert "serving-errors" in checked.stdout
    replayed = _cli(
        "replay", "-c", "drifthouse.yaml", "--source", "file:stream.jsonl", "--run-id", "d1",
        cwd=cwd,
    )  # fmt: skip
    assert replayed.returncode == 0, replayed.stderr
    recorded = _count(
        cwd, "SELECT count() FROM alerts FINAL WHERE run_id = 'd1' AND rule = 'serving-errors'"
    )
    assert recorded >= 1


def test_the_shipped_rules_stay_quiet_on_five_event_windows(tmp_path: Path) -> None:
    """River's bundled S&P 500 returns in weekly windows: five events a window, whose PSI
    against the first year is mostly sampling noise (its expected value with no drift is about
    (bins - 1) / n, 1.8 at n = 5). The shipped rules raise nothing on them."""
    replay_sp500(tmp_path, "sp")
    psi_over = _count(
        tmp_path, "SELECT count() FROM metrics FINAL WHERE run_id = 'sp' AND metric = 'psi' "
        "AND value > 0.25",
    )  # fmt: skip
    assert psi_over > 1000, "the windows' PSI is noise far above 0.25"
    assert _count(tmp_path, "SELECT count() FROM alerts FINAL WHERE run_id = 'sp'") == 0


def test_a_replay_that_leaves_events_out_of_the_store_says_which_and_fails(
    workspace: tuple[Path, FakeApi], small_stream: Any
) -> None:
    """Events dead-lettered (not JSON, a field missing, far behind the others) are not in the
    store: the replay stores the rest, prints its summary, then names what was left out, why,
    where it is kept and the fix, and exits 1 (it exited 0, the loss told only by a count)."""
    cwd, _ = workspace
    start = small_stream.scenario.start_ms
    late = {"model": "fraud", "model_version": "2.3.0", "ts": start, "event_id": "old",
            "prediction": 0.5, "features": {}}  # fmt: skip
    with (cwd / "stream.jsonl").open("ab") as fh:
        fh.write(b"this is not json\n")
        fh.write(b'{"model": "fraud", "features": {}}\n')
        fh.write(json.dumps(late).encode() + b"\n")
    result = _cli(
        "replay", "-c", "drifthouse.yaml", "--source", "file:stream.jsonl", "--run-id", "lost",
        cwd=cwd,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    said = " ".join(result.stderr.split())
    assert "3 events were not used" in said, said
    assert "2 invalid" in said
    assert "1 late" in said
    assert "stream.jsonl.dlq" in said
    assert "sort" in said  # the fix for late events in a file
    assert "Traceback" not in result.stderr
    stored = _count(
        cwd, "SELECT toUInt64(sum(value)) FROM metrics FINAL WHERE run_id = 'lost' "
        "AND metric = 'events' AND feature = '' AND segment = '' AND window = '1h'",
    )  # fmt: skip
    assert stored == len(small_stream.records)  # the others are all in


def test_a_run_id_that_holds_rows_is_refused_unless_replaced(
    workspace: tuple[Path, FakeApi],
) -> None:
    """A second replay under a run id already in the store mixed its rows with the first's:
    windows it did not rewrite (or rows it does not write, such as label metrics of a replay
    without labels) kept the old ones, silently. It is refused (exit 2, nothing written)
    unless ``--replace``, which deletes the run's rows first."""
    cwd, _ = workspace
    args = ("replay", "-c", "drifthouse.yaml", "--source", "file:stream.jsonl", "--run-id", "again")
    assert _cli(*args, cwd=cwd).returncode == 0
    rows_sql = "SELECT count() FROM metrics FINAL WHERE run_id = 'again'"
    rows = _count(cwd, rows_sql)
    # The second half of the stream only: mixed with the first replay, the first half's
    # windows would have stayed.
    lines = (cwd / "stream.jsonl").read_bytes().splitlines(keepends=True)
    (cwd / "half.jsonl").write_bytes(b"".join(lines[len(lines) // 2 :]))
    half = ("replay", "-c", "drifthouse.yaml", "--source", "file:half.jsonl", "--run-id", "again")
    refused = _cli(*half, cwd=cwd)
    assert refused.returncode == 2, refused.stderr
    said = " ".join(refused.stderr.split())
    assert "run id 'again' already holds" in said, said
    assert "--replace" in said
    assert _count(cwd, rows_sql) == rows  # nothing written
    replaced = _cli(*half, "--replace", cwd=cwd)
    assert replaced.returncode == 0, replaced.stderr
    assert "deleted" in " ".join(replaced.stderr.split()) + " ".join(replaced.stdout.split())
    _cli(*half[:-1], "fresh", cwd=cwd)
    assert _count(cwd, rows_sql) == _count(
        cwd, "SELECT count() FROM metrics FINAL WHERE run_id = 'fresh'"
    )


def test_replays_started_in_the_same_second_get_run_ids_of_their_own(
    workspace: tuple[Path, FakeApi],
) -> None:
    """The default run id is the start second: a second replay in that second is not refused
    (its id would hold the first's rows), it gets ``-2``."""
    import subprocess
    import sys

    cwd, _ = workspace
    pinned = "replay-20260101T000000Z"
    # In a process of its own: it opens the workspace's embedded store (one per process).
    script = f"""
import drifthouse.app.replay as r
from drifthouse.config import load_config
r.default_run_id = lambda: {pinned!r}
config = load_config("drifthouse.yaml")
for _ in range(3):
    print(r.replay_to_store(config, source="file:stream.jsonl").summary.run_id)
"""
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=cwd, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [pinned, f"{pinned}-2", f"{pinned}-3"]


def test_a_small_automatic_reference_is_flagged_in_the_summary(tmp_path: Path) -> None:
    """A model nobody profiled, at 60 events an hour: its automatic reference (the first hour)
    holds 60 events, against which a PSI of 10 bins is about 0.15 by chance alone. The summary
    says how many events it holds and that drift against it is noisy (it said only the span)."""
    (tmp_path / "drifthouse.yaml").write_text(
        json.dumps({"store": {"path": "./data"}, "windows": [{"size": "1h"}], "rules": []})
    )
    start = 1_767_225_600_000
    with (tmp_path / "events.jsonl").open("w") as fh:
        for i in range(6 * 60):
            event = {"model": "rare", "ts": start + i * 60_000, "prediction": (i % 10) / 10,
                     "features": {"x": float(i % 7)}}  # fmt: skip
            fh.write(json.dumps(event) + "\n")
    done = _cli("replay", "-c", "drifthouse.yaml", "--source", "file:events.jsonl", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    summary = " ".join(done.stdout.split())
    assert "rare: 2026-01-01T00:00:00.000Z/2026-01-01T01:00:00.000Z (60 events" in summary
    assert "fewer than 1,000" in summary, done.stdout


def test_a_reference_file_that_cannot_be_read_is_a_configuration_error(tmp_path: Path) -> None:
    """``models.<name>.reference`` naming a file that is not there is the configuration's
    fault: exit code 2, as docs/cli.md promises for configuration errors (it was 1)."""
    (tmp_path / "drifthouse.yaml").write_text(
        json.dumps({"store": {"path": "./data"}, "models": {"m": {"reference": "gone.json"}}})
    )
    (tmp_path / "events.jsonl").write_text("")
    done = _cli("replay", "-c", "drifthouse.yaml", "--source", "file:events.jsonl", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    said = " ".join(done.stderr.split())
    assert "models.m.reference: cannot read" in said
    assert "drifthouse profile INPUT --model m --out gone.json" in said
