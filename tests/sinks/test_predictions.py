from __future__ import annotations

import json
from typing import Any

import pytest

from drifthouse.config import ModelConfig
from drifthouse.errors import ConfigError
from drifthouse.sinks.clickhouse import ClickHouseSink
from drifthouse.sinks.predictions import PredictionLog, hash_pii, pii_key_from_env, sample_point


def _event(i: int, **kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "model": "fraud",
        "model_version": "1.0.0",
        "ts_ms": 1_700_000_000_000 + i,
        "event_id": f"ev-{i}",
        "features": {"email": f"user{i}@example.com", "amount": float(i)},
        "prediction": {"0": 0.7, "1": 0.3},
        "latency_ms": 12.5,
        "status": 200,
        "segment": {"country": "DE"},
    }
    base.update(kw)
    return base


def test_errors_and_keep_when_are_always_kept_the_rest_sampled() -> None:
    log = PredictionLog(
        {"fraud": ModelConfig(sample_rate=0.1, keep_when="value > 0.9", pii=["email"])},
        key=b"secret",
    )
    rows = [log.row(**_event(i)) for i in range(10_000)]
    kept = [r for r in rows if r is not None]
    assert 850 < len(kept) < 1150  # 10% of 10,000, binomial spread
    assert {r.kept_because for r in kept} == {"sample"}
    assert all(r.sample_rate == 0.1 for r in kept)
    error = log.row(**_event(1, status=503))
    sure = log.row(**_event(2, prediction={"0": 0.05, "1": 0.95}))
    assert error is not None
    assert error.kept_because == "error"
    assert sure is not None
    assert sure.kept_because == "keep_when"


def test_sampling_is_deterministic_across_instances() -> None:
    a = PredictionLog({"fraud": ModelConfig(sample_rate=0.3)})
    b = PredictionLog({"fraud": ModelConfig(sample_rate=0.3)})
    kept_a = [r.event_id for r in a.rows(_Ev(**_event(i)) for i in range(2_000))]
    kept_b = [r.event_id for r in b.rows(_Ev(**_event(i)) for i in range(2_000))]
    assert kept_a == kept_b
    assert sample_point("x") == sample_point("x")


@pytest.mark.parametrize("ids", ["sequential", "uuid"])
@pytest.mark.parametrize("rate", [0.001, 0.01, 0.3])
def test_the_sampler_keeps_its_rate(ids: str, rate: float) -> None:
    import uuid

    n = 200_000
    keys = [
        f"fraud\x00{i}" if ids == "sequential" else f"fraud\x00{uuid.uuid4()}" for i in range(n)
    ]
    kept = sum(sample_point(k) < rate for k in keys)
    spread = 5 * (n * rate * (1 - rate)) ** 0.5  # five binomial standard deviations
    assert abs(kept - n * rate) < spread, (kept, n * rate)
    assert all(0.0 <= sample_point(k) < 1.0 for k in keys[:1000])


@pytest.mark.parametrize(
    "models",
    [
        {"fraud": ModelConfig(sample_rate=0.2)},
        {"fraud": ModelConfig(sample_rate=0.2, keep_when="value > 0.75")},
        {},  # the default config
    ],
)
def test_rows_decide_as_row_does(models: dict[str, ModelConfig]) -> None:
    log = PredictionLog(models)
    events = [
        _event(
            i,
            status=500 if i % 17 == 0 else 200,
            event_id=None if i % 13 == 0 else f"ev-{i}",
            prediction={"0": 1 - i % 10 / 10, "1": i % 10 / 10},
        )
        for i in range(3_000)
    ]
    one_by_one = [r for r in (log.row(**e) for e in events) if r is not None]
    assert log.rows(_Ev(**e) for e in events) == one_by_one
    assert {r.kept_because for r in one_by_one} >= {"error", "sample"}


