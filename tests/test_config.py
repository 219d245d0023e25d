"""Configuration: every problem located, secrets never shown, interpolation that cannot inject."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import structlog
from pydantic import BaseModel, ValidationError

from drifthouse import logs
from drifthouse.config import (
    Config,
    RuleConfig,
    SecretDsn,
    StoreConfig,
    WindowConfig,
    check_config,
    format_duration,
    load_config,
    mask_dsn,
    parse_duration,
)
from drifthouse.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
MARKER = "MARKER-7f3a-do-not-print"

WriteConfig = Callable[[str], Path]


@pytest.fixture
def write_config(tmp_path: Path) -> WriteConfig:
    def write(text: str) -> Path:
        path = tmp_path / "drifthouse.yaml"
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    return write


def problems_of(path: Path) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return info.value.problems


# -- loading and interpolation -------------------------------------------------------------------


def test_empty_file_gives_the_defaults(write_config: WriteConfig) -> None:
    config = load_config(write_config(""))
    assert config.kafka.topic == "predictions"
    assert [w.name for w in config.windows] == ["1h"]
    assert config.store_dsn() == f"chdb://{write_config('').parent / 'drifthouse-data'}"


def test_example_config_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SLACK_BOT_TOKEN", "PAGERDUTY_ROUTING_KEY", "RETRAIN_WEBHOOK_TOKEN"):
        monkeypatch.setenv(name, f"{name.lower()}-value")
    report = check_config(ROOT / "examples" / "drifthouse.yaml")
    assert report.errors == []
    assert report.config is not None
    assert {w.name for w in report.config.windows} >= {"1h", "15m/1m"}


def test_environment_interpolation(
    write_config: WriteConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAFKA_HOST", "broker:9092")
    monkeypatch.setenv("BATCH", "256")
    monkeypatch.delenv("UNSET_TOPIC", raising=False)
    config = load_config(
        write_config(
            """
            # ${NOT_SET_ANYWHERE} in a comment is ignored
            kafka:
              bootstrap: ${KAFKA_HOST}
              topic: ${UNSET_TOPIC:-preds}
              batch_size: ${BATCH}
              group: "literal-$${NOT_A_VARIABLE}"
            """
        )
    )
    assert config.kafka.bootstrap == "broker:9092"
    assert config.kafka.topic == "preds"
    assert config.kafka.batch_size == 256  # a plain scalar takes the type of its new text
    assert config.kafka.group == "literal-${NOT_A_VARIABLE}"


def test_quoted_interpolation_stays_a_string(
    write_config: WriteConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VERSION_GLOB", "1")
    config = load_config(
        write_config(
            'rules: [{name: r, metric: psi, when: "value > 1", model_version: "${VERSION_GLOB}"}]'
        )
    )
    assert config.rules[0].model_version == "1"


def test_secret_values_cannot_change_the_yaml_structure(
    write_config: WriteConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    tricky = 'xoxb-1 # not a comment: {"a": [1]}\nrules: []'
    monkeypatch.setenv("SLACK_BOT_TOKEN", tricky)
    config = load_config(
        write_config(
            """
            receivers:
              slack:
                type: slack
                channel: "#ml"
                token: ${SLACK_BOT_TOKEN}
            """
        )
    )
    receiver = config.receivers["slack"]
    assert receiver.type == "slack"
    assert receiver.token is not None
    assert receiver.token.get_secret_value() == tricky


def test_secrets_from_files_relative_to_the_config(write_config: WriteConfig) -> None:
    path = write_config("receivers: {pd: {type: pagerduty, routing_key: '${file:secrets/pd}'}}")
    (path.parent / "secrets").mkdir()
    (path.parent / "secrets" / "pd").write_text("R0UTING-KEY\n")
    receiver = load_config(path).receivers["pd"]
    assert receiver.type == "pagerduty"
    assert receiver.routing_key.get_secret_value() == "R0UTING-KEY"


def test_relative_store_path_resolves_against_the_config_folder(write_config: WriteConfig) -> None:
    path = write_config("store: {path: ./data}\nmodels: {fraud: {reference: refs/fraud.json}}")
    config = load_config(path)
    assert config.store_dsn() == f"chdb://{path.parent.resolve() / 'data'}"
    assert config.reference_path("fraud") == path.parent.resolve() / "refs" / "fraud.json"
    assert config.reference_path("other") is None


# -- every problem, located ------------------------------------------------------------------------

PROBLEMS = [
    pytest.param(
        "windows: [{size: 1h}, {size: 15m, hop: 7m}]",
        [(":1 windows[1]", "whole number of hops")],
        id="window-hop",
    ),
    pytest.param(
        "windows:\n  - {size: 1h}\n  - {size: 60m}",
        [(":3 windows[1]", "window 1h is configured twice")],
        id="window-twice",
    ),
    pytest.param(
        "kafka:\n  topic: p\n  partitons: 3",
        [(":3 kafka.partitons", "Extra inputs are not permitted")],
        id="unknown-key",
    ),
    pytest.param(
        "kafka:\n  batch_size: lots", [(":2 kafka.batch_size", "valid integer")], id="wrong-type"
    ),
    pytest.param(
        "metrics:\n  allowed_lateness: soon",
        [(":2 metrics.allowed_lateness", "duration such as '30s'")],
        id="bad-duration",
    ),
    pytest.param(
        "store:\n  path: ./data\n  dsn: http://u:pw12@h:8123/db",
        [(":1 store", "either 'path'")],
        id="store-path-and-dsn",
    ),
    pytest.param(
        "store:\n  dsn: ./data", [(":2 store.dsn", "use store.path")], id="store-relative-dsn"
    ),
    pytest.param(
        "routes:\n  - {receivers: [slack]}\nreceivers:\n  console: {type: console}",
        [
            (
                ":2 routes[0].receivers[0]",
                "receiver 'slack' is not defined under 'receivers' (defined: console)",
            )
        ],
        id="route-unknown-receiver",
    ),
    pytest.param(
        "receivers:\n  chat: {type: slack, channel: '#a'}",
        [(":2 receivers.chat", "needs 'token' and 'channel', or 'webhook_url'")],
        id="slack-without-auth",
    ),
    pytest.param(
        "receivers:\n  x:\n    type: teams",
        [(":2 receivers.x", "'teams'")],
        id="unknown-receiver-type",
    ),
    pytest.param(
        "receivers:\n  pd: {type: pagerduty, routing_key: k, url: 'ftp://pd'}",
        [(":2 receivers.pd.url", "http:// or https://")],
        id="pagerduty-url",
    ),
    pytest.param(
        "kafka: {security_protocol: SASL_SSL, sasl_mechanism: PLAIN}",
        [(":1 kafka", "needs sasl_username, sasl_password")],
        id="sasl-incomplete",
    ),
    pytest.param(
        "models:\n  fraud:\n    sample_rate: 3\n    bounds: {amount: [10, 1]}",
        [
            (":3 models.fraud.sample_rate", "less than or equal to 1"),
            (":4 models.fraud.bounds", "low <= high"),
        ],
        id="model-settings",
    ),
    pytest.param(
        "rules:\n  - {name: r, metric: psi}",
        [(":2 rules[0].when", "Field required")],
        id="rule-without-when",
    ),
    pytest.param(
        "kafka: {topic: a}\nkafka: {topic: b}",
        [(":2 kafka", "duplicate key 'kafka' (first on line 1)")],
        id="duplicate-key",
    ),
    pytest.param(
        "kafka:\n  topic: ${DRIFTHOUSE_TEST_UNSET}",
        [(":2 kafka.topic", "environment variable DRIFTHOUSE_TEST_UNSET is not set")],
        id="env-unset",
    ),
    pytest.param(
        "receivers:\n  pd: {type: pagerduty, routing_key: '${file:/nonexistent/pd-key}'}",
        [(":2 receivers.pd.routing_key", "secret file '/nonexistent/pd-key' cannot be read")],
        id="secret-file-missing",
    ),
    pytest.param(
        "- just\n- a list",
        [("drifthouse.yaml", "expected a mapping of sections")],
        id="not-a-mapping",
    ),
]


@pytest.mark.parametrize(("text", "expected"), PROBLEMS)
def test_problems_are_located(
    write_config: WriteConfig, text: str, expected: list[tuple[str, str]]
) -> None:
    problems = problems_of(write_config(text))
    for where, message in expected:
        assert any(where in w and message in m for w, m in problems), problems
    assert len(problems) == len(expected), problems


def test_every_problem_is_reported_at_once(write_config: WriteConfig) -> None:
    path = write_config(
        """
        kafka:
          batch_size: 0
        windows: [{size: 0s}]
        models:
          fraud: {sample_rate: -1}
        routes:
          - {receivers: [nobody]}
        receivers:
          bad: {type: webhook, url: "not a url"}
        """
    )
    problems = problems_of(path)
    places = [where.split(" ", 1)[1] for where, _ in problems]
    assert places == [
        "kafka.batch_size",
        "windows[0]",
        "models.fraud.sample_rate",
        "routes[0].receivers[0]",
        "receivers.bad.url",
    ]
    assert all(where.startswith(f"{path}:") for where, _ in problems)


def test_anchors_and_aliases_are_interpolated_once(
    write_config: WriteConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOPIC", "preds")
    config = load_config(
        write_config(
            "kafka: {topic: &t '${TOPIC}', labels_topic: *t}\n"
            "models:\n  a: &m {sample_rate: 0.5}\n  b: {<<: *m, threshold: 0.7}\n"
        )
    )
    assert (config.kafka.topic, config.kafka.labels_topic) == ("preds", "preds")
    assert config.models["b"].sample_rate == 0.5
    assert config.models["b"].threshold == 0.7


def test_recursive_yaml_is_a_problem_not_a_crash(write_config: WriteConfig) -> None:
    problems = problems_of(write_config("models: &m {a: *m}\n"))
    assert problems


def test_yaml_syntax_error_names_the_line(write_config: WriteConfig) -> None:
    problems = problems_of(write_config("kafka:\n  topic: [unclosed\nstore: {}\n"))
    assert len(problems) == 1
    assert problems[0][0].endswith("drifthouse.yaml:3")
    assert "not valid YAML" in problems[0][1]


def test_unquoted_reference_in_flow_style_gets_a_hint(write_config: WriteConfig) -> None:
    problems = problems_of(write_config("receivers: {s: {type: slack, token: ${TOKEN}}}"))
    assert 'quote ${...} references, e.g. {token: "${SLACK_BOT_TOKEN}"}' in problems[0][1]


def test_missing_file(tmp_path: Path) -> None:
    problems = problems_of(tmp_path / "nope.yaml")
    assert "cannot be read" in problems[0][1]


def test_check_config_adds_rules_and_references(write_config: WriteConfig) -> None:
    path = write_config(
        """
        models:
          fraud: {reference: refs/fraud.json}
        rules:
          - {name: drift, metric: psi, when: "value >> 1"}
          - {name: drift, metric: cpu_utilization, when: "value > 1", window: 5m}
        """
    )
    report = check_config(path)
    assert not report.ok
    assert [w.split(" ")[1] for w, _ in report.errors] == ["rules[0].when", "rules[1].name"]
    assert "at column 8 of 'value >> 1'" in report.errors[0][1]
    assert "duplicate rule name 'drift' (also rules[0])" in report.errors[1][1]
    warnings = dict(report.warnings)
    assert "does not exist yet" in warnings[f"{path}:2 models.fraud.reference"]
    assert "never fires" in warnings[f"{path}:5 rules[1].window"]
    assert "not a metric drifthouse computes" in warnings[f"{path}:5 rules[1].metric"]


def test_where_locates_paths_of_a_loaded_config(write_config: WriteConfig) -> None:
    path = write_config(
        "kafka:\n  topic: p\nrules:\n  - name: r\n    metric: psi\n    when: value > 1\n"
    )
    config = load_config(path)
    assert config.where("rules[0].when") == f"{path}:6 rules[0].when"
    assert config.where("rules[0].clear") == f"{path}:4 rules[0].clear"
    assert Config().where("kafka.topic") == "kafka.topic"


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


@pytest.fixture
def captured_logs(capsys: pytest.CaptureFixture[str]) -> Iterator[Callable[[], str]]:
    """``start()`` sends drifthouse's JSON logs (DEBUG and up) to the captured stderr."""
    started = False

    def read() -> str:
        nonlocal started
        if not started:
            # Configured here, not at fixture setup: capsys swaps the stream between phases.
            logs.configure(level="DEBUG", json=True)
            started = True
            return ""
        out, err = capsys.readouterr()
        return out + err

    yield read
    structlog.reset_defaults()


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


