"""One category per value however it is typed: a profile built from one spelling of the
categories (JSON strings, JSON numbers, CSV text) and a stream serving another agree, through
the whole pipeline, on both decode paths (the model's fast decoder and the general one)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from river import datasets

from drifthouse.app.pipeline import Pipeline
from drifthouse.config import Config
from drifthouse.detectors.typed_decode import TypedDecoders
from drifthouse.profiles.build import build_profile_from_file
from drifthouse.sinks.base import MemorySink
from drifthouse.stream.dead_letters import MemoryDeadLetters
from drifthouse.stream.sources import Message

HOUR = 3_600_000
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
CONFIG = Config.model_validate({"windows": [{"size": "1h"}]})
# River's ChickWeights: 578 real rows; ``diet`` (1..4) and ``chick`` (1..50) are codes.
ROWS = [(int(x["time"]), int(x["chick"]), int(x["diet"])) for x, _ in datasets.ChickWeights()]

SPELLINGS = {
    "int": lambda v: v,
    "float": lambda v: float(v),
    "string": lambda v: str(v),
    "string-float": lambda v: f"{v}.0",
    "string-exponent": lambda v: f"{v}e0",
}


def _jsonl(path: Path, spell) -> Path:
    with path.open("w") as fh:
        for i, (t, chick, diet) in enumerate(ROWS):
            features = {"time": t, "chick": spell(chick), "diet": spell(diet)}
            fh.write(json.dumps({"model": "chicks", "ts": T0 + i, "features": features}) + "\n")
    return path


def _csv(path: Path, spell) -> Path:
    # A text cell in every tenth row keeps the code columns categorical.
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["time", "chick", "diet"])
        for i, (t, chick, diet) in enumerate(ROWS):
            odd = i % 10 == 9
            w.writerow([t, "unknown" if odd else spell(chick), "none" if odd else spell(diet)])
    return path


def _served(spell) -> list[Message]:
    out = []
    for i, (t, chick, diet) in enumerate(ROWS):
        features = {"time": t, "chick": spell(chick), "diet": spell(diet)}
        value = json.dumps(
            {"model": "chicks", "ts": T0 + i, "event_id": f"e{i}", "features": features}
        )
        out.append(Message(value.encode(), 0, i, "predictions", b"chicks"))
    return out


def _run(profile, messages):
    sink, dead = MemorySink(), MemoryDeadLetters()
    pipe = Pipeline(
        config=CONFIG,
        profiles={"chicks": profile},
        sink=sink,
        dead_letters=dead,
        run_id="t",
        computed_at=lambda: 0,
    )
    pipe.expect_partitions({0})
    pipe.process(messages)
    pipe.finish()
    sink.flush()
    return {(r.feature, r.metric): r.value for r in sink.rows("metrics") if r.feature}


@pytest.mark.parametrize(
    "fast", [pytest.param(True, id="fast-decode"), pytest.param(False, id="general-decode")]
)
@pytest.mark.parametrize("served", list(SPELLINGS), ids=[f"served-{s}" for s in SPELLINGS])
@pytest.mark.parametrize(
    "reference",
    [
        pytest.param(("jsonl", "string"), id="jsonl-strings"),
        pytest.param(("jsonl", "string-float"), id="jsonl-strings-with-fraction"),
        pytest.param(("jsonl", "string-exponent"), id="jsonl-strings-with-exponent"),
    ],
)
def test_a_category_is_one_category_however_it_is_typed(
    tmp_path: Path, monkeypatch, reference, served: str, fast: bool
) -> None:
    _, spelling = reference
    path = _jsonl(tmp_path / "ref.jsonl", SPELLINGS[spelling])
    profile = build_profile_from_file(
        path, model="chicks", model_version="1", created_at="2026-01-01T00:00:00Z"
    )
    assert profile.feature("diet").kind == "categorical"
    if not fast:
        monkeypatch.setattr(TypedDecoders, "decoder", lambda self, model: None)
    got = _run(profile, _served(SPELLINGS[served]))
    for feature in ("diet", "chick"):
        assert got[feature, "count"] == len(ROWS)
        assert got[feature, "new_category"] == 0
        assert got[feature, "psi"] == pytest.approx(0.0, abs=1e-12)
        assert got[feature, "chi2"] == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("served", list(SPELLINGS), ids=[f"served-{s}" for s in SPELLINGS])
@pytest.mark.parametrize("spelling", ["int", "string-float"], ids=["csv-integers", "csv-decimals"])
def test_a_csv_reference_of_codes_matches_any_served_spelling(
    tmp_path: Path, spelling: str, served: str
) -> None:
    profile = build_profile_from_file(
        _csv(tmp_path / "ref.csv", SPELLINGS[spelling]),
        model="chicks",
        model_version="1",
        created_at="2026-01-01T00:00:00Z",
    )
    diet = profile.feature("diet")
    assert diet.kind == "categorical"
    assert sorted(diet.categories) == ["1", "2", "3", "4", "none"]
    got = _run(profile, _served(SPELLINGS[served]))
    assert got["diet", "new_category"] == 0
    assert got["chick", "new_category"] == 0


def test_a_stray_question_mark_leaves_a_numeric_feature_numeric(tmp_path: Path) -> None:
    """River's Shuttle (49,097 rows) profiled from CSV with one ``?`` in ``f1``, then served as
    JSON numbers: ``f1`` stays a numeric feature without drift."""
    shuttle = [x for x, _ in datasets.Shuttle()]
    path = tmp_path / "shuttle.csv"
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(list(shuttle[0]))
        for i, x in enumerate(shuttle):
            w.writerow(["?" if i == 17 else v for v in x.values()])
    profile = build_profile_from_file(
        path, model="shuttle", model_version="1", created_at="2026-01-01T00:00:00Z"
    )
    served = [
        Message(json.dumps({"model": "shuttle", "ts": T0 + i, "features": x}).encode(), 0, i)
        for i, x in enumerate(shuttle[:5_000])
    ]
    sink, dead = MemorySink(), MemoryDeadLetters()
    pipe = Pipeline(
        config=CONFIG,
        profiles={"shuttle": profile},
        sink=sink,
        dead_letters=dead,
        run_id="t",
        computed_at=lambda: 0,
    )
    pipe.expect_partitions({0})
    pipe.process(served)
    pipe.finish()
    sink.flush()
    got = {(r.feature, r.metric): r.value for r in sink.rows("metrics") if r.feature == "f1"}
    assert ("f1", "new_category") not in got
    assert got["f1", "count"] == 5_000
    assert got["f1", "type_error"] == 0
    assert got["f1", "psi"] < 0.01