def test_rows_decide_as_row_does_for_models_in_turn() -> None:
    # Each model its own rate, keep_when or default, the events of several models interleaved.
    log = PredictionLog(
        {"fraud": ModelConfig(sample_rate=0.3), "churn": ModelConfig(keep_when="value > 0.5")},
        default=ModelConfig(sample_rate=0.6),
    )
    events = [
        _event(
            i,
            model=["fraud", "churn", "other", "fraud"][i % 4 if i % 50 else 0],
            event_id=None if i % 7 == 0 else f"ev-{i}",
            prediction=i % 10 / 10,
        )
        for i in range(4_000)
    ]
    one_by_one = [r for r in (log.row(**e) for e in events) if r is not None]
    assert log.rows(_Ev(**e) for e in events) == one_by_one
    assert {r.model for r in one_by_one} == {"fraud", "churn", "other"}


def test_events_without_id_get_a_content_hash() -> None:
    log = PredictionLog({"fraud": ModelConfig(sample_rate=1.0)})
    one = log.row(**_event(1, event_id=None))
    two = log.row(**_event(1, event_id=None))
    assert one is not None
    assert two is not None
    assert one.event_id == two.event_id
    assert len(one.event_id) == 64


def test_events_without_id_are_sampled_by_what_they_hold_but_their_features() -> None:
    # docs/clickhouse.md, "The prediction log": the sampling key of an event without an id is
    # its model, version, time, prediction, latency, status and segment; encoding every
    # feature to decide about one event in a hundred cost a quarter of a replay.
    log = PredictionLog({"fraud": ModelConfig(sample_rate=0.5)})
    events = [_event(i, event_id=None, prediction=i % 7 / 7) for i in range(2_000)]
    twins = [{**e, "features": {"email": "other", "amount": -1.0}} for e in events]
    kept = [log.row(**e) is not None for e in events]
    assert kept == [log.row(**e) is not None for e in twins]
    assert abs(sum(kept) - 1_000) < 5 * 500**0.5  # the rate, within five deviations
    assert log.rows(_Ev(**e) for e in events) == [r for e in events if (r := log.row(**e))]
    # A kept row is still named by the hash of everything it holds, features included.
    both = [(log.row(**e), log.row(**t)) for e, t in zip(events, twins, strict=True)]
    one, two = next((a, b) for a, b in both if a is not None)
    assert two is not None
    assert one.event_id != two.event_id
    assert len(one.event_id) == len(two.event_id) == 64


def test_pii_fields_are_keyed_hashes() -> None:
    log = PredictionLog({"fraud": ModelConfig(sample_rate=1.0, pii=["email"])}, key=b"k1")
    row = log.row(**_event(7))
    assert row is not None
    features = json.loads(row.features)
    assert features["email"] == hash_pii("user7@example.com", b"k1")
    assert features["email"] != hash_pii("user7@example.com", b"k2")
    assert "user7" not in row.features
    assert features["amount"] == 7.0
    assert json.loads(row.segment) == {"country": "DE"}


def test_missing_pii_key_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="DRIFTHOUSE_PII_KEY") as info:
        pii_key_from_env({"fraud": ModelConfig(pii=["email"])}, env={})
    assert info.value.problems[0][0] == "models.fraud.pii"
    assert pii_key_from_env({"fraud": ModelConfig()}, env={}) is None
    key = "s" * 32
    assert (
        pii_key_from_env({"fraud": ModelConfig(pii=["e"])}, env={"DRIFTHOUSE_PII_KEY": key})
        == key.encode()
    )
    with pytest.raises(ConfigError, match="at least 32 bytes"):
        pii_key_from_env({"fraud": ModelConfig(pii=["e"])}, env={"DRIFTHOUSE_PII_KEY": "s"})


def test_bad_keep_when_names_the_model() -> None:
    with pytest.raises(ConfigError, match=r"models\.fraud\.keep_when"):
        PredictionLog({"fraud": ModelConfig(keep_when="value >")})


class _Ev:
    def __init__(self, **kw: Any) -> None:
        self.__dict__.update(kw)


