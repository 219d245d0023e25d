"""The worker's patches of faust and aiokafka internals still fit what is installed.

:mod:`drifthouse.kafka.faust_patches` replaces or relies on private attributes of faust-streaming
and aiokafka. An upgrade may rename them or change what they do without a word; these tests fail
first: the installed versions must be those the patches were checked against (and pinned in
``pyproject.toml``), and every attribute patched or relied on must exist with the source it had
then.
"""

from __future__ import annotations

import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest

from drifthouse.kafka import faust_patches
from drifthouse.kafka.faust_patches import CHECKED_AGAINST, TARGETS, fingerprint, resolve

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("distribution", sorted(CHECKED_AGAINST))
def test_installed_versions_are_those_the_patches_were_checked_against(distribution: str) -> None:
    assert version(distribution) == CHECKED_AGAINST[distribution], (
        f"{distribution} {version(distribution)} is installed, the patches in "
        f"drifthouse/kafka/faust_patches.py were checked against {CHECKED_AGAINST[distribution]}: "
        "read what each target does now, fix the patch, then record the new version and source hashes"
    )


@pytest.mark.parametrize("distribution", sorted(CHECKED_AGAINST))
def test_pyproject_pins_the_versions_checked_against(distribution: str) -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    pins = project["project"]["dependencies"]
    assert f"{distribution}=={CHECKED_AGAINST[distribution]}" in pins


@pytest.mark.parametrize("target", TARGETS, ids=[t.path for t in TARGETS])
def test_each_patched_attribute_has_the_source_it_was_checked_against(
    target: faust_patches.Target,
) -> None:
    found = resolve(target.path)  # AttributeError: renamed or gone
    assert fingerprint(found) == target.sha256, (
        f"{target.path} changed since the patch was checked ({target.why}); read it, fix the "
        "patch, then record its new hash"
    )
