"""The demo's folder: its configuration file, reference profiles and (by default) its store.

``./demo-data`` holds ``drifthouse.yaml`` (the configuration the demo runs with, so
``drifthouse sql -c demo-data/drifthouse.yaml`` and ``drifthouse replay -c ...`` work
afterwards), ``reference/<model>.jsonl`` (the clean first day of each model),
``profiles/<model>.profile.json`` and, unless ``--store`` names another store, the embedded
ClickHouse folder ``store/``.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import yaml

from drifthouse.alerts import load_default_rules
from drifthouse.config import Config, load_config
from drifthouse.detectors.reference import Profile
from drifthouse.errors import UsageError
from drifthouse.profiles.build import build_profile_from_file
from drifthouse.simulate import Record

__all__ = [
    "CONFIG_FILE",
    "DEMO_RULES",
    "MARKER",
    "RUN_ID",
    "WINDOWS",
    "build_profiles",
    "prepare_folder",
    "write_config",
]

RUN_ID = "demo"
CONFIG_FILE = "drifthouse.yaml"
MARKER = ".drifthouse-demo"
STORE_DIR = "store"
WINDOWS: list[dict[str, str]] = [{"size": "1h"}, {"size": "15m", "hop": "5m"}]

#: Data-quality rules the demo adds to the shipped defaults (which cover serving, latency,
#: accuracy and drift, but leave quality thresholds to each deployment).
DEMO_RULES: list[dict[str, Any]] = [
    {
        "name": "new-category",
        "metric": "new_category",
        "when": "value > 0.01 * n",
        "clear": "value == 0",
        "severity": "warning",
        "message": "{model}/{feature}: {value} events with a category the reference never saw",
    },
    {
        "name": "missing-values",
        "metric": "missing_rate",
        "when": "value > baseline + 0.1",
        "clear": "value < baseline + 0.05",
        "for": 2,
        "severity": "warning",
    },
]

_HEADER = """\
# Written by `drifthouse demo`: the configuration the demo ran with. Try
#   drifthouse sql -c {path} "SELECT * FROM alerts FINAL ORDER BY ts"
#   drifthouse check -c {path}
# The demo replaces this folder's store and files each time it runs.
"""


def prepare_folder(folder: Path, store: str | None) -> None:
    """Create the demo folder, or clear what an earlier demo left in it.

    A folder the demo did not make (no marker file) is left alone unless it is empty.
    """
    ours = (folder / MARKER).exists()
    if folder.exists() and not ours and (not folder.is_dir() or any(folder.iterdir())):
        raise UsageError(
            f"{folder} exists and was not made by `drifthouse demo`; run the demo from "
            "another folder, or remove it"
        )
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MARKER).write_text("made by drifthouse demo; it replaces this folder's content\n")
    # The embedded store of an earlier run goes; a --store server keeps its other data (the
    # demo deletes only its own run's rows there, see run.py).
    for name in ([STORE_DIR] if store is None else []) + ["alerting", "profiles", "reference"]:
        shutil.rmtree(folder / name, ignore_errors=True)


def _store_section(store: str | None) -> tuple[dict[str, str], str | None]:
    """The ``store:`` section, and a note when a password was kept out of the file."""
    if store is None:
        return {"path": STORE_DIR}, None
    parts = urlsplit(store)
    if parts.password:
        # The file must not hold the password: it comes from the environment instead.
        netloc = f"{parts.username}:${{CLICKHOUSE_PASSWORD}}@{parts.hostname}"
        netloc += f":{parts.port}" if parts.port else ""
        masked = urlunsplit(parts._replace(netloc=netloc))
        return {"dsn": masked}, "set CLICKHOUSE_PASSWORD before running the queries below"
    return {"dsn": store}, None


def write_config(
    folder: Path, store: str | None, profiles: Sequence[str]
) -> tuple[Config, Path, str | None]:
    """Write ``drifthouse.yaml`` into ``folder`` and load it back (the run uses the file's tree).

    Returns the configuration, the file's path and a note for the user (or ``None``).
    """
    section, note = _store_section(store)
    rules = [r.model_dump(by_alias=True, exclude_unset=True) for r in load_default_rules()]
    data: dict[str, Any] = {
        "store": section,
        "windows": WINDOWS,
        # Labels trickle in for two hours after each prediction: rewrite a window's label
        # metrics at most every 30 simulated minutes (the last write holds every label).
        # Drift attribution on (off by default; exact in a bounded run: docs/statistics.md).
        "metrics": {"label_rewrite_every": "30m", "attribution_top_k": 3},
        "models": {m: {"reference": f"profiles/{m}.profile.json"} for m in profiles},
        "rules": rules + DEMO_RULES,
        # Critical alerts page (pagerduty) and reach the team channel (slack); warnings only
        # reach the channel. Both are console receivers here: `drifthouse replay --notify`
        # with this file prints what they would have sent.
        "routes": [
            {"match": {"severity": "critical"}, "receivers": ["pagerduty", "slack"]},
            {"match": {"severity": "warning"}, "receivers": ["slack"]},
        ],
        "receivers": {"pagerduty": {"type": "console"}, "slack": {"type": "console"}},
        "alerting": {"outbox_dir": "alerting"},
    }
    path = folder / CONFIG_FILE
    text = yaml.safe_dump(data, sort_keys=False, width=100)
    path.write_text(_HEADER.format(path=path) + text, encoding="utf-8")
    if note is not None:
        # Load with the password the file leaves to the environment.
        password = urlsplit(store or "").password or ""
        saved = os.environ.get("CLICKHOUSE_PASSWORD")
        os.environ["CLICKHOUSE_PASSWORD"] = password
        try:
            return load_config(path), path, note
        finally:
            if saved is None:
                del os.environ["CLICKHOUSE_PASSWORD"]
            else:
                os.environ["CLICKHOUSE_PASSWORD"] = saved
    return load_config(path), path, note


def build_profiles(
    folder: Path,
    reference: dict[str, list[Record]],
    config: Config,
    created_at: str,
    *,
    labels: Mapping[str, Any] | None = None,
) -> dict[str, Profile]:
    """Profiles of each model's clean reference events, as ``drifthouse profile`` builds them.

    The events go to ``reference/<model>.jsonl`` (with their ``label`` from ``labels``, by
    event id, when there is one: the label metrics' baselines), the profiles to
    ``profiles/<model>.profile.json``.
    """
    (folder / "reference").mkdir(exist_ok=True)
    (folder / "profiles").mkdir(exist_ok=True)
    out: dict[str, Profile] = {}
    for model, records in reference.items():
        events = folder / "reference" / f"{model}.jsonl"
        with open(events, "wb") as fh:
            for r in records:
                fh.write(_with_label(r.value, labels or {}) + b"\n")
        version = _version(records[0].value)
        profile = build_profile_from_file(
            events,
            model=model,
            model_version=version,
            settings=config.metrics,
            created_at=created_at,
        )
        (folder / "profiles" / f"{model}.profile.json").write_bytes(profile.to_json())
        out[model] = profile
    return out


def _with_label(value: bytes, labels: Mapping[str, Any]) -> bytes:
    event = json.loads(value)
    label = labels.get(event.get("event_id", ""))
    if label is None:
        return value
    event["label"] = label
    return json.dumps(event, separators=(",", ":")).encode()


def _version(value: bytes) -> str:
    import msgspec

    class _Head(msgspec.Struct):
        model_version: str = "unknown"

    return msgspec.json.decode(value, type=_Head).model_version
