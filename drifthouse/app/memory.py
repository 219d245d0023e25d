"""Keep the worker's resident memory flat: collect its garbage cycles on a clock, and give
what it freed back to the system (glibc).

Python's cycle collector runs when allocations outnumber deallocations by a threshold. A worker
in steady state (its label join full, every new prediction evicting an old one) allocates
exactly as much as it frees, so the collector never runs again, and the few reference cycles
each batch leaves (asyncio futures and callbacks, exceptions and their frames) pile up without
end. :func:`collect` runs it on the worker's clock instead.

The merger's periodic snapshot builds and sends tens of megabytes at a time; once freed, glibc
keeps those pages in its heaps (one heap per thread that allocated, up to eight per core), so a
long-running worker's resident memory creeps up with every snapshot even though Python holds no
more objects. Two standard remedies, both no-ops where glibc is not the allocator:

- :func:`limit_arenas` caps the number of malloc heaps (``M_ARENA_MAX``) at start-up;
- :func:`trim` returns the free pages at the top and inside those heaps (``malloc_trim``) after
  a large transient allocation.

Examples
--------
>>> limit_arenas(2)  # doctest: +SKIP
>>> trim()           # doctest: +SKIP
True
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
from functools import cache
from typing import Any

__all__ = ["collect", "limit_arenas", "trim"]

_M_ARENA_MAX = -8  # mallopt parameter, from glibc's malloc.h


@cache
def _libc() -> Any | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.malloc_trim  # noqa: B018 - glibc only
        libc.mallopt  # noqa: B018
    except (OSError, AttributeError):
        return None
    return libc


def limit_arenas(arenas: int) -> bool:
    """Cap glibc's malloc heaps at ``arenas``; say whether the allocator took it."""
    libc = _libc()
    return bool(libc is not None and libc.mallopt(_M_ARENA_MAX, arenas) == 1)


def collect(*, full: bool) -> int:
    """Collect reference cycles: the young generations (a millisecond), or every generation
    (about 0.1 s with a full label join: its entries hold no references the collector follows);
    return how many objects were unreachable."""
    return gc.collect() if full else gc.collect(1)


def trim() -> bool:
    """Return free heap memory to the system; say whether any was returned."""
    libc = _libc()
    return bool(libc is not None and libc.malloc_trim(0) == 1)
