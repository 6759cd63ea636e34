"""docs/operations.md is a runbook for the alerts we ship, and quotes only commands that exist."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest
import yaml

from analyzer.cli import main

REPO = Path(__file__).resolve().parents[3]
RUNBOOK = (REPO / "docs" / "operations.md").read_text(encoding="utf-8")
RULES = yaml.safe_load((REPO / "deploy" / "monitoring" / "prometheusrule.yaml").read_text())


def alerts() -> dict[str, str]:
    return {
        rule["alert"]: rule["annotations"]["runbook_url"]
        for group in RULES["spec"]["groups"]
        for rule in group["rules"]
    }


def sections() -> dict[str, str]:
    parts = re.split(r"^### (\S+)\n", RUNBOOK, flags=re.M)
    return {parts[i]: parts[i + 1].split("\n## ")[0] for i in range(1, len(parts), 2)}


def test_every_alert_has_a_section_saying_what_it_means_and_what_to_do() -> None:
    documented = sections()
    missing = sorted(set(alerts()) - set(documented))
    assert not missing, f"add a '### NAME' section (*Means*, *Do*) to docs/operations.md: {missing}"
    for name in alerts():
        assert "*Means*:" in documented[name], name
        assert "*Do*:" in documented[name], name


def test_every_alert_links_to_its_own_section() -> None:
    for name, url in alerts().items():
        assert url.endswith(f"/docs/operations.md#{name.lower()}"), (name, url)


def test_the_procedures_are_there() -> None:
    headings = re.findall(r"^## (.+)$", RUNBOOK, flags=re.M)
    for needed in ("Alerts", "Backup and restore", "Rotating keys and tokens", "Disaster recovery"):
        assert needed in headings


def quoted_commands(text: str) -> list[list[str]]:
    """Every `canary-analyzer …` in inline code, and every such line of a code block."""
    snippets = re.findall(r"`(canary-analyzer [^`]+)`", text.replace("\n", " "))
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        joined = block.replace("\\\n", " ")
        snippets += [line for line in joined.splitlines() if line.startswith("canary-analyzer ")]
    return [shlex.split(s.replace("…", "X"), comments=True)[1:] for s in snippets]


@pytest.mark.parametrize("page", ["operations.md", "quickstart-kserve.md"])
def test_every_quoted_command_and_option_exists(page: str) -> None:
    commands = quoted_commands((REPO / "docs" / page).read_text(encoding="utf-8"))
    assert len(commands) >= 5
    for words in commands:
        command: click.Command = main
        rest = list(words)
        while isinstance(command, click.Group) and rest and rest[0] in command.commands:
            command = command.commands[rest.pop(0)]
        assert not isinstance(command, click.Group), f"incomplete command: {words}"
        options = {o for p in command.params for o in getattr(p, "opts", [])}
        for word in rest:
            if word.startswith("--"):
                assert word in options, f"`canary-analyzer {' '.join(words)}`: no option {word}"


def test_the_kserve_quick_start_names_real_files_and_secret_keys() -> None:
    page = (REPO / "docs" / "quickstart-kserve.md").read_text(encoding="utf-8")
    for path in set(re.findall(r"(deploy/[\w./-]+\w)", page)):
        assert (REPO / path).exists(), path
    deployment = (REPO / "deploy" / "kustomize" / "base" / "deployment.yaml").read_text()
    migrate = (REPO / "deploy" / "kustomize" / "base" / "migrate-job.yaml").read_text()
    for key in re.findall(r"--from-literal=([\w-]+)=", page):
        assert f"key: {key}" in deployment + migrate, key
