"""A model whose profile has a calibration writes ``estimated_*`` in every window, from panes
that merge and serialise exactly like the rest of its state."""

from __future__ import annotations

import numpy as np

from drifthouse.config import MetricsConfig
from drifthouse.detectors.base import Context
from drifthouse.detectors.cbpe import CbpeBatch
from drifthouse.detectors.columns import concat, extract
from drifthouse.detectors.model_sketch import ModelBatch, ModelSketch, ModelState
from drifthouse.detectors.reference import Profile
from drifthouse.events import PredictionEvent
from drifthouse.profiles.build import profile_from_events
from tests.detectors.strategies import make_profile

CTX = Context(window_ms=60_000)
RNG = np.random.default_rng(11)
CLASSES = ["cat", "dog", "eel"]


def _binary_profile() -> Profile:
    score = RNG.uniform(size=3_000) ** 2
    label = (RNG.uniform(size=score.size) < np.sqrt(score)).astype(int)
    return make_profile({"x": RNG.normal(size=score.size)}, prediction=score, label=label)


def _events(n: int, multiclass: bool, start: int = 0) -> list[PredictionEvent]:
    out = []
    for i in range(n):
        if multiclass:
            pr = RNG.dirichlet([2, 1, 1])
            prediction: object = {c: float(v) for c, v in zip(CLASSES, pr, strict=True)}
        else:
            prediction = float(RNG.uniform() ** 2)
        out.append(
            PredictionEvent(
                model="m",
                ts_ms=start + i,
                features={"x": float(RNG.normal())},
                prediction=prediction,  # type: ignore[arg-type]
            )
        )
    return out


def _multiclass_profile() -> Profile:
    rows = []
    for e in _events(1_000, True):
        pr = e.prediction
        assert isinstance(pr, dict)
        truth = CLASSES[int(RNG.choice(3, p=[pr[c] for c in CLASSES]))]
        rows.append({"features": e.features, "prediction": pr, "label": truth})
    return profile_from_events(
        rows,
        model="m",
        model_version="1",
        created_at="2026-01-01T00:00:00Z",
        source_digest="0" * 64,
        settings=MetricsConfig(),
    )


def _check(profile: Profile, multiclass: bool) -> None:
    sk = ModelSketch("m", profile, MetricsConfig())
    assert sk.cbpe is not None
    events = _events(900, multiclass)
    parts = [extract(events[i : i + 300], sk.layout) for i in range(0, 900, 300)]
    panes = [sk.update(sk.empty(), ModelBatch(p)) for p in parts]
    merged = sk.merge(sk.merge(panes[2], panes[0]), panes[1])
    whole = sk.update(sk.empty(), ModelBatch(concat(parts)))
    # Integer state: exact whatever the panes (the float moments of other parts merge to
    # rounding, test_protocol.py).
    assert merged.cbpe is not None
    assert whole.cbpe is not None
    assert merged.cbpe.equals(whole.cbpe)
    assert ModelState.from_bytes(merged.to_bytes()).equals(merged)
    rows = {r.metric: r.value for r in sk.evaluate(merged, CTX)}
    # The same numbers as the estimation on its own, from the same scores.
    cols = concat(parts)
    batch = CbpeBatch(cols.proba, cols.proba_pred) if multiclass else CbpeBatch(cols.score)  # type: ignore[arg-type]
    alone = sk.cbpe.update(sk.cbpe.empty(), batch)
    for r in sk.cbpe.evaluate(alone):
        assert rows[r.metric] == r.value
    for m in ("accuracy", "precision", "recall", "f1", "roc_auc"):
        assert (
            rows[f"estimated_{m}_lower"] <= rows[f"estimated_{m}"] <= rows[f"estimated_{m}_upper"]
        )


def test_binary_model_writes_estimates() -> None:
    _check(_binary_profile(), multiclass=False)


def test_multiclass_model_writes_estimates() -> None:
    profile = _multiclass_profile()
    assert profile.calibration is not None
    _check(profile, multiclass=True)


def test_no_estimates_without_a_calibration() -> None:
    profile = make_profile({"x": RNG.normal(size=500)}, prediction=RNG.uniform(size=500))
    sk = ModelSketch("m", profile, MetricsConfig())
    assert sk.cbpe is None
    st = sk.update(sk.empty(), ModelBatch(extract(_events(10, False), sk.layout)))
    assert not any(r.metric.startswith("estimated_") for r in sk.evaluate(st, CTX))


def test_estimates_have_the_reference_metric_as_baseline() -> None:
    profile = _binary_profile()
    sk = ModelSketch("m", profile, MetricsConfig())
    accuracy = profile.baselines.labels["accuracy"]
    for metric in ("estimated_accuracy", "estimated_accuracy_lower", "estimated_accuracy_upper"):
        assert sk.baseline("", metric) == accuracy
    assert sk.baseline("", "estimated_roc_auc_binning_error") is None
    assert sk.baseline("", "accuracy") == accuracy
