"""``canary-analyzer evaluation …``: CI records evaluation results through the HTTP API.

A CI job runs its golden-set evaluation or load test, then records the outcome for the model
version it evaluated, so that the evaluation gate (docs/gates.md) can open for rollouts of that
version. Same address, token and exit codes as ``canary-analyzer rollout`` (0 recorded; 2 the
service refused it or bad usage; 3 the service could not be reached or failed).
"""

from __future__ import annotations

import math
from typing import Any

import click

from analyzer.cli_rollouts import (
    accept_api_options_after_subcommands,
    api_options,
    call_api,
    fail,
)


@click.group()
@api_options
@click.pass_context
def evaluation(ctx: click.Context, url: str, token: str | None) -> None:
    """Record and list CI evaluation results of model versions (through the API)."""
    ctx.obj = {"url": url, "token": token}


def _model(model: str) -> dict[str, str]:
    namespace, sep, name = model.partition("/")
    if not sep:
        fail(f"--model: expected NAMESPACE/NAME, got {model!r}", 2)
    return {"namespace": namespace, "name": name}


def _metrics(values: tuple[str, ...]) -> dict[str, float]:
    metrics: dict[str, float] = {}
    for item in values:
        name, sep, text = item.partition("=")
        try:
            number = float(text)
        except ValueError:
            number = math.nan
        if not sep or not name or not math.isfinite(number):
            fail(f"--metric: expected NAME=NUMBER with a finite number, got {item!r}", 2)
        metrics[name] = number
    return metrics


@evaluation.command()
@click.option("--model", required=True, help="NAMESPACE/NAME.")
@click.option("--model-version", required=True, help="Registry version evaluated (e.g. 17).")
@click.option("--suite", required=True, help="Suite name, e.g. golden-set or load-test.")
@click.option(
    "--passed/--failed", "passed", default=None, help="The suite's outcome (one is required)."
)
@click.option("--metric", "metric", multiple=True, help="NAME=NUMBER, repeatable (up to 50).")
@click.option("--report-url", default=None, help="https link to the full report.")
@click.option("--commit", default=None, help="Git commit evaluated (full hex id).")
@click.option("--artifact-digest", default=None, help="Evaluated artifact, sha256:<64 hex>.")
@click.pass_context
def record(
    ctx: click.Context,
    model: str,
    model_version: str,
    suite: str,
    passed: bool | None,
    metric: tuple[str, ...],
    report_url: str | None,
    commit: str | None,
    artifact_digest: str | None,
) -> None:
    """Record one suite's result for MODEL at MODEL_VERSION."""
    if passed is None:
        fail("say --passed or --failed", 2)
    body: dict[str, Any] = {
        "model": _model(model),
        "model_version": model_version,
        "suite": suite,
        "passed": passed,
        "metrics": _metrics(metric),
        "report_url": report_url,
        "commit": commit,
        "artifact_digest": artifact_digest,
    }
    call_api(ctx, "POST", "/api/v1/evaluations", body)


@evaluation.command("list")
@click.option("--model", required=True, help="NAMESPACE/NAME.")
@click.option("--model-version", default=None, help="Only this registry version.")
@click.option("--suite", default=None, help="Only this suite.")
@click.pass_context
def list_(ctx: click.Context, model: str, model_version: str | None, suite: str | None) -> None:
    """List recorded results, newest first."""
    params = {"model": model, "model_version": model_version, "suite": suite}
    call_api(ctx, "GET", "/api/v1/evaluations", params=params)


accept_api_options_after_subcommands(evaluation)
