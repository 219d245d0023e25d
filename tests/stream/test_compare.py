"""A canary beside the main version: a replay of a topic writes, per window, the canary's
comparison rows against the main version (docs/metrics.md, "Version comparisons and shadows"),
once, the same from one partition or three, and a rule on them fires."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from drifthouse.alerts.rules import RuleEngine, validate_rules
from drifthouse.app.replay import replay
from drifthouse.config import Config, RuleConfig
from drifthouse.rows import MetricRow
from drifthouse.sinks.base import MemorySink
from tests.restarts import run_with_crashes

pytestmark = pytest.mark.kafka

HOUR = 3_600_000
START = 1_767_225_600_000  # 2026-01-01T00:00:00Z
HOURS = 5


def _events() -> list[dict[str, Any]]:
    """Two models, an event every second: 10% of each served by canary `v2`; fraud's canary
    scores 0.3 higher, answers 1.5 times slower and fails more; churn's canary is the same."""
    rng = random.Random(21)
    out = []
    for i in range(HOURS * 3600):
        model = "fraud" if i % 2 else "churn"
        canary = rng.random() < 0.1
        shifted = canary and model == "fraud"
        score = min(1.0, rng.betavariate(2, 5) + (0.3 if shifted else 0.0))
        out.append(
            {
                "model": model,
                "model_version": "v2" if canary else "v1",
                "ts": START + i * 1000,
                "event_id": f"e{i}",
                "features": {"amount": rng.lognormvariate(3, 1)},
                "prediction": round(score, 6),
                "latency_ms": round(rng.uniform(5, 50) * (1.5 if shifted else 1.0), 3),
                "status": 503 if rng.random() < (0.06 if shifted else 0.01) else 200,
            }
        )
    return out


def _config(bootstrap: str) -> Config:
    return Config.model_validate(
        {
            "kafka": {"bootstrap": bootstrap},
            "windows": [{"size": "1h"}],
            "models": {"fraud": {"reference": "auto"}, "churn": {"reference": "auto"}},
        }
    )


def _produce(bootstrap: str, topic: str, events: list[dict[str, Any]]) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20)
    for e in events:
        producer.send(topic, key=e["event_id"].encode(), value=json.dumps(e).encode())
    producer.flush()
    producer.close()


def _vs_rows(sink: MemorySink) -> list[MetricRow]:
    return [
        r for r in sink.rows("metrics") if isinstance(r, MetricRow) and r.metric.startswith("vs_")
    ]


def _key(r: MetricRow) -> tuple[object, ...]:
    return (r.window_start, r.model, r.model_version, r.feature, r.segment, r.metric)


@pytest.fixture(scope="module")
def replays(
    kafka_bootstrap: str, kafka_admin: Any, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, MemorySink]:
    """The same events replayed from a 3-partition topic, a 1-partition topic and a file."""
    import uuid

    events = _events()
    names = {p: f"t-canary-{p}-{uuid.uuid4().hex[:8]}" for p in (1, 3)}
    kafka_admin.create_topics(
        {n: {"num_partitions": p, "replication_factor": 1} for p, n in names.items()},
        wait_for_metadata=True,
    )
    try:
        out = {}
        for p, name in names.items():
            _produce(kafka_bootstrap, name, events)
            sink = MemorySink()
            replay(_config(kafka_bootstrap), source=f"kafka:{name}", sink=sink, run_id="r")
            out[f"kafka-{p}"] = sink
        path = Path(tmp_path_factory.mktemp("canary")) / "events.jsonl"
        path.write_text("".join(json.dumps(e) + "\n" for e in events))
        sink = MemorySink()
        replay(_config(kafka_bootstrap), source=f"file:{path}", sink=sink, run_id="r")
        out["file"] = sink
        return out
    finally:
        kafka_admin.delete_topics(list(names.values()))


