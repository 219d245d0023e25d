"""Embedding features end to end through the command line: ``drifthouse profile`` declares the
array column an embedding with its dimension, ``drifthouse replay`` writes its quality and
drift rows (equal to the last digit to the sketch run in this process), the shipped rule
fires on the shifted hours only, and the prediction log keeps arrays truncated."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from drifthouse.config import MetricsConfig
from drifthouse.detectors.base import Context
from drifthouse.detectors.columns import extract
from drifthouse.detectors.model_sketch import ModelBatch, ModelSketch
from drifthouse.detectors.reference import Profile
from drifthouse.events import decoder_for
from tests.cli_process import run_cli as _cli
from tests.detectors.test_embedding import SHIFTED, UNIFORM, _cluster_embeddings

HOUR = 3_600_000
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def _event(ts: int, i: int, emb: object) -> str:
    return json.dumps(
        {"model": "m", "ts": ts, "event_id": f"e{i}", "features": {"x": i % 7, "emb": emb}}
    )


def _sql(cwd: Path, sql: str) -> list[dict[str, object]]:
    result = _cli("sql", "-c", "drifthouse.yaml", "--format", "json", sql, cwd=cwd)
    assert result.returncode == 0, result.stderr
    rows: list[dict[str, object]] = json.loads(result.stdout)
    return rows


def test_profile_and_replay_an_embedding_feature(tmp_path: Path) -> None:
    rng = np.random.default_rng(21)
    ref = _cluster_embeddings(rng, 3_000, UNIFORM)
    (tmp_path / "reference.jsonl").write_text(
        "\n".join(_event(T0 - HOUR, i, [float(v) for v in r]) for i, r in enumerate(ref)) + "\n"
    )
    made = _cli("profile", "reference.jsonl", "--model", "m", "--out", "m.json", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert "embedding" in made.stdout
    assert "dim 16" in made.stdout
    profile = Profile.from_json((tmp_path / "m.json").read_bytes())
    assert [(e.name, e.dim) for e in profile.embeddings] == [("emb", 16)]
    assert [f.name for f in profile.features] == ["x"]

    lines: list[str] = []
    for hour, weights in enumerate((UNIFORM, SHIFTED, SHIFTED)):
        rows: list[object] = [
            [float(v) for v in r] for r in _cluster_embeddings(rng, 1_000, weights)
        ]
        rows[3], rows[4], rows[5] = [1.0, 2.0], [0.0] * 16, None
        lines += [
            _event(T0 + hour * HOUR + i * 3_000, hour * 1_000 + i, emb)
            for i, emb in enumerate(rows)
        ]
    (tmp_path / "stream.jsonl").write_text("\n".join(lines) + "\n")
    config = {
        "store": {"path": "./data"},
        "windows": [{"size": "1h"}],
        "models": {"m": {"reference": "m.json", "sample_rate": 1.0, "log_array_head": 2}},
    }
    (tmp_path / "drifthouse.yaml").write_text(json.dumps(config))
    replayed = _cli(
        "replay", "-c", "drifthouse.yaml", "--source", "file:stream.jsonl", "--run-id", "e1",
        cwd=tmp_path,
    )  # fmt: skip
    assert replayed.returncode == 0, replayed.stderr

    got = _sql(
        tmp_path,
        "SELECT toString(window_start) AS w, metric, toString(value) AS v FROM metrics FINAL "
        "WHERE run_id = 'e1' AND feature = 'emb' AND segment = '' ORDER BY w, metric",
    )
    by_window: dict[str, dict[str, float]] = {}
    for r in got:
        by_window.setdefault(str(r["w"]), {})[str(r["metric"])] = float(str(r["v"]))
    assert len(by_window) == 3
    first, second, third = (by_window[w] for w in sorted(by_window))
    for w in (first, second, third):
        assert (w["count"], w["wrong_length"], w["zero_vector"], w["missing"]) == (997, 1, 1, 1)
    assert first["embedding_mmd2_pvalue"] > 1e-3
    assert second["embedding_mmd2_pvalue"] < 1e-6
    assert third["embedding_mmd2"] >= 0.001

    # The replay's values are the sketch's in this process, to the last digit.
    sk = ModelSketch("m", profile, MetricsConfig())
    decode = decoder_for("prediction").decode
    events = [decode(line.encode()) for line in lines[:1_000]]
    state = sk.update(sk.empty(), ModelBatch(extract(events, sk.layout)))
    mine = {
        r.metric: r.value for r in sk.evaluate(state, Context(window_ms=HOUR)) if r.feature == "emb"
    }
    assert {m: first[m] for m in mine} == mine

    fired = _sql(
        tmp_path,
        "SELECT rule, feature, toString(window_start) AS w FROM alerts FINAL "
        "WHERE run_id = 'e1' AND rule = 'embedding-drift'",
    )
    assert [(a["rule"], a["feature"]) for a in fired] == [("embedding-drift", "emb")]
    logged = _sql(tmp_path, "SELECT features FROM predictions WHERE event_id = 'e0' LIMIT 1")
    emb = json.loads(str(logged[0]["features"]))["emb"]
    assert emb["len"] == 16
    assert len(emb["head"]) == 2
