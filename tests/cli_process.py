"""``drifthouse`` run as a user runs it: a fresh process, its output captured as text."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
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


#: A process that holds a workspace's embedded store and serves its SQL endpoint, as a worker
#: does: it prints "ready" once serving and stops when its standard input closes.
_HOLD = """
import sys
from drifthouse.config import load_config
from drifthouse.sinks import Limits, open_store, serve_readonly
cfg = load_config("drifthouse.yaml")
client = open_store(cfg.store_dsn(), cfg.store.database)
server = serve_readonly(client, cfg.store.serve_port, token_file=cfg.sql_token_path(),
                        limits=Limits.of(cfg.store))
print("ready", flush=True)
sys.stdin.read()
server.close()
"""


@contextlib.contextmanager
def store_held(workspace: Path) -> Iterator[None]:
    """``workspace``'s store (its ``drifthouse.yaml``) held by another process serving its SQL
    endpoint, as a worker holds it, for the time of the ``with``."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLD],
        cwd=workspace,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={"PYTHONPATH": str(Path(__file__).resolve().parents[1]), "PATH": "/usr/bin:/bin"},
    )
    assert proc.stdout is not None
    assert proc.stdin is not None
    try:
        assert proc.stdout.readline().strip() == "ready"
        yield
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)


def replay_labelled(folder: Path, config: Path, task: str, query: str) -> list[dict[str, object]]:
    """Model ``m`` on the profile ``m.json`` (``task``), one-hour windows, the embedded store
    in ``folder/data``: replay ``predictions.jsonl`` with ``labels.jsonl`` from ``folder``,
    then return what ``drifthouse sql`` prints for ``query`` as JSON rows."""
    import json

    config.write_text(
        json.dumps(
            {
                "store": {"path": "./data"},
                "windows": [{"size": "1h"}],
                "models": {"m": {"reference": "m.json", "task": task}},
            }
        )
    )
    done = run_cli(
        "replay", "-c", str(config), "--source", "file:predictions.jsonl",
        "--labels", "file:labels.jsonl", cwd=folder, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    done = run_cli("sql", "-c", str(config), "--format", "json", query, cwd=folder)
    assert done.returncode == 0, done.stderr
    rows: list[dict[str, object]] = json.loads(done.stdout)
    return rows
