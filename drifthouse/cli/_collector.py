"""The cyclic garbage collector during a command's start-up.

A replay's start-up (importing Numba, SciPy and the engine, loading Numba's kernels, building
the configuration's models) leaves some 200,000 objects that live as long as the process, and
nearly no garbage: each young-generation collection over them found a few hundred objects and
cost 20-30 ms, four times in a one-event replay. :class:`StartUp` keeps the collector off until
the start-up is over, then freezes what it created, so later collections walk only what came
after it; the same as the worker's ``tune_gc`` (:mod:`drifthouse.app.worker`), with the
collector off until then rather than tuned.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

__all__ = ["StartUp"]


@dataclass
class StartUp:
    """The collector off from :meth:`begin` to :meth:`end`, the start-up heap frozen at
    :meth:`end`; :meth:`restore` leaves the collector as :meth:`begin` found it.

    Examples
    --------
    >>> start = StartUp.begin()
    >>> gc.isenabled()
    False
    >>> start.end()  # the first batch has gone through: the collector runs again
    >>> gc.isenabled(), gc.get_freeze_count() > 0
    (True, True)
    >>> start.restore()
    >>> gc.isenabled(), gc.get_freeze_count()
    (True, 0)
    """

    was_enabled: bool
    frozen_before: int
    over: bool = field(default=False)

    @classmethod
    @contextmanager
    def held(cls) -> Iterator[StartUp]:
        """:meth:`begin` on entry, :meth:`restore` on exit; the body calls :meth:`end`."""
        start = cls.begin()
        try:
            yield start
        finally:
            start.restore()

    @classmethod
    def begin(cls) -> StartUp:
        """Turn the collector off for a start-up."""
        start = cls(gc.isenabled(), gc.get_freeze_count())
        gc.disable()
        return start

    def end(self) -> None:
        """The start-up is over: freeze what it created and turn the collector on again.

        Called once the first batch has gone through, so the garbage the collector does not
        see is bounded by the start-up and one batch. Later calls do nothing.
        """
        if self.over:
            return
        self.over = True
        gc.freeze()
        if self.was_enabled:
            gc.enable()

    def restore(self) -> None:
        """The collector as :meth:`begin` found it (a process may run several commands)."""
        if self.was_enabled:
            gc.enable()
        if self.over and self.frozen_before == 0:
            gc.unfreeze()  # back to the oldest generation, collected as before
