"""Every secret setting accepts `…_FILE`, and a rotated file is what the next use reads."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from analyzer.config import Settings, load_settings
from analyzer.config_reference import secret_env_names
from analyzer.config_secrets import FileSecret, secret_field_paths
from analyzer.domain.errors import ConfigurationError


def rotate(path: Path, value: str) -> None:
    """Replace the file the way Kubernetes and the CSI driver do: a new file moved over it."""
    fresh = path.with_suffix(".new")
    fresh.write_text(value + "\n", encoding="utf-8")
    os.replace(fresh, path)


def setting(settings: Settings, path: tuple[str, ...]) -> Any:
    value: Any = settings
    for part in path:
        value = getattr(value, part)
    return value


def test_every_documented_secret_variable_accepts_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    documented = secret_env_names()
    assert "CANARY_ANALYZER_DATABASE_URL" in documented
    assert "CANARY_ANALYZER_REGISTRY__TOKEN" in documented
    paths = list(secret_field_paths(Settings))
    assert len(paths) >= 4
    for number, path in enumerate(paths):
        env = "CANARY_ANALYZER_" + "__".join(p.upper() for p in path)
        if env not in documented:
            continue  # a section with its own *_file setting (datadog)
        secret = tmp_path / f"secret-{number}"
        secret.write_text(f"value-{number}\n", encoding="utf-8")
        monkeypatch.setenv(env + "_FILE", str(secret))
        loaded = setting(load_settings(), path)
        assert isinstance(loaded, FileSecret), env
        assert loaded.get_secret_value() == f"value-{number}", env
        monkeypatch.delenv(env + "_FILE")


def test_a_rotated_file_is_read_at_the_next_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = tmp_path / "token"
    secret.write_text("first\n", encoding="utf-8")
    monkeypatch.setenv("CANARY_ANALYZER_REGISTRY__TOKEN_FILE", str(secret))
    token = load_settings().registry.token
    assert token is not None
    assert token.get_secret_value() == "first"
    assert "first" not in repr(token)
    rotate(secret, "second")
    with capture_logs() as logs:
        assert token.get_secret_value() == "second"
        assert token.get_secret_value() == "second"
    assert [e["event"] for e in logs] == ["config.secret_file.reloaded"]  # read once per change
    # mid-rotation the file is briefly gone: the last value is kept, with a warning
    secret.unlink()
    with capture_logs() as logs:
        assert token.get_secret_value() == "second"
    assert logs[0]["event"] == "config.secret_file.unreadable"
    rotate(secret, "third")
    assert token.get_secret_value() == "third"
    # a worker process gets the path, not the value, and reads the file itself
    assert pickle.loads(pickle.dumps(token)).get_secret_value() == "third"


def test_file_errors_are_named_at_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CANARY_ANALYZER_DATABASE_URL_FILE", str(tmp_path / "missing"))
    with pytest.raises(ConfigurationError, match=r"CANARY_ANALYZER_DATABASE_URL_FILE=.*missing"):
        load_settings()
    empty = tmp_path / "empty"
    empty.write_text("\n", encoding="utf-8")
    monkeypatch.setenv("CANARY_ANALYZER_DATABASE_URL_FILE", str(empty))
    with pytest.raises(ConfigurationError, match="is empty"):
        load_settings()
    empty.write_text("sqlite:///x.db", encoding="utf-8")
    monkeypatch.setenv("CANARY_ANALYZER_DATABASE_URL", "sqlite:///y.db")
    with pytest.raises(ConfigurationError, match="both set"):
        load_settings()


def test_file_variables_of_plain_settings_are_unknown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CANARY_ANALYZER_LOG_LEVEL_FILE", "/x")
    with pytest.raises(ConfigurationError, match="CANARY_ANALYZER_LOG_LEVEL_FILE"):
        load_settings()
    monkeypatch.delenv("CANARY_ANALYZER_LOG_LEVEL_FILE")
    monkeypatch.setenv("CANARY_ANALYZER_API__PORT_FILE", "/x")
    with pytest.raises(ConfigurationError, match="port_file"):
        load_settings()
