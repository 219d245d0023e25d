"""A micro-batch of single-event messages decodes as each message alone would: the same
events, the same refusals (reason, path, message) at the same positions, whatever mix of good
and bad messages it holds (docs/events.md, "Invalid events")."""

from __future__ import annotations

import json
from typing import Any

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from drifthouse.detectors.layout import FeatureLayout
from drifthouse.detectors.typed_decode import TypedDecoders
from drifthouse.errors import DecodeError
from drifthouse.events import PredictionEvent, Refused, decode_messages, encode_event
from tests.events.samples import NOW, PREDICTIONS, PROPERTY, prediction, raw_prediction
from tests.strategies import corrupted_events, mutated_predictions, prediction_events

_LAYOUT = FeatureLayout(("amount", "age"), ("country", "new"), ({"DE": 0}, {"true": 0}), (1, 1))
_TYPED = TypedDecoders(lambda model: _LAYOUT if model == "fraud" else None)

_fixed = st.sampled_from(
    [
        prediction(),
        prediction(features={"amount": 3, "age": 1.5, "country": 7, "new": "x"}),
        prediction(features={"amount": "3", "age": None, "country": "DE", "new": True}),
        prediction(features={"amount": 1, "country": "DE", "new": None}),  # one missing
        prediction(features={"amount": 1, "age": 2, "country": "É ü 漢", "new": 1.0, "x": 1}),
        prediction(model_version=None),
        prediction(status="200"),
        prediction(ts="2024-05-01T11:00:00.5Z"),
        prediction(ts=NOW + 7_200_000),  # beyond max_future
        prediction(ts=1_714_564_800),  # seconds, not milliseconds
        prediction(segment={"country": "DE"}),
        prediction(events=None, columns=None),  # no envelope: null
        prediction(segment={"events": "columns"}),  # mentions, but no envelope
        prediction(event_id="e1", latency_ms=-1.0),
        raw_prediction('"features": {"amount": NaN}'),
        raw_prediction('"features": {"amount": 1e999, "age": -Infinity}'),
        raw_prediction('"features": {"amount": 1}?'),
        raw_prediction('"features": {"amount": {"nested": 1}}'),
        b'{"model": "fraud"}',
        b"",
    ]
)
_messages = st.one_of(
    _fixed,
    prediction_events(max_features=4).map(encode_event),
    mutated_predictions(),
    corrupted_events(),
)


def _envelope(raw: bytes) -> bool:
    try:
        obj = json.loads(raw)
    except ValueError:
        return False
    return isinstance(obj, dict) and (
        obj.get("events") is not None or obj.get("columns") is not None
    )


def _alone(raw: bytes) -> Any:
    try:
        return PREDICTIONS.decode(raw, now_ms=NOW)
    except DecodeError as err:
        return err


def _key(err: DecodeError) -> tuple[str, str, str, str]:
    return type(err).__name__, err.reason, err.path, err.detail


@PROPERTY
@given(raws=st.lists(_messages, max_size=24), typed=st.booleans())
def test_a_chunk_decodes_as_its_messages_alone(raws: list[bytes], typed: bool) -> None:
    got = decode_messages(
        PREDICTIONS,
        raws,
        now_ms=NOW,
        first=_TYPED.decoder("fraud") if typed else None,
        first_rows=_TYPED.rows("fraud") if typed else None,
    )
    ok: list[tuple[int, Any]] = []
    refused: list[tuple[int, tuple[str, str, str, str], int]] = []
    for pos, raw in enumerate(raws):
        if _envelope(raw):
            return  # a batch envelope: tests/events/test_batches.py
        alone = _alone(raw)
        if isinstance(alone, DecodeError):
            refused.append((pos, _key(alone), len(ok)))
        else:
            ok.append((pos, alone))
    assert [p for p, _ in got.ok] == [p for p, _ in ok]
    for (_, a), (_, b) in zip(got.ok, ok, strict=True):
        assert _plain(a) == _plain(b)
    assert [(r.position, _key(r.error), r.prior) for r in got.refused] == refused
    assert all(isinstance(r, Refused) and r.raw is None for r in got.refused)


def _plain(event: Any) -> str:
    """An event's fields as the general decoder gives them (features as a dict), as text
    exact to the last digit (``repr`` of every float, NaN included)."""
    fields = {f: getattr(event, f) for f in PredictionEvent.__struct_fields__}
    feats = fields["features"]
    fields["features"] = feats if isinstance(feats, dict) else feats.as_dict()
    kinds = {k: type(v).__name__ for k, v in fields["features"].items()}
    return json.dumps([msgspec.to_builtins(fields), kinds], sort_keys=True)
