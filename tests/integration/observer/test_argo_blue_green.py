"""Acceptance (issue 15): an Argo Rollout with ``strategy.blueGreen``, moved by the (fake) Argo
controller and judged through the shipped blue/green AnalysisTemplates' requests, is answered
exactly by ``/api/v1/audit/serving`` at instants inside each phase: before the update, while the
new revision only has the preview Service (it serves nothing), after the cut (it serves 100 %),
and after full promotion; a failed post-promotion analysis points the active Service back."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from analyzer.domain.verdict import Verdict
from tests.fakes.kube_api import ROLLOUTS, KubeApiFake
from tests.integration.api.conftest import T0, Harness
from tests.integration.api.test_argo_bluegreen_template import template as analysis_template
from tests.integration.api.test_argo_template import _resolve_args, _substitute
from tests.integration.observer.test_acceptance import (
    serving,
    split_of,
    step_until_recorded,
    template,
    traffic_count,
)

pytestmark = pytest.mark.postgres


@pytest.fixture
def kube() -> Iterator[KubeApiFake]:
    with KubeApiFake() as fake:
        fake.watches.bookmark_interval = 0.2
        yield fake


def blue_green_rollout() -> dict[str, Any]:
    return {
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
        "metadata": {"name": "fraud", "namespace": "risk-prod"},
        "spec": {"replicas": 4, "template": template("scorer:1"), "strategy": {"blueGreen": {
            "activeService": "fraud-active", "previewService": "fraud-preview",
            "prePromotionAnalysis": {"templates": [{"templateName": "canary-analyzer-preview"}]},
            "postPromotionAnalysis": {
                "templates": [{"templateName": "canary-analyzer-post-promotion"}]},
        }}},
    }  # fmt: skip


def measure(api: Harness, name: str, canary: str, stable: str) -> str:
    """One measurement of the shipped template ``name``, as Argo's web provider sends it."""
    spec = analysis_template(name)
    supplied = {"namespace": "risk-prod", "model": "fraud", "rollout": "fraud",
                "canary-hash": canary, "stable-hash": stable}  # fmt: skip
    (metric,) = spec["metrics"]
    web = _substitute(metric, _resolve_args(spec, supplied))["provider"]["web"]
    headers = {h["key"]: h["value"] for h in web["headers"]}
    response = api.http.post(f"{api.url}/api/v1/analyses", json=web["jsonBody"], headers=headers)
    assert response.status_code == 200, response.text
    return str(response.json()["verdict"])


def update(api: Harness, kube: KubeApiFake) -> tuple[str, str]:
    """scorer:1 stable at T0; scorer:2 shipped at T0+60 and given the preview Service."""
    kube.seed(ROLLOUTS, blue_green_rollout())
    step_until_recorded(api, kube, 1)  # first deploy: active at once
    api.clock.advance(60)
    kube.store.write(ROLLOUTS, "risk-prod", "fraud", lambda o: {
        **o, "spec": {**o["spec"], "template": template("scorer:2")}}, status=False,
        manager="argocd-controller")  # fmt: skip
    kube.argo.step("risk-prod", "fraud")  # preview only: no traffic change
    status = kube.get(ROLLOUTS, "risk-prod", "fraud")["status"]
    assert status["blueGreen"]["previewSelector"] == status["currentPodHash"]
    return status["stableRS"], status["currentPodHash"]


def test_a_good_blue_green_is_answered_in_every_phase(make_api: Any, kube: KubeApiFake) -> None:
    api = _observe(make_api, kube)
    stable, new = update(api, kube)
    api.clock.advance(30)
    assert measure(api, "canary-analyzer-preview", new, stable) in ("pass", "inconclusive")
    assert traffic_count(api) == 1  # the preview serves no production traffic
    api.clock.advance(30)
    step_until_recorded(api, kube, 2)  # the cut, at T0+120
    api.clock.advance(60)
    assert measure(api, "canary-analyzer-post-promotion", new, stable) != "fail"
    api.clock.advance(60)
    kube.argo.step("risk-prod", "fraud")  # fully promoted at T0+240: stableRS moves, no traffic
    deadline = time.monotonic() + 5
    while kube.get(ROLLOUTS, "risk-prod", "fraud")["status"]["stableRS"] != new:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    time.sleep(0.3)  # give the observer the event: the split did not change, nothing recorded
    assert traffic_count(api) == 2

    assert split_of(serving(api, T0 + timedelta(seconds=30))) == {stable: 100.0}
    assert split_of(serving(api, T0 + timedelta(seconds=90))) == {stable: 100.0}  # preview phase
    cut = serving(api, T0 + timedelta(seconds=150))
    assert split_of(cut) == {new: 100.0}
    assert (cut["source"], cut["owner"]) == ("observed", "argo-rollouts")
    assert split_of(serving(api, T0 + timedelta(seconds=300))) == {new: 100.0}


def test_a_failed_post_promotion_analysis_points_the_active_service_back(
    make_api: Any, kube: KubeApiFake
) -> None:
    api = _observe(make_api, kube)
    assert api.analyzer is not None
    stable, new = update(api, kube)
    step_until_recorded(api, kube, 2)  # the cut, at T0+60
    api.clock.advance(60)
    api.analyzer.verdict = Verdict.FAIL
    assert measure(api, "canary-analyzer-post-promotion", new, stable) == "fail"
    # Argo's AnalysisRun Failed: the controller sets status.abort and re-points the active Service
    kube.store.write(ROLLOUTS, "risk-prod", "fraud", lambda o: {
        **o, "status": {**o["status"], "abort": True}}, status=True,
        manager="rollouts-controller")  # fmt: skip
    api.clock.advance(1)
    step_until_recorded(api, kube, 3)  # re-pointed, at T0+121
    assert split_of(serving(api, T0 + timedelta(seconds=90))) == {new: 100.0}
    back = serving(api, T0 + timedelta(seconds=130))
    assert split_of(back) == {stable: 100.0}
    assert kube.get(ROLLOUTS, "risk-prod", "fraud")["status"]["blueGreen"]["activeSelector"] == (
        stable
    )


def _observe(make_api: Any, kube: KubeApiFake) -> Harness:
    """The observer over the fake apiserver, recording into a fresh API harness's ledger
    (the same wiring as test_acceptance.py's ``observed`` fixture)."""
    from prometheus_client import CollectorRegistry

    from analyzer.observer import ObservedTrafficRecorder, TrafficObserver
    from analyzer.targets.kube_watch import WatchBackoff

    api: Harness = make_api()
    kube.argo.clock = api.clock.monotonic
    recorder = ObservedTrafficRecorder(api.engine, api.ledger, clock=api.clock)
    observer = TrafficObserver(
        kube.api_client(), recorder, kinds=["rollouts"], namespaces=["risk-prod"],
        registry=CollectorRegistry(), backoff=WatchBackoff(initial=0.05, maximum=0.2),
    )  # fmt: skip
    observer.start()
    assert observer.wait_synced(10)
    _OBSERVERS.append(observer)
    return api


_OBSERVERS: list[Any] = []


@pytest.fixture(autouse=True)
def _stop_observers(kube: KubeApiFake) -> Iterator[None]:  # stopped before the fake apiserver
    yield
    while _OBSERVERS:
        _OBSERVERS.pop().stop()
