"""Secrets: never shown by a loaded config, in errors, or in logs; DSNs print masked."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from pydantic import ValidationError

from drifthouse.config import Config, SecretDsn, StoreConfig, check_config, load_config, mask_dsn
from drifthouse.errors import ConfigError
from tests.config.helpers import MARKER, WriteConfig, problems_of

# -- secrets -------------------------------------------------------------------------------------

SECRET_CONFIGS = [
    pytest.param(
        "receivers: {chat: {type: slack, channel: '#a', token: '${DH_SECRET}'}}", id="slack-token"
    ),
    pytest.param(
        "receivers: {chat: {type: slack, webhook_url: 'https://hooks.example/${DH_SECRET}'}}",
        id="slack-webhook-url",
    ),
    pytest.param(
        "receivers: {pd: {type: pagerduty, routing_key: '${DH_SECRET}'}}",
        id="pagerduty-routing-key",
    ),
    pytest.param(
        "receivers: {hook: {type: webhook, url: 'http://h', headers: {Authorization: 'Bearer ${DH_SECRET}'}}}",
        id="webhook-header",
    ),
    pytest.param(
        "kafka: {security_protocol: SASL_SSL, sasl_mechanism: PLAIN, sasl_username: u, sasl_password: '${DH_SECRET}'}",
        id="kafka-sasl-password",
    ),
    pytest.param(
        "store: {dsn: 'http://ingest:${DH_SECRET}@clickhouse:8123/drifthouse'}", id="clickhouse-dsn"
    ),
]

# Mistakes that make validators talk about the section holding the secret.
PROVOCATIONS = [
    "kafka: {batch_size: -1, unknown: 1}",
    "store: {database: 'bad name ${DH_SECRET}', batch_rows: 0}",
    "models: {m: {pii: '${DH_SECRET}'}}",
    "routes: [{receivers: ['${DH_SECRET}']}]",
    "windows: [{size: '${DH_SECRET}'}]",
]


def _merge(secret_yaml: str, provocation: str) -> str:
    """Two flow-style top-level mappings on separate lines; the provocation wins on conflicts."""
    first_key = secret_yaml.split(":", 1)[0]
    if provocation.split(":", 1)[0] == first_key:
        return provocation
    return f"{secret_yaml}\n{provocation}"


@pytest.mark.parametrize("secret_yaml", SECRET_CONFIGS)
def test_secrets_never_shown_by_a_loaded_config(
    write_config: WriteConfig,
    monkeypatch: pytest.MonkeyPatch,
    captured_logs: Callable[[], str],
    secret_yaml: str,
) -> None:
    monkeypatch.setenv("DH_SECRET", MARKER)
    captured_logs()  # start
    config = load_config(write_config(secret_yaml))
    shown = [
        repr(config),
        str(config),
        config.model_dump_json(),
        json.dumps(config.model_dump(mode="json")),
        json.dumps(config.describe()),
        config.masked_store_dsn(),
        repr(config.store),
        repr(list(config.receivers.values())),
        repr(config.kafka),
    ]
    for text in shown:
        assert MARKER not in text
    written = captured_logs()
    assert "config.loaded" in written
    assert MARKER not in written


@pytest.mark.parametrize("provocation", PROVOCATIONS)
@pytest.mark.parametrize("secret_yaml", SECRET_CONFIGS)
def test_secrets_never_shown_in_errors(
    write_config: WriteConfig,
    monkeypatch: pytest.MonkeyPatch,
    captured_logs: Callable[[], str],
    secret_yaml: str,
    provocation: str,
) -> None:
    monkeypatch.setenv("DH_SECRET", MARKER)
    captured_logs()  # start
    path = write_config(_merge(secret_yaml, provocation))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.problems
    assert MARKER not in str(info.value)
    assert MARKER not in repr(info.value.problems)
    report = check_config(path)
    assert MARKER not in repr(report.errors) + repr(report.warnings)
    assert MARKER not in captured_logs()


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param({"store": {"dsn": f"http://u:{MARKER}@h/db", "path": "x"}}, id="store-both"),
        pytest.param(
            {"receivers": {"pd": {"type": "pagerduty", "routing_key": MARKER, "extra": MARKER}}},
            id="extra",
        ),
        pytest.param({"kafka": {"sasl_password": MARKER, "batch_size": MARKER}}, id="wrong-type"),
        pytest.param({"store": {"dsn": f"ftp://u:{MARKER}@h/db"}}, id="dsn-scheme"),
    ],
)
def test_validation_errors_built_in_code_hide_inputs(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError) as info:
        Config.model_validate(bad)
    assert MARKER not in str(info.value)
    assert MARKER not in repr(info.value.errors(include_input=False))


def test_secret_looking_text_in_a_non_secret_field_is_redacted_from_messages(
    write_config: WriteConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An operator puts a password where a name belongs: the validator would echo it.
    monkeypatch.setenv("CH_PASSWORD", MARKER)
    problems = problems_of(write_config("store: {database: '${CH_PASSWORD}'}"))
    assert problems[0][0].endswith("store.database")
    assert "plain identifier" in problems[0][1]
    assert MARKER not in repr(problems)


@pytest.mark.parametrize(
    ("dsn", "shown"),
    [
        pytest.param(
            "http://user:pa55@host:8123/db", "http://user:***@host:8123/db", id="password"
        ),
        pytest.param(
            "https://host:8443/db?password=pa55&x=1",
            "https://host:8443/db?password=***&x=1",
            id="query",
        ),
        pytest.param("http://user@host:8123/db", "http://user@host:8123/db", id="no-password"),
        pytest.param("chdb:///var/lib/dh", "chdb:///var/lib/dh", id="embedded"),
        pytest.param("http://u:p@ss:w0rd@host/db", "http://u:***@host/db", id="at-in-password"),
    ],
)
def test_mask_dsn(dsn: str, shown: str) -> None:
    assert mask_dsn(dsn) == shown
    secret = SecretDsn(dsn)
    assert str(secret) == shown
    assert repr(StoreConfig(dsn=secret)).count("pa55") == 0
    assert secret.get_secret_value() == dsn


def test_dsn_prints_masked_everywhere() -> None:
    config = Config.model_validate({"store": {"dsn": "http://ingest:pa55word@ch:8123/drifthouse"}})
    masked = "http://ingest:***@ch:8123/drifthouse"
    assert masked in repr(config)
    assert masked in str(config)
    assert json.loads(config.model_dump_json())["store"]["dsn"] == masked
    assert config.describe()["store"] == masked
    assert config.store_dsn() == "http://ingest:pa55word@ch:8123/drifthouse"
