"""docs/operations.md, "Capacity": the table is the model's, computed from the inputs listed.

The inputs are measured by ``bench/bench_capacity.py`` and copied into the docs; the table
beside them must be what ``bench/capacity_model.py`` makes of them, so neither can drift from
the other (nothing is timed here).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from capacity_model import HEADER, Inputs, capacity, table  # noqa: E402

_INPUT = re.compile(r"^\| `(\w+)` \| ([\d,.]+) \|")


def _section() -> list[str]:
    text = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    found = re.search(r"^## Capacity\n(.*?)(?=^## |\Z)", text, re.MULTILINE | re.DOTALL)
    assert found is not None, "docs/operations.md has no '## Capacity' section"
    return found.group(1).splitlines()


def _inputs(lines: list[str]) -> Inputs:
    values = {}
    for line in lines:
        m = _INPUT.match(line)
        if m is not None and m.group(1) in Inputs.names():
            values[m.group(1)] = float(m.group(2).replace(",", ""))
    missing = set(Inputs.names()) - set(values)
    assert not missing, f"the Capacity section lists no value for {sorted(missing)}"
    return Inputs(**values)


def test_the_capacity_table_is_the_models_on_the_inputs_listed() -> None:
    lines = _section()
    assert HEADER in lines, "the Capacity section has no table with the model's header"
    start = lines.index(HEADER)
    shown = lines[start : start + len(table(_inputs(lines)))]
    assert shown == table(_inputs(lines))


@pytest.mark.parametrize("events", [100_000, 1_000_000])
def test_cores_and_traffic_grow_with_the_load(events: int) -> None:
    # The model's shape, whatever the inputs: ten times the events, ten times the source
    # cores and label records; a hundred times the models, a hundred times the windows.
    i = _inputs(_section())
    a, b = capacity(i, events, 100), capacity(i, 10 * events, 100)
    assert b.source_cores == pytest.approx(10 * a.source_cores)
    assert b.records_mb == pytest.approx(10 * a.records_mb)
    many = capacity(i, events, 10_000)
    assert many.partials_by_model == pytest.approx(100 * a.partials_by_model)
    assert many.partials_spread == pytest.approx(many.partials_by_model * many.partitions)
    assert a.merger_cores < a.merger_cores_labels
