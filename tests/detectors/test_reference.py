"""Reference profiles: building, JSON round trip, validation, and the file readers."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drifthouse.config import MetricsConfig
from drifthouse.detectors.reference import PREDICTION, Profile, prediction_score
from drifthouse.errors import ProfileError
from drifthouse.profiles.build import build_profile_from_file, file_digest
from tests.detectors.strategies import CREATED, make_profile, reference_profile


def test_profile_round_trips_through_json() -> None:
    p = reference_profile()
    doc = json.loads(p.to_json())
    assert doc["format"] == 1
    assert Profile.from_json(p.to_json()) == p


@settings(max_examples=30, deadline=None)
@given(
    st.lists(
        st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True), st.integers(-5, 5)),
        max_size=40,
    ),
    st.lists(st.one_of(st.none(), st.booleans(), st.text(max_size=3)), max_size=40),
)
def test_any_columns_make_a_valid_round_tripping_profile(
    num: list[object], cat: list[object]
) -> None:
    n = min(len(num), len(cat))
    p = make_profile(
        {"n": num[:n], "c": cat[:n]},
        settings=MetricsConfig(top_categories=2, ks_bins=20, psi_bins=5),
    )
    assert Profile.from_json(p.to_json()) == p
    f = p.feature("n")
    assert f.count + f.missing + f.non_finite == n


def test_numeric_feature_profile_contents() -> None:
    values = [1.0, 2.0, None, float("nan"), 3.0, float("inf"), 4.0]
    f = make_profile({"v": values}).feature("v")
    assert f.kind == "numeric"
    assert (f.count, f.missing, f.non_finite) == (4, 1, 2)
    assert f.missing_rate == pytest.approx(1 / 7)
    assert (f.min, f.max, f.mean) == (1.0, 4.0, 2.5)
    assert f.std == pytest.approx(np.std([1, 2, 3, 4]))
    assert sum(f.counts) == 4


def test_categorical_feature_profile_keeps_rare_categories_apart_from_new_ones() -> None:
    values = ["a"] * 5 + ["b"] * 3 + ["c", "d", None]
    f = make_profile({"v": values}, settings=MetricsConfig(top_categories=2)).feature("v")
    assert f.kind == "categorical"
    assert f.categories == ["a", "b"]
    assert f.category_counts == [5, 3]
    assert f.other_count == 2
    assert f.known_other == ["c", "d"]
    assert f.missing == 1


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        pytest.param(lambda d: d.update(format=2), "format 2", id="future-format"),
        pytest.param(lambda d: d["features"][0].update(counts=[1]), "counts", id="counts-length"),
        pytest.param(
            lambda d: d["features"][0].update(edges=d["features"][0]["edges"][::-1]),
            "increasing",
            id="edges-order",
        ),
        pytest.param(
            lambda d: d["features"][0].update(missing_rate=2.0), "missing_rate", id="rate-range"
        ),
        pytest.param(lambda d: d.pop("model"), "model", id="missing-field"),
        pytest.param(lambda d: d.update(created_at="yesterday"), "RFC 3339", id="bad-created-at"),
        pytest.param(
            lambda d: d.update(created_at="2026-01-01T00:00:00"),
            "zone",
            id="created-at-without-zone",
        ),
        pytest.param(
            lambda d: d["features"].append(d["features"][0]), "twice", id="duplicate-feature"
        ),
        pytest.param(
            lambda d: d["features"][0].update(type_error=-1), "type_error", id="type-error-negative"
        ),
        pytest.param(
            lambda d: d["features"][0].update(type_error=1, type_error_examples=["?", "x"]),
            "type_error_examples",
            id="more-examples-than-errors",
        ),
    ],
)
def test_invalid_profiles_are_refused_with_the_reason(mutate: object, message: str) -> None:
    doc = json.loads(reference_profile().to_json())
    mutate(doc)  # type: ignore[operator]
    with pytest.raises(ProfileError, match=message):
        Profile.from_json(json.dumps(doc))


def test_not_json_is_refused() -> None:
    with pytest.raises(ProfileError, match="not valid JSON"):
        Profile.from_json(b"{nope")


def test_baselines_from_columns() -> None:
    rng = np.random.default_rng(0)
    n = 2_000
    label = rng.random(n) < 0.3
    score = np.clip(label * 0.4 + rng.random(n) * 0.6, 0, 1)
    latency = rng.lognormal(3, 0.5, n)
    status = np.where(rng.random(n) < 0.05, 503, 200)
    p = make_profile(
        {"x": rng.normal(size=n)},
        prediction=score,
        label=label.astype(int),
        latency_ms=latency,
        status=status,
    )
    b = p.baselines
    assert b.task == "classification"
    assert set(b.labels) == {"accuracy", "precision", "recall", "f1", "roc_auc"}
    assert b.latency_p95 == np.quantile(latency, 0.95, method="lower")
    assert b.error_rate_5xx == pytest.approx(np.mean(status == 503))
    assert b.error_rate_4xx == 0.0
    assert p.prediction is not None
    assert p.prediction.name == PREDICTION
    assert p.prediction.kind == "numeric"


def test_unequal_columns_are_refused() -> None:
    with pytest.raises(ProfileError, match="equal lengths"):
        make_profile({"a": [1.0, 2.0], "b": [1.0]})


# ---- files -----------------------------------------------------------------------------------


def _events(n: int) -> list[dict[str, object]]:
    rng = np.random.default_rng(1)
    out = []
    for i in range(n):
        out.append(
            {
                "model": "fraud" if i % 10 else "other",
                "ts": 1_700_000_000_000 + i,
                "event_id": f"e{i}",
                "features": {
                    "amount": float(rng.lognormal()),
                    "country": str(rng.choice(["de", "fr", "us"])),
                    "vip": bool(i % 3 == 0),
                    "note": None,
                },
                "prediction": {"0": 0.3, "1": 0.7} if i % 2 else {"0": 0.8, "1": 0.2},
                "latency_ms": float(rng.lognormal(3, 0.3)),
                "status": 500 if i % 50 == 0 else 200,
                "label": i % 2,
            }
        )
    return out


def test_profile_from_jsonl(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(msgspec.json.encode(e) for e in _events(500)) + b"\n\n")
    p = build_profile_from_file(
        path, model="fraud", model_version="2", settings=MetricsConfig(), created_at=CREATED
    )
    assert p.source_digest == file_digest(path)
    assert [f.name for f in p.features] == ["amount", "country", "vip", "note"]
    assert [f.kind for f in p.features] == ["numeric", "categorical", "categorical", "categorical"]
    assert p.feature("amount").count == 450  # model "other" skipped
    assert p.feature("note").missing_rate == 1.0
    assert p.prediction is not None
    assert p.prediction.kind == "numeric"  # probability of class "1"
    assert p.baselines.labels["accuracy"] == 1.0
    assert p.baselines.error_rate_5xx is not None
    assert p.baselines.latency_p50 is not None
    excluded = build_profile_from_file(
        path, model="fraud", model_version="2", exclude=["note"], created_at=CREATED
    )
    assert [f.name for f in excluded.features] == ["amount", "country", "vip"]


def test_jsonl_errors_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"model": "fraud", "features": {}}\n{oops\n')
    with pytest.raises(ProfileError, match=r"bad.jsonl:2"):
        build_profile_from_file(path, model="fraud", model_version="1", created_at=CREATED)
    path.write_text('{"model": "other", "features": {}}\n')
    with pytest.raises(ProfileError, match="no events of model"):
        build_profile_from_file(path, model="fraud", model_version="1", created_at=CREATED)


def test_profile_from_csv(tmp_path: Path) -> None:
    path = tmp_path / "ref.csv"
    rows = ["ts,amount,country,zip,flag,prediction,label,latency_ms,status"]
    rng = np.random.default_rng(2)
    for i in range(300):
        amount = "" if i % 30 == 0 else f"{rng.normal(100, 10):.3f}"
        rows.append(
            f"{i},{amount},{rng.choice(['de', 'fr'])},{10000 + i % 7},{'true' if i % 2 else 'false'},{rng.random():.3f},{i % 2},{rng.lognormal(3):.2f},{200 if i % 9 else 404}"
        )
    path.write_text("\n".join(rows) + "\n")
    p = build_profile_from_file(path, model="m", model_version="1", created_at=CREATED)
    kinds = {f.name: f.kind for f in p.features}
    assert kinds == {
        "amount": "numeric",
        "country": "categorical",
        "zip": "numeric",
        "flag": "categorical",
    }
    assert p.feature("amount").missing == 10
    assert p.feature("flag").categories == ["false", "true"]
    assert p.baselines.error_rate_4xx == pytest.approx(34 / 300)
    assert p.baselines.task == "classification"
    only = build_profile_from_file(
        path, model="m", model_version="1", include=["amount"], created_at=CREATED
    )
    assert [f.name for f in only.features] == ["amount"]
    with pytest.raises(ProfileError, match="not in the data"):
        build_profile_from_file(
            path, model="m", model_version="1", include=["nope"], created_at=CREATED
        )
    with pytest.raises(ProfileError, match="prediction column 'score'"):
        build_profile_from_file(
            path, model="m", model_version="1", prediction="score", created_at=CREATED
        )


def test_profile_from_parquet_matches_csv(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    rng = np.random.default_rng(3)
    amount = rng.normal(size=400)
    country = [str(c) for c in rng.choice(["de", "fr", "us"], 400)]
    table = pa.table(
        {
            "amount": amount,
            "country": country,
            "vip": rng.random(400) < 0.5,
            "prediction": rng.random(400),
        }
    )
    pq.write_table(table, tmp_path / "ref.parquet")
    csv_path = tmp_path / "ref.csv"
    csv_path.write_text(
        "amount,country\n"
        + "\n".join(f"{float(a)!r},{c}" for a, c in zip(amount, country, strict=True))
        + "\n"
    )
    p = build_profile_from_file(
        tmp_path / "ref.parquet", model="m", model_version="1", created_at=CREATED
    )
    c = build_profile_from_file(csv_path, model="m", model_version="1", created_at=CREATED)
    assert p.feature("amount") == c.feature("amount")
    assert p.feature("country") == c.feature("country")
    assert p.feature("vip").kind == "categorical"
    assert p.prediction is not None


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        pytest.param("x.txt", "a\n1\n", "suffix", id="unknown-suffix"),
        pytest.param("x.csv", "", "empty CSV", id="empty-csv"),
        pytest.param("x.csv", "a,b\n1\n", "columns", id="ragged-csv"),
        pytest.param("x.parquet", "not parquet", "Parquet", id="bad-parquet"),
    ],
)
def test_file_errors(tmp_path: Path, name: str, content: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(ProfileError, match=message):
        build_profile_from_file(path, model="m", model_version="1", created_at=CREATED)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="no such file"):
        build_profile_from_file(
            tmp_path / "nope.csv", model="m", model_version="1", created_at=CREATED
        )


@pytest.mark.parametrize(
    ("prediction", "expected"),
    [
        pytest.param({"0": 0.3, "1": 0.7}, 0.7, id="binary-probabilities"),
        pytest.param({"no": 0.9, "yes": 0.1}, 0.1, id="yes-is-positive"),
        pytest.param({"cat": 0.8, "dog": 0.2}, 0.2, id="last-class-by-name"),
        pytest.param({"a": 0.2, "b": 0.5, "c": 0.3}, "b", id="multiclass-argmax"),
        pytest.param(0.25, 0.25, id="score"),
        pytest.param({}, None, id="empty"),
    ],
)
def test_prediction_score(prediction: object, expected: object) -> None:
    assert prediction_score(prediction) == expected


@pytest.mark.parametrize(
    ("prediction", "served", "expected"),
    [
        pytest.param({"a": 0.4, "b": 0.4, "c": 0.2}, "b", "b", id="tie-served-class"),
        pytest.param({"a": 0.4, "b": 0.4, "c": 0.2}, None, "a", id="tie-without-served-class"),
        pytest.param({"a": 0.5, "b": 0.3, "c": 0.2}, "c", "c", id="served-is-not-the-argmax"),
        pytest.param({"0": 0.1, "1": 0.2, "2": 0.7}, 1, "1", id="integer-class-id"),
        pytest.param({"no": 0.9, "yes": 0.1}, "no", 0.1, id="binary-keeps-the-score"),
    ],
)
def test_prediction_score_takes_the_served_class(
    prediction: object, served: object, expected: object
) -> None:
    assert prediction_score(prediction, served) == expected


def test_a_profile_written_before_type_error_was_counted_still_reads() -> None:
    doc = json.loads(reference_profile().to_json())
    for f in doc["features"]:
        f.pop("type_error", None)
        f.pop("type_error_examples", None)
    profile = Profile.from_json(json.dumps(doc))
    assert all(f.type_error == 0 and f.type_error_examples == [] for f in profile.features)
