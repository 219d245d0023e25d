"""Embedding features (docs/statistics.md, "Embedding features"): arrays in events, their
profile, quality counts, the drift statistics against a naive NumPy twin, and a known shift."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from drifthouse.config import MetricsConfig
from drifthouse.detectors.columns import extract
from drifthouse.detectors.embedding import (
    EmbeddingBatch,
    EmbeddingSketch,
    rff_map,
)
from drifthouse.detectors.model_sketch import ModelBatch, ModelSketch
from drifthouse.detectors.typed_decode import TypedDecoders
from drifthouse.events import PredictionEvent
from tests.detectors.strategies import make_profile
from tests.events.samples import PREDICTIONS
from tests.naive import naive_embedding_moments

DIM = 16


def _cluster_embeddings(
    rng: np.random.Generator, n: int, weights: np.ndarray, dim: int = DIM
) -> np.ndarray:
    """A documented synthetic embedding set: ten classes, each a Gaussian cloud around its own
    unit-norm centre (seed 7), noise 0.35 per coordinate. A *prior shift* changes the classes'
    shares and nothing else, so every single coordinate moves only a little."""
    centres = np.random.default_rng(7).normal(size=(10, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    labels = rng.choice(10, size=n, p=weights)
    return centres[labels] + 0.35 * rng.normal(size=(n, dim))


UNIFORM = np.full(10, 0.1)
SHIFTED = np.array([0.25, 0.2, 0.15, 0.1, 0.1, 0.05, 0.05, 0.04, 0.03, 0.03])


def _profile(n: int = 4_000, seed: int = 0) -> object:
    rng = np.random.default_rng(seed)
    return make_profile(
        {"x": rng.normal(size=n), "emb": _cluster_embeddings(rng, n, UNIFORM)},
    )


def test_events_with_array_features_decode() -> None:
    raw = json.dumps(
        {"model": "m", "ts": 1714564800000, "features": {"emb": [0.5, -1, None], "x": 2}}
    ).encode()
    event = PREDICTIONS.decode(raw)
    assert event.features["emb"] == [0.5, -1.0, None]
    assert event.features["x"] == 2.0


def test_profile_declares_an_array_column_as_an_embedding_with_its_dimension() -> None:
    profile = _profile()
    assert [f.name for f in profile.features] == ["x"]
    (emb,) = profile.embeddings
    assert (emb.name, emb.dim, emb.count) == ("emb", DIM, 4_000)
    assert len(emb.unit_mean) == DIM
    assert len(emb.rff_mean) == emb.rff_features
    # Lists of lists (a JSONL file) make the same profile.
    rng = np.random.default_rng(0)
    x = rng.normal(size=4_000)
    as_lists = [list(map(float, row)) for row in _cluster_embeddings(rng, 4_000, UNIFORM)]
    again = make_profile({"x": x, "emb": as_lists})
    assert again.embeddings == profile.embeddings


def _events(rows: list[object]) -> list[PredictionEvent]:
    return [
        PredictionEvent(model="m", ts_ms=i, features={"x": 1.0, "emb": v})  # type: ignore[dict-item]
        for i, v in enumerate(rows)
    ]


def test_quality_is_counted_and_arrays_never_count_as_categories() -> None:
    profile = _profile()
    sk = ModelSketch("m", profile, MetricsConfig())  # type: ignore[arg-type]
    good = [0.1] * DIM
    rows: list[object] = [
        good,
        good,
        [0.1] * (DIM - 1),  # wrong length
        [0.1] * (DIM - 1) + [None],  # a null inside: not finite
        [0.0] * DIM,  # zero vector
        None,  # missing
        "oops",  # not an array
    ]
    state = sk.update(sk.empty(), ModelBatch(extract(_events(rows), sk.layout)))
    got = {(r.feature, r.metric): r.value for r in sk.evaluate(state, _ctx())}
    assert got[("emb", "count")] == 2
    assert got[("emb", "wrong_length")] == 1
    assert got[("emb", "non_finite")] == 1
    assert got[("emb", "zero_vector")] == 1
    assert got[("emb", "missing")] == 1
    assert got[("emb", "type_error")] == 1
    assert got[("emb", "missing_rate")] == pytest.approx(1 / 7)
    # An array sent in a numeric feature is a type error there, never a category anywhere.
    cat_profile = make_profile({"c": ["a", "b"] * 50})
    cs = ModelSketch("m", cat_profile, MetricsConfig())
    ev = [PredictionEvent(model="m", ts_ms=0, features={"c": [1.0, 2.0]})]  # type: ignore[dict-item]
    cstate = cs.update(cs.empty(), ModelBatch(extract(ev, cs.layout)))
    crows = {(r.feature, r.metric): r.value for r in cs.evaluate(cstate, _ctx())}
    assert crows[("c", "new_category")] == 0
    assert crows[("c", "missing")] == 1


def _ctx() -> object:
    from drifthouse.detectors.base import Context

    return Context(window_ms=60_000)


def test_fast_decoder_takes_arrays_of_embedding_features() -> None:
    profile = _profile()
    sk = ModelSketch("m", profile, MetricsConfig())  # type: ignore[arg-type]
    decode = TypedDecoders(lambda m: sk.layout).decoder("m")
    assert decode is not None
    raw = json.dumps(
        {"model": "m", "ts": 1714564800000, "features": {"x": 1, "emb": [0.5] * DIM}}
    ).encode()
    fast = decode(raw)
    slow = PREDICTIONS.decode(raw)
    a = extract([fast], sk.layout)
    b = extract([slow], sk.layout)
    assert np.array_equal(a.embeddings[0], b.embeddings[0])
    assert np.array_equal(a.embedding_status, b.embedding_status)


def test_kernel_matches_its_numpy_twin() -> None:
    profile = _profile()
    (emb,) = profile.embeddings  # type: ignore[attr-defined]
    sk = EmbeddingSketch([emb])
    rng = np.random.default_rng(5)
    values = _cluster_embeddings(rng, 500, SHIFTED)
    values[3] = 0.0
    values[7, 2] = np.nan
    status = np.zeros((500, 1), dtype=np.uint8)
    state = sk.update(sk.empty(), EmbeddingBatch((values,), status))
    w, b = rff_map(emb)
    twin = naive_embedding_moments(values, w, b)
    assert state.counts[0].tolist()[:4] == [498, 0, 0, 0]  # count, missing, type, length
    assert int(state.counts[0, 4]) == 1
    assert int(state.counts[0, 5]) == 1
    # Fixed-point sums: each event rounds to 2**-32; BLAS sums in another order, so the twin
    # may round an event's term the other way (at most one unit per event).
    assert np.max(np.abs(state.unit_sum - twin.unit_sum)) <= 500
    assert np.max(np.abs(state.rff_sum - twin.rff_sum)) <= 500


def test_a_known_prior_shift_is_found_and_stationary_splits_stay_quiet() -> None:
    profile = _profile(n=20_000)
    sk = ModelSketch("m", profile, MetricsConfig())  # type: ignore[arg-type]
    rng = np.random.default_rng(11)

    def window(weights: np.ndarray, n: int = 2_000) -> dict[str, float | None]:
        rows = _cluster_embeddings(rng, n, weights)
        events = _events([list(map(float, r)) for r in rows])
        state = sk.update(sk.empty(), ModelBatch(extract(events, sk.layout)))
        out: dict[str, float | None] = {}
        for r in sk.evaluate(state, _ctx()):  # type: ignore[arg-type]
            if r.feature == "emb":
                out[r.metric] = r.value
                if r.metric == "embedding_mmd2":
                    out["p"] = r.p_value
        return out

    quiet = [window(UNIFORM) for _ in range(20)]
    shifted = window(SHIFTED)
    assert all(q["p"] is not None and q["p"] > 1e-3 for q in quiet), [q["p"] for q in quiet]
    assert shifted["p"] is not None
    assert shifted["p"] < 1e-6
    assert shifted["embedding_mmd2"] > 10 * max(abs(q["embedding_mmd2"] or 0) for q in quiet)  # type: ignore[operator]
    assert shifted["embedding_cosine_distance"] > max(  # type: ignore[operator]
        q["embedding_cosine_distance"]
        for q in quiet  # type: ignore[misc]
    )
    assert all(math.isfinite(v) for q in quiet for v in q.values() if v is not None)


def test_partitions_in_any_order_and_a_restart_give_the_same_bits() -> None:
    """Events spread over partitions, each in its own order, merged in another order, and a
    state serialised and restored in between: every part of the model's state (embedding sums
    included) equals one pass over the stream, bit for bit."""
    from drifthouse.detectors.model_state import ModelState

    profile = _profile()
    sk = ModelSketch("m", profile, MetricsConfig())  # type: ignore[arg-type]
    rng = np.random.default_rng(3)
    rows: list[object] = [list(map(float, r)) for r in _cluster_embeddings(rng, 600, SHIFTED)]
    rows[5], rows[9], rows[17] = None, [1.0], [0.0] * DIM
    events = _events(rows)
    one = sk.update(sk.empty(), ModelBatch(extract(events, sk.layout)))
    parts = [events[i::3] for i in range(3)]
    panes = [
        sk.update(sk.empty(), ModelBatch(extract(list(reversed(p)), sk.layout))) for p in parts
    ]
    restored = ModelState.from_bytes(panes[1].to_bytes())
    merged = sk.merge(panes[2], sk.merge(restored, panes[0]))
    assert merged.embedding is not None
    assert one.embedding is not None
    assert merged.embedding.equals(one.embedding)
    # The embedding's rows are equal to the last digit (the numeric feature's Welford moments
    # merge by Chan's formula: equal up to rounding, tests/detectors/test_protocol.py).
    emb_rows = [
        [r for r in sk.evaluate(s, _ctx()) if r.feature == "emb"]  # type: ignore[arg-type]
        for s in (merged, one)
    ]
    assert emb_rows[0] == emb_rows[1]
    assert {r.metric for r in emb_rows[0]} >= {"embedding_mmd2", "embedding_cosine_distance"}


def test_a_profile_round_trips_and_refuses_another_random_map() -> None:
    import msgspec

    from drifthouse.detectors.reference import Profile
    from drifthouse.errors import ProfileError

    profile = _profile()
    assert Profile.from_json(profile.to_json()) == profile  # type: ignore[attr-defined]
    (emb,) = profile.embeddings  # type: ignore[attr-defined]
    with pytest.raises(ProfileError, match="rebuild the profile"):
        EmbeddingSketch([msgspec.structs.replace(emb, seed=emb.seed + 1)])
    bad = msgspec.structs.replace(emb, unit_mean=emb.unit_mean[:-1])
    with pytest.raises(ProfileError, match="unit_mean needs dim=16"):
        msgspec.structs.replace(profile, embeddings=[bad]).validate()  # type: ignore[type-var]


def test_batches_in_rows_and_in_columns_give_the_single_events_arrays() -> None:
    from drifthouse.detectors.columns import extract_columns
    from drifthouse.events.batch_columns import decode_columns
    from drifthouse.events.batch_rows import decode_rows

    profile = _profile()
    sk = ModelSketch("m", profile, MetricsConfig())  # type: ignore[arg-type]
    values: list[object] = [[0.5] * DIM, [1.0], None, [0.0] * DIM, [0.25] * (DIM - 1) + [None]]
    singles = [
        PREDICTIONS.decode(
            json.dumps(
                {"model": "m", "ts": 1714564800000 + i, "features": {"x": 1, "emb": v}}
            ).encode()
        )
        for i, v in enumerate(values)
    ]
    rows = {
        "model": "m",
        "events": [
            {"ts": 1714564800000 + i, "features": {"x": 1, "emb": v}} for i, v in enumerate(values)
        ],
    }
    columns = {
        "model": "m",
        "columns": {"ts": [1714564800000 + i for i in range(len(values))],
                    "features": {"x": [1] * len(values), "emb": values}},
    }  # fmt: skip
    typed = TypedDecoders(lambda m: sk.layout).plain_rows("m")
    expected = extract(singles, sk.layout)
    for block in (
        decode_rows(json.dumps(rows).encode()),
        decode_rows(json.dumps(rows).encode(), typed),
        decode_columns(json.dumps(columns).encode()),
    ):
        assert block is not None
        got = extract_columns(block, sk.layout)
        assert np.array_equal(got.embeddings[0], expected.embeddings[0], equal_nan=True)
        assert got.embedding_status is not None
        assert got.embedding_status.tolist() == [[0], [3], [1], [0], [0]]
        assert np.array_equal(got.embedding_status, expected.embedding_status)


def _image_segments() -> tuple[np.ndarray, np.ndarray]:
    """river's bundled ImageSegments (2,310 image regions, 18 features, 7 classes of 330) as an
    18-dimension embedding set: each row z-scored by the whole set's mean and spread (constant
    columns left at 0), shuffled with seed 1. Returns ``(rows, class index)``."""
    from river import datasets

    data = list(datasets.ImageSegments())
    names = list(data[0][0])
    classes = sorted({y for _, y in data})
    x = np.array([[float(row[n]) for n in names] for row, _ in data])
    y = np.array([classes.index(label) for _, label in data])
    spread = x.std(axis=0)
    x = (x - x.mean(axis=0)) / np.where(spread > 0, spread, 1.0)
    order = np.random.default_rng(1).permutation(len(x))
    return x[order], y[order]


def test_a_class_shift_in_a_packaged_dataset_is_found_and_its_other_half_stays_quiet() -> None:
    """ImageSegments split in two halves: the first is the reference. Windows of 300 drawn from
    the second half with its own class mix stay quiet; windows drawn with two of the seven
    classes (grass, sky) three times as likely and the rest as before are found, though each
    of the 18 coordinates moves by a fraction of its spread."""
    x, y = _image_segments()
    half = len(x) // 2
    rng = np.random.default_rng(12)
    profile = make_profile({"x": rng.normal(size=half), "emb": x[:half]})
    sk = ModelSketch("m", profile, MetricsConfig())  # type: ignore[arg-type]
    rest, labels = x[half:], y[half:]

    def window(weights: np.ndarray) -> dict[str, float | None]:
        p = weights[labels] / weights[labels].sum()
        rows = rest[rng.choice(len(rest), size=300, p=p)]
        events = _events([list(map(float, r)) for r in rows])
        state = sk.update(sk.empty(), ModelBatch(extract(events, sk.layout)))
        out: dict[str, float | None] = {}
        for r in sk.evaluate(state, _ctx()):  # type: ignore[arg-type]
            if r.feature == "emb" and r.metric == "embedding_mmd2":
                out["mmd2"], out["p"] = r.value, r.p_value
        return out

    quiet = [window(np.ones(7)) for _ in range(20)]
    shifted_weights = np.ones(7)
    shifted_weights[[3, 5]] = 3.0  # grass, sky
    shifted = [window(shifted_weights) for _ in range(5)]
    assert all(q["p"] is not None and q["p"] > 1e-3 for q in quiet), [q["p"] for q in quiet]
    assert all(s["p"] is not None and s["p"] < 1e-4 for s in shifted), [s["p"] for s in shifted]
    # ... and large enough for the shipped embedding-drift rule (value >= 0.001)
    assert all(s["mmd2"] is not None and s["mmd2"] >= 0.001 for s in shifted), shifted
    assert max(q["mmd2"] or 0.0 for q in quiet) < min(s["mmd2"] or 0.0 for s in shifted)
    moved = np.abs(rest[np.isin(labels, [3, 5])].mean(axis=0) - rest.mean(axis=0))
    assert moved.max() < 1.5  # no single coordinate jumps by more than 1.5 spreads
