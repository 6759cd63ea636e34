"""The ``datadog`` settings: keys from settings, files or Datadog's env names; errors say which."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from analyzer.config import DatadogSettings, load_settings
from analyzer.domain.errors import ConfigurationError


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith(("CANARY_ANALYZER_", "DD_")):
            monkeypatch.delenv(key)


def test_from_the_environment_and_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CANARY_ANALYZER_METRIC_SOURCE", "datadog")
    monkeypatch.setenv("CANARY_ANALYZER_DATADOG__SITE", "datadoghq.eu")
    monkeypatch.setenv("CANARY_ANALYZER_DATADOG__API_KEY", "api-secret-1")
    monkeypatch.setenv("CANARY_ANALYZER_DATADOG__APPLICATION_KEY", "app-secret-2")
    settings = load_settings()
    assert settings.metric_source == "datadog"
    assert settings.datadog.site == "datadoghq.eu"
    assert "api-secret-1" not in repr(settings)
    assert "app-secret-2" not in repr(settings)
    assert settings.datadog.keys() == ("api-secret-1", "app-secret-2")


def test_from_files(tmp_path: Path) -> None:
    (tmp_path / "api").write_text("file-api\n")
    (tmp_path / "app").write_text("file-app\n")
    config = DatadogSettings(api_key_file=tmp_path / "api", application_key_file=tmp_path / "app")
    assert config.keys() == ("file-api", "file-app")


def test_from_datadogs_own_env_names() -> None:
    assert DatadogSettings().keys({"DD_API_KEY": "a", "DD_APP_KEY": "b"}) == ("a", "b")
    assert DatadogSettings().keys({"DD_API_KEY": "a", "DD_APPLICATION_KEY": "c"}) == ("a", "c")


def test_missing_key_names_every_place_it_may_come_from() -> None:
    with pytest.raises(ConfigurationError, match=r"datadog\.application_key.*DD_APP_KEY"):
        DatadogSettings().keys({"DD_API_KEY": "a"})


def test_a_key_in_two_places_is_refused(tmp_path: Path) -> None:
    (tmp_path / "api").write_text("x")
    config = DatadogSettings(api_key="y", api_key_file=tmp_path / "api")
    with pytest.raises(ConfigurationError, match="both set"):
        config.keys({})


def test_unreadable_key_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="api_key_file"):
        DatadogSettings(api_key_file=tmp_path / "missing").keys({"DD_APP_KEY": "b"})


@pytest.mark.parametrize(
    ("key", "value"),
    [("SITE", "datadoghq.org"), ("RETRIES", "-1"), ("ROLLUP_SECONDS", "0"), ("API_URL", "ftp://x")],
)
def test_bad_values_name_the_key(monkeypatch: pytest.MonkeyPatch, key: str, value: str) -> None:
    monkeypatch.setenv(f"CANARY_ANALYZER_DATADOG__{key}", value)
    with pytest.raises(ConfigurationError, match=f"datadog.{key.lower()}"):
        load_settings()


def test_unknown_keys_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CANARY_ANALYZER_DATADOG__APP_KEY", "x")
    with pytest.raises(ConfigurationError, match="app_key"):
        load_settings()
