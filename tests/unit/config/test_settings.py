"""Settings: defaults, environment, config file, and errors that name the bad key."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from analyzer.config import Settings, load_settings
from analyzer.domain.errors import ConfigurationError


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("CANARY_ANALYZER_"):
            monkeypatch.delenv(key)


def test_defaults_are_the_embedded_sqlite_setup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CANARY_ANALYZER_DATA_DIR", str(tmp_path))
    settings = load_settings()
    assert settings.effective_database_url() == f"sqlite:///{tmp_path}/canary-analyzer.sqlite3"
    assert settings.metric_source == "synthetic"
    assert settings.traffic_target == "memory"


def test_database_url_is_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CANARY_ANALYZER_DATABASE_URL", "postgresql+psycopg://u:hunter2@db/x")
    settings = load_settings()
    assert "hunter2" not in repr(settings)
    assert settings.effective_database_url().endswith("hunter2@db/x")


def test_nested_env_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CANARY_ANALYZER_PROMETHEUS__URL", "http://prom:9090")
    monkeypatch.setenv("CANARY_ANALYZER_PROMETHEUS__TIMEOUT_SECONDS", "2.5")
    settings = load_settings()
    assert settings.prometheus.url == "http://prom:9090"
    assert settings.prometheus.timeout_seconds == 2.5


def test_unknown_top_level_env_key_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CANARY_ANALYZER_DATABSE_URL", "sqlite://")
    with pytest.raises(ConfigurationError, match="CANARY_ANALYZER_DATABSE_URL"):
        load_settings()


def test_unknown_nested_env_key_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CANARY_ANALYZER_PROMETHEUS__TIMEOUT", "3")
    with pytest.raises(ConfigurationError, match=r"prometheus\.timeout"):
        load_settings()


def test_invalid_value_names_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CANARY_ANALYZER_API__PORT", "70000")
    with pytest.raises(ConfigurationError, match=r"api\.port"):
        load_settings()


def test_config_file_with_env_taking_precedence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("log_level: debug\nprometheus:\n  url: http://from-file:9090\n")
    monkeypatch.setenv("CANARY_ANALYZER_CONFIG_FILE", str(config))
    monkeypatch.setenv("CANARY_ANALYZER_PROMETHEUS__URL", "http://from-env:9090")
    settings = load_settings()
    assert settings.log_level == "debug"
    assert settings.prometheus.url == "http://from-env:9090"


def test_unknown_key_in_config_file_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("servicenow:\n  pasword: x\n")
    monkeypatch.setenv("CANARY_ANALYZER_CONFIG_FILE", str(config))
    with pytest.raises(ConfigurationError, match=r"servicenow\.pasword"):
        load_settings()


def test_missing_config_file_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CANARY_ANALYZER_CONFIG_FILE", "/nonexistent/c.yaml")
    with pytest.raises(ConfigurationError, match="does not exist"):
        load_settings()


def test_registry_watch_needs_a_registry_a_model_ref_and_a_valid_plan() -> None:
    watch = {"registered_model": "fraud-scorer", "model": "risk-prod/fraud-scorer",
             "profile": "knative", "tier": "regulated",
             "plan": {"steps": [{"weight": 50, "dwell_seconds": 60},
                                {"weight": 100, "dwell_seconds": 60}]}}  # fmt: skip
    settings = Settings(registry={"url": "http://mlflow:5000", "watch": [watch]})
    [parsed] = settings.registry.watch
    assert (parsed.registered_model, parsed.model, parsed.tier.value) == (
        "fraud-scorer", "risk-prod/fraud-scorer", "regulated",
    )  # fmt: skip
    assert settings.registry.poll_seconds == 30
    with pytest.raises(ValidationError, match=r"registry\.watch is set but registry\.url"):
        Settings(registry={"watch": [watch]})
    with pytest.raises(ValidationError, match="expected NAMESPACE/NAME"):
        Settings(registry={"url": "http://m", "watch": [watch | {"model": "fraud-scorer"}]})
    bad_plan = {"steps": [{"weight": 50, "dwell_seconds": 1}, {"weight": 20, "dwell_seconds": 1}]}
    with pytest.raises(ValidationError, match="strictly increase"):
        Settings(registry={"url": "http://m", "watch": [watch | {"plan": bad_plan}]})
    with pytest.raises(ValidationError, match="poll_seconds"):
        Settings(registry={"url": "http://m", "poll_seconds": 1})


def test_checkpoint_settings_need_one_signing_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CANARY_ANALYZER_LEDGER__CHECKPOINT_DIR", str(tmp_path))
    with pytest.raises(ConfigurationError, match=r"checkpoint_dir is set but no signing key"):
        load_settings()
    monkeypatch.setenv("CANARY_ANALYZER_LEDGER__CHECKPOINT_KEY_FILE", str(tmp_path / "k.pem"))
    monkeypatch.setenv("CANARY_ANALYZER_LEDGER__CHECKPOINT_KEY", "-----BEGIN PRIVATE KEY-----")
    with pytest.raises(ConfigurationError, match=r"checkpoint_key and checkpoint_key_file"):
        load_settings()
    monkeypatch.delenv("CANARY_ANALYZER_LEDGER__CHECKPOINT_KEY")
    settings = load_settings()
    assert settings.ledger.checkpoints_enabled()
    assert "BEGIN" not in repr(settings)
    with pytest.raises(ConfigurationError, match=r"k\.pem: No such file"):
        settings.ledger.checkpoint_key_pem()


def test_change_request_notes_need_a_checkpoint_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CANARY_ANALYZER_LEDGER__CHECKPOINT_CHANGE_REQUEST_NOTES", "true")
    with pytest.raises(ConfigurationError, match=r"checkpoint_change_request_notes needs a"):
        load_settings()
