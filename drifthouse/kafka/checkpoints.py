"""Committed offsets with their metadata: where a worker resumes a partition.

The worker commits, per partition, the offset of its checkpoint with the checkpoint itself in
the commit metadata (see :mod:`drifthouse.app.source_loop`), so offset and state are stored by
Kafka in one atomic write. This module reads them back with kafka-python's admin client.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from drifthouse.config import KafkaConfig
from drifthouse.kafka.admin import admin_client

__all__ = ["read_commits"]


def read_commits(
    cfg: KafkaConfig,
    group: str,
    topic: str,
    partitions: Sequence[int],
    *,
    timeout_ms: int | None = None,
) -> dict[int, tuple[int, str]]:
    """Per partition that has a commit: ``(offset, metadata)`` committed by ``group``."""
    from kafka import TopicPartition
    from kafka.errors import (
        CoordinatorLoadInProgressError,
        CoordinatorNotAvailableError,
        NotCoordinatorError,
    )

    tps = [TopicPartition(topic, p) for p in partitions]
    timeout_ms = cfg.timeout if timeout_ms is None else timeout_ms
    deadline = time.monotonic() + timeout_ms / 1000
    with admin_client(cfg, timeout_ms=timeout_ms) as admin:
        while True:
            try:
                found = admin.list_group_offsets({group: tps})[group]
                break
            except (
                CoordinatorNotAvailableError,
                CoordinatorLoadInProgressError,
                NotCoordinatorError,
            ):
                # A fresh cluster answers the first look-ups with "coordinator not available".
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
    return {
        tp.partition: (int(meta.offset), meta.metadata or "")
        for tp, meta in found.items()
        if meta.offset is not None and meta.offset >= 0
    }
