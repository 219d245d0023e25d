"""Fuzzing ``Pipeline.process``: hostile input mixed with valid events, cut into random batches.

Every input is made with a known fate: *valid* (counted in the ``events`` metric), *bad*
(dead-lettered as invalid: random bytes, deep nesting, over-size messages, non-finite numbers
where a finite one is required, a wrong type in any field, a time far in the future) or *late*
(a clock-skewed time behind a closed window: dead-lettered as ``late``). The pipeline must never
raise, must dead-letter exactly the bad and late inputs, each with a reason, and must count every
valid event. The number of inputs tried is printed at the end of the session.
"""

from __future__ import annotations

import itertools
import json
import random
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drifthouse.app.pipeline import Pipeline
from drifthouse.config import Config
from drifthouse.detectors.reference import Profile
from drifthouse.profiles.columns import build_profile
from drifthouse.sinks import MemorySink
from drifthouse.stream.dead_letters import MemoryDeadLetters
from drifthouse.stream.sources import Message

NOW = 1_767_225_600_000 + 30 * 86_400_000  # the pipeline's clock, for the far-future guard
START = NOW - 2 * 86_400_000
MAX_BYTES = 16_384
CONFIG = Config.model_validate(
    {"kafka": {"max_message_bytes": MAX_BYTES}, "windows": [{"size": "1h"}]}
)
REASONS = {"too_large", "invalid_json", "schema", "non_finite", "future_ts", "late"}
TRIED: Counter[str] = Counter()


@pytest.fixture(scope="module", autouse=True)
def _report(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    line = (
        f"pipeline fuzz: {sum(TRIED.values()) - TRIED['examples']:,} inputs in "
        f"{TRIED['examples']:,} examples (valid {TRIED['valid']:,}, bad {TRIED['bad']:,}, "
        f"late {TRIED['late']:,})"
    )
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if capture is None:  # pragma: no cover
        print(line)
        return
    with capture.global_and_fixture_disabled():
        print("\n" + line)


def _profile() -> Profile:
    n = 400
    return build_profile(
        model="known",
        model_version="1",
        created_at="2026-01-01T00:00:00Z",
        source_digest="fuzz",
        settings=CONFIG.metrics,
        features={
            "x": [float(i % 37) for i in range(n)],
            "c": [["a", "b", "c"][i % 3] for i in range(n)],
        },
        prediction=[(i % 10) / 10 for i in range(n)],
        latency_ms=[5.0 + i % 9 for i in range(n)],
        status=[200] * n,
    )


PROFILES = {"known": _profile()}

# -- what the inputs are made of ---------------------------------------------------------------------

models = st.one_of(st.just("known"), st.text(min_size=1, max_size=12).map(lambda s: "m-" + s))
feature_values = st.one_of(
    st.none(),
    st.booleans(),
    st.floats(),  # NaN and infinities: welcome in features, counted as non_finite
    st.integers(min_value=-(10**30), max_value=10**30),
    st.text(max_size=20),
    st.integers(1_000, 3_500).map(lambda n: "x" * n),  # huge strings; 4 stay under the bound
)


@st.composite
def valid_events(draw: st.DrawFn) -> dict[str, Any]:
    event: dict[str, Any] = {
        "model": draw(models),
        "features": draw(
            st.dictionaries(
                st.one_of(st.sampled_from(["x", "c"]), st.text(max_size=10)),
                feature_values,
                max_size=4,
            )
        ),
    }
    optional = {
        "model_version": st.text(max_size=8),
        "event_id": st.text(max_size=12),
        "prediction": st.one_of(
            st.floats(allow_nan=False, allow_infinity=False),
            st.text(max_size=5),
            st.dictionaries(st.text(max_size=3), st.floats(0, 1), min_size=1, max_size=3),
        ),
        "latency_ms": st.floats(min_value=0, max_value=1e9),
        "status": st.integers(min_value=100, max_value=599),
        "segment": st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2),
    }
    for name, strategy in optional.items():
        if draw(st.booleans()):
            event[name] = draw(strategy)
    return event


# One clearly wrong value per field: each makes a valid event invalid.
WRONG: dict[str, list[Any]] = {
    "model": [None, 123, "", [], {"a": 1}, True],
    "ts": [None, "yesterday", "2026-01-01T00:00:00", [], {}, -5, 1.5, True],
    "features": [None, [], "x", 3, {"a": [1, "x"]}, {"a": {"b": 1}}],  # [1]: an embedding
    "model_version": [None, 5, [], {}],
    "event_id": [5, [], {}],
    "prediction": [[0.1, 0.9], {"a": "x"}, {"a": None}, True],
    "latency_ms": [-1.0, "fast", [], {}],
    "status": [99, 600, "200", 200.5, None, True],
    "segment": [[], "x", {"a": 1}, {"a": None}],
}
NON_FINITE = ["NaN", "Infinity", "-Infinity", "1e999"]


