"""Registry settings: validated at start-up, and the wiring builds the client only with a URL."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from analyzer.config import Settings
from analyzer.registry.mlflow import MlflowRegistry
from analyzer.wiring import build_registry


def test_no_url_means_no_registry() -> None:
    assert build_registry(Settings(), []) is None


def test_a_url_builds_the_mlflow_client_and_registers_it_for_closing() -> None:
    closables: list[object] = []
    settings = Settings(registry={"url": "http://mlflow:5000", "timeout_seconds": 2})
    registry = build_registry(settings, closables)
    assert isinstance(registry, MlflowRegistry)
    assert closables == [registry]
    registry.close()


@pytest.mark.parametrize(
    ("registry", "message"),
    [
        ({"required": True}, "registry.required is true but registry.url is not set"),
        ({"url": "http://m", "champion_alias": "x", "challenger_alias": "x"}, "must differ"),
        ({"url": "http://m", "champion_alias": "no spaces"}, "champion_alias"),
        ({"url": "http://m", "kind": "sagemaker"}, "kind"),
        ({"url": "http://m", "timeout": 3}, "timeout"),
    ],
)
def test_bad_registry_settings_are_refused_naming_the_key(
    registry: dict[str, object], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(registry=registry)


def test_the_environment_configures_the_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CANARY_ANALYZER_REGISTRY__URL", "http://mlflow.mlops:5000")
    monkeypatch.setenv("CANARY_ANALYZER_REGISTRY__TOKEN", "t0ken")
    settings = Settings()
    assert settings.registry.url == "http://mlflow.mlops:5000"
    assert settings.registry.token is not None
    assert "t0ken" not in repr(settings.registry)
