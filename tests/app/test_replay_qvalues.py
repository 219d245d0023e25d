"""A replay into the real embedded engine writes a Benjamini-Hochberg q-value beside every
p-value: one family per model-window (every feature and segment value), docs/statistics.md."""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import pytest
from scipy import stats as sst

from drifthouse.app.replay import replay_to_store
from drifthouse.config import load_config
from drifthouse.simulate import Scenario, simulate

_Key = tuple[str, int, str, str, str, str]  # window, start, model, version, feature, segment


@pytest.fixture(scope="module")
def stored(
    ch_dsn: str, ch_client: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[tuple[_Key, str], float]]:
    """The newest value of every metrics row of one replay, by (key, metric)."""
    folder = tmp_path_factory.mktemp("qvalues")
    scenario = Scenario.demo(days=1.5, rate_per_min=20, reference_hours=12)
    with open(folder / "events.jsonl", "wb") as ev:
        for r in simulate(scenario, seed=5):
            if r.topic != "labels":
                ev.write(r.value + b"\n")
    database = f"qvalues_{uuid.uuid4().hex[:10]}"
    path = folder / "drifthouse.yaml"
    settings = {
        "store": {"dsn": ch_dsn, "database": database},
        "windows": [{"size": "1h"}],
        "metrics": {"auto_reference_span": "12h"},
    }
    path.write_text(json.dumps(settings))
    replay_to_store(load_config(path), source=f"file:{folder / 'events.jsonl'}", run_id="q")
    result = ch_client.query(
        f"SELECT window, toUnixTimestamp64Milli(window_start), model, model_version, feature, "
        f"segment, metric, argMax(value, computed_at) FROM `{database}`.metrics "
        "WHERE metric LIKE '%\\_pvalue' OR metric LIKE '%\\_qvalue' "
        "GROUP BY window, window_start, model, model_version, feature, segment, metric"
    )
    yield {(tuple(row[:6]), row[6]): float(row[7]) for row in result.result_rows}  # type: ignore[misc]
    ch_client.command(f"DROP DATABASE IF EXISTS `{database}` SYNC")


def test_every_p_value_has_its_q_value_beside_it(stored: dict[tuple[_Key, str], float]) -> None:
    pvalues = {k: v for k, v in stored.items() if k[1].endswith("_pvalue")}
    qvalues = {k: v for k, v in stored.items() if k[1].endswith("_qvalue")}
    assert {m for _, m in pvalues} == {"ks_pvalue", "chi2_pvalue"}
    assert {(key, m.replace("_pvalue", "_qvalue")) for key, m in pvalues} == set(qvalues)
    assert any(key[5] for key, _ in qvalues), "segment values' tests are in the family"


def test_q_values_are_benjamini_hochberg_over_the_model_window(
    stored: dict[tuple[_Key, str], float],
) -> None:
    families: dict[tuple[str, int, str, str], list[tuple[tuple[_Key, str], float]]] = defaultdict(
        list
    )
    for (key, metric), value in sorted(stored.items()):
        if metric.endswith("_pvalue"):
            families[key[:4]].append(((key, metric), value))
    assert len(families) > 20
    sizes = set()
    for family in families.values():
        expected = sst.false_discovery_control([p for _, p in family]).tolist()
        got = [stored[(key, metric.replace("_pvalue", "_qvalue"))] for (key, metric), _ in family]
        assert got == expected  # to the last digit
        sizes.add(len(family))
    assert max(sizes) > 5