def test_the_shifted_canary_drifts_from_the_main_version_in_every_window(
    replays: dict[str, MemorySink],
) -> None:
    rows = _vs_rows(replays["kafka-3"])
    assert rows, "no comparison rows"
    assert {(r.model_version, r.segment) for r in rows} == {("v2", "vs=v1")}
    assert Counter(_key(r) for r in rows).most_common(1)[0][1] == 1, "one row per key"
    psi = {(r.model, r.window_start): r for r in rows if r.metric == "vs_psi"}
    assert len(psi) == 2 * HOURS
    for (model, _), r in psi.items():
        assert r.feature == "__prediction__"
        if model == "fraud":
            assert r.value > 0.5
        else:
            assert r.value < 0.1
        assert 130 < r.n < 230  # the canary's events in the window (~180 of 1,800)
    ratio = [r.value for r in rows if r.metric == "vs_latency_p95_ratio" and r.model == "fraud"]
    assert len(ratio) == HOURS
    assert all(1.35 < v < 1.65 for v in ratio)
    errors = [r.value for r in rows if r.metric == "vs_error_rate_5xx_diff" and r.model == "fraud"]
    assert len(errors) == HOURS
    assert all(0.02 < v < 0.1 for v in errors)
    share = [r.value for r in rows if r.metric == "vs_traffic_share"]
    assert len(share) == 2 * HOURS
    assert all(0.07 < v < 0.13 for v in share)


def test_comparisons_agree_with_each_versions_own_rows(replays: dict[str, MemorySink]) -> None:
    metrics = [r for r in replays["kafka-3"].rows("metrics") if isinstance(r, MetricRow)]
    own = {
        (r.window_start, r.model, r.model_version, r.metric): r.value
        for r in metrics
        if r.feature == "" and r.segment == ""
    }
    checked = 0
    for r in _vs_rows(replays["kafka-3"]):
        start, model = r.window_start, r.model
        if r.metric == "vs_error_rate_5xx_diff":
            expected = (
                own[(start, model, "v2", "error_rate_5xx")]
                - own[(start, model, "v1", "error_rate_5xx")]
            )
            assert r.value == expected
            checked += 1
        elif r.metric == "vs_latency_p95_ratio":
            expected = (
                own[(start, model, "v2", "latency_p95")] / own[(start, model, "v1", "latency_p95")]
            )
            assert r.value == expected
            checked += 1
        elif r.metric == "vs_traffic_share":
            v1, v2 = own[(start, model, "v1", "events")], own[(start, model, "v2", "events")]
            assert r.value == v2 / (v1 + v2)
            checked += 1
    assert checked == 3 * 2 * HOURS


def test_comparisons_are_the_same_from_one_partition_three_or_a_file(
    replays: dict[str, MemorySink],
) -> None:
    def table(sink: MemorySink) -> dict[tuple[object, ...], tuple[float, int]]:
        return {_key(r): (r.value, r.n) for r in _vs_rows(sink)}

    three, one, file = (table(replays[k]) for k in ("kafka-3", "kafka-1", "file"))
    assert three.keys() == one.keys() == file.keys()
    for key, (value, n) in three.items():
        for other in (one, file):
            if key[-1] == "vs_mean_diff":  # a float mean: merge order changes its last digits
                assert other[key][0] == pytest.approx(value, rel=1e-9, abs=1e-12)
            else:
                assert other[key] == (value, n), key


def _documented_rules() -> list[RuleConfig]:
    """The canary rules docs/alerting.md shows (its "Canaries and shadows" section)."""
    import yaml

    text = (Path(__file__).resolve().parents[2] / "docs" / "alerting.md").read_text()
    section = text[text.index("## Canaries and shadows") :]
    block = section[
        section.index("```yaml") + len("```yaml") : section.index(
            "```\n", section.index("```yaml") + 7
        )
    ]
    return [RuleConfig.model_validate(r) for r in yaml.safe_load(block)["rules"]]


def test_the_documented_canary_rules_fire_for_the_shifted_canary_only(
    replays: dict[str, MemorySink],
) -> None:
    rules = _documented_rules()
    assert [r.name for r in rules] == ["canary-prediction-drift", "canary-errors", "canary-latency"]
    assert validate_rules(rules) == [], "the vs_ metrics are metrics drifthouse computes"
    engine = RuleEngine(rules)
    rows = sorted(
        (r for r in replays["kafka-3"].rows("metrics") if isinstance(r, MetricRow)),
        key=lambda r: r.window_end,
    )
    alerts = engine.process(rows)
    assert sorted((a.rule, a.model, a.model_version, a.segment, a.status) for a in alerts) == [
        (name, "fraud", "v2", "vs=v1", "firing")
        for name in ("canary-errors", "canary-latency", "canary-prediction-drift")
    ]


