"""The settings shown in docs/identity.md load, and map the tokens it shows as it says."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from analyzer.api.oidc import ClaimMapping
from analyzer.config import Settings, load_settings

DOC = (Path(__file__).resolve().parents[3] / "docs" / "identity.md").read_text(encoding="utf-8")


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC, flags=re.S)


def load(yaml_text: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    config = tmp_path / "config.yaml"
    config.write_text(yaml_text, encoding="utf-8")
    monkeypatch.setenv("CANARY_ANALYZER_CONFIG_FILE", str(config))
    return load_settings()


def sample_tokens() -> list[dict[str, Any]]:
    tokens = []
    for block in blocks("json"):
        tokens.append(json.loads(block.replace("…", "x")))
    return tokens


def test_every_yaml_example_is_valid_configuration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    examples = blocks("yaml")
    assert len(examples) == 2
    for example in examples:
        assert load(example, tmp_path, monkeypatch).api.oidc_issuer


def test_the_sample_tokens_map_as_the_page_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entra_yaml, okta_yaml = blocks("yaml")
    entra_token, okta_token = sample_tokens()
    entra = ClaimMapping.from_settings(load(entra_yaml, tmp_path, monkeypatch).api)
    actor = entra.actor(entra_token)
    assert actor.roles == {"operator", "viewer", "auditor"}
    assert actor.namespaces is None  # Canary.Operator maps to "*"
    okta = ClaimMapping.from_settings(load(okta_yaml, tmp_path, monkeypatch).api)
    actor = okta.actor(okta_token)
    assert actor.roles == {"operator", "viewer"}
    assert actor.namespaces == {"risk-prod"}
