"""What a bounded run reports about its rows (``sinks.base.WriteReport`` and ``finish``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from drifthouse.errors import RowsNotStored
from drifthouse.sinks.base import MemorySink, Refusal, WriteReport, finish
from tests.sinks import rowgen


def test_finish_closes_a_memory_sink_and_counts_its_rows() -> None:
    metrics, sketches, alerts = rowgen.results(hours=2)
    sink = MemorySink()
    sink.write([*metrics, *sketches, *alerts])
    report = finish(sink)
    assert sink.closed
    assert report.ok
    assert report.stored == {
        "metrics": len(metrics),
        "sketches": len(sketches),
        "alerts": len(alerts),
    }
    report.check()  # nothing to say


@pytest.mark.parametrize(
    ("report", "said"),
    [
        pytest.param(
            WriteReport(
                stored={"metrics": 5},
                refused=[
                    Refusal(
                        "alerts", 2, "ts 2024-01-01T00:00:00Z", "bad", Path("/s/1.alerts.rejected")
                    )
                ],
            ),
            [
                "5 rows stored (metrics 5)",
                "alerts: 2 rows refused (ts 2024-01-01T00:00:00Z): bad; kept in /s/1.alerts.rejected",
            ],
            id="refused",
        ),
        pytest.param(
            WriteReport(stored={}, spooled_rows=1_200, spool_dir=Path("/spool")),
            ["0 rows stored", "1,200 rows still in the spool at /spool"],
            id="spooled",
        ),
        pytest.param(
            WriteReport(refused=[Refusal("metrics", 1, "first key (1,)", "why")]),
            ["metrics: 1 rows refused", "not kept (no spool)"],
            id="refused-without-spool",
        ),
        pytest.param(
            WriteReport(
                refused=[
                    Refusal("alerts", n, f"ts {n}", f"why {n}", Path(f"/s/{n}.alerts.rejected"))
                    for n in (1, 4, 2)
                ]
            ),
            [
                "alerts: 7 rows refused in 3 inserts, the first (1 rows, ts 1): why 1",
                "kept in /s/1.alerts.rejected and 2 more files beside it",
            ],
            id="refused-again-and-again",
        ),
    ],
)
def test_a_run_that_did_not_store_everything_says_what_and_fails(
    report: WriteReport, said: list[str]
) -> None:
    assert not report.ok
    with pytest.raises(RowsNotStored) as info:
        report.check()
    for text in said:
        assert text in str(info.value)
