"""The ``drifthouse`` command line (the README's "Command line").

Commands parse their arguments and call library functions; nothing else lives here. One module
per group of commands, registered in the order ``drifthouse --help`` lists them:
:mod:`~drifthouse.cli.check` (``check``, ``version``), :mod:`~drifthouse.cli.pipeline`
(``demo``, ``profile``, ``run``), :mod:`~drifthouse.cli.replay`, :mod:`~drifthouse.cli.store`
(``sql``, ``migrate``, ``silence``), :mod:`~drifthouse.cli.runs` (``runs``,
``runs delete``), :mod:`~drifthouse.cli.report`, :mod:`~drifthouse.cli.labels`
(``labels join``) and
:mod:`~drifthouse.cli.produce`.

Exit codes: 0 success, 2 usage or configuration errors, 1 any other failure. A
:class:`~drifthouse.errors.DrifthouseError` prints one red line (and, for a configuration
error, every problem as ``file:line path: message``) without a traceback, unless ``--debug``.
"""

from __future__ import annotations

import atexit
import functools
import gc
import sys
from collections.abc import Sequence

from rich.text import Text

from drifthouse import logs

# The command modules register their commands on `app` when imported, in this order.
from drifthouse.cli import check, pipeline, replay, store, runs, report, labels, produce  # noqa: F401  # isort: skip
from drifthouse.cli._common import State, app, err
from drifthouse.errors import ConfigError, DrifthouseError, UsageError

__all__ = ["app", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return its exit code (the ``drifthouse`` entry point).

    ``argv`` defaults to ``sys.argv[1:]``.
    """
    State.debug = False
    logs.forget_secrets()  # a command masks the secrets of its own config (and clients)
    thresholds = gc.get_threshold()
    # A replay's imports leave some 170,000 objects the cyclic collector tracks, nearly all
    # living as long as the process (functions, classes, Numba's and SciPy's tables); with
    # the default thresholds the collector walked them about 400 times, 0.17-0.5 s of a
    # one-event replay on a busy 2-core machine. The young generation is collected every 50,000
    # allocations instead, as in the worker (drifthouse.app.worker.tune_gc); objects
    # without cycles are freed as before.
    gc.set_threshold(50_000, 20, 10)
    _freeze_the_heap_at_exit()
    try:
        app(args=list(argv) if argv is not None else None, prog_name="drifthouse")
    except SystemExit as exc:
        return _exit_code(exc.code)
    except DrifthouseError as exc:
        if State.debug:
            raise
        _print_error(exc)
        return 2 if isinstance(exc, ConfigError | UsageError) else 1
    finally:
        gc.set_threshold(*thresholds)
    return 0


@functools.cache
def _freeze_the_heap_at_exit() -> None:
    """Leave the process's objects to the operating system when the interpreter exits.

    While tearing its modules down, CPython collects the whole heap several times: after a
    replay, some 160,000 objects of Numba, SciPy and the engine, 0.2-0.4 s on a busy 2-core
    machine, more than the replay of a small file itself. Frozen objects are left out of those
    walks. Nothing is lost: a command closes its files, sinks and progress bars itself, the
    exit handlers registered after this one (logging, the engine's client) run before it, and
    objects without reference cycles are still freed one by one. Registered once, at the
    first command; the heap is frozen only at exit, so a process that calls :func:`main`
    several times (tests) collects as usual until then.
    """
    atexit.register(gc.freeze)


def _exit_code(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    err.print(str(code))
    return 1


def _print_error(exc: DrifthouseError) -> None:
    # The one place errors reach the user: no piece of a known secret gets past it.
    scrub = logs.scrub
    err.print(Text(scrub(f"error: {exc}"), "bold red"))
    if isinstance(exc, ConfigError):
        for where, message in exc.problems:
            err.print(Text.assemble((f"{scrub(where)}: ", "bold"), (scrub(message), "red")))
    err.print(Text("run with --debug for details", "dim"))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
