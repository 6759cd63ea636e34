"""The shipped AnalysisTemplate, driven the way Argo Rollouts' web provider drives it.

The request is built from the YAML (args substituted JSON-escaped, secret from the static token,
jsonBody as the body), sent over HTTP, and the answer evaluated with the template's jsonPath
and conditions using Argo's truth table (both set: failure wins, neither true = Inconclusive).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from analyzer.domain.verdict import Verdict
from tests.integration.api.conftest import Harness, static_token

pytestmark = pytest.mark.postgres

TEMPLATE = Path(__file__).resolve().parents[3] / "deploy" / "argo" / "analysistemplate.yaml"
_PLACEHOLDER = re.compile(r"\{\{\s*args\.([A-Za-z0-9_-]+)\s*\}\}")
_EQUALS = re.compile(r'^result == "([a-z]+)"$')


def _resolve_args(spec: dict[str, Any], supplied: dict[str, str]) -> dict[str, str]:
    values = {}
    for arg in spec["args"]:
        if "valueFrom" in arg:
            ref = arg["valueFrom"]["secretKeyRef"]
            assert (ref["name"], ref["key"]) == ("canary-analyzer-token", "token")
            values[arg["name"]] = static_token("analysis")
        elif arg["name"] in supplied:
            values[arg["name"]] = supplied[arg["name"]]
        else:
            assert "value" in arg, f"arg {arg['name']} has no default and was not supplied"
            values[arg["name"]] = arg["value"]
    return values


def _substitute(metric: dict[str, Any], args: dict[str, str]) -> dict[str, Any]:
    # Argo serialises the metric, replaces placeholders with JSON-escaped values, parses it back.
    text = json.dumps(metric)
    text = _PLACEHOLDER.sub(lambda m: json.dumps(args[m.group(1)])[1:-1], text)
    return dict(json.loads(text))


def _condition(expression: str, result: Any) -> bool:
    match = _EQUALS.match(expression.strip())
    assert match, f'this test understands `result == "x"` only, not {expression!r}'
    return bool(result == match.group(1))


def _phase(metric: dict[str, Any], result: Any) -> str:
    if _condition(metric["failureCondition"], result):
        return "Failed"
    if _condition(metric["successCondition"], result):
        return "Successful"
    return "Inconclusive"


def measure(api: Harness, supplied: dict[str, str]) -> tuple[str, Any]:
    spec = yaml.safe_load(TEMPLATE.read_text())["spec"]
    (metric,) = spec["metrics"]
    metric = _substitute(metric, _resolve_args(spec, supplied))
    web = metric["provider"]["web"]
    assert web["method"] == "POST"
    assert "body" not in web
    path = urlsplit(web["url"]).path
    headers = {h["key"]: h["value"] for h in web["headers"]}
    response = api.http.post(
        api.url + path, json=web["jsonBody"], headers=headers, timeout=web["timeoutSeconds"]
    )
    if not 200 <= response.status_code < 300:
        return "Error", response.status_code
    body = response.json()  # invalid JSON would be "Successful" on released Argo: must not happen
    path_match = re.fullmatch(r"\{\$\.([a-z_]+)\}", web["jsonPath"])
    assert path_match
    result = body[path_match.group(1)]
    assert result is not None
    return _phase(metric, result), result


ARGS = {
    "namespace": "risk-prod",
    "model": "fraud",
    "rollout": "fraud-scorer",
    "canary-hash": "6c54544bf9",
    "stable-hash": "5b8d7f9c6d",
}


@pytest.mark.parametrize(
    ("verdict", "phase"),
    [
        (Verdict.PASS, "Successful"),
        (Verdict.FAIL, "Failed"),
        (Verdict.INCONCLUSIVE, "Inconclusive"),
        (Verdict.ERROR, "Inconclusive"),
    ],
)
def test_template_conditions_follow_the_verdict(api: Harness, verdict: Verdict, phase: str) -> None:
    assert api.analyzer is not None
    api.analyzer.verdict = verdict
    assert measure(api, ARGS) == (phase, verdict.value)
    entry = api.ledger.events().entries[0]
    assert entry.model == "risk-prod/fraud"
    assert entry.revision == "6c54544bf9"
    assert entry.data()["baseline"] == "5b8d7f9c6d"
    assert entry.data()["rollout"] == "fraud-scorer"


def test_a_real_source_failure_is_inconclusive_not_successful(make_api: Any) -> None:
    api: Harness = make_api(fixed=False)  # synthetic source has no data for these hashes
    assert measure(api, ARGS) == ("Inconclusive", "error")


def test_template_shape(api: Harness) -> None:
    spec = yaml.safe_load(TEMPLATE.read_text())["spec"]
    (metric,) = spec["metrics"]
    web = metric["provider"]["web"]
    assert web["jsonPath"] == "{$.verdict}"
    assert metric["failureLimit"] == 0
    assert metric["consecutiveErrorLimit"] >= 1
    assert metric["count"] == "{{args.looks}}"
    assert metric["interval"] == "{{args.interval}}"
    assert web["jsonBody"]["bake"] == {"looks": "{{args.looks}}", "interval": "{{args.interval}}"}
    assert "{{args.api-token}}" in web["headers"][0]["value"]
    # identifiers travel in jsonBody, never in the URL (Argo does not URL-encode args)
    assert "{{" not in web["url"]


def test_a_healthy_canary_passes_within_the_bake_through_the_template(make_api: Any) -> None:
    # Argo's own bookkeeping over a whole run of the shipped template (default args): looks at
    # 0, 1, ..., 9 minutes; Successful needs no Failed and inconclusive <= inconclusiveLimit.
    api: Harness = make_api(fixed=False)
    spec = yaml.safe_load(TEMPLATE.read_text())["spec"]
    args = _resolve_args(spec, {**ARGS, "canary-hash": "good-00002", "stable-hash": "base-00001"})
    looks, limit = int(args["looks"]), int(args["inconclusive-limit"])
    phases = []
    for _ in range(looks):
        phase, _ = measure(api, {**ARGS, "canary-hash": "good-00002", "stable-hash": "base-00001"})
        phases.append(phase)
        api.clock.advance(60)
    assert "Failed" not in phases
    assert phases[-1] == "Successful", phases
    assert phases.count("Inconclusive") <= limit


def test_a_bad_canary_fails_early_in_the_bake_through_the_template(make_api: Any) -> None:
    api: Harness = make_api(fixed=False)
    phases = []
    for _ in range(3):
        phase, _ = measure(api, {**ARGS, "canary-hash": "bad-00003", "stable-hash": "base-00001"})
        phases.append(phase)
        api.clock.advance(60)
    assert "Failed" in phases, phases
