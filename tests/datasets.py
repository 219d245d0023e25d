"""Public data that packages ship, as drifthouse events (no download)."""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

from river import datasets

from tests.cli_process import run_cli

#: river's bundled S&P 500: 1,257 trading days (2013-02-11 to 2018-02-06) of ten stocks'
#: daily returns and the next day's return of the index.
SP500 = Path(datasets.__file__).parent / "sp500.csv.gz"


def write_sp500_events(path: Path) -> int:
    """One event a trading day at 16:00 UTC: the ten returns as features, the next day's
    return as a regression prediction; returns how many were written."""
    n = 0
    with gzip.open(SP500, "rt") as fh, path.open("w") as out:
        for i, row in enumerate(csv.DictReader(fh)):
            day, target = row.pop("date"), float(row.pop("next_day_return"))
            event = {
                "model": "sp500", "model_version": "1", "ts": f"{day}T16:00:00Z",
                "event_id": f"d{i}", "features": {k: float(v) for k, v in row.items()},
                "prediction": target,
            }  # fmt: skip
            out.write(json.dumps(event) + "\n")
            n += 1
    return n


#: A configuration for those events: weekly windows on an automatic reference of the first year.
SP500_CONFIG = {
    "store": {"path": "./data"},
    "windows": [{"size": "7d"}],
    "models": {
        "sp500": {
            "reference": "auto",
            "reference_span": "365d",
            "task": "regression",
            "labels": False,
        }
    },
}


def replay_sp500(folder: Path, run_id: str) -> None:
    """Write the events and :data:`SP500_CONFIG` into ``folder`` and replay them there with
    ``drifthouse replay`` (a fresh process: one embedded store per process)."""
    write_sp500_events(folder / "events.jsonl")
    (folder / "drifthouse.yaml").write_text(json.dumps(SP500_CONFIG))
    replayed = run_cli(
        "replay", "-c", "drifthouse.yaml", "--source", "file:events.jsonl", "--run-id", run_id,
        cwd=folder,
    )  # fmt: skip
    assert replayed.returncode == 0, replayed.stderr
