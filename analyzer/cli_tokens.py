"""``canary-analyzer token create``: a static bearer token and the settings line that admits it.

The token is random (256 bits, URL-safe) and printed exactly once; the settings only ever hold
its SHA-256 (``token_sha256``), so neither the config file nor a settings dump reveals it. The
command touches no database and no running service: it prints, and the operator decides where
the line goes (the environment, or the YAML config file). A running ``serve`` reads settings at
start, so restart it after adding the line.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import shlex
import sys
from typing import Any

import click

# The role names of analyzer.api.auth.Role, repeated here so that `token --help` does not
# import the API stack; tests/unit/test_cli_tokens.py fails if the two ever differ.
ROLE_NAMES = ("viewer", "auditor", "operator", "approver", "admin", "analysis")
STATIC_TOKENS_ENV = "CANARY_ANALYZER_API__STATIC_TOKENS"
CLIENT_TOKEN_ENV = "CANARY_ANALYZER_TOKEN"  # what the `rollout` and `evaluation` commands send


def static_token_entry(
    subject: str, roles: tuple[str, ...], namespaces: tuple[str, ...], token: str
) -> dict[str, Any]:
    """One ``api.static_tokens`` entry admitting ``token`` (by digest only)."""
    entry: dict[str, Any] = {
        "subject": subject,
        "roles": list(roles),
        "token_sha256": hashlib.sha256(token.encode()).hexdigest(),
    }
    if namespaces:
        entry["namespaces"] = list(namespaces)
    return entry


def settings_lines(entry: dict[str, Any]) -> tuple[str, str]:
    """The environment line and the YAML config-file snippet that admit ``entry``."""
    import yaml

    env = f"{STATIC_TOKENS_ENV}='{json.dumps([entry], separators=(',', ':'))}'"
    snippet = yaml.safe_dump({"api": {"static_tokens": [entry]}}, sort_keys=False)
    return env, snippet


@click.group()
def token() -> None:
    """Create static bearer tokens for local use (production: OIDC, docs/api.md)."""


@token.command("create")
@click.option("--subject", required=True, help="Who the token stands for (the ledger's actor).")
@click.option(
    "--role",
    "roles",
    required=True,
    multiple=True,
    type=click.Choice(ROLE_NAMES),
    help="A role the token grants; repeat for several (docs/api.md: roles).",
)
@click.option(
    "--namespace",
    "namespaces",
    multiple=True,
    help="Limit the token to this Kubernetes namespace; repeat for several (default: all).",
)
@click.option(
    "--output",
    type=click.Choice(["text", "json", "shell"]),
    default="text",
    show_default=True,
    help="json: one object with token, env and yaml (for scripts). shell: export lines "
    "admitting the token and setting CANARY_ANALYZER_TOKEN, for "
    '`eval "$(canary-analyzer token create … --output shell)"`.',
)
def create(subject: str, roles: tuple[str, ...], namespaces: tuple[str, ...], output: str) -> None:
    """Print a new token once, and the settings line (env or YAML) that admits it."""
    subject = subject.strip()
    if not subject or len(subject) > 256:
        click.echo("error: --subject: give 1 to 256 characters", err=True)
        sys.exit(2)
    roles = tuple(dict.fromkeys(roles))  # keep order, drop repeats
    value = "ca_" + secrets.token_urlsafe(32)
    entry = static_token_entry(subject, roles, tuple(dict.fromkeys(namespaces)), value)
    env, snippet = settings_lines(entry)
    if output == "json":
        click.echo(json.dumps({"token": value, "entry": entry, "env": env, "yaml": snippet}))
        return
    if output == "shell":
        # For one workstation shell: `serve` started from it admits the token, the CLI sends it,
        # and the note (stderr, so `eval` does not run it) says where to paste it.
        entries = json.dumps([entry], separators=(",", ":"))
        click.echo(
            f"export {STATIC_TOKENS_ENV}={shlex.quote(entries)}\n"
            f"export {CLIENT_TOKEN_ENV}={shlex.quote(value)}"
        )
        click.echo(
            f"token for {subject} ({', '.join(roles)}) exported as ${CLIENT_TOKEN_ENV}; sign in "
            f"at /ui/login with it (echo ${CLIENT_TOKEN_ENV}). Only this shell has it.",
            err=True,
        )
        return
    click.echo(
        f"Token for {subject} ({', '.join(roles)}"
        + (f"; namespaces {', '.join(namespaces)}" if namespaces else "; every namespace")
        + "). It is shown only now: store it in your password manager or secret store.\n\n"
        f"  {value}\n\n"
        "The service stores only its SHA-256. Admit it with ONE of these, then (re)start "
        "`canary-analyzer serve`:\n\n"
        "  environment (replaces any tokens already set this way):\n\n"
        f"    export {env}\n\n"
        "  or the YAML config file named by CANARY_ANALYZER_CONFIG_FILE "
        "(append the entry to api.static_tokens):\n\n"
        + "".join(f"    {line}\n" for line in snippet.splitlines())
        + "\nUse it as `Authorization: Bearer <token>`, with `--token` on the `rollout` and "
        "`evaluation` commands, or on the /ui/login page."
    )