@st.composite
def bad_inputs(draw: st.DrawFn) -> tuple[str, Any]:
    """``("raw", bytes)`` or ``("event", dict)`` made to be refused whatever time it gets."""
    kind = draw(
        st.sampled_from(
            ["bytes", "json", "nested", "oversize", "wrong_type", "missing", "non_finite"]
        )
    )
    if kind == "bytes":
        return "raw", b"\xff" + draw(st.binary(max_size=200))  # never UTF-8
    if kind == "json":
        value = draw(
            st.one_of(
                st.none(), st.booleans(), st.floats(), st.text(max_size=20),
                st.lists(st.integers(), max_size=5),
            )
        )  # fmt: skip
        return "raw", json.dumps(value).encode()  # JSON, but not an object
    if kind == "nested":
        depth = draw(st.sampled_from([200, 5_000, 100_000]))
        inner = "[" * depth + "]" * depth
        where = draw(st.sampled_from(["top", "feature"]))
        if where == "top":
            return "raw", inner.encode()
        return "raw", ('{"model":"known","ts":1,"features":{"a":' + inner + "}}").encode()
    if kind == "oversize":
        event = draw(valid_events())
        event["event_id"] = "z" * (MAX_BYTES + draw(st.integers(0, 5_000)))
        return "event", event
    event = draw(valid_events())
    if kind == "wrong_type":
        name = draw(st.sampled_from(sorted(WRONG)))
        event[name] = draw(st.sampled_from(WRONG[name]))
        return "event", event
    if kind == "missing":
        return "event", {**event, "drop": draw(st.sampled_from(["model", "ts", "features"]))}
    name = draw(st.sampled_from(["prediction", "latency_ms"]))
    return "event", {**event, "literal": (name, draw(st.sampled_from(NON_FINITE)))}


@st.composite
def streams(draw: st.DrawFn) -> tuple[list[tuple[str, str, Any, int]], list[int]]:
    """``[(fate, how, payload, partition)]`` and the batch cuts."""
    items: list[tuple[str, str, Any, int]] = []
    for partition in (0, 1):  # an on-time anchor first: skewed times after it are late
        items.append(("valid", "event", draw(valid_events()), partition))
    count = draw(st.integers(min_value=1, max_value=60))
    for _ in range(count):
        partition = draw(st.sampled_from([0, 1]))
        fate = draw(st.sampled_from(["valid", "valid", "bad", "future", "late"]))
        if fate == "bad":
            how, payload = draw(bad_inputs())
            items.append(("bad", how, payload, partition))
        else:
            items.append((fate, "event", draw(valid_events()), partition))
    cuts = sorted(draw(st.lists(st.integers(0, len(items)), max_size=6)))
    return items, cuts


def _encode(event: dict[str, Any], ts: int) -> bytes:
    event = dict(event)
    drop = event.pop("drop", None)
    literal = event.pop("literal", None)
    event.setdefault("ts", ts)
    if drop is not None:
        event.pop(drop, None)
    raw = json.dumps(event)
    if literal is not None:
        name, text = literal
        event[name] = "@@LITERAL@@"
        raw = json.dumps(event).replace('"@@LITERAL@@"', text)
    return raw.encode()


def _materialise(
    items: list[tuple[str, str, Any, int]], rng_ts: list[int]
) -> tuple[list[Message], Counter[str]]:
    """Messages with event times: nondecreasing per partition for valid events."""
    clock = {0: START, 1: START}
    offsets = {0: 0, 1: 0}
    messages: list[Message] = []
    fates: Counter[str] = Counter()
    for (fate, how, payload, partition), step in zip(items, rng_ts, strict=True):
        if fate == "valid":
            clock[partition] += step
            ts = clock[partition]
        elif fate == "future":
            ts = NOW + 2 * 3_600_000 + step  # beyond the 1 h the guard allows
        elif fate == "late":
            ts = START - 3 * 86_400_000 + step  # days behind the anchor's window
        else:
            ts = clock[partition]
        raw = payload if how == "raw" else _encode(payload, ts)
        key = payload.get("model", "").encode() if isinstance(payload, dict) and isinstance(payload.get("model"), str) else None  # fmt: skip
        messages.append(Message(raw, partition, offsets[partition], "predictions", key))
        offsets[partition] += 1
        fates["invalid" if fate in ("bad", "future") else fate] += 1
    return messages, fates


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    stream=streams(),
    steps=st.lists(st.integers(0, 20 * 60_000), min_size=70, max_size=70),
)
def test_hostile_input_is_dead_lettered_and_valid_events_counted(
    stream: tuple[list[tuple[str, str, Any, int]], list[int]], steps: list[int]
) -> None:
    items, cuts = stream
    check(items, cuts, steps[: len(items)])


