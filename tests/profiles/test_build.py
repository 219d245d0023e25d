"""Type inference of profiles from files: a numeric column with a few odd cells is numeric,
and the odd cells are counted (``type_error``) with examples; tried on river's Shuttle data
(49,097 real rows of nine numeric sensor columns)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from river import datasets

from drifthouse.detectors.reference import ProfileSettings
from drifthouse.errors import ProfileError
from drifthouse.profiles.build import build_profile_from_file
from drifthouse.profiles.columns import NUMERIC_SHARE, build_feature_profile

SHUTTLE = [(x, int(y)) for x, y in datasets.Shuttle()]
NAMES = list(SHUTTLE[0][0])
SETTINGS = ProfileSettings(psi_bins=10, ks_bins=100, eps=1e-4, top_categories=100)


def _shuttle_csv(path: Path, odd: dict[int, str]) -> Path:
    """Shuttle as CSV, with ``odd[row]`` written in column ``f1`` of those rows."""
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow([*NAMES, "label"])
        for i, (x, y) in enumerate(SHUTTLE):
            row = [x[n] for n in NAMES]
            if i in odd:
                row[0] = odd[i]
            w.writerow([*row, y])
    return path


def _shuttle_jsonl(path: Path, odd: dict[int, object]) -> Path:
    with path.open("w") as fh:
        for i, (x, y) in enumerate(SHUTTLE):
            features = dict(x)
            if i in odd:
                features["f1"] = odd[i]
            fh.write(json.dumps({"model": "shuttle", "ts": i, "features": features, "label": y}))
            fh.write("\n")
    return path


def _shuttle_parquet(path: Path, odd: dict[int, str]) -> Path:
    """Shuttle as Parquet, ``f1`` a string column (as pandas writes a column of mixed cells)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = {n: [x[n] for x, _ in SHUTTLE] for n in NAMES}
    columns["f1"] = [odd.get(i, str(v)) for i, v in enumerate(columns["f1"])]
    columns["label"] = [y for _, y in SHUTTLE]
    pq.write_table(pa.table(columns), path)
    return path


def _profile(path: Path):
    return build_profile_from_file(
        path, model="shuttle", model_version="1", created_at="2026-01-01T00:00:00Z"
    )


@pytest.mark.parametrize(
    ("fmt", "odd", "errors", "examples"),
    [
        pytest.param("csv", {17: "?"}, 1, ["?"], id="csv-one-question-mark"),
        pytest.param("csv", {i: "?" for i in range(0, 49_000, 100)}, 490, ["?"], id="csv-1pct"),
        pytest.param(
            "csv",
            {3: "?", 9: "n.a.", 11: "?", 400: "x", 500: "y", 600: "z", 700: "w"},
            7,
            ["?", "n.a.", "x", "y", "z"],
            id="csv-several-kinds",
        ),
        pytest.param("jsonl", {17: "?"}, 1, ["?"], id="jsonl-one-question-mark"),
        pytest.param("parquet", {17: "?", 18: "?"}, 2, ["?"], id="parquet-text-column"),
        pytest.param("jsonl", {5: True, 6: "12"}, 2, ["true", "12"], id="jsonl-bool-and-text"),
    ],
)
def test_a_numeric_column_with_a_few_odd_cells_is_numeric(
    tmp_path: Path, fmt: str, odd: dict[int, object], errors: int, examples: list[str]
) -> None:
    write = {"csv": _shuttle_csv, "jsonl": _shuttle_jsonl, "parquet": _shuttle_parquet}[fmt]
    profile = _profile(write(tmp_path / f"shuttle.{fmt}", odd))  # type: ignore[operator]
    f1 = profile.feature("f1")
    assert f1.kind == "numeric"
    assert f1.type_error == errors
    assert f1.type_error_examples == examples
    assert f1.count == len(SHUTTLE) - errors
    assert f1.missing == 0
    assert [f.type_error for f in profile.features if f.name != "f1"] == [0] * (len(NAMES) - 1)


def test_without_odd_cells_the_profile_is_unchanged(tmp_path: Path) -> None:
    clean = _profile(_shuttle_csv(tmp_path / "clean.csv", {}))
    assert [f.kind for f in clean.features] == ["numeric"] * len(NAMES)
    assert all(f.type_error == 0 and f.type_error_examples == [] for f in clean.features)


