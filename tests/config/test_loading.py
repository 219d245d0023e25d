"""Loading: interpolation that cannot inject, every problem located at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from drifthouse.config import Config, check_config, load_config
from tests.config.helpers import ROOT, WriteConfig, problems_of

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


def test_where_locates_paths_of_a_loaded_config(write_config: WriteConfig) -> None:
    path = write_config(
        "kafka:\n  topic: p\nrules:\n  - name: r\n    metric: psi\n    when: value > 1\n"
    )
    config = load_config(path)
    assert config.where("rules[0].when") == f"{path}:6 rules[0].when"
    assert config.where("rules[0].clear") == f"{path}:4 rules[0].clear"
    assert Config().where("kafka.topic") == "kafka.topic"


def test_without_rules_the_shipped_rules_apply_and_an_empty_list_means_none(
    write_config: WriteConfig,
) -> None:
    """docs/configuration.md `rules`: left out, the shipped rules apply; `rules: []` is none."""
    shipped = [r.name for r in load_config(write_config("")).rules]
    assert {"serving-errors", "latency-regression", "data-drift"} <= set(shipped)
    assert load_config(write_config("rules: []")).rules == []
    own = load_config(
        write_config("rules:\n  - {name: mine, metric: psi, when: 'value > 1', severity: warning}")
    )
    assert [r.name for r in own.rules] == ["mine"]
