"""The whole tree: every key documented, which models run on an automatic reference."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from drifthouse.config import Config
from tests.config.helpers import ROOT


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
