"""docs/configuration.md is generated from the settings model and cannot drift from it."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from analyzer.cli import main
from analyzer.config import _unknown_env_keys, load_settings
from analyzer.config_reference import REGENERATE_COMMAND, SettingRow, render, walk

DOCS = Path(__file__).resolve().parents[3] / "docs" / "configuration.md"


def rows() -> dict[str, SettingRow]:
    return {row.key: row for row in walk() if isinstance(row, SettingRow)}


def test_the_committed_page_is_the_generated_one() -> None:
    assert DOCS.read_text(encoding="utf-8") == render(), (
        f"docs/configuration.md has drifted from analyzer/config.py: run `{REGENERATE_COMMAND}`"
    )


def test_every_documented_variable_is_a_setting_the_loader_accepts() -> None:
    envs = {row.env: "x" for row in rows().values() if row.env}
    assert len(envs) > 50
    assert _unknown_env_keys(envs) == []
    assert _unknown_env_keys({"CANARY_ANALYZER_APII__PORT": "x"}) == ["CANARY_ANALYZER_APII__PORT"]


def test_the_documented_variable_and_default_are_what_the_service_uses(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    documented = rows()
    audit = documented["api.rate_limit_audit.burst"]
    # the section's default instance (burst=30), not RateLimitSettings' class default (60)
    assert audit.default == "`30`"
    assert load_settings().api.rate_limit_audit.burst == 30
    assert audit.env is not None
    monkeypatch.setenv(audit.env, "7")
    assert load_settings().api.rate_limit_audit.burst == 7


def test_secrets_are_marked_and_plain_values_are_not() -> None:
    documented = rows()
    assert documented["database_url"].secret
    assert documented["registry.token"].secret
    assert documented["api.static_tokens[].token"].secret
    assert documented["api.static_tokens[].token"].env is None  # inside the list's JSON
    assert not documented["api.port"].secret
    assert documented["api.port"].type == "integer (≥ 1, ≤ 65535)"


def test_descriptions_come_from_the_comments_beside_the_settings() -> None:
    documented = rows()
    assert documented["api.oidc_roles_claim"].description.startswith("dotted path")
    assert "Argo's timeout" in documented["datadog.max_rate_limit_wait_seconds"].description
    assert documented["data_dir"].default == "`~/.local/share/canary-analyzer`"  # not $HOME


def test_check_passes_on_the_page_and_names_the_command_on_drift(tmp_path: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(main, ["config", "docs", "--check", "--file", str(DOCS)])
    assert ok.exit_code == 0, ok.output
    stale = tmp_path / "configuration.md"
    stale.write_text(render().replace("`CANARY_ANALYZER_API__PORT`", "`PORT`"), encoding="utf-8")
    drift = runner.invoke(main, ["config", "docs", "--check", "--file", str(stale)])
    assert drift.exit_code == 1
    assert REGENERATE_COMMAND in drift.stderr
    printed = runner.invoke(main, ["config", "docs"])
    assert printed.exit_code == 0
    assert printed.stdout == render()
