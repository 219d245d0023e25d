"""Multivariate drift end to end on NannyML's car loan dataset: ``drifthouse profile`` of the
reference, ``drifthouse replay`` of four chunks of the analysis period (two before its shift,
two after), and the stored ``reconstruction_error`` rows and ``multivariate-drift`` alerts read
back with ``drifthouse sql``, against NannyML's own per-chunk figures (tests/detectors/data,
written by scripts/nannyml_reconstruction_fixture.py). One event every 720 ms makes every
hourly window one of NannyML's chunks of 5,000 events."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from drifthouse.detectors.reference import Profile
from tests.cli_process import run_cli
from tests.detectors.test_multivariate_nannyml import FIXTURE, columns, widened_thresholds

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
STEP = 720  # ms: 5,000 events an hour
HOUR = 3_600_000
FIRST, CHUNKS = 3, 4  # analysis chunks 3..6: NannyML alerts on 5 and 6


def _lines(lo: int, hi: int, t0: int) -> list[str]:
    cols = columns(lo, hi)
    out = []
    for i in range(hi - lo):
        features = {name: _plain(cols[name][i]) for name in FIXTURE["features"]}
        event = {"model": "m", "ts": t0 + i * STEP, "features": features, "event_id": f"e{lo + i}"}
        out.append(json.dumps(event))
    return out


def _plain(v: Any) -> Any:
    return float(v) if isinstance(v, np.floating) else v


def _ms(ws: Any) -> int:
    if isinstance(ws, int):
        return ws
    return int(np.datetime64(str(ws).replace("Z", ""), "ms").astype(np.int64))


def _sql(config: Path, cwd: Path, query: str) -> list[dict[str, Any]]:
    done = run_cli("sql", "-c", str(config), "--format", "json", query, cwd=cwd)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def test_replay_writes_nannymls_reconstruction_error_and_alerts_on_its_chunks(
    tmp_path: Path,
) -> None:
    n_ref, size = FIXTURE["reference_events"], FIXTURE["chunk_size"]
    (tmp_path / "reference.jsonl").write_text("\n".join(_lines(0, n_ref, T0)) + "\n")
    lo = n_ref + FIRST * size
    start = T0 + n_ref * STEP  # a whole number of hours later
    (tmp_path / "predictions.jsonl").write_text(
        "\n".join(_lines(lo, lo + CHUNKS * size, start)) + "\n"
    )
    done = run_cli(
        "profile", str(tmp_path / "reference.jsonl"), "--model", "m", "--out", "m.json",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "multivariate drift: PCA of 7 features, 4 components (78.1% of the variance)" in (
        " ".join(done.stdout.split())
    )
    multivariate = Profile.from_json((tmp_path / "m.json").read_bytes()).multivariate
    assert multivariate is not None
    config = tmp_path / "drifthouse.yaml"
    config.write_text(
        json.dumps(
            {
                "store": {"path": "./data"},
                "windows": [{"size": "1h"}],
                "models": {"m": {"reference": "m.json"}},
            }
        )
    )
    done = run_cli(
        "replay", "-c", str(config), "--source", "file:predictions.jsonl", cwd=tmp_path,
        timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = _sql(
        config,
        tmp_path,
        "SELECT window_start, metric, value, n FROM metrics FINAL WHERE model = 'm' "
        "AND feature = '' AND segment = '' AND metric LIKE 'reconstruction_error%' "
        "ORDER BY window_start, metric",
    )
    got: dict[int, dict[str, float]] = {}
    for r in rows:
        got.setdefault(_ms(r["window_start"]), {})[r["metric"]] = float(r["value"])
        assert int(r["n"]) == size
    chunks = [c for c in FIXTURE["chunks"] if c["period"] == "analysis"][FIRST : FIRST + CHUNKS]
    assert sorted(got) == [start + i * HOUR for i in range(CHUNKS)]
    for i, chunk in enumerate(chunks):
        values = got[start + i * HOUR]
        assert values["reconstruction_error"] == pytest.approx(chunk["value"], rel=1e-9)
        # NannyML's band, widened by the reference mean's own error (docs/statistics.md)
        center, spread = multivariate.band.at(size)
        assert center + 3 * spread == pytest.approx(chunk["upper_threshold"], rel=1e-9)
        assert max(0.0, center - 3 * spread) == pytest.approx(chunk["lower_threshold"], rel=1e-9)
        lower, upper = widened_thresholds(multivariate.band, size)
        assert values["reconstruction_error_upper"] == pytest.approx(upper, rel=1e-12)
        assert values["reconstruction_error_lower"] == pytest.approx(lower, rel=1e-12)
    alerts = _sql(
        config,
        tmp_path,
        "SELECT ts, rule, status FROM alerts FINAL WHERE model = 'm' "
        "AND rule = 'multivariate-drift' ORDER BY ts",
    )
    # NannyML alerts on the last two chunks; the shipped rule wants two windows in a row: one
    # firing row at the end of the second. (The shift moves marginals too: data-drift fires.)
    first = next(i for i, c in enumerate(chunks) if c["alert"])
    assert all(c["alert"] for c in chunks[first:])
    assert first == 2
    assert [(_ms(a["ts"]), a["rule"], a["status"]) for a in alerts] == [
        (start + (first + 2) * HOUR, "multivariate-drift", "firing")
    ]
