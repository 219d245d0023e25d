"""The command line: exit codes, `check` output, errors without tracebacks, no secrets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import structlog

from drifthouse import __version__, cli
from drifthouse.errors import ConfigError, StoreError

MARKER = "MARKER-c1i-do-not-print"

GOOD = """
store: {path: ./data}
windows: [{size: 1h}, {size: 15m, hop: 1m}]
models:
  fraud: {reference: refs/fraud.json, pii: [email]}
rules:
  - {name: data-drift, metric: psi, when: "value > 0.25", clear: "value < 0.1", for: 2}
  - {name: serving-errors, metric: error_rate_5xx, when: "value > 0.05", severity: critical}
routes:
  - {match: {severity: critical}, receivers: [pagerduty, slack]}
  - {receivers: [slack]}
receivers:
  slack: {type: slack, channel: "#ml-alerts", token: "${DH_TEST_SLACK}"}
  pagerduty: {type: pagerduty, routing_key: "${DH_TEST_PD}"}
"""

BAD = """
windows: [{size: 1h}, {size: 15m, hop: 7m}]
rules:
  - {name: r, metric: psi, when: "value >> 1"}
routes:
  - {receivers: [teams]}
receivers:
  slack: {type: slack, channel: "#a", token: "${DH_TEST_SLACK}"}
