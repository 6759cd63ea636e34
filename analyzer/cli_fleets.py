"""``canary-analyzer fleet …``: start and control fleet rollouts through the HTTP API.

Same client rules as ``rollout`` (``analyzer/cli_rollouts.py``): ``--url``/``--token`` (or
``CANARY_ANALYZER_URL``/``CANARY_ANALYZER_TOKEN``); exit 0 success, 2 a request the service
refused (its message printed) or bad usage, 3 the service unreachable or failing. The spec of
``fleet start`` is the body of ``POST /api/v1/fleets`` as YAML or JSON (docs/api.md).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import yaml

from analyzer.cli_exits import EXIT_USAGE
from analyzer.cli_rollouts import (
    accept_api_options_after_subcommands,
    api_options,
    call_api,
    fail,
    fetch_api,
)


def _call(ctx: click.Context, method: str, path: str, body: Any = None, **params: Any) -> None:
    call_api(ctx, method, f"/api/v1/fleets{path}", body, params)


@click.group()
@api_options
@click.pass_context
def fleet(ctx: click.Context, url: str, token: str | None) -> None:
    """Start and control fleet rollouts: many models in waves (through the API)."""
    ctx.obj = {"url": url, "token": token}


@fleet.command()
@click.argument("spec_file", type=click.Path(exists=True, dir_okay=False))
@click.pass_context
def start(ctx: click.Context, spec_file: str) -> None:
    """Start the fleet rollout described by SPEC_FILE (YAML or JSON)."""
    try:
        body = yaml.safe_load(Path(spec_file).read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        fail(f"{spec_file}: not valid YAML/JSON: {exc}", EXIT_USAGE)
    if not isinstance(body, dict):
        fail(f"{spec_file}: expected a mapping (the body of POST /api/v1/fleets)", EXIT_USAGE)
    _call(ctx, "POST", "", body)


@fleet.command("list")
@click.pass_context
def list_fleets(ctx: click.Context) -> None:
    """Fleet rollouts, newest first."""
    _call(ctx, "GET", "")


@fleet.command()
@click.argument("fleet_id")
@click.option("--looks", is_flag=True, help="The verdicts over time instead of the state.")
@click.option(
    "--rollbacks",
    is_flag=True,
    help="Only the watch (what is watched, until when) and why each model went back.",
)
@click.pass_context
def show(ctx: click.Context, fleet_id: str, looks: bool, rollbacks: bool) -> None:
    """One fleet rollout: waves and every model's state, the watch and each rollback's cause
    (or its looks)."""
    if looks and rollbacks:
        fail("--looks and --rollbacks show different things: give one", EXIT_USAGE)
    if not rollbacks:
        _call(ctx, "GET", f"/{fleet_id}/looks" if looks else f"/{fleet_id}")
        return
    shown = fetch_api(ctx, "GET", f"/api/v1/fleets/{fleet_id}")
    click.echo(json.dumps(rollbacks_of(shown), indent=2))


def rollbacks_of(fleet: dict[str, Any]) -> dict[str, Any]:
    """The part of ``GET /api/v1/fleets/{id}`` that says what the watch covers and why each
    model went back."""
    return {
        "id": fleet["id"],
        "status": fleet["status"],
        "watch": fleet["watch"],
        "waves": [
            {k: w[k] for k in ("number", "watched", "rolled_back_by")} for w in fleet["waves"]
        ],
        "rollbacks": [
            {"model": m["model"], "model_wave": m["wave"], **m["rollback"]}
            for m in fleet["models"]
            if m["rollback"] is not None
        ],
    }


@fleet.command()
@click.argument("fleet_id")
@click.option("--reason", required=True, help="Why; recorded in the ledger.")
@click.pass_context
def abort(ctx: click.Context, fleet_id: str, reason: str) -> None:
    """Send every model on the new version back."""
    _call(ctx, "POST", f"/{fleet_id}/abort", {"reason": reason})


@fleet.command()
@click.argument("fleet_id")
@click.option("--reason", required=True, help="Why; recorded in the ledger.")
@click.pass_context
def resume(ctx: click.Context, fleet_id: str, reason: str) -> None:
    """Accept a held wave and start the next."""
    _call(ctx, "POST", f"/{fleet_id}/resume", {"reason": reason})


@fleet.command()
@click.argument("fleet_id")
@click.option("--comment", default="", help="Recorded in the ledger with the approval.")
@click.option(
    "--wave",
    type=click.IntRange(min=1),
    default=None,
    help="Wave (1-based) to approve; default: the next wave that names manual-approval.",
)
@click.pass_context
def approve(ctx: click.Context, fleet_id: str, comment: str, wave: int | None) -> None:
    """Four-eyes approval of a wave gated by manual-approval (refused for the initiator)."""
    body: dict[str, object] = {"comment": comment}
    if wave is not None:
        body["wave"] = wave
    _call(ctx, "POST", f"/{fleet_id}/approvals", body)


accept_api_options_after_subcommands(fleet)