# -- durations and windows -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        pytest.param("500ms", 500, id="ms"),
        pytest.param("30s", 30_000, id="s"),
        pytest.param("15m", 900_000, id="m"),
        pytest.param("1h", 3_600_000, id="h"),
        pytest.param("7d", 604_800_000, id="d"),
        pytest.param(" 2w ", 1_209_600_000, id="w-spaces"),
        pytest.param(90, 90_000, id="int-seconds"),
    ],
)
def test_parse_duration(text: str | int, ms: int) -> None:
    assert parse_duration(text) == ms


@pytest.mark.parametrize("bad", ["1.5h", "h", "", "-1s", True, -5, None, "1y"])
def test_parse_duration_rejects(bad: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)


def test_window_names() -> None:
    assert WindowConfig(size="1h").name == "1h"
    assert WindowConfig(size="15m", hop="1m").name == "15m/1m"
    assert format_duration(90_000) == "90s"
    assert format_duration(1) == "1ms"


def test_every_key_is_documented() -> None:
    from drifthouse import config as cfg

    docs = (ROOT / "docs" / "configuration.md").read_text()
    example = (ROOT / "examples" / "drifthouse.yaml").read_text()
    sections: list[type[BaseModel]] = [
        cfg.KafkaConfig, cfg.StoreConfig, cfg.WindowConfig, cfg.MetricsConfig,
        cfg.ChangeDetectionConfig, cfg.ModelConfig,
        cfg.RuleConfig, cfg.RouteConfig, cfg.InhibitConfig, cfg.AlertingConfig, cfg.SlackReceiver,
        cfg.PagerDutyReceiver, cfg.WebhookReceiver, cfg.KafkaReceiver, cfg.Config,
    ]  # fmt: skip
    for model in sections:
        for name, info in model.model_fields.items():
            key = info.alias or name
            if key in {"base_dir", "type"}:
                continue
            assert f"`{key}`" in docs, f"{model.__name__}.{key} is not in docs/configuration.md"
            assert f"{key}:" in example, (
                f"{model.__name__}.{key} is not in examples/drifthouse.yaml"
            )