store: {database: "${DH_TEST_PD}"}
"""


@pytest.fixture(autouse=True)
def _secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DH_TEST_SLACK", MARKER + "-slack")
    monkeypatch.setenv("DH_TEST_PD", MARKER + "-pd")
    monkeypatch.setenv("DRIFTHOUSE_PII_KEY", MARKER + "-pii-key-0123456789abcdef")


@pytest.fixture(autouse=True)
def _reset_logging() -> object:
    yield None
    structlog.reset_defaults()


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "drifthouse.yaml"
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "version")
    assert code == 0
    assert out.strip() == f"drifthouse {__version__}"


def test_check_a_good_config_prints_a_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, GOOD)
    (tmp_path / "refs").mkdir()
    (tmp_path / "refs" / "fraud.json").write_text("{}")
    code, out, _ = run(capsys, "check", "-c", str(path))
    assert code == 0, out
    assert "configuration OK" in out
    for expected in (
        "fraud (reference)",
        "1h, 15m/1m",
        "data-drift, serving-errors",
        "pagerduty, slack",
        "slack (slack)",
    ):
        assert expected in out
    assert "warning" not in out
    assert MARKER not in out


def test_check_warns_about_a_missing_reference_profile(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, GOOD)
    code, out, _ = run(capsys, "check", "--config", str(path))
    assert code == 0
    assert f"{path}:4 models.fraud.reference: warning: reference profile" in out
    assert "drifthouse profile INPUT --model fraud" in out
    assert "fraud (reference missing)" in out


def test_check_prints_every_problem_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, BAD)
    code, out, err = run(capsys, "check", "-c", str(path))
    assert code == 2
    lines = [line for line in out.splitlines() if line.startswith(str(path))]
    assert [line.split(": ", 1)[0] for line in lines] == [
        f"{path}:1 windows[1]",
        f"{path}:3 rules[0].when",
        f"{path}:5 routes[0].receivers[0]",
        f"{path}:8 store.database",
    ]
    assert "4 problems" in out
    assert MARKER not in out + err
    assert "Traceback" not in out + err


@pytest.mark.parametrize(
    ("routes", "expected"),
    [
        pytest.param(
            "routes: [{match: {tema: risk}, receivers: [c]}, {receivers: [c]}]",
            ["routes[0].match.tema: warning: 'tema' is not a label alerts carry"],
            id="route-matches-an-unknown-label",
        ),
        pytest.param(
            "routes: [{match: {severity: critical}, receivers: [c]}]",
            ["rules[0]: warning: alerts of rule 'drift' (severity warning) match no route"],
            id="rule-reaches-no-route",
        ),
        pytest.param(
            "routes: [{match: {team: risk}, receivers: [c]}]",
            [
                "routes[0].match.team: warning: 'team' is not a label alerts carry",
                "rules[0]: warning: alerts of rule 'drift' (severity warning) match no route",
            ],
            id="both",
        ),
    ],
)
def test_check_warns_about_routing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], routes: str, expected: list[str]
) -> None:
    path = write(
        tmp_path,
        f"""
        rules: [{{name: drift, metric: psi, when: "value > 0.25"}}]
        receivers: {{c: {{type: console}}}}
        {routes}
        """,
    )
    code, out, _ = run(capsys, "check", "-c", str(path))
    assert code == 0, out
    warnings = [line.split(" ", 1)[1] for line in out.splitlines() if ": warning: " in line]
    assert len(warnings) == len(expected), out
    for want in expected:
        assert any(line.startswith(want) for line in warnings), out


def test_check_reads_the_config_path_from_the_environment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DRIFTHOUSE_CONFIG", str(write(tmp_path, "windows: [{size: 5m}]")))
    code, out, _ = run(capsys, "check")
    assert code == 0
    assert "5m" in out


@pytest.mark.parametrize(
    ("argv", "code"),
    [
        pytest.param(["check", "--bogus"], 2, id="unknown-option"),
        pytest.param(["nope"], 2, id="unknown-command"),
        pytest.param([], 2, id="no-command"),
        pytest.param(["--help"], 0, id="help"),
        pytest.param(["check", "--help"], 0, id="command-help"),
    ],
)
def test_usage_exit_codes(capsys: pytest.CaptureFixture[str], argv: list[str], code: int) -> None:
    assert run(capsys, *argv)[0] == code


def test_config_error_is_one_red_line_and_its_problems(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "check", "-c", str(tmp_path / "missing.yaml"))
    assert code == 2
    assert (
        err.splitlines()[0]
        == f"error: cannot read config file {tmp_path / 'missing.yaml'}: No such file or directory"
    )
    assert "pass an existing YAML file with -c" in err
    assert "Traceback" not in err


def test_other_drifthouse_errors_exit_1(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(path: object) -> None:
        raise StoreError("ClickHouse at http://ch:8123 refused the query")

    monkeypatch.setattr(cli.check, "check_config", broken)  # the command module's own name
    code, _, err = run(capsys, "check")
    assert code == 1
    assert err.splitlines()[0] == "error: ClickHouse at http://ch:8123 refused the query"


def test_debug_shows_the_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bad.yaml").write_text("kafka: [\n")
    with pytest.raises(ConfigError):
        cli.main(["--debug", "check", "-c", str(tmp_path / "bad.yaml")])


def test_entry_point_and_module_run_in_a_fresh_process(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "drifthouse"
    assert script.exists()
    done = subprocess.run(
        [str(script), "check", "-c", str(tmp_path / "missing.yaml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    done = subprocess.run(
        [sys.executable, "-m", "drifthouse", "version"], capture_output=True, text=True, check=False
    )
    assert (done.returncode, done.stdout.strip()) == (0, f"drifthouse {__version__}")


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_profile_reports_odd_cells_of_numeric_features(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, fmt: str
) -> None:
    rows = [{"amount": float(i % 97), "country": "DE" if i % 3 else "FR"} for i in range(2_000)]
    odd = {5: "?", 70: "?", 900: "n.a.", 1_500: "?"}
    path = tmp_path / f"ref.{fmt}"
    if fmt == "csv":
        lines = ["amount,country"]
        lines += [f"{odd.get(i, r['amount'])},{r['country']}" for i, r in enumerate(rows)]
    else:
        lines = [
            json.dumps(
                {"model": "fraud", "ts": i, "features": {**r, "amount": odd.get(i, r["amount"])}}
            )
            for i, r in enumerate(rows)
        ]
    path.write_text("\n".join(lines) + "\n")
    code, out, _ = run(
        capsys, "profile", str(path), "--model", "fraud", "--out", str(tmp_path / "p.json")
    )
    assert code == 0
    report = out[out.index("not numbers") :]
    assert "│ amount  │ 4     │ 0.200% │" in report
    assert '"?", "n.a."' in report
    assert "country" not in report


def test_profile_takes_forced_kinds(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "ref.csv"
    lines = ["zip,amount"] + [f"{94100 + i % 7},{'?' if i % 10 == 0 else i}" for i in range(500)]
    path.write_text("\n".join(lines) + "\n")
    target = tmp_path / "p.json"
    code, out, _ = run(
        capsys, "profile", str(path), "--model", "m", "--out", str(target),
        "--categorical", "zip", "--numeric", "amount",
    )  # fmt: skip
    assert code == 0, out
    profile = json.loads(target.read_text())
    kinds = {f["name"]: (f["kind"], f.get("type_error", 0)) for f in profile["features"]}
    assert kinds == {"zip": ("categorical", 0), "amount": ("numeric", 50)}
    code, _, err = run(
        capsys, "profile", str(path), "--model", "m", "--out", str(target),
        "--categorical", "zip", "--numeric", "zip",
    )  # fmt: skip
    assert code == 2
    assert "--categorical and --numeric both name 'zip'" in err


@pytest.mark.parametrize(
    ("key", "code", "expected"),
    [
        pytest.param(None, 0, "warning: PII names are listed but DRIFTHOUSE_PII_KEY", id="unset"),
        pytest.param("short-key", 2, "the PII key must be at least 32 bytes", id="short"),
        pytest.param("k" * 32, 0, "configuration OK", id="long-enough"),
    ],
)
def test_check_tells_about_the_pii_key(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    key: str | None,
    code: int,
    expected: str,
) -> None:
    if key is None:
        monkeypatch.delenv("DRIFTHOUSE_PII_KEY", raising=False)
    else:
        monkeypatch.setenv("DRIFTHOUSE_PII_KEY", key)
    path = write(tmp_path, "pii: [email]\nwindows: [{size: 1h}]\n")
    got, out, err = run(capsys, "check", "-c", str(path))
    assert got == code, out
    assert expected in out
    assert f"{path}:1 pii" in out or (key is not None and code == 0)
    if key is not None:
        assert key not in out + err


@pytest.mark.parametrize(
    ("models", "metrics", "expected"),
    [
        pytest.param(
            {"fraud": {"reference": "auto", "reference_span": "6h"}, "eta": {"task": "regression"}},
            {},
            ["fraud (automatic reference, 6h)", "eta (automatic reference, 1h)",
             "on automatic reference  eta, fraud", "automatic reference from their first 1h"],
            id="auto-and-unlisted",
        ),
        pytest.param(
            {"eta": {"task": "regression"}},
            {"default_reference": "none", "auto_reference_span": "2h"},
            ["eta (no reference)", "serving metrics only (metrics.default_reference: none)"],
            id="default-none",
        ),
        pytest.param(
            {"fraud": {"reference": {"trailing": "7d"}}},
            {},
            ["fraud (automatic reference, 1h, trailing baseline 1w)"],
            id="trailing",
        ),
    ],
)  # fmt: skip
def test_check_lists_the_models_on_an_automatic_reference(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    models: dict[str, object],
    metrics: dict[str, object],
    expected: list[str],
) -> None:
    path = tmp_path / "drifthouse.yaml"
    path.write_text(json.dumps({"models": models, "metrics": metrics}))
    code, out, _ = run(capsys, "check", "-c", str(path))
    assert code == 0, out
    flat = " ".join(out.split())
    for text in expected:
        assert " ".join(text.split()) in flat, (text, out)


def test_replay_names_an_unlisted_model_and_its_automatic_reference(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = tmp_path / "events.jsonl"
    t0 = 1_767_225_600_000
    events.write_text(
        "".join(
            json.dumps({"model": "fruad", "ts": t0 + i * 10_000, "features": {"x": float(i % 17)}})
            + "\n"
            for i in range(1_000)
        )
    )
    path = tmp_path / "drifthouse.yaml"
    path.write_text(
        json.dumps(
            {
                "store": {"path": "./data"},
                "windows": [{"size": "15m"}],
                "models": {"fraud": {"task": "regression"}},
                "metrics": {"auto_reference_span": "30m"},
            }
        )
    )
    # In a subprocess: the replay opens its own embedded store, and one process holds one.
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "drifthouse",
            "replay",
            "-c",
            str(path),
            "--source",
            f"file:{events}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "200"},
        check=False,
    )
    code, out, err = done.returncode, done.stdout, done.stderr
    assert code == 0, err
    assert "model.auto_reference" in err
    assert "model=fruad" in err
    assert "not under models:" in err
    assert "models not listed: automatic reference (30m)" in " ".join(err.split())
    flat = " ".join(out.split())
    assert "automatic reference fruad: 2026-01-01T00:00:00.000Z/2026-01-01T00:30:00.000Z" in flat
