"""One place assembles a run: no module of the package but ``app/assembly.py`` builds a
partition stage or a merge stage, so the worker, replays, the pipeline and the demo get the same
stages from the same settings."""

from __future__ import annotations

import ast
from pathlib import Path

import drifthouse
from drifthouse.app.assembly import AlertStage, RunParts
from drifthouse.config import Config
from drifthouse.sinks.base import MemorySink
from drifthouse.stream.dead_letters import MemoryDeadLetters

PACKAGE = Path(drifthouse.__file__).parent
ASSEMBLY = PACKAGE / "app" / "assembly.py"


def _builds_a_stage(node: ast.AST) -> bool:
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    if isinstance(func, ast.Name):
        return func.id in {"PartitionStage", "MergeStage"}
    return (
        isinstance(func, ast.Attribute)
        and func.attr == "from_config"
        and isinstance(func.value, ast.Name)
        and func.value.id == "MergeStage"
    )


def test_only_the_assembly_builds_stages() -> None:
    found = sorted(
        f"{path.relative_to(PACKAGE)}:{node.lineno}"
        for path in PACKAGE.rglob("*.py")
        if path != ASSEMBLY
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if _builds_a_stage(node)
    )
    assert found == [], "stages built outside drifthouse/app/assembly.py"


def test_the_alert_stage_is_known_to_the_merge_stage_when_it_is_built() -> None:
    parts = RunParts.of(Config(), {})
    callbacks: list[AlertStage] = []
    merge = parts.merge_stage(MemorySink(), on_window=callbacks)
    callbacks.append(None)  # type: ignore[arg-type]  # appended later: not the merge stage's
    assert merge.on_window == []
    stage = parts.partition_stage(3, MemoryDeadLetters())
    assert (stage.partition, stage.specs) == (3, parts.specs)