@pytest.mark.parametrize(
    ("size", "rule_window"),
    [
        pytest.param("7d", "7d", id="7d-as-written"),
        pytest.param("7d", "1w", id="7d-as-named"),
        pytest.param("1w", "7d", id="1w-spelled-in-days"),
        pytest.param("60m", "1h", id="60m-is-1h"),
        pytest.param("1h", "3600s", id="seconds"),
    ],
)
def test_rule_windows_match_however_the_duration_is_spelled(
    write_config: WriteConfig, size: str, rule_window: str
) -> None:
    path = write_config(
        f"""
        windows: [{{size: {size}}}]
        rules:
          - {{name: weekly, metric: psi, when: "value > 0.2", window: "{rule_window}"}}
        """
    )
    report = check_config(path)
    assert report.ok, report.errors
    assert not [w for w in report.warnings if "not configured" in w[1]], report.warnings
    config = load_config(path)
    assert config.rules[0].window == config.windows[0].name


def test_sliding_rule_window_is_normalised_too() -> None:
    config = Config.model_validate(
        {
            "windows": [{"size": "7d", "hop": "24h"}],
            "rules": [{"name": "r", "metric": "psi", "when": "value > 1", "window": "1w/1d"}],
        }
    )
    assert config.windows[0].name == "1w/1d"
    assert config.rules[0].window == "1w/1d"
    assert (
        Config.model_validate(
            {"rules": [{"name": "r", "metric": "psi", "when": "value > 1", "window": "7d/24h"}]}
        )
        .rules[0]
        .window
        == "1w/1d"
    )


