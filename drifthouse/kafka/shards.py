"""Merge shards: which partition of the partials topic a model's traffic goes to.

The partials topic has ``kafka.partials_partitions`` partitions, each one **merge shard**: a
model's partials, label-join records, prediction-log rows, labels and metric events all go to
the partition :func:`shard_of` names, so one merger holds every window, label join, change
detector and rule of that model; watermarks go to every shard. The shard is a CRC-32 of the
model's UTF-8 name, never Python's ``hash`` (salted per process): every worker, on any machine
and any release, routes a model to the same shard.

Example
-------
>>> shard_of("fraud", 3)
1
>>> shard_of("fraud", 1)
0
"""

from __future__ import annotations

import zlib

__all__ = ["shard_of"]


def shard_of(model: str, shards: int) -> int:
    """The merge shard (partials partition) of ``model`` among ``shards``."""
    if shards < 1:
        raise ValueError(f"the number of merge shards must be at least 1 (got {shards})")
    return zlib.crc32(model.encode()) % shards
