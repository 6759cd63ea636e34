"""``canary-analyzer rollout …``: control driven rollouts through the service's HTTP API.

The commands go through the API, not the database, so that authentication, tenant scoping and
the ledger's record of *who* acted are the same as for any other client. The API's address and
a bearer token come from ``--url``/``--token`` (before or after the subcommand: ``rollout list
--url …`` and ``rollout --url … list`` both work; after wins) or
``CANARY_ANALYZER_URL``/``CANARY_ANALYZER_TOKEN``.

Exit codes (analyzer/cli_exits.py): 0 success; 2 a request the service refused (4xx; its message
is printed) or bad usage; 3 the service could not be reached or failed (5xx).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import click

from analyzer.cli_exits import EXIT_UNAVAILABLE, EXIT_USAGE

DEFAULT_URL = "http://127.0.0.1:8080"


def fail(message: str, code: int) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def call_api(
    ctx: click.Context, method: str, path: str, body: Any = None, params: Any = None
) -> None:
    """One request to the API at ``ctx.obj["url"]``; prints the JSON answer or exits 2 (4xx)
    / 3 (unreachable, 5xx) with the service's message."""
    click.echo(json.dumps(fetch_api(ctx, method, path, body, params), indent=2))


def fetch_api(
    ctx: click.Context, method: str, path: str, body: Any = None, params: Any = None
) -> Any:
    """One request to the API at ``ctx.obj["url"]``; returns the JSON answer or exits 2 (4xx)
    / 3 (unreachable, 5xx) with the service's message."""
    import httpx  # here, not at the top: `canary-analyzer --help` need not pay for it

    url, token = ctx.obj["url"].rstrip("/"), ctx.obj["token"]
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    query = {k: v for k, v in (params or {}).items() if v is not None}
    try:
        response = httpx.request(
            method, f"{url}{path}", json=body, params=query, headers=headers, timeout=30.0
        )
    except httpx.HTTPError as exc:
        fail(f"cannot reach {url}: {exc}", EXIT_UNAVAILABLE)
    try:
        payload = response.json()
    except ValueError:
        payload = {"error": {"message": response.text[:500]}}
    if response.is_success:
        return payload
    message = payload.get("error", {}).get("message", response.reason_phrase)
    code = EXIT_USAGE if response.status_code < 500 else EXIT_UNAVAILABLE
    fail(f"{response.status_code}: {message}", code)


def _call(ctx: click.Context, method: str, path: str, body: Any = None, **params: Any) -> None:
    call_api(ctx, method, f"/api/v1/rollouts{path}", body, params)


def api_options(group: Callable[..., Any]) -> Callable[..., Any]:
    """The ``--url``/``--token`` options every API client group takes."""
    group = click.option(
        "--token",
        envvar="CANARY_ANALYZER_TOKEN",
        default=None,
        help="Bearer token (or CANARY_ANALYZER_TOKEN).",
    )(group)
    return click.option(
        "--url",
        envvar="CANARY_ANALYZER_URL",
        default=DEFAULT_URL,
        show_default=True,
        help="Base URL of the canary-analyzer API.",
    )(group)


