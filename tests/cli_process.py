"""``drifthouse`` run as a user runs it: a fresh process, its output captured as text."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def run_cli(
    *args: str, cwd: Path, columns: int | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """``python -m drifthouse ARGS`` in ``cwd``; ``columns`` sets the width tables print at."""
    env = {**os.environ, "COLUMNS": str(columns)} if columns is not None else None
    return subprocess.run(
        [sys.executable, "-m", "drifthouse", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