@pytest.mark.parametrize(
    ("column", "kind", "type_error"),
    [
        pytest.param([1.0] * 95 + ["?"] * 5, "numeric", 5, id="95pct-numbers"),
        pytest.param([1.0] * 94 + ["?"] * 6, "categorical", 0, id="94pct-numbers"),
        pytest.param([1.0] * 95 + ["?"] * 5 + [None] * 50, "numeric", 5, id="nulls-not-counted"),
        pytest.param(["a", "b", 1.0], "categorical", 0, id="text"),
        pytest.param([None, None], "categorical", 0, id="all-missing"),
        pytest.param([True, False, True], "categorical", 0, id="bools"),
    ],
)
def test_the_numeric_share_decides_the_kind(
    column: list[object], kind: str, type_error: int
) -> None:
    assert NUMERIC_SHARE == 0.95
    f = build_feature_profile("x", column, SETTINGS)
    assert f.kind == kind
    assert f.type_error == type_error


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_kinds_can_be_forced_by_name(tmp_path: Path, fmt: str) -> None:
    """``kinds`` overrides the share: f2 (numbers) as categories, f1 with 10% text as numbers."""
    odd = {i: "?" for i in range(0, 49_000, 10)}
    write = _shuttle_csv if fmt == "csv" else _shuttle_jsonl
    path = write(tmp_path / f"shuttle.{fmt}", odd)  # type: ignore[arg-type]
    assert _profile(path).feature("f1").kind == "categorical"  # 10% odd: below the share
    profile = build_profile_from_file(
        path, model="shuttle", model_version="1", created_at="2026-01-01T00:00:00Z",
        kinds={"f1": "numeric", "f2": "categorical"},
    )  # fmt: skip
    f1, f2 = profile.feature("f1"), profile.feature("f2")
    assert (f1.kind, f1.type_error, f1.type_error_examples) == ("numeric", len(odd), ["?"])
    assert f2.kind == "categorical"
    assert "0" in f2.categories  # numbers named by category_key: 0 and 0.0 are "0"
    assert f2.count == len(SHUTTLE)


def test_kinds_must_name_features(tmp_path: Path) -> None:
    path = _shuttle_csv(tmp_path / "shuttle.csv", {})
    with pytest.raises(
        ProfileError, match=r"kinds name features that are not in the data: \['nope'\]"
    ):
        build_profile_from_file(
            path, model="shuttle", model_version="1", created_at="2026-01-01T00:00:00Z",
            kinds={"nope": "numeric"},
        )  # fmt: skip


def test_odd_cells_of_a_numeric_prediction_are_left_out_of_the_label_baselines(
    tmp_path: Path,
) -> None:
    """A score column with a ``?`` stays a score: the baselines skip that row, as a window
    skips a prediction it cannot read."""
    rows = [(i % 100 / 100, int(i % 100 >= 50)) for i in range(2_000)]
    path = tmp_path / "scores.csv"
    lines = ["x,prediction,label"]
    lines += [f"{i},{'?' if i == 7 else s},{y}" for i, (s, y) in enumerate(rows)]
    path.write_text("\n".join(lines) + "\n")
    profile = _profile(path)
    assert profile.prediction is not None
    assert (profile.prediction.kind, profile.prediction.type_error) == ("numeric", 1)
    assert profile.baselines.task == "classification"
    assert profile.baselines.labels["accuracy"] == 1.0
    assert profile.baselines.labels["roc_auc"] == 1.0


@pytest.mark.parametrize(
    ("header", "row", "message"),
    [
        pytest.param(
            "x,latency_ms",
            "2,?",
            r"column 'latency_ms' row 2: expected a number; got '\?'",
            id="latency-text",
        ),
        pytest.param(
            "x,status",
            "2,abc",
            r"column 'status' row 2: expected an integer HTTP status; got 'abc'",
            id="status-text",
        ),
        pytest.param(
            "x,status",
            "2,200.5",
            r"column 'status' row 2: expected an integer HTTP status; got 200.5",
            id="status-fraction",
        ),
    ],
)
def test_odd_cells_in_latency_and_status_columns_are_named(
    tmp_path: Path, header: str, row: str, message: str
) -> None:
    path = tmp_path / "ref.csv"
    first = "1,5" if "latency" in header else "1,200"
    path.write_text(f"{header}\n{first}\n{row}\n")
    with pytest.raises(ProfileError, match=message):
        _profile(path)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        pytest.param(
            "latency_ms",
            "?",
            r"ref.jsonl:2: at `\$.latency_ms`: expected a number; got '\?'",
            id="latency",
        ),
        pytest.param(
            "status",
            "200",
            r"ref.jsonl:2: at `\$.status`: expected an integer HTTP status; got '200'",
            id="status",
        ),
    ],
)
def test_odd_latency_and_status_in_jsonl_are_named(
    tmp_path: Path, field: str, value: object, message: str
) -> None:
    path = tmp_path / "ref.jsonl"
    good = {"model": "m", "ts": 1, "features": {"x": 1.0}, "latency_ms": 3.0, "status": 200}
    path.write_text(json.dumps(good) + "\n" + json.dumps({**good, field: value}) + "\n")
    with pytest.raises(ProfileError, match=message):
        build_profile_from_file(
            path, model="m", model_version="1", created_at="2026-01-01T00:00:00Z"
        )
