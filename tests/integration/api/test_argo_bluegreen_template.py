"""The shipped blue/green AnalysisTemplates (deploy/argo/analysistemplate-bluegreen.yaml),
driven the way Argo Rollouts' web provider drives them (same helpers as the canary template's
test): prePromotionAnalysis compares preview and active concurrently; postPromotionAnalysis
judges the new revision against the previous one's time-matched window."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from analyzer.domain.model import ModelRef
from analyzer.domain.observation import Observation
from analyzer.domain.profile import MetricSpec
from analyzer.metrics.base import MetricQuery, TimeWindow
from analyzer.metrics.synthetic import SyntheticSource
from tests.integration.api.conftest import SYNTHETIC, T0, Harness
from tests.integration.api.test_argo_template import ARGS, _phase, _resolve_args, _substitute

pytestmark = pytest.mark.postgres

TEMPLATES = (
    Path(__file__).resolve().parents[3] / "deploy" / "argo" / "analysistemplate-bluegreen.yaml"
)


def template(name: str) -> dict[str, Any]:
    docs = [d for d in yaml.safe_load_all(TEMPLATES.read_text()) if d]
    (found,) = [d for d in docs if d["metadata"]["name"] == name]
    assert found["kind"] == "AnalysisTemplate"
    return dict(found["spec"])


def measure(api: Harness, name: str, supplied: dict[str, str]) -> tuple[str, Any, dict[str, Any]]:
    spec = template(name)
    (metric,) = spec["metrics"]
    metric = _substitute(metric, _resolve_args(spec, supplied))
    web = metric["provider"]["web"]
    headers = {h["key"]: h["value"] for h in web["headers"]}
    response = api.http.post(
        api.url + urlsplit(web["url"]).path, json=web["jsonBody"], headers=headers,
        timeout=web["timeoutSeconds"],
    )  # fmt: skip
    if not 200 <= response.status_code < 300:
        return "Error", response.status_code, response.json()
    body = response.json()
    path = re.fullmatch(r"\{\$\.([a-z_]+)\}", web["jsonPath"])
    assert path
    return _phase(metric, body[path.group(1)]), body[path.group(1)], body


class Recording:
    """The synthetic source, remembering which window each revision was read over."""

    def __init__(self) -> None:
        self.inner = SyntheticSource(
            seed=7, origin=T0 - timedelta(hours=2), revisions=SYNTHETIC, request_rate=200.0
        )
        self.windows: list[TimeWindow] = []

    def observe(self, spec: MetricSpec, query: MetricQuery, *, model: ModelRef, baseline: str,
                canary: str, window: TimeWindow) -> Observation:  # fmt: skip
        self.windows.append(window)
        return self.inner.observe(
            spec, query, model=model, baseline=baseline, canary=canary, window=window
        )


GOOD = {**ARGS, "canary-hash": "good-00002", "stable-hash": "base-00001"}
BAD = {**ARGS, "canary-hash": "bad-00003", "stable-hash": "base-00001"}


def run(api: Harness, name: str, args: dict[str, str], looks: int) -> list[str]:
    phases = []
    for _ in range(looks):
        phase, _, _ = measure(api, name, args)
        phases.append(phase)
        api.clock.advance(60)
    return phases


@pytest.mark.parametrize("name", ["canary-analyzer-preview", "canary-analyzer-post-promotion"])
def test_a_healthy_new_revision_passes_by_the_last_look(make_api: Any, name: str) -> None:
    api: Harness = make_api(fixed=False)
    args = _resolve_args(template(name), GOOD)
    phases = run(api, name, GOOD, int(args["looks"]))
    assert "Failed" not in phases
    assert phases[-1] == "Successful", phases
    assert phases.count("Inconclusive") <= int(args["inconclusive-limit"])


@pytest.mark.parametrize("name", ["canary-analyzer-preview", "canary-analyzer-post-promotion"])
def test_a_bad_new_revision_fails_early(make_api: Any, name: str) -> None:
    api: Harness = make_api(fixed=False)
    assert "Failed" in run(api, name, BAD, 3)


def test_post_promotion_reads_the_baseline_from_the_time_matched_window(make_api: Any) -> None:
    source = Recording()
    api: Harness = make_api(fixed=False, source=source)
    run(api, "canary-analyzer-post-promotion", GOOD, 2)
    args = {a["name"]: a.get("value") for a in template("canary-analyzer-post-promotion")["args"]}
    offset = timedelta(seconds=int(args["baseline-offset-seconds"]))
    assert offset == timedelta(seconds=600)
    starts = {w.start for w in source.windows}
    now_windows = [w for w in source.windows if w.start == min(starts) + offset]
    then_windows = [w for w in source.windows if w.start == min(starts)]
    assert now_windows, "the new revision's window"
    assert then_windows, "the previous revision's window, 600 s earlier"
    # a separate session from a concurrent analysis of the same pair
    pre = measure(api, "canary-analyzer-preview", GOOD)[2]
    post = measure(api, "canary-analyzer-post-promotion", GOOD)[2]
    assert pre["look"] == 1
    assert post["look"] >= 2


def test_an_offset_shorter_than_the_bake_is_refused_naming_the_field(api: Harness) -> None:
    phase, status, body = measure(
        api, "canary-analyzer-post-promotion", {**GOOD, "baseline-offset-seconds": "120"}
    )
    assert (phase, status) == ("Error", 422)
    assert body["error"]["field"] == "baseline_offset_seconds"
    assert "shorter than the bake" in body["error"]["message"]


def test_the_templates_share_the_canary_templates_contract() -> None:
    for name in ("canary-analyzer-preview", "canary-analyzer-post-promotion"):
        (metric,) = template(name)["metrics"]
        web = metric["provider"]["web"]
        assert web["jsonPath"] == "{$.verdict}"
        assert metric["failureLimit"] == 0
        assert metric["successCondition"] == 'result == "pass"'
        assert metric["failureCondition"] == 'result == "fail"'
        assert "{{" not in web["url"]
        assert json.dumps(web["jsonBody"]).count("{{args.") >= 6