def _override_client_setting(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    """``--url``/``--token`` given after the subcommand replace the group's (or env) values."""
    if value is not None and param.name is not None:
        ctx.ensure_object(dict)[param.name] = value


def accept_api_options_after_subcommands(group: click.Group) -> click.Group:
    """Let every subcommand of ``group`` take ``--url``/``--token`` too, where users type them
    (``rollout list --url …``). Call after the subcommands are defined."""
    for command in group.commands.values():
        names = {p.name for p in command.params}
        for name, help_text in (
            ("url", "Base URL of the API (same as before the subcommand)."),
            ("token", "Bearer token (same as before the subcommand)."),
        ):
            if name in names:
                continue
            command.params.append(
                click.Option(
                    [f"--{name}"],
                    default=None,
                    expose_value=False,
                    is_eager=False,
                    callback=_override_client_setting,
                    help=help_text,
                )
            )
    return group


@click.group()
@api_options
@click.pass_context
def rollout(ctx: click.Context, url: str, token: str | None) -> None:
    """Start and control driven rollouts (through the API)."""
    ctx.obj = {"url": url, "token": token}


@rollout.command()
@click.option("--model", required=True, help="NAMESPACE/NAME.")
@click.option("--baseline", required=True, help="Stable revision.")
@click.option("--canary", required=True, help="Canary revision.")
@click.option("--profile", required=True, help="Analysis profile name.")
@click.option(
    "--tier",
    default="standard",
    show_default=True,
    type=click.Choice(["hot-path", "regulated", "standard", "long-tail"]),
)
@click.option("--change-request", default=None, help="e.g. CHG0031337 (regulated tier).")
@click.option(
    "--artifact-uri",
    default=None,
    help="Immutable model artifact URI, or a registry URI models:/NAME/VERSION or "
    "models:/NAME@ALIAS (resolved to a version at start).",
)
@click.option(
    "--model-version",
    default=None,
    help="Registry version of the canary's model (e.g. MLflow version 17); the change request's "
    "version field must name it.",
)
@click.option("--artifact-digest", default=None, help="Artifact digest, sha256:<64 hex>.")
@click.option(
    "--artifact-signature",
    default=None,
    help="cosign sign-blob signature of the artifact (base64), for the signature gate.",
)
@click.option(
    "--sigstore-bundle",
    "bundle_file",
    default=None,
    type=click.Path(exists=True, dir_okay=False),
    help="Sigstore bundle of the artifact (JSON file, keyless signing), for the signature gate.",
)
@click.option(
    "--plan",
    "plan_file",
    default=None,
    type=click.Path(exists=True, dir_okay=False),
    help="Step plan YAML/JSON (steps with weight and dwell_seconds).",
)
@click.option(
    "--strategy",
    default="canary",
    show_default=True,
    type=click.Choice(["canary", "blue_green", "shadow", "pinned"]),
    help="How traffic moves (docs/strategies.md). Without --plan, the strategy's default plan.",
)
@click.pass_context
def start(
    ctx: click.Context,
    model: str,
    baseline: str,
    canary: str,
    profile: str,
    tier: str,
    change_request: str | None,
    artifact_uri: str | None,
    model_version: str | None,
    artifact_digest: str | None,
    artifact_signature: str | None,
    bundle_file: str | None,
    plan_file: str | None,
    strategy: str,
) -> None:
    """Start a rollout of CANARY against BASELINE for MODEL."""
    namespace, sep, name = model.partition("/")
    if not sep:
        fail(f"--model: expected NAMESPACE/NAME, got {model!r}", 2)
    body: dict[str, Any] = {
        "model": {"namespace": namespace, "name": name},
        "tier": tier,
        "baseline_revision": baseline,
        "canary_revision": canary,
        "profile": profile,
        "change_request": change_request,
        "artifact_uri": artifact_uri,
        "model_version": model_version,
        "artifact_digest": artifact_digest,
    }
    if artifact_signature is not None:  # only sent when given: older servers refuse the key
        body["artifact_signature"] = artifact_signature
    if bundle_file is not None:
        try:
            body["artifact_sigstore_bundle"] = json.loads(Path(bundle_file).read_text("utf-8"))
        except ValueError as exc:
            fail(f"--sigstore-bundle: not JSON: {exc}", 2)
    if strategy != "canary":  # likewise
        body["strategy"] = strategy
    if plan_file is not None:
        import yaml

        try:
            body["plan"] = yaml.safe_load(Path(plan_file).read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            fail(f"--plan: not valid YAML/JSON: {exc}", 2)
    _call(ctx, "POST", "", body)


@rollout.command("list")
@click.option("--model", default=None, help="Only rollouts of NAMESPACE/NAME.")
@click.option(
    "--state",
    default=None,
    type=click.Choice(["pending", "progressing", "promoted", "aborted", "failed", "shadow_passed"]),
)
@click.pass_context
def list_(ctx: click.Context, model: str | None, state: str | None) -> None:
    """List rollouts, newest first."""
    _call(ctx, "GET", "", model=model, state=state)


@rollout.command()
@click.argument("rollout_id")
@click.pass_context
def show(ctx: click.Context, rollout_id: str) -> None:
    """Show one rollout."""
    _call(ctx, "GET", f"/{rollout_id}")


@rollout.command()
@click.argument("rollout_id")
@click.option("--reason", required=True, help="Why; recorded in the ledger.")
@click.pass_context
def abort(ctx: click.Context, rollout_id: str, reason: str) -> None:
    """Abort: canary traffic to 0 % now (idempotent)."""
    _call(ctx, "POST", f"/{rollout_id}/abort", {"reason": reason})


@rollout.command()
@click.argument("rollout_id")
@click.option("--reason", required=True, help="Why; recorded in the ledger.")
@click.pass_context
def pause(ctx: click.Context, rollout_id: str, reason: str) -> None:
    """Pause at the current step (nothing is judged or moved)."""
    _call(ctx, "POST", f"/{rollout_id}/pause", {"reason": reason})


@rollout.command()
@click.argument("rollout_id")
@click.pass_context
def resume(ctx: click.Context, rollout_id: str) -> None:
    """Resume a paused rollout."""
    _call(ctx, "POST", f"/{rollout_id}/resume")


@rollout.command()
@click.argument("rollout_id")
@click.option("--comment", default="", help="Recorded with the approval.")
@click.option(
    "--step",
    type=click.IntRange(min=0),
    default=None,
    help="Plan step (index) to approve; default: the next step the approval gate checks.",
)
@click.pass_context
def approve(ctx: click.Context, rollout_id: str, comment: str, step: int | None) -> None:
    """Four-eyes approval (refused for the rollout's initiator)."""
    body: dict[str, object] = {"comment": comment}
    if step is not None:
        body["step"] = step
    _call(ctx, "POST", f"/{rollout_id}/approve", body)


accept_api_options_after_subcommands(rollout)