def _merge_run(
    idle_first: bool,
) -> tuple[dict[tuple[object, ...], float], dict[tuple[object, ...], float]]:
    """Two hours through two partitions (partition 1: a third of the main version's events,
    none of the canary's); with ``idle_first``, partition 1 is idle while partition 0 runs
    through, then wakes up and delivers. Returns the comparison rows of the first write and
    of the last write of each key."""
    from drifthouse.profiles.sketches import Sketches
    from drifthouse.stream.dead_letters import MemoryDeadLetters
    from drifthouse.stream.merge import MergeStage
    from drifthouse.stream.sources import Message
    from drifthouse.stream.stage import PartitionStage
    from drifthouse.stream.windows import WindowSpec

    config = Config.model_validate(
        {"windows": [{"size": "1h"}], "metrics": {"default_reference": "none"}}
    )
    events = [e for e in _events() if e["ts"] < START + 2 * HOUR]
    half: dict[int, list[Message]] = {0: [], 1: []}
    for i, e in enumerate(events):
        p = 1 if e["model_version"] == "v1" and i % 3 == 0 else 0
        half[p].append(Message(json.dumps(e).encode(), p, len(half[p]), "predictions", b""))
    specs = [WindowSpec.from_config(w) for w in config.windows]
    sketches = Sketches({}, config.metrics)
    sink = MemorySink()
    merge = MergeStage(specs, sketches, sink, run_id="t", computed_at=lambda: 0)
    written: list[MetricRow] = []  # every write, in order (the sink keeps the last per key)
    merge.on_window.append(lambda result: written.extend(result.metrics))
    merge.expect([0, 1])
    stages = {p: PartitionStage(p, config, specs, sketches, MemoryDeadLetters()) for p in (0, 1)}
    if idle_first:
        merge.mark_idle(1)
        merge.add(stages[0].process(half[0]))
        merge.watermark(0, stages[0].watermark)
        merge.emit()
        merge.mark_idle(1, False)
        merge.add(stages[1].process(half[1]))
    else:
        merge.add(stages[0].process(half[0]) + stages[1].process(half[1]))
    merge.add(stages[0].finish() + stages[1].finish())
    merge.emit(final=True)
    sink.flush()
    first: dict[tuple[object, ...], float] = {}
    for r in written:
        if r.metric.startswith("vs_"):
            first.setdefault(_key(r), r.value)
    return first, {_key(r): r.value for r in _vs_rows(sink)}


def test_a_rewritten_baseline_window_rewrites_the_canarys_comparison() -> None:
    """The main version's window written while a partition was idle is rewritten when that
    partition delivers; the canary's comparison with it is rewritten too, and ends as if every
    partition had been there from the start (the canary's own window is not rewritten)."""
    _, whole = _merge_run(idle_first=False)
    first, last = _merge_run(idle_first=True)
    assert whole
    assert last == whole
    share = [k for k in first if k[0] == START and k[-1] == "vs_traffic_share"]
    assert share
    assert all(first[k] != last[k] for k in share), "the first write missed partition 1"


def _restarted_rows(crash_after: list[int]) -> dict[tuple[object, ...], tuple[float, int]]:
    """The comparison rows of a run over three partitions that 'crashes' after each count of
    messages in ``crash_after`` and resumes (:func:`tests.restarts.run_with_crashes`)."""
    sink = run_with_crashes(_config("unused:9092"), _events(), crash_after, batch=700)
    return {_key(r): (r.value, r.n) for r in _vs_rows(sink)}


def test_a_restarted_pipeline_writes_the_same_comparisons() -> None:
    want = _restarted_rows([])
    assert len({k[0] for k in want}) == HOURS
    rng = random.Random(9)
    assert _restarted_rows(sorted(rng.sample(range(1, HOURS * 3600), 5))) == want