def test_rule_window_globs_stay_globs() -> None:
    rule = RuleConfig(name="r", metric="psi", when="value > 1", window="1*")
    assert rule.window == "1*"


@pytest.mark.parametrize(
    ("models", "metrics", "model", "span"),
    [
        pytest.param({}, {}, "unlisted", 3_600_000, id="unlisted-default-1h"),
        pytest.param({"m": {"task": "regression"}}, {}, "m", 3_600_000, id="listed-no-file"),
        pytest.param({"m": {"reference": "auto"}}, {"auto_reference_span": "2h"}, "m", 7_200_000,
                     id="auto-metrics-span"),
        pytest.param({"m": {"reference": "auto", "reference_span": "30m"}}, {}, "m", 1_800_000,
                     id="auto-own-span"),
        pytest.param({"m": {"reference": "m.json"}}, {}, "m", None, id="file"),
        pytest.param({"m": {"reference": "./auto"}}, {}, "m", None, id="file-named-auto"),
        pytest.param({}, {"default_reference": "none"}, "unlisted", None, id="default-none"),
        pytest.param({"m": {"reference": "auto"}}, {"default_reference": "none"}, "m", 3_600_000,
                     id="auto-despite-default-none"),
    ],
)  # fmt: skip
def test_which_models_run_on_an_automatic_reference(
    models: dict[str, object], metrics: dict[str, object], model: str, span: int | None
) -> None:
    config = Config.model_validate({"models": models, "metrics": metrics})
    assert config.auto_reference_span(model) == span
    if span is not None:
        assert config.reference_path(model) is None
