"""Masking of secrets in logs and messages: whole values, pieces of them, and webhook URLs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import structlog

from drifthouse import logs
from drifthouse.logs import hide_secret, mask_url, redact, scrub

KEY = "R0123456789abcdef0123456789abcdZ"  # a 32-character routing key
HOOK = "https://hooks.slack.com/services/T0123ABCD/B0456EFGH/xYzSeCrEtPaTh0123456789"


@pytest.fixture(autouse=True)
def _forget_secrets() -> Iterator[None]:
    before = set(logs._SECRETS)
    yield
    logs._SECRETS.clear()
    logs._SECRETS.update(before)
    structlog.reset_defaults()


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        pytest.param(HOOK, "https://hooks.slack.com/***", id="slack-webhook"),
        pytest.param("http://gw:8080/hook?token=abc#x", "http://gw:8080/***", id="port-query"),
        pytest.param("https://user:pw@host.example/p", "https://host.example/***", id="userinfo"),
        pytest.param("https://host.example", "https://host.example", id="no-path"),
        pytest.param("https://host.example/", "https://host.example/", id="root-path"),
        pytest.param("not a url", "***", id="not-a-url"),
    ],
)
def test_mask_url_keeps_scheme_and_host_only(url: str, masked: str) -> None:
    assert mask_url(url) == masked


@pytest.mark.parametrize(
    ("text", "leaked"),
    [
        pytest.param(f"bad key {KEY}", KEY, id="whole"),
        pytest.param(f"bad key {KEY[:31]}", KEY[:31], id="31-of-32-prefix"),
        pytest.param(f"bad key '{KEY[1:]}'", KEY[1:], id="31-of-32-suffix"),
        pytest.param(f"bad key {KEY[:12]}...{KEY[-12:]}", KEY[:12], id="elided-middle"),
        pytest.param(f"value {KEY[10:18]} seen", KEY[10:18], id="8-chars-inside"),
        pytest.param(f"posting to {HOOK} failed", "xYzSeCrEtPaTh", id="webhook-url"),
        pytest.param(f"path {HOOK[33:]} refused", "B0456EFGH", id="webhook-path-only"),
        pytest.param(f"raw {KEY.encode()!r}", KEY[:20], id="bytes-repr"),
    ],
)
def test_redact_removes_any_piece_of_a_secret(text: str, leaked: str) -> None:
    out = redact(text, [KEY, HOOK])
    assert leaked not in out
    for i in range(len(KEY) - 5):  # no 6 characters in a row of the secret are left
        assert KEY[i : i + 6] not in out
    assert "**********" in out or "https://hooks.slack.com/***" in out


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("window 1h closed with 120 rows", id="ordinary"),
        pytest.param("expected an http:// or https:// URL", id="scheme-words"),
        pytest.param("cannot reach https://hooks.slack.com", id="host-is-not-secret"),
    ],
)
def test_redact_leaves_other_text_alone(text: str) -> None:
    assert redact(text, [KEY, HOOK]) == text


def test_logs_mask_pieces_of_known_secrets_in_any_value(
    capsys: pytest.CaptureFixture[str],
) -> None:
    logs.configure(level="INFO", json=True)
    hide_secret(KEY)
    hide_secret(HOOK)
    log = logs.get_logger("test")
    log.error("notify.failed", error=f"bad key {KEY[:31]}", url=HOOK, detail=[f"x {KEY[2:]}"])
    written = capsys.readouterr().err
    assert "notify.failed" in written
    assert KEY[:10] not in written
    assert KEY[-10:] not in written
    assert "xYzSeCrEtPaTh" not in written
    assert "https://hooks.slack.com/***" in written
    assert scrub(f"key {KEY[:31]}") == "key **********"
