"""``drifthouse run``'s worker setup against the real broker: the topics it creates."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from drifthouse.alerts import Alerting
from drifthouse.app.run import build_worker
from drifthouse.config import Config
from drifthouse.kafka.admin import partitions_for
from drifthouse.rows import MetricRow


@pytest.fixture
def topic(kafka_admin: Any) -> Iterator[str]:
    name = f"t-run-{uuid.uuid4().hex[:8]}"
    yield name
    existing = set(kafka_admin.list_topics())
    kafka_admin.delete_topics([t for t in existing if t.startswith(name)])


@pytest.mark.parametrize(
    ("settings", "partitions"),
    [
        pytest.param({}, 3, id="default-partitions"),
        pytest.param({"partitions": 5}, 5, id="configured-partitions"),
    ],
)
def test_run_creates_a_missing_predictions_topic(
    tmp_path: Path, kafka_bootstrap: str, topic: str, settings: dict[str, int], partitions: int
) -> None:
    config = Config.model_validate(
        {
            "kafka": {
                "bootstrap": kafka_bootstrap,
                "topic": topic,
                "labels_topic": f"{topic}-labels",
                "metrics_topic": f"{topic}-metrics",
                "partials_topic": f"{topic}-partials",
                "group": f"g-{topic}",
                **settings,
            },
            "store": {"path": str(tmp_path / "store")},
        }
    )
    build_worker(config, datadir=tmp_path / "faust")
    assert len(partitions_for(config.kafka, topic)) == partitions


def test_run_leaves_an_existing_predictions_topic_as_it_is(
    tmp_path: Path, kafka_bootstrap: str, make_topic: Any
) -> None:
    topic = make_topic(partitions=2)
    config = Config.model_validate(
        {
            "kafka": {
                "bootstrap": kafka_bootstrap,
                "topic": topic,
                "labels_topic": f"{topic}-labels",
                "metrics_topic": f"{topic}-metrics",
                "partials_topic": f"{topic}-partials",
                "group": f"g-{topic}",
                "partitions": 4,
            },
            "store": {"path": str(tmp_path / "store")},
        }
    )
    build_worker(config, datadir=tmp_path / "faust")
    assert len(partitions_for(config.kafka, topic)) == 2


def test_the_live_merger_keeps_its_alert_state_in_the_store(
    tmp_path: Path, kafka_bootstrap: str, topic: str, ch_dsn: str, ch_database: tuple[Any, str]
) -> None:
    """The merger's alerting (built when a worker becomes the merger) loads and saves its state
    in the store: a merger on another host (another, empty ``outbox_dir``) finds the alert
    firing and sends no new page for it."""
    _, database = ch_database

    def merger_alerting(host: str) -> Alerting:
        config = Config.model_validate(
            {
                "kafka": {
                    "bootstrap": kafka_bootstrap,
                    "topic": topic,
                    "labels_topic": f"{topic}-labels",
                    "metrics_topic": f"{topic}-metrics",
                    "partials_topic": f"{topic}-partials",
                    "group": f"g-{topic}",
                },
                "store": {"dsn": ch_dsn, "database": database},
                "rules": [{"name": "errors", "metric": "error_rate_5xx", "when": "value > 0.05"}],
                "routes": [{"receivers": ["console"], "group_wait": "0s", "group_interval": "1m"}],
                "receivers": {"console": {"type": "console"}},
                "alerting": {"outbox_dir": str(tmp_path / host)},
            }
        )
        worker = build_worker(config, datadir=tmp_path / host / "faust").drifthouse_worker
        alerting: Alerting = worker.merge.make(0).make_alerting()  # shard 0's merge loop
        return alerting

    def row(end: int, value: float) -> MetricRow:
        return MetricRow(window_start=end - 60_000, window_end=end, window="1m", model="m",
                         model_version="1", feature="", segment="", metric="error_rate_5xx",
                         value=value, n=100, run_id="live")  # fmt: skip

    first = merger_alerting("host-a")
    assert [a.status for a in first.process([row(60_000, 0.5)])] == ["firing"]
    first.save_state()
    first.close()
    second = merger_alerting("host-b")
    assert [a.rule for a in second.engine.firing()] == ["errors"]
    assert second.worker is not None
    assert [n.kind for n in second.worker.outbox.pending()] == []
    second.process([row(60_000, 0.5), row(120_000, 0.5)])
    assert second.worker.flush(timeout=10)
    assert second.worker.delivered == 0  # nothing paged again
    assert [a.status for a in second.process([row(180_000, 0.0)])] == ["resolved"]
    second.close()
    assert second.worker.delivered == 1
    assert not (tmp_path / "host-b" / "alert-state.json").exists()
