"""Files and folders only their owner can read: events, alerts and state.

Everything drifthouse creates that holds events (dead letters ``*.dlq``, the spool), alerts (the
outbox) or state (alert state, the Slack message index, the embedded store) is created ``0600``
(files) or ``0700`` (folders), whatever the process's umask. An existing file is narrowed to
``0600`` when drifthouse rewrites it; an existing folder is left as its owner set it.

Example
-------
>>> import tempfile, pathlib
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> folder = private_dir(root / "state")
>>> with open_private(folder / "x.json", "w") as fh:
...     _ = fh.write("{}")
>>> oct((folder / "x.json").stat().st_mode & 0o777), oct(folder.stat().st_mode & 0o777)
('0o600', '0o700')
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO, Any

__all__ = ["PRIVATE_DIR", "PRIVATE_FILE", "open_private", "private_dir"]

PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700


def private_dir(path: str | os.PathLike[str]) -> Path:
    """Create folder ``path`` (and missing parents) ``0700``; an existing folder is kept as it is."""
    folder = Path(path)
    missing = []
    probe = folder
    while not probe.exists() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    folder.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    for created in missing:
        os.chmod(created, PRIVATE_DIR)  # mkdir's mode is cut by the umask, and parents ignore it
    return folder


def _opener(path: str, flags: int) -> int:
    fd = os.open(path, flags, PRIVATE_FILE)
    os.fchmod(
        fd, PRIVATE_FILE
    )  # the umask can only narrow os.open's mode; an old file keeps its own
    return fd


def open_private(path: str | os.PathLike[str], mode: str, **kwargs: Any) -> IO[Any]:
    """:func:`open` for a file only its owner may read and write (``0600``)."""
    return open(path, mode, opener=_opener, **kwargs)
