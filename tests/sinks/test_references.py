from __future__ import annotations

import json
from typing import Any

from drifthouse.sinks.base import MemorySink
from drifthouse.sinks.clickhouse import ClickHouseSink
from drifthouse.sinks.references import reference_rows, store_reference
from tests.sinks import rowgen


def test_reference_rows_follow_the_profile() -> None:
    profile = rowgen.profile("fraud", "1.0.0")
    ref, sketches = reference_rows(profile, source="data/fraud.parquet")
    assert ref.created_at == 1_767_225_600_000  # 2026-01-01T00:00:00Z
    assert json.loads(ref.profile)["model"] == "fraud"
    amount = {s.metric: s for s in sketches if s.feature == "amount"}
    assert amount[""].counts == profile.feature("amount").counts
    assert set(amount["psi"].edges) <= set(amount[""].edges)
    assert {s.run_id for s in sketches} == {"reference"}
    country = next(s for s in sketches if s.feature == "country")
    assert country.labels[-1] == "__other__"
    assert len(country.labels) == len(country.counts)


def test_store_reference_twice_keeps_one_profile(store_client: Any, database: str) -> None:
    profile = rowgen.profile("fraud", "1.0.0")
    sink = ClickHouseSink(store_client, database=database)
    store_reference(sink, profile)
    store_reference(sink, profile)
    rows = store_client.query(
        "SELECT model, model_version, digest FROM `references` FINAL"
    ).result_rows
    assert rows == [("fraud", "1.0.0", profile.source_digest)]
    assert store_client.query(
        "SELECT count() FROM sketches FINAL WHERE run_id = 'reference'"
    ).result_rows == [(5,)]
    memory = MemorySink()
    store_reference(memory, profile)
    assert len(memory.rows("references")) == 1
