"""Ports for the servers tests start in child processes (a worker's health endpoint, the store's
SQL endpoint), which must be named before the child binds them.

Each pytest process takes ports from a block of its own, 17000 + 1000 * N for xdist worker
``gwN`` (the main process: block 0), below Linux's ephemeral range (32768-60999), so no client
connection of this machine is ever given one. A block is handed out in runs of 100 ports, the
next run each time, from a random one (other test sessions on the machine use the same blocks);
a port some process holds is skipped.
"""

from __future__ import annotations

import itertools
import os
import random
import socket

BASE = 17000
BLOCK = 1000
BLOCKS = 8
RUN = 100


def _block() -> int:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")  # "gw3" under xdist
    index = int(worker[2:]) if worker[2:].isdigit() else 0
    return BASE + BLOCK * (index % BLOCKS)


_START = _block()
_RUNS = itertools.count(random.randrange(BLOCK // RUN))


def port_run() -> int:
    """The first port of a run of :data:`RUN` ports of this process's block, the next run each
    call (a run is free of other users of this process until the block comes round again)."""
    return _START + (next(_RUNS) % (BLOCK // RUN)) * RUN


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def free_port(start: int | None = None) -> int:
    """The first port no process holds now from ``start`` on (default: a new :func:`port_run`),
    within this process's block (past its end: from its start)."""
    first = port_run() if start is None else start
    for i in range(BLOCK):
        port = _START + (first - _START + i) % BLOCK
        if _free(port):
            return port
    raise RuntimeError(f"every port of {_START}-{_START + BLOCK - 1} is taken")
