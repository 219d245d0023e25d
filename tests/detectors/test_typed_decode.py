"""The fast decode takes only events it decodes to the general decoder's values; the columns,
the prediction log and the windows do not depend on which path an event took."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from drifthouse.config import ModelConfig
from drifthouse.detectors.columns import Columns, FeatureLayout, extract
from drifthouse.detectors.typed_decode import TypedDecoders, TypedFeatures
from drifthouse.events import EventDecoder, PredictionEvent
from drifthouse.sinks.predictions import PredictionLog

LAYOUT = FeatureLayout(
    ("amount", "age", "odd name 'ü'"),
    ("country", "app"),
    ({"DE": 0, "FR": 1, "1": 2, "true": 3}, {"ios": 0, "web": 1}),
    (4, 2),
)
GENERAL = EventDecoder(PredictionEvent)
DECODERS = TypedDecoders(lambda model: LAYOUT if model == "fraud" else None)

_numbers = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.integers(-(2**60), 2**60),
    st.none(),
)
_odd = st.one_of(st.booleans(), st.just("3.5"), st.just("x"), st.just([1]), st.just({"a": 1}))
_texts = st.one_of(
    st.sampled_from(["DE", "FR", "US", "ios", "", "1", "1.0", "1e0", "01", "True", "nan"]),
    st.none(),
)


@st.composite
def _raw(draw: st.DrawFn) -> bytes:
    features: dict[str, Any] = {}
    for name in LAYOUT.numeric:
        if draw(st.integers(0, 19)) != 0:  # mostly present
            features[name] = draw(st.one_of(_numbers, _odd) if draw(st.booleans()) else _numbers)
    for name in LAYOUT.categorical:
        if draw(st.integers(0, 19)) != 0:
            features[name] = draw(
                st.one_of(_texts, st.integers(0, 3), st.sampled_from([1.0, 1.5]), st.booleans())
            )
    if draw(st.integers(0, 9)) == 0:
        features["extra"] = 1.0
    event = {
        "model": draw(st.sampled_from(["fraud", "fraud", "fraud", "other"])),
        "ts": draw(st.integers(0, 10**13)),
        "event_id": draw(st.one_of(st.none(), st.text(max_size=5))),
        "features": features,
        "prediction": draw(st.one_of(st.floats(0, 1), st.sampled_from(["a", "b"]))),
        "latency_ms": draw(st.one_of(st.none(), st.floats(0, 1e4))),
    }
    if draw(st.integers(0, 2)) == 0:  # a segment: one or two attributes, or an odd one
        event["segment"] = draw(
            st.one_of(
                st.dictionaries(
                    st.sampled_from(["country", "tier", "a=b"]),
                    st.sampled_from(["DE", "FR", "", "__other__", "x=y"]),
                    max_size=2,
                ),
                st.just({"country": 3}),
            )
        )
    text = json.dumps(event)
    if draw(st.integers(0, 19)) == 0:
        text = text.replace('"amount": ', '"amount": NaN, "z": ', 1)  # a NaN literal
    return text.encode()


def _same_columns(a: Columns, b: Columns) -> None:
    np.testing.assert_array_equal(a.numeric, b.numeric)  # NaN == NaN here
    np.testing.assert_array_equal(a.status, b.status)
    np.testing.assert_array_equal(a.codes, b.codes)
    np.testing.assert_array_equal(a.ts, b.ts)
    np.testing.assert_array_equal(a.score, b.score)
    np.testing.assert_array_equal(a.latency, b.latency)
    assert a.event_ids == b.event_ids
    assert list(a.segments) == list(b.segments)  # the same values, in the same order
    for key, rows in a.segments.items():
        np.testing.assert_array_equal(rows, b.segments[key])


@settings(max_examples=150, deadline=None)
@given(st.lists(_raw(), min_size=1, max_size=40))
def test_both_paths_give_the_same_events_columns_and_log(raws: list[bytes]) -> None:
    general_ok, general_bad = GENERAL.decode_batch(raws)
    fast_ok, fast_bad = GENERAL.decode_batch(raws, first=DECODERS.decoder("fraud"))
    assert [(i, e.reason, e.path) for i, e in fast_bad] == [
        (i, e.reason, e.path) for i, e in general_bad
    ]
    assert [i for i, _ in fast_ok] == [i for i, _ in general_ok]
    for (_, g), (_, f) in zip(general_ok, fast_ok, strict=True):
        features = f.features.as_dict() if isinstance(f.features, TypedFeatures) else f.features
        assert features == g.features
        assert (f.model, f.ts_ms, f.event_id, f.prediction, f.latency_ms, f.segment) == (
            g.model, g.ts_ms, g.event_id, g.prediction, g.latency_ms, g.segment,
        )  # fmt: skip
    fraud_g = [e for _, e in general_ok if e.model == "fraud"]
    fraud_f = [e for _, e in fast_ok if e.model == "fraud"]
    if fraud_g:
        _same_columns(extract(fraud_f, LAYOUT), extract(fraud_g, LAYOUT))
        log = PredictionLog({"fraud": ModelConfig(sample_rate=1.0)})
        assert log.rows(fraud_f) == log.rows(fraud_g)


def test_events_that_fit_take_the_fast_path() -> None:
    raw = json.dumps(
        {
            "model": "fraud",
            "ts": 1_767_225_600_000,
            "features": {
                "amount": 3,
                "age": None,
                "odd name 'ü'": 1.5,
                "country": "US",
                "app": None,
            },
        }
    ).encode()
    ok, bad = GENERAL.decode_batch([raw, raw], first=DECODERS.decoder("fraud"))
    assert not bad
    assert all(isinstance(e.features, TypedFeatures) for _, e in ok)
    cols = extract([e for _, e in ok], LAYOUT)
    assert cols.numeric[0, 0] == 3.0
    assert math.isnan(cols.numeric[0, 1])
    assert cols.status[0].tolist() == [0, 1, 0]
    assert cols.codes[0].tolist() == [4, -1]  # US is unseen; app missing


def test_a_category_typed_any_way_takes_the_fast_path_and_its_canonical_code() -> None:
    spellings = ["1", 1, 1.0, "1.0", "1e0", True, "True", "01", 1.5]
    raws = [
        json.dumps({"model": "fraud", "ts": 1_767_225_600_000, "features": {
            "amount": 1, "age": 2, "odd name 'ü'": 3, "country": value, "app": "web"}}).encode()
        for value in spellings
    ]  # fmt: skip
    ok, bad = GENERAL.decode_batch(raws, first=DECODERS.decoder("fraud"))
    assert not bad
    assert all(isinstance(e.features, TypedFeatures) for _, e in ok)
    cols = extract([e for _, e in ok], LAYOUT)
    assert cols.codes[:, 0].tolist() == [2, 2, 2, 2, 2, 3, 3, 4, 4]  # "01", 1.5: unseen


def test_models_without_layout_or_with_unmatchable_names_take_the_general_path() -> None:
    assert DECODERS.decoder("other") is None
    assert DECODERS.decoder("") is None
    for name in ['say "hi"', "back\\slash", "tab\t"]:
        layout = FeatureLayout((name,), (), (), ())
        assert TypedDecoders(lambda model, lay=layout: lay).decoder("m") is None


def test_pii_that_is_no_feature_keeps_the_fast_path(small_stream: Any) -> None:
    """A global ``pii`` list (segment attributes, ``event_id``) names every model: only a PII
    *feature* sends a model's events to the general decoder."""
    from drifthouse.config import Config
    from drifthouse.profiles.sketches import Sketches
    from drifthouse.stream.dead_letters import MemoryDeadLetters
    from drifthouse.stream.stage import PartitionStage
    from drifthouse.stream.windows import WindowSpec

    model = sorted(small_stream.profiles)[0]
    feature = small_stream.profiles[model].features[0].name
    for pii, fast in ((["user", "event_id"], True), ([feature], False)):
        config = Config.model_validate({"pii": pii, "models": {model: {}}})
        stage = PartitionStage(
            0,
            config,
            [WindowSpec.from_config(w) for w in config.windows],
            Sketches(small_stream.profiles, config.metrics, config.models),
            MemoryDeadLetters(),
        )
        assert (stage._typed.decoder(model) is not None) is fast, pii
