"""``drifthouse migrate`` creates the schema, and creates again tables dropped since.

The CLI runs in a subprocess: it opens its own embedded store, and one process may hold only
one embedded data folder at a time.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli_process import run_cli as _cli

_DROP = """
import sys, clickhouse_connect
client = clickhouse_connect.get_client(dsn="chdb://" + sys.argv[1])
for name in sys.argv[2:]:
    client.command(f"DROP TABLE drifthouse.`{name}`")
client.close()
"""


@pytest.mark.parametrize(
    "dropped",
    [pytest.param(["metrics", "silences"], id="a-results-table-and-another")],
)
def test_migrate_creates_again_what_was_dropped(tmp_path: Path, dropped: list[str]) -> None:
    (tmp_path / "drifthouse.yaml").write_text(json.dumps({"store": {"path": "./data"}}))
    first = _cli("migrate", "-c", "drifthouse.yaml", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "applied 1, 2, 3" in first.stdout
    subprocess.run(
        [sys.executable, "-c", _DROP, str(tmp_path / "data"), *dropped], check=True, timeout=60
    )
    again = _cli("migrate", "-c", "drifthouse.yaml", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert f"created again missing tables {', '.join(dropped)}" in again.stdout
    for name in dropped:
        found = _cli("sql", "-c", "drifthouse.yaml", f"SELECT count() FROM {name}", cwd=tmp_path)
        assert found.returncode == 0, found.stderr
    third = _cli("migrate", "-c", "drifthouse.yaml", cwd=tmp_path)
    assert "nothing to apply" in third.stdout
