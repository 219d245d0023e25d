"""A shadow model scoring the same requests: a replay of a topic writes, per window of the
primary, the agreement of the two predictions paired by ``event_id``
(docs/metrics.md, "Version comparisons and shadows")."""

from __future__ import annotations

import json
import random
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from drifthouse.app.replay import replay
from drifthouse.config import Config
from drifthouse.events import LabelEvent
from drifthouse.rows import MetricRow
from drifthouse.sinks.base import MemorySink
from tests.restarts import run_with_crashes

pytestmark = pytest.mark.kafka

HOUR = 3_600_000
START = 1_767_225_600_000  # 2026-01-01T00:00:00Z
HOURS = 4
EVERY_MS = 2_000


def _events() -> list[dict[str, Any]]:
    """``fraud`` every 2 s; ``fraud-shadow`` scores the same request 300 ms later, the same
    class 19 times in 20 (0.01 away; the 20th across the 0.5 threshold), and no shadow for
    every 50th."""
    rng = random.Random(7)
    out = []
    for i in range(HOURS * HOUR // EVERY_MS):
        ts = START + i * EVERY_MS
        score = rng.random()
        out.append(
            {"model": "fraud", "model_version": "v1", "ts": ts, "event_id": f"e{i}",
             "features": {"amount": rng.random()}, "prediction": score}
        )  # fmt: skip
        if i % 50 == 7:
            continue
        if i % 20 == 3:  # across the threshold
            shadow = 1.0 - score if abs(score - 0.5) > 1e-3 else (0.0 if score >= 0.5 else 1.0)
        else:  # 0.01 away, on the same side
            shadow = min(1.0, score + 0.01) if score >= 0.5 else max(0.0, score - 0.01)
        out.append(
            {"model": "fraud-shadow", "model_version": "s1", "ts": ts + 300, "event_id": f"e{i}",
             "features": {"amount": rng.random()}, "prediction": shadow}
        )  # fmt: skip
    return out


def _labels(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A label for every primary prediction, a minute later (labels name the primary only)."""
    rng = random.Random(8)
    return [
        {
            "event_id": e["event_id"],
            "model": "fraud",
            "ts": e["ts"] + 60_000,
            "label": int(rng.random() < 0.4),
        }
        for e in events
        if e["model"] == "fraud"
    ]


def _expected(events: list[dict[str, Any]]) -> dict[int, dict[str, float]]:
    """Per 1h window of the primary: pairs, agreement, mean absolute difference, missing."""
    primary = {e["event_id"]: e for e in events if e["model"] == "fraud"}
    shadow = {e["event_id"]: e for e in events if e["model"] == "fraud-shadow"}
    acc: dict[int, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for eid, p in primary.items():
        w = acc[(p["ts"] - START) // HOUR * HOUR + START]
        s = shadow.get(eid)
        if s is None:
            w["shadow_missing"] += 1
            continue
        w["shadow_pairs"] += 1
        w["agree"] += (p["prediction"] >= 0.5) == (s["prediction"] >= 0.5)
        w["abs"] += abs(p["prediction"] - s["prediction"])
    return {
        start: {
            "shadow_pairs": w["shadow_pairs"],
            "shadow_missing": w["shadow_missing"],
            "shadow_agreement": w["agree"] / w["shadow_pairs"],
            "shadow_score_mae": w["abs"] / w["shadow_pairs"],
        }
        for start, w in acc.items()
    }


def _config(bootstrap: str) -> Config:
    return Config.model_validate(
        {
            "kafka": {"bootstrap": bootstrap},
            "windows": [{"size": "1h"}],
            "metrics": {"default_reference": "none"},
            "models": {
                "fraud": {"task": "classification"},
                "fraud-shadow": {"task": "classification", "shadow_of": "fraud"},
            },
        }
    )


@pytest.fixture(scope="module")
def replays(
    kafka_bootstrap: str, kafka_admin: Any, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, MemorySink]:
    from kafka import KafkaProducer

    events = _events()
    topic = f"t-shadow-{uuid.uuid4().hex[:8]}"
    kafka_admin.create_topics(
        {topic: {"num_partitions": 3, "replication_factor": 1}}, wait_for_metadata=True
    )
    try:
        producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, linger_ms=20)
        for e in events:
            producer.send(topic, key=e["event_id"].encode(), value=json.dumps(e).encode())
        producer.flush()
        producer.close()
        out = {}
        folder = Path(tmp_path_factory.mktemp("shadow"))
        labels = folder / "labels.jsonl"
        labels.write_text("".join(json.dumps(e) + "\n" for e in _labels(events)))
        sink = MemorySink()
        replay(
            _config(kafka_bootstrap), source=f"kafka:{topic}", sink=sink, run_id="r",
            labels=f"file:{labels}",
        )  # fmt: skip
        out["kafka"] = sink
        path = folder / "events.jsonl"
        path.write_text("".join(json.dumps(e) + "\n" for e in events))
        sink = MemorySink()
        replay(
            _config(kafka_bootstrap), source=f"file:{path}", sink=sink, run_id="r",
            labels=f"file:{labels}",
        )  # fmt: skip
        out["file"] = sink
        return out
    finally:
        kafka_admin.delete_topics([topic])


def _shadow_rows(sink: MemorySink) -> list[MetricRow]:
    return [
        r
        for r in sink.rows("metrics")
        if isinstance(r, MetricRow) and r.metric.startswith("shadow_")
    ]


def test_a_shadow_agreeing_19_times_in_20_shows_0_95(replays: dict[str, MemorySink]) -> None:
    expected = _expected(_events())
    rows = _shadow_rows(replays["kafka"])
    assert {(r.model, r.model_version, r.feature, r.segment) for r in rows} == {
        ("fraud", "v1", "__prediction__", "shadow=fraud-shadow")
    }
    got = {(r.window_start, r.metric): r for r in rows}
    assert len(got) == len(rows), "one row per window and metric"
    assert sorted({s for s, _ in got}) == sorted(expected)
    for start, want in expected.items():
        pairs = int(want["shadow_pairs"])
        assert got[(start, "shadow_pairs")].value == pairs
        assert got[(start, "shadow_missing")].value == want["shadow_missing"]
        assert got[(start, "shadow_agreement")].value == pytest.approx(
            want["shadow_agreement"], abs=1e-12
        )
        assert got[(start, "shadow_agreement")].value == pytest.approx(0.95, abs=0.002)
        assert got[(start, "shadow_agreement")].n == pairs
        assert got[(start, "shadow_score_mae")].value == pytest.approx(
            want["shadow_score_mae"], abs=1e-9
        )


def test_the_shadow_rows_are_the_same_from_a_topic_and_a_file(
    replays: dict[str, MemorySink],
) -> None:
    def table(sink: MemorySink) -> dict[tuple[object, ...], tuple[float, int]]:
        return {(r.window_start, r.metric): (r.value, r.n) for r in _shadow_rows(sink)}

    assert table(replays["kafka"]) == table(replays["file"])


def test_the_shadow_keeps_its_own_rows(replays: dict[str, MemorySink]) -> None:
    models = {
        r.model
        for r in replays["kafka"].rows("metrics")
        if isinstance(r, MetricRow) and r.metric == "events"
    }
    assert models == {"fraud", "fraud-shadow"}


def test_labels_of_the_primary_give_both_models_their_metrics_side_by_side(
    replays: dict[str, MemorySink],
) -> None:
    events = _events()
    truth = {lab["event_id"]: lab["label"] for lab in _labels(events)}
    want: dict[tuple[str, int], list[bool]] = defaultdict(list)
    for e in events:
        start = (e["ts"] - START) // HOUR * HOUR + START
        want[(e["model"], start)].append(int(e["prediction"] >= 0.5) == truth[e["event_id"]])
    got = {
        (r.model, r.window_start): r
        for r in replays["kafka"].rows("metrics")
        if isinstance(r, MetricRow)
        and r.metric == "accuracy"
        and r.segment == ""
        and r.window == "1h"
    }
    assert got.keys() == want.keys()
    for key, hits in want.items():
        assert got[key].n == len(hits)
        assert got[key].value == pytest.approx(sum(hits) / len(hits), abs=1e-12)


@pytest.mark.parametrize(
    ("models", "message"),
    [
        pytest.param({"a": {"shadow_of": "b"}}, "'b' must be another model listed", id="unknown"),
        pytest.param({"a": {"shadow_of": "a"}}, "'a' must be another model listed", id="itself"),
        pytest.param(
            {"a": {}, "b": {"shadow_of": "a"}, "c": {"shadow_of": "b"}},
            "'b' is itself a shadow",
            id="chain",
        ),
        pytest.param(
            {"a": {"labels": False}, "b": {"shadow_of": "a"}},
            "'a' has labels: false",
            id="primary-without-labels",
        ),
    ],
)
def test_a_shadow_names_a_listed_primary(models: dict[str, Any], message: str) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=message):
        Config.model_validate({"models": models})


def _record(model: str, eid: str, ts: int, score: float, cls: str | None = None) -> Any:
    from drifthouse.stream.labels.records import PredictionRecord

    return PredictionRecord(eid, model, "v", ts, score, cls)


def _pairs(task: str) -> Any:
    from drifthouse.stream.shadow import ShadowPairs

    config = Config.model_validate(
        {
            "windows": [{"size": "1h"}, {"size": "1h", "hop": "30m"}],
            "models": {"p": {"task": task}, "s": {"shadow_of": "p", "shadow_wait": "1m"}},
        }
    )
    pairs = ShadowPairs.from_config(config)
    assert pairs is not None
    return pairs


def _rows(results: list[Any]) -> dict[tuple[str, int, str], float]:
    return {(r.spec.name, r.start, m.metric): m.value for r in results for m in r.metrics}


def test_classes_pair_within_the_wait_and_late_shadows_count_as_missing() -> None:
    pairs = _pairs("classification")
    pairs.add(
        [
            _record("p", "a", START + 10, float("nan"), "cat"),
            _record("s", "a", START + 20, float("nan"), "cat"),
        ]
    )
    pairs.add(
        [
            _record("p", "b", START + 30, float("nan"), "cat"),
            _record("s", "b", START + 40, float("nan"), "dog"),
        ]
    )
    pairs.add([_record("p", "c", START + 50, float("nan"), "cat")])
    pairs.add([_record("s", "c", START + 50 + 60_001, float("nan"), "cat")])  # beyond the wait
    # Windows wait for their end + the wait + the longest hop (1h): [START - 30m, START + 30m)
    # is written at START + 1h31m, the other two at START + 2h1m.
    first = pairs.flush(START + 2 * HOUR, run_id="r", computed_at=0)
    assert [(r.spec.name, r.start) for r in first] == [("1h/30m", START - HOUR // 2)]
    assert pairs.flush(START + 2 * HOUR + 59_999, run_id="r", computed_at=0) == []
    rows = _rows(first) | _rows(pairs.flush(START + 2 * HOUR + 60_000, run_id="r", computed_at=0))
    for window, start in (("1h", START), ("1h/30m", START), ("1h/30m", START - HOUR // 2)):
        assert rows[(window, start, "shadow_pairs")] == 2
        assert rows[(window, start, "shadow_missing")] == 1
        assert rows[(window, start, "shadow_agreement")] == 0.5
        assert (window, start, "shadow_score_mae") not in rows


def test_a_regression_shadow_gets_no_agreement_only_the_difference() -> None:
    pairs = _pairs("regression")
    pairs.add([_record("p", "a", START, 10.0), _record("s", "a", START + 1, 12.5)])
    pairs.add(
        [_record("s", "b", START + 2, 1.0), _record("p", "b", START + 3, 0.5)]
    )  # shadow first
    rows = _rows(pairs.flush(None, run_id="r", computed_at=0))
    assert rows[("1h", START, "shadow_pairs")] == 2
    assert rows[("1h", START, "shadow_score_mae")] == 1.5
    assert ("1h", START, "shadow_agreement") not in rows


def _pipeline_rows(
    events: list[dict[str, Any]], crash_after: list[int]
) -> dict[tuple[object, ...], float]:
    """The shadow rows of a run over three partitions that 'crashes' after each count of
    messages in ``crash_after`` and resumes (:func:`tests.restarts.run_with_crashes`)."""
    sink = run_with_crashes(_config("unused:9092"), events, crash_after, batch=500)
    return {(r.window_start, r.metric): (r.value, r.n) for r in _shadow_rows(sink)}


def test_a_restarted_merger_writes_the_same_shadow_rows() -> None:
    events = _events()
    want = _pipeline_rows(events, [])
    assert len(want) == 4 * HOURS
    rng = random.Random(5)
    got = _pipeline_rows(events, sorted(rng.sample(range(1, len(events)), 5)))
    assert got == want


def test_a_live_worker_refuses_a_shadow_on_another_merge_shard_than_its_primary() -> None:
    from drifthouse.app.worker import check_shards
    from drifthouse.errors import ConfigError

    def config(shadow: str) -> Config:
        return Config.model_validate(
            {
                "kafka": {"partials_partitions": 3},
                "store": {"dsn": "http://ch:8123/d"},
                "models": {"fraud": {}, shadow: {"shadow_of": "fraud"}},
            }
        )

    check_shards(config("fraud-shadow"), "all")  # crc32 % 3: both on shard 1
    with pytest.raises(
        ConfigError, match="shadow 'fraud-next' is on merge shard 2, its primary 'fraud' on 1"
    ):
        check_shards(config("fraud-next"), "all")


def test_two_shadows_of_one_primary_each_pair_and_later_copies_are_ignored() -> None:
    from drifthouse.stream.shadow import ShadowPairs

    config = Config.model_validate(
        {
            "windows": [{"size": "1h"}],
            "models": {"p": {}, "s1": {"shadow_of": "p"}, "s2": {"shadow_of": "p"}},
        }
    )
    pairs = ShadowPairs.from_config(config)
    assert pairs is not None
    pairs.add([_record("p", "a", START, 0.9), _record("s1", "a", START + 1, 0.8)])
    pairs.add([_record("s2", "a", START + 2, 0.1), _record("s2", "a", START + 3, 0.9)])
    pairs.add([_record("p", "a", START + 4, 0.2)])  # a second copy of the primary
    got = {
        (m.segment, m.metric): m.value
        for r in pairs.flush(None, run_id="r", computed_at=0)
        for m in r.metrics
    }
    assert got == {
        ("shadow=s1", "shadow_pairs"): 1.0,
        ("shadow=s1", "shadow_missing"): 0.0,
        ("shadow=s1", "shadow_agreement"): 1.0,
        ("shadow=s1", "shadow_score_mae"): pytest.approx(0.1, abs=1e-9),
        ("shadow=s2", "shadow_pairs"): 1.0,
        ("shadow=s2", "shadow_missing"): 0.0,
        ("shadow=s2", "shadow_agreement"): 0.0,
        ("shadow=s2", "shadow_score_mae"): pytest.approx(0.8, abs=1e-9),
    }
    labels = pairs.with_shadows([LabelEvent(event_id="a", model="p", ts_ms=START, label=1)])
    assert sorted(lab.model for lab in labels) == ["p", "s1", "s2"]


def _documented_shadow_rule() -> list[Any]:
    """The shadow rule docs/alerting.md shows (the second block of "Canaries and shadows")."""
    import yaml

    from drifthouse.config import RuleConfig

    text = (Path(__file__).resolve().parents[2] / "docs" / "alerting.md").read_text()
    section = text[text.index("## Canaries and shadows") :]
    second = section.index("```yaml", section.index("```yaml") + 7)
    block = section[second + len("```yaml") : section.index("```\n", second + 7)]
    return [RuleConfig.model_validate(r) for r in yaml.safe_load(block)["rules"]]


def test_the_documented_shadow_rule_fires_when_the_shadow_starts_to_disagree(
    tmp_path: Path,
) -> None:
    """The shadow agrees 19 times in 20 for two hours, then serves the other class for one
    request in 5: the documented ``shadow-disagrees`` rule fires in the third hour, not before,
    and its message names the shadow and the agreement."""
    from drifthouse.alerts.rules import RuleEngine, validate_rules

    events = _events()
    for i, e in enumerate(events):
        turn = e["model"] == "fraud-shadow" and e["ts"] >= START + 2 * HOUR
        if turn and int(e["event_id"][1:]) % 5 == 1:
            events[i] = {**e, "prediction": 1.0 - e["prediction"]}
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    sink = MemorySink()
    replay(_config("127.0.0.1:1"), source=f"file:{path}", sink=sink, run_id="r")
    rules = _documented_shadow_rule()
    assert [r.name for r in rules] == ["shadow-disagrees"]
    assert validate_rules(rules) == []
    agreement = {
        r.window_start: r.value for r in _shadow_rows(sink) if r.metric == "shadow_agreement"
    }
    assert agreement[START + HOUR] == pytest.approx(0.95, abs=0.002)
    assert agreement[START + 2 * HOUR] < 0.8
    rows = sorted(
        (r for r in sink.rows("metrics") if isinstance(r, MetricRow)), key=lambda r: r.window_end
    )
    alerts = RuleEngine(rules).process(rows)
    assert [(a.rule, a.model, a.segment, a.status, a.window_start) for a in alerts] == [
        ("shadow-disagrees", "fraud", "shadow=fraud-shadow", "firing", START + 2 * HOUR)
    ]
    assert "fraud and shadow=fraud-shadow agree on 7" in alerts[0].message