def test_a_window_built_from_stored_windows_compares_as_one_kept_in_the_stream(
    tmp_path: Path,
) -> None:
    """``{size: 2h, from: 1h}`` (built from the stored 1h states) writes the comparison rows
    that ``{size: 2h}`` kept in the stream writes."""
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in _events()))

    def rows(window: dict[str, str]) -> dict[tuple[object, ...], tuple[float, int]]:
        config = Config.model_validate(
            {
                "windows": [{"size": "1h"}, window],
                "models": {"fraud": {"reference": "auto"}, "churn": {"reference": "auto"}},
            }
        )
        sink = MemorySink()
        replay(config, source=f"file:{path}", sink=sink, run_id="r")
        return {_key(r): (r.value, r.n) for r in _vs_rows(sink) if r.window == "2h"}

    derived, kept = rows({"size": "2h", "from": "1h"}), rows({"size": "2h"})
    assert kept
    assert derived.keys() == kept.keys()
    for key, (value, n) in kept.items():
        assert derived[key][1] == n
        assert derived[key][0] == pytest.approx(value, rel=1e-12, abs=1e-12), key


def _ramp(path: Path) -> None:
    """Five hours of ``fraud``: canary ``v2`` (scores 0.3 higher) serves 10%, 30%, 60%, 90%,
    then 100% of the traffic, one event every two seconds."""
    rng = random.Random(5)
    shares = [0.1, 0.3, 0.6, 0.9, 1.0]
    lines = []
    for i in range(HOURS * 1800):
        canary = rng.random() < shares[i // 1800]
        score = min(1.0, rng.betavariate(2, 5) + (0.3 if canary else 0.0))
        event = {
            "model": "fraud", "model_version": "v2" if canary else "v1",
            "ts": START + i * 2000, "event_id": f"e{i}", "features": {"amount": 1.0},
            "prediction": round(score, 6), "latency_ms": 10.0, "status": 200,
        }  # fmt: skip
        lines.append(json.dumps(event) + "\n")
    path.write_text("".join(lines))


def test_a_configured_baseline_version_stays_the_yardstick_as_the_canary_ramps_up(
    tmp_path: Path,
) -> None:
    """``models.<m>.baseline_version``: every other version is compared with that one, even
    once the canary serves most of the traffic (by default the baseline then flips to the
    canary and the stable version becomes the one compared); a window where it has no events
    gets no comparison rows."""
    path = tmp_path / "ramp.jsonl"
    _ramp(path)

    def vs_psi(model: dict[str, Any]) -> dict[int, tuple[str, str, float]]:
        config = Config.model_validate(
            {"windows": [{"size": "1h"}], "models": {"fraud": model}, "rules": []}
        )
        sink = MemorySink()
        replay(config, source=f"file:{path}", sink=sink, run_id="r")
        return {
            (r.window_start - START) // HOUR: (r.model_version, r.segment, r.value)
            for r in _vs_rows(sink)
            if r.metric == "vs_psi"
        }

    default = vs_psi({"reference": "auto"})
    assert [default[h][:2] for h in range(4)] == [("v2", "vs=v1")] * 2 + [("v1", "vs=v2")] * 2
    fixed = vs_psi({"reference": "auto", "baseline_version": "v1"})
    assert sorted(fixed) == [0, 1, 2, 3]  # hour 4: v1 serves nothing, nothing to compare with
    assert {fixed[h][:2] for h in fixed} == {("v2", "vs=v1")}
    assert all(fixed[h][2] > 0.5 for h in fixed)  # the shifted canary, every hour
    assert fixed[0] == default[0]  # where v1 is the larger anyway
    assert fixed[1] == default[1]


def test_a_baseline_version_that_never_serves_is_named_in_a_warning(tmp_path: Path) -> None:
    """A misspelt ``baseline_version`` writes no comparison rows, and says so per window with
    the versions the window has."""
    from structlog.testing import capture_logs

    path = tmp_path / "ramp.jsonl"
    _ramp(path)
    config = Config.model_validate(
        {"windows": [{"size": "1h"}], "rules": [],
         "models": {"fraud": {"reference": "auto", "baseline_version": "v1.0"}}}
    )  # fmt: skip
    sink = MemorySink()
    with capture_logs() as logs:
        replay(config, source=f"file:{path}", sink=sink, run_id="r")
    assert _vs_rows(sink) == []
    absent = [e for e in logs if e["event"] == "merge.baseline_version_absent"]
    assert [(e["start"] - START) // HOUR for e in absent] == [0, 1, 2, 3]
    assert {(e["baseline_version"], tuple(e["versions"])) for e in absent} == {
        ("v1.0", ("v1", "v2"))
    }