def test_rows_land_in_the_predictions_table_once(store_client: Any, database: str) -> None:
    log = PredictionLog({"fraud": ModelConfig(sample_rate=0.5, pii=["email"])}, key=b"k")
    events = [
        _Ev(
            **_event(
                i,
                ts_ms=_now_ms() - i * 1000,
                status=500 if i % 50 == 0 else 200,
                latency_ms=None if i % 7 else 3.5,
            )
        )
        for i in range(400)
    ]
    rows = log.rows(events)
    sink = ClickHouseSink(store_client, database=database)
    sink.write(rows)
    sink.write(log.rows(events))  # a replay logs the same events: one row each
    sink.flush()
    got = store_client.query(
        "SELECT count(), countIf(kept_because = 'error'), round(sum(1 / sample_rate)) FROM predictions FINAL"
    ).result_rows[0]
    assert got[0] == len(rows)
    assert got[1] == 8
    assert 300 < got[2] < 500  # the sample weights estimate the 400 events
    nulls = store_client.query(
        "SELECT countIf(latency_ms IS NULL), countIf(latency_ms = 3.5) FROM predictions FINAL"
    )
    assert all(count > 0 for count in nulls.result_rows[0])


def _now_ms() -> int:
    import time

    return int(time.time() * 1000)


@pytest.mark.parametrize(
    ("served", "logged"),
    [
        pytest.param(1, "1", id="int"),
        pytest.param(1.0, "1", id="float"),
        pytest.param("1", "1", id="string"),
        pytest.param("1.0", "1", id="numeric-string"),
        pytest.param(True, "true", id="bool"),
        pytest.param("01", "01", id="leading-zero-kept"),
        pytest.param(None, None, id="missing"),
    ],
)
def test_categorical_values_are_logged_as_their_category_key(served: Any, logged: Any) -> None:
    """A category is one key in the log as in profiles and sketches, however it was typed;
    numeric features keep their values."""
    log = PredictionLog(
        {"m": ModelConfig(sample_rate=1.0)}, key=b"k" * 32, categorical={"m": {"zone"}}
    )
    row = log.row(
        model="m", model_version="1", ts_ms=1_767_225_600_000, event_id="e",
        features={"zone": served, "amount": 1.0}, prediction=0.5, latency_ms=None, status=200,
    )  # fmt: skip
    assert row is not None
    assert json.loads(row.features) == {"zone": logged, "amount": 1.0}
    # A model whose kinds are not known (no profile yet) keeps the values as they came.
    other = log.row(
        model="n", model_version="1", ts_ms=1_767_225_600_000, event_id="e",
        features={"zone": served}, prediction=0.5, latency_ms=None, status=500,
    )  # fmt: skip
    assert other is not None
    assert json.loads(other.features) == {"zone": served}


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        pytest.param({}, {"len": 6, "head": [0.5, -1.0, None, 2.0]}, id="truncated-by-default"),
        pytest.param({"log_array_head": 2}, {"len": 6, "head": [0.5, -1.0]}, id="shorter-head"),
        pytest.param({"log_array_head": 0}, {"len": 6, "head": []}, id="length-only"),
    ],
)
def test_arrays_are_logged_truncated(settings: dict[str, Any], expected: object) -> None:
    log = PredictionLog(
        {"fraud": ModelConfig(sample_rate=1.0, **{"log_array_head": 4, **settings})}
    )
    emb = [0.5, -1.0, None, 2.0, 3.0, 4.0]
    row = log.row(**_event(1, features={"emb": emb, "amount": 1.0}))
    assert row is not None
    assert json.loads(row.features) == {"amount": 1.0, "emb": expected}


def test_arrays_are_logged_hashed_when_asked() -> None:
    log = PredictionLog({"fraud": ModelConfig(sample_rate=1.0, log_arrays="hash")})
    a = log.row(**_event(1, features={"emb": [0.5, 1.0]}))
    b = log.row(**_event(2, features={"emb": [0.5, 1.0]}))
    c = log.row(**_event(3, features={"emb": [0.5, 1.5]}))
    assert a is not None
    assert b is not None
    assert c is not None
    got = [json.loads(r.features)["emb"] for r in (a, b, c)]
    assert got[0] == got[1] != got[2]
    assert got[0].startswith("sha256:")
    assert len(got[0]) == len("sha256:") + 64


def test_pii_arrays_are_keyed_hashes_whatever_the_array_setting() -> None:
    log = PredictionLog(
        {"fraud": ModelConfig(sample_rate=1.0, pii=["emb"], log_arrays="truncate")},
        key=b"k" * 32,
    )
    row = log.row(**_event(1, features={"emb": [0.5, 1.0]}))
    assert row is not None
    assert json.loads(row.features)["emb"] == hash_pii([0.5, 1.0], b"k" * 32)
