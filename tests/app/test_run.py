"""``drifthouse run``'s worker setup against the real broker: the topics it creates."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from drifthouse.app.run import build_worker
from drifthouse.config import Config
from drifthouse.kafka.admin import partitions_for


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
