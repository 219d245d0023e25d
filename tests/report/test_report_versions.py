"""The report's "Versions and shadows" table: a canary's comparison rows with the main
version (docs/metrics.md, "Version comparisons and shadows"), read back from the store."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

from drifthouse.cli import main
from tests.report.conftest import DemoRun


def test_a_canary_of_the_run_is_in_the_versions_table(demo_run: DemoRun, tmp_path: Path) -> None:
    """The reference day of fraud replayed with every tenth event served by a canary whose
    scores are 0.3 higher."""
    folder = demo_run.summary.folder
    config = str(demo_run.summary.config_path)
    rng = random.Random(3)
    lines = []
    for line in (folder / "reference" / "fraud.jsonl").read_text().splitlines():
        event = json.loads(line)
        if rng.random() < 0.1 and isinstance(event.get("prediction"), float):
            event["model_version"] = "canary"
            event["prediction"] = min(1.0, event["prediction"] + 0.3)
        lines.append(json.dumps(event))
    source = tmp_path / "canary.jsonl"
    source.write_text("\n".join(lines) + "\n")
    args = ["--source", f"file:{source}", "--to", "2026-01-01T06:00:00Z", "--run-id", "canary"]
    assert main(["replay", "-c", config, *args]) == 0
    out = tmp_path / "r.html"
    try:
        report = [
            "report",
            "-c",
            config,
            "--out",
            str(out),
            "--run-id",
            "canary",
            "--model",
            "fraud",
        ]
        assert main(report) == 0
    finally:  # the session's store is shared: leave only the demo's run
        assert main(["runs", "delete", "canary", "-c", config, "--yes"]) == 0
    page = out.read_text()
    assert "<h3>Versions and shadows</h3>" in page
    table = page[page.index("<h3>Versions and shadows</h3>") :]
    table = table[: table.index("</table>")]
    rows = re.findall(r"<tr>(.*?)</tr>", table)
    cells = [re.findall(r"<td[^>]*>(.*?)</td>", r) for r in rows]
    canary = [c for c in cells if c and c[0] == "canary" and c[2] == "vs_psi"]
    assert len(canary) == 1, cells
    _, against, _, windows, mean, peak = canary[0][:6]
    assert against.startswith("vs=")
    assert int(windows) >= 5
    assert float(peak) >= float(mean) > 0.25
