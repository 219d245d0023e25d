"""Freed memory goes back to the system: the worker's resident size does not keep its peaks."""

from __future__ import annotations

import gc
import subprocess
import sys
import textwrap
import weakref

from drifthouse.app import memory

_PEAK_AND_FREE = textwrap.dedent("""
    import sys
    from drifthouse.app import memory

    def rss_mb():
        for line in open("/proc/self/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024

    base = rss_mb()
    # 300 MB in 1 kB blocks: past Python's small-object allocator, below glibc's mmap
    # threshold, so they come from malloc's heap as a snapshot's buffers do.
    blocks = [bytes(1000) + i.to_bytes(8, "little") for i in range(300_000)]
    keep = blocks[-1]  # the block at the top of the heap stays, as live data would
    peak = rss_mb()
    del blocks
    freed = rss_mb()
    returned = memory.trim()
    print(base, peak, freed, rss_mb(), returned, len(keep))
""")


def test_trim_gives_freed_heap_memory_back() -> None:
    out = subprocess.run(
        [sys.executable, "-c", _PEAK_AND_FREE], capture_output=True, text=True, check=True
    ).stdout.split()
    base, peak, freed, trimmed = map(float, out[:4])
    assert peak - base > 250  # the blocks were resident
    assert freed - base > 200  # freeing them alone kept the pages (the top block pins the heap)
    assert out[4] == "True"
    assert trimmed - base < 50, (base, peak, freed, trimmed)  # trim gave them back


def test_calls_are_safe_to_repeat() -> None:
    first = memory.limit_arenas(2)
    assert memory.limit_arenas(2) == first
    memory.trim()
    memory.trim()


def test_collect_finds_cycles_the_collector_left() -> None:
    class Node:
        def __init__(self) -> None:
            self.other: Node | None = None

    gc.disable()  # as in a worker whose allocations and frees balance: no automatic runs
    try:
        refs = []
        for _ in range(1000):
            a, b = Node(), Node()
            a.other, b.other = b, a
            refs.append(weakref.ref(a))
        del a, b
        assert all(r() is not None for r in refs)  # unreachable, yet alive: nothing ran
        assert memory.collect(full=False) >= 2000
        assert all(r() is None for r in refs)
    finally:
        gc.enable()
