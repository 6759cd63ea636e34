"""``canary-analyzer token create``: the printed line admits the printed token, and only it."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from structlog.testing import capture_logs

from analyzer.api.auth import Authenticator, Role, StaticTokens, identity_problem
from analyzer.cli import main
from analyzer.cli_tokens import ROLE_NAMES
from analyzer.config import ApiSettings, StaticTokenSettings, load_settings


def create(*args: str) -> dict[str, object]:
    result = CliRunner().invoke(main, ["token", "create", *args, "--output", "json"])
    assert result.exit_code == 0, result.output
    created: dict[str, object] = json.loads(result.output)
    return created


def test_role_names_are_the_api_roles() -> None:
    assert set(ROLE_NAMES) == {r.value for r in Role}


def test_the_env_line_admits_the_token_with_its_roles_and_namespaces(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    created = create("--subject", "alice", "--role", "operator", "--role", "auditor",
                     "--namespace", "risk-prod")  # fmt: skip
    token = str(created["token"])
    assert token not in str(created["env"])  # the settings never hold the token itself
    name, _, value = str(created["env"]).partition("=")
    [value] = shlex.split(value)  # the quoting a shell applies to `export NAME='...'`
    monkeypatch.setenv(name, value)
    settings = load_settings()
    actor = StaticTokens(settings.api.static_tokens).match(token)
    assert actor is not None
    assert actor.subject == "alice"
    assert actor.roles == {"operator", "auditor"}
    assert actor.namespaces == {"risk-prod"}
    assert StaticTokens(settings.api.static_tokens).match(token + "x") is None


def test_the_yaml_snippet_admits_the_token(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    created = create("--subject", "ci", "--role", "analysis")
    config = tmp_path / "config.yaml"
    config.write_text(str(created["yaml"]), encoding="utf-8")
    assert yaml.safe_load(config.read_text())["api"]["static_tokens"][0]["subject"] == "ci"
    monkeypatch.setenv("CANARY_ANALYZER_CONFIG_FILE", str(config))
    actor = StaticTokens(load_settings().api.static_tokens).match(str(created["token"]))
    assert actor is not None
    assert actor.roles == {"analysis"}
    assert actor.namespaces is None


def test_each_token_is_new() -> None:
    first, second = (create("--subject", "a", "--role", "viewer") for _ in range(2))
    assert first["token"] != second["token"]


def test_text_output_shows_the_token_once_and_both_settings_forms() -> None:
    result = CliRunner().invoke(main, ["token", "create", "--subject", "bob", "--role", "admin"])
    assert result.exit_code == 0
    lines = result.output.splitlines()
    tokens = [line.strip() for line in lines if line.strip().startswith("ca_")]
    assert len(tokens) == 1
    assert result.output.count(tokens[0]) == 1
    assert "export CANARY_ANALYZER_API__STATIC_TOKENS='[" in result.output
    assert "static_tokens:" in result.output


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["--subject", "x", "--role", "superuser"], "superuser"),
        (["--role", "admin"], "--subject"),
        (["--subject", "x"], "--role"),
        (["--subject", "   ", "--role", "admin"], "--subject"),
    ],
)
def test_bad_input_exits_2_naming_the_problem(args: list[str], complaint: str) -> None:
    result = CliRunner().invoke(main, ["token", "create", *args])
    assert result.exit_code == 2
    assert complaint in result.output


def test_no_identity_source_is_a_clear_warning() -> None:
    with capture_logs() as logs:
        Authenticator.from_settings(ApiSettings())
    [warning] = [e for e in logs if e["event"] == "auth.no_identity_source"]
    assert warning["log_level"] == "warning"
    assert "canary-analyzer token create" in warning["problem"]


def test_half_configured_oidc_is_named() -> None:
    problem = identity_problem(ApiSettings(oidc_issuer="https://idp.example"))
    assert problem is not None
    assert "api.oidc_audience" in problem


def test_a_static_token_silences_the_warning() -> None:
    created = create("--subject", "a", "--role", "viewer")
    api = ApiSettings.model_validate({"static_tokens": [created["entry"]]})
    with capture_logs() as logs:
        Authenticator.from_settings(api)
    assert not [e for e in logs if e["event"] == "auth.no_identity_source"]


def test_shell_output_admits_the_token_and_sets_the_client_token(tmp_path: Path) -> None:
    script = (
        'eval "$("$PY" -m analyzer.cli token create --subject "o\'brien" --role viewer '
        '--output shell)" && printf "%s\\n%s\\n" "$CANARY_ANALYZER_TOKEN" '
        '"$CANARY_ANALYZER_API__STATIC_TOKENS"'
    )
    done = subprocess.run(
        ["bash", "-c", script], env={"PY": sys.executable, "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, check=True, cwd=tmp_path,
    )  # fmt: skip
    token, entries = done.stdout.splitlines()
    assert "sign in at /ui/login" in done.stderr
    [entry] = json.loads(entries)
    assert entry["subject"] == "o'brien"
    actor = StaticTokens([StaticTokenSettings(**entry)]).match(token)
    assert actor is not None
    assert actor.roles == {"viewer"}