def check(items: list[tuple[str, str, Any, int]], cuts: list[int], steps: list[int]) -> None:
    """Run ``items`` cut at ``cuts`` through a pipeline; check every fate was honoured."""
    messages, fates = _materialise(items, steps)
    sink, dead = MemorySink(), MemoryDeadLetters()
    pipeline = Pipeline(
        config=CONFIG, profiles=PROFILES, sink=sink, dead_letters=dead, now_ms=lambda: NOW
    )
    pipeline.expect_partitions([0, 1])
    bounds = [0, *cuts, len(messages)]
    for lo, hi in itertools.pairwise(bounds):
        pipeline.process(messages[lo:hi])
    pipeline.finish()
    sink.flush()

    TRIED["examples"] += 1
    TRIED["valid"] += fates["valid"]
    TRIED["bad"] += fates["invalid"]
    TRIED["late"] += fates["late"]

    reasons = Counter(d.reason for d in dead.letters)
    assert set(reasons) <= REASONS
    assert all(d.path and d.error for d in dead.letters)
    assert reasons["late"] == fates["late"], reasons
    assert sum(reasons.values()) - reasons["late"] == fates["invalid"], reasons
    stats = pipeline.stats
    assert (stats.invalid, stats.late) == (fates["invalid"], fates["late"])
    assert stats.messages == len(messages)

    totals: Counter[str] = Counter()
    for row in sink.rows("metrics"):
        if row.feature == "" and row.segment == "":
            totals[row.metric] += row.value
    assert totals["events"] == fates["valid"]
    assert totals["invalid_events"] == fates["invalid"]
    assert totals["late_events"] == fates["late"]


# -- volume: the same kinds of input, drawn by a seeded generator -------------------------------------


def _random_text(rng: random.Random, size: int) -> str:
    alphabet = "aZ9 '\"\\;-_{}[]:,\n\t\u00e9\u4e2d\U0001f680\u202e"
    return "".join(rng.choice(alphabet) for _ in range(size))


def _random_value(rng: random.Random) -> Any:
    pick = rng.randrange(7)
    if pick == 0:
        return None
    if pick == 1:
        return rng.random() < 0.5
    if pick == 2:
        return rng.choice([float("nan"), float("inf"), -float("inf"), rng.uniform(-1e300, 1e300)])
    if pick == 3:
        return rng.randint(-(10**30), 10**30)
    if pick == 4:
        return "x" * rng.randint(1_000, 3_500)
    return _random_text(rng, rng.randrange(20))


def _random_valid(rng: random.Random) -> dict[str, Any]:
    event: dict[str, Any] = {
        "model": "known" if rng.random() < 0.5 else "m-" + _random_text(rng, rng.randint(1, 8)),
        "features": {
            rng.choice(["x", "c", _random_text(rng, 6)]): _random_value(rng)
            for _ in range(rng.randrange(5))
        },
    }
    if rng.random() < 0.5:
        event["model_version"] = _random_text(rng, 4)
    if rng.random() < 0.5:
        event["prediction"] = rng.choice([rng.random(), "yes", {"1": rng.random()}])
    if rng.random() < 0.5:
        event["latency_ms"] = rng.uniform(0, 1e6)
    if rng.random() < 0.5:
        event["status"] = rng.randint(100, 599)
    if rng.random() < 0.5:
        event["segment"] = {_random_text(rng, 3): _random_text(rng, 3)}
    return event


def _random_bad(rng: random.Random) -> tuple[str, Any]:
    kind = rng.randrange(7)
    if kind == 0:
        return "raw", b"\xff" + rng.randbytes(rng.randrange(200))
    if kind == 1:
        return "raw", json.dumps(rng.choice([None, True, 1.5, "text", [1, 2]])).encode()
    if kind == 2:
        depth = rng.choice([200, 5_000, 100_000])
        return "raw", ("[" * depth + "]" * depth).encode()
    event = _random_valid(rng)
    if kind == 3:
        event["event_id"] = "z" * (MAX_BYTES + rng.randrange(5_000))
    elif kind == 4:
        name = rng.choice(sorted(WRONG))
        event[name] = rng.choice(WRONG[name])
    elif kind == 5:
        event["drop"] = rng.choice(["model", "ts", "features"])
    else:
        event["literal"] = (rng.choice(["prediction", "latency_ms"]), rng.choice(NON_FINITE))
    return "event", event


@pytest.mark.parametrize("seed", range(4))
def test_hostile_input_in_volume(seed: int) -> None:
    rng = random.Random(seed)
    items: list[tuple[str, str, Any, int]] = [
        ("valid", "event", _random_valid(rng), 0),
        ("valid", "event", _random_valid(rng), 1),
    ]
    for _ in range(5_000):
        fate = rng.choice(["valid", "valid", "bad", "future", "late"])
        partition = rng.randrange(2)
        if fate == "bad":
            how, payload = _random_bad(rng)
            items.append((fate, how, payload, partition))
        else:
            items.append((fate, "event", _random_valid(rng), partition))
    cuts = sorted(rng.randrange(len(items)) for _ in range(rng.randint(1, 60)))
    steps = [rng.randrange(60_000) for _ in items]
    check(items, cuts, steps)
