"""``canary-analyzer profiles …``: work with analysis profiles offline.

``profiles import-kayenta CONFIG.json`` translates a Kayenta canary config into a profile YAML
(stdout, or ``--output``) and reports how each field mapped (stderr, or ``--report-json``).
Exit codes: 0 every scored metric mapped; 1 some metric could not be mapped (it is written
commented out, so the profile judges less than the config did until someone fixes it); 2 the
input is not a canary config.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

EXIT_OK, EXIT_INCOMPLETE, EXIT_USAGE = 0, 1, 2


@click.group()
def profiles() -> None:
    """Analysis profiles: import from other tools."""


@profiles.command("import-kayenta")
@click.argument("config", type=click.Path(dir_okay=False, allow_dash=True))
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write the profile YAML here (default: stdout).",
)
@click.option(
    "--report-json",
    type=click.Path(dir_okay=False),
    default=None,
    help="Also write the mapping report as JSON here.",
)
@click.option("--name", default=None, help="Profile name when the config has none.")
def import_kayenta_command(
    config: str, output: str | None, report_json: str | None, name: str | None
) -> None:
    """Translate a Kayenta canary-config JSON into a profile YAML with a mapping report."""
    from analyzer.domain.errors import InvalidInputError
    from analyzer.kayenta_import import import_kayenta
    from analyzer.profiles import parse_profile

    try:
        text = sys.stdin.read() if config == "-" else Path(config).read_text(encoding="utf-8")
        document = json.loads(text)
        imported = import_kayenta(document, default_name=name or Path(config).stem)
        profile_yaml = imported.yaml()
        if imported.profile["metrics"]:
            parse_profile(profile_yaml, source="imported profile")  # what we write must load
    except OSError as exc:
        _fail(f"{config}: {exc.strerror}")
    except json.JSONDecodeError as exc:
        _fail(f"{config}: not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")
    except InvalidInputError as exc:
        _fail(f"{config}: {exc}")
    if output:
        Path(output).write_text(profile_yaml, encoding="utf-8")
    else:
        click.echo(profile_yaml, nl=False)
    if report_json:
        lines = [m.to_json() for m in imported.report]
        Path(report_json).write_text(json.dumps(lines, indent=2) + "\n", encoding="utf-8")
    click.echo(imported.report_text(), err=True)
    if not imported.profile["metrics"]:
        click.echo("no metric could be mapped: the profile would not load", err=True)
        sys.exit(EXIT_INCOMPLETE)
    sys.exit(EXIT_OK if imported.complete else EXIT_INCOMPLETE)


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(EXIT_USAGE)
