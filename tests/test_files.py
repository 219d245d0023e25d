"""Files and folders holding events, alerts or state are the owner's only (0600 / 0700)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from drifthouse.alerts.base import Notification
from drifthouse.alerts.delivery import Outbox
from drifthouse.alerts.receivers import build_receivers
from drifthouse.alerts.receivers.slack import SlackMessageIndex
from drifthouse.alerts.service import Alerting
from drifthouse.config import Config
from drifthouse.errors import DecodeError
from drifthouse.files import open_private, private_dir
from drifthouse.sinks.spool import Spool
from drifthouse.stream.dead_letters import FileDeadLetters
from drifthouse.stream.sources import Message


@pytest.fixture(autouse=True)
def _loose_umask() -> Iterator[None]:
    # The usual default: without care, files would be 0644 and folders 0755.
    before = os.umask(0o022)
    yield
    os.umask(before)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _outbox(root: Path) -> list[Path]:
    box = Outbox(root / "state" / "outbox")
    box.put(
        Notification(id="n", receiver="r", kind="firing", ts=0, group_key="g",
                     group_labels={}, firing=[], resolved=[])
    )  # fmt: skip
    box.close()
    return [root / "state", root / "state" / "outbox", root / "state" / "outbox" / "outbox.jsonl"]


def _alert_state(root: Path) -> list[Path]:
    alerting = Alerting(Config(), receivers={}, state_dir=root / "alerts", start=False)
    alerting.save_state()
    return [root / "alerts", root / "alerts" / "alert-state.json"]


def _slack_index(root: Path) -> list[Path]:
    config = Config.model_validate(
        {"receivers": {"s": {"type": "slack", "webhook_url": "https://hooks.example/x/y"}}}
    )
    receivers = build_receivers(config.receivers, state_dir=root / "slack-state")
    index = SlackMessageIndex(root / "slack-state" / "slack-s.json")
    index.save()
    assert receivers
    return [root / "slack-state", root / "slack-state" / "slack-s.json"]


def _dead_letters(root: Path) -> list[Path]:
    dead = FileDeadLetters(root / "events.jsonl.dlq")
    dead.send(Message(b"{not json", 0, 0), DecodeError("invalid_json", "$", "not JSON"))
    dead.close()
    return [root / "events.jsonl.dlq"]


def _spool(root: Path) -> list[Path]:
    spool = Spool(root / "spool")
    spool.append("metrics", [])
    return [root / "spool", *(root / "spool").iterdir()]


def _helpers(root: Path) -> list[Path]:
    folder = private_dir(root / "a" / "b")
    with open_private(folder / "f", "w") as fh:
        fh.write("x")
    return [root / "a", folder, folder / "f"]


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(_outbox, id="outbox"),
        pytest.param(_alert_state, id="alert-state"),
        pytest.param(_slack_index, id="slack-index"),
        pytest.param(_dead_letters, id="dead-letters"),
        pytest.param(_spool, id="spool"),
        pytest.param(_helpers, id="helpers"),
    ],
)
def test_created_files_are_private(tmp_path: Path, make: Callable[[Path], list[Path]]) -> None:
    made = make(tmp_path)
    assert len(made) >= 1
    for path in made:
        want = 0o700 if path.is_dir() else 0o600
        assert mode(path) == want, f"{path.relative_to(tmp_path)} is {oct(mode(path))}"


def test_a_rewritten_file_is_narrowed(tmp_path: Path) -> None:
    old = tmp_path / "alert-state.json"
    old.write_text("{}")
    old.chmod(0o644)
    with open_private(old, "w") as fh:
        fh.write("{}")
    assert mode(old) == 0o600


def test_the_embedded_store_folder_is_private(tmp_path: Path) -> None:
    # A process of its own: the embedded engine opens one folder per process.
    folder = tmp_path / "store"
    code = (
        "import os; os.umask(0o022)\n"
        "from drifthouse.sinks.store import open_store\n"
        f"open_store('chdb://{folder}', database='drifthouse').close()\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    assert mode(folder) == 0o700
