"""Per-feature segment attribution (docs/statistics.md, "Drift attribution"): each segment value
keeps integer counts on every feature's PSI bins, merged like the rest, so a drifted feature's
rows name the segment values that carry its drift (``psi_segment_share`` with the feature)."""

from __future__ import annotations

import random

import numpy as np
import pytest

from drifthouse.config import MetricsConfig
from drifthouse.detectors import stats
from drifthouse.detectors.columns import extract
from drifthouse.detectors.model_sketch import ModelBatch, ModelSketch
from drifthouse.detectors.model_state import ModelState
from drifthouse.detectors.window_attribution import attribute
from drifthouse.events import PredictionEvent
from tests.detectors.strategies import make_profile

CONFIG = MetricsConfig(attribution_top_k=3)


def _sketch(config: MetricsConfig = CONFIG) -> ModelSketch:
    rng = np.random.default_rng(1)
    n = 3_000
    profile = make_profile(
        {"x": rng.normal(0, 1, n).tolist(), "c": [["a", "b", "c"][i % 3] for i in range(n)]},
        prediction=[float(v) for v in rng.uniform(0, 1, n).round(4)],
        latency_ms=[10.0] * n,
        status=[200] * n,
    )
    return ModelSketch("m", profile, config)


def _events(seed: int, n: int) -> list[PredictionEvent]:
    """Brazil's ``x`` moved up by 1.5 and its ``c`` is all ``c``; the others as the reference."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        country = rng.choice(["BR", "DE", "FR", "US"])
        x = rng.gauss(0, 1) + (1.5 if country == "BR" else 0.0)
        c = "c" if country == "BR" else rng.choice(["a", "b", "c"])
        features: dict[str, object] = {"x": x, "c": c}
        if i % 50 == 0:
            features["x"] = None  # missing values are in no bin
        segment = {"country": country, "tier": "gold"}
        score = round(rng.random(), 4)
        out.append(
            PredictionEvent(
                model="m",
                ts_ms=i,
                features=features,
                prediction=score,
                latency_ms=10.0,
                status=200,
                segment=segment,
            )
        )
    return out


def _shares(sketch: ModelSketch, state: ModelState) -> dict[tuple[str, str], float]:
    rows = attribute(sketch, state, list(sketch.capped_segments(state)), CONFIG)
    return {(r.feature, s): r.value for s, r in rows if r.metric == "psi_segment_share"}


def test_a_drifted_feature_names_the_segment_that_carries_its_drift() -> None:
    sketch = _sketch()
    state = sketch.update(sketch.empty(), ModelBatch(extract(_events(1, 8_000), sketch.layout)))
    shares = _shares(sketch, state)
    for feature in ("x", "c"):
        mine = {s: v for (f, s), v in shares.items() if f == feature}
        countries = [s for s in mine if s.startswith("country=")]
        assert max(countries, key=lambda s: mine[s]) == "country=BR", (feature, mine)
        assert mine["country=BR"] > 0.6
        assert sum(v for s, v in mine.items() if s.startswith("country=")) <= 1.0 + 1e-12
        # One value of its attribute: it carries all of the drift.
        assert mine["tier=gold"] == 1.0


def test_a_segment_share_is_its_psi_weighted_by_its_values() -> None:
    """From the segment's counts on the feature's PSI bins, against the reference's."""
    sketch = _sketch()
    events = _events(2, 6_000)
    state = sketch.update(sketch.empty(), ModelBatch(extract(events, sketch.layout)))
    j = sketch.numeric.names.index("x")
    ref = sketch.numeric.coarse_counts(sketch.numeric.reference, j)
    weights = {}
    for country in ("BR", "DE", "FR", "US"):
        mine = [e for e in events if e.segment["country"] == country]
        one = sketch.update(sketch.empty(), ModelBatch(extract(mine, sketch.layout)))
        cur = sketch.numeric.coarse_counts(one.numeric, j)
        weights[f"country={country}"] = int(cur.sum()) * stats.psi(
            ref_counts=ref, cur_counts=cur, eps=sketch.numeric.eps
        )
    total = sum(weights[s] for s in sorted(weights))
    want = sorted(((s, w / total) for s, w in weights.items()), key=lambda t: (-t[1], t[0]))[:3]
    got = {s: v for (f, s), v in _shares(sketch, state).items() if f == "x"}
    assert [(s, got[s]) for s, _ in want] == want


def test_segment_feature_counts_merge_and_serialise_exactly() -> None:
    sketch = _sketch()
    events = _events(3, 5_000)
    one = sketch.update(sketch.empty(), ModelBatch(extract(events, sketch.layout)))
    merged = sketch.empty()
    for lo in range(0, len(events), 613):
        pane = sketch.update(
            sketch.empty(), ModelBatch(extract(events[lo : lo + 613], sketch.layout))
        )
        merged = sketch.merge(merged, ModelState.from_bytes(pane.to_bytes()))
    # Integer counts: the merge of panes sent over the wire is the one pass, to the count.
    assert merged.segments.keys() == one.segments.keys()
    for key, seg in one.segments.items():
        assert seg.features is not None
        assert seg.features.dtype == np.int64
        assert np.array_equal(merged.segments[key].features, seg.features), key
    assert _shares(sketch, merged) == _shares(sketch, one)
    # A missing value (every 50th x) is in no bin: BR's x bins hold its present values.
    br = [e for e in events if e.segment["country"] == "BR"]
    x_bins = sketch.segment.features
    assert x_bins is not None
    assert x_bins.names[0] == "x"
    counts = one.segments[("country", "BR")].features
    assert counts is not None
    present = sum(1 for e in br if e.features["x"] is not None)
    assert int(counts[: int(x_bins.offsets[1])].sum()) == present


@pytest.mark.parametrize("top_k", [0], ids=["attribution-off"])
def test_no_counts_are_kept_when_attribution_is_off(top_k: int) -> None:
    sketch = _sketch(MetricsConfig(attribution_top_k=top_k))
    state = sketch.update(sketch.empty(), ModelBatch(extract(_events(4, 500), sketch.layout)))
    assert all(seg.features is None for seg in state.segments.values())


def test_the_alert_of_a_drifted_feature_names_its_top_segment() -> None:
    """The window's rows, as the merge stage writes them, through a PSI rule: the message names
    the bins and the segment value that carries the feature's drift (docs/alerting.md)."""
    from drifthouse.alerts.rules import RuleEngine
    from drifthouse.config import Config, RuleConfig
    from drifthouse.profiles.sketches import Sketches
    from drifthouse.stream.results import evaluate_window
    from drifthouse.stream.windows import WindowSpec

    config = Config.model_validate({"windows": [{"size": "1h"}]})
    profile = _sketch().profile
    assert profile is not None
    sketches = Sketches({"m": profile}, config.metrics)
    sketch = sketches("m")
    state = sketch.update(sketch.empty(), ModelBatch(extract(_events(5, 6_000), sketch.layout)))
    spec = WindowSpec.from_config(config.windows[0])
    result = evaluate_window(
        spec, 0, ("m", ""), sketch.resolve(state), sketches, changes=None, run_id="t",
        computed_at=1,
    )  # fmt: skip
    shares = [r for r in result.metrics if r.metric == "psi_segment_share" and r.feature == "x"]
    assert {r.segment for r in shares} >= {"country=BR", "tier=gold"}
    assert all(r.n > 0 for r in shares)
    engine = RuleEngine([RuleConfig(name="drift", metric="psi", when="value > 0.1")])
    messages = {a.feature: a.message for a in engine.process(result.metrics)}
    assert "segment country=BR carries" in messages["x"], messages["x"]
