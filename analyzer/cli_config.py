"""``canary-analyzer config docs [--check]``: the configuration reference, from the settings model.

``config docs`` prints docs/configuration.md; ``--check`` compares it with the file instead and
exits 1 (a negative outcome: the file has drifted) naming the command that regenerates it. The
output is deterministic, so a check in CI fails only when a setting was added or changed
without regenerating the page.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from analyzer.cli_exits import EXIT_NEGATIVE, EXIT_USAGE

DEFAULT_DOCS_PATH = Path("docs") / "configuration.md"


@click.group()
def config() -> None:
    """The settings: their reference documentation (docs/configuration.md)."""


@config.command("docs")
@click.option(
    "--check",
    is_flag=True,
    help="Compare with --file instead of printing; exit 1 when it differs.",
)
@click.option(
    "--file",
    "path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=DEFAULT_DOCS_PATH,
    show_default=True,
    help="The page --check compares against.",
)
def docs(check: bool, path: Path) -> None:
    """Print the configuration reference generated from the settings model."""
    from analyzer.config_reference import REGENERATE_COMMAND, render

    text = render()
    if not check:
        click.echo(text, nl=False)
        return
    try:
        current = path.read_text(encoding="utf-8")
    except OSError as exc:
        click.echo(f"error: cannot read {path}: {exc.strerror}", err=True)
        sys.exit(EXIT_USAGE)
    if current != text:
        click.echo(
            f"{path} does not match the settings model (analyzer/config.py); regenerate it "
            f"with:\n\n    {REGENERATE_COMMAND}\n",
            err=True,
        )
        sys.exit(EXIT_NEGATIVE)
    click.echo(f"{path} matches the settings model")
