"""Acceptance: a Rollout moved by the (fake) Argo controller, with nobody driving it from
canary-analyzer, is answered exactly by ``/api/v1/audit/serving`` and ``/ui/serving`` at
instants inside each step, with the AnalysisRun's verdicts linked; ``ledger verify`` passes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine

from analyzer.domain.events import EventType
from analyzer.domain.model import ModelRef
from analyzer.observer import ObservedTrafficRecorder, TrafficObserver
from analyzer.targets.kube_watch import WatchBackoff
from tests.fakes.kube_api import ROLLOUTS, KubeApiFake
from tests.integration.api.conftest import T0, Harness

MODEL = ModelRef(namespace="risk-prod", name="fraud")
STEPS = [{"setWeight": 20}, {"pause": {"duration": "30s"}}, {"setWeight": 50}, {"pause": {}}]


def template(image: str) -> dict[str, Any]:
    return {"spec": {"containers": [{"name": "scorer", "image": image}]}}


@pytest.fixture
def kube() -> Iterator[KubeApiFake]:
    with KubeApiFake() as fake:
        fake.watches.bookmark_interval = 0.2
        yield fake


@pytest.fixture
def observed(make_api: Callable[..., Harness], kube: KubeApiFake) -> Iterator[Harness]:
    api = make_api()
    kube.argo.clock = api.clock.monotonic
    recorder = ObservedTrafficRecorder(api.engine, api.ledger, clock=api.clock)
    observer = TrafficObserver(
        kube.api_client(), recorder, kinds=["rollouts"], namespaces=["risk-prod"],
        registry=CollectorRegistry(), backoff=WatchBackoff(initial=0.05, maximum=0.2),
    )  # fmt: skip
    observer.start()
    assert observer.wait_synced(10)
    yield api
    observer.stop()


def traffic_count(api: Harness) -> int:
    return len(api.ledger.events(model=MODEL, event_types=[EventType.TRAFFIC_CHANGED]).entries)


def step_until_recorded(api: Harness, kube: KubeApiFake, count: int, *, steps: int = 1) -> None:
    """Let the controller take ``steps`` actions, then wait for ``count`` recorded changes."""
    for _ in range(steps):
        kube.argo.step("risk-prod", "fraud")
    deadline = time.monotonic() + 10
    while traffic_count(api) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"{count} traffic changes not recorded ({traffic_count(api)})")
        time.sleep(0.02)


def serving(api: Harness, at: datetime) -> dict[str, Any]:
    response = api.call(
        "GET", "/api/v1/audit/serving", "auditor",
        params={"model": str(MODEL), "at": at.isoformat()},
    )  # fmt: skip
    assert response.status_code == 200, response.text
    return dict(response.json())


def split_of(answer: dict[str, Any]) -> dict[str, float]:
    return {r["revision"]: r["weight"] for r in answer["revisions"]}


def ask_analysis(api: Harness, canary: str, stable: str, weight: int) -> dict[str, Any]:
    """What the AnalysisRun's web provider asks at each interval."""
    body = {
        "model": {"namespace": "risk-prod", "name": "fraud"}, "canary": canary,
        "baseline": stable, "profile": "knative", "weight": weight, "rollout": "fraud",
    }  # fmt: skip
    response = api.call("POST", "/api/v1/analyses", "analysis", json=body)
    assert response.status_code == 200
    return dict(response.json())


def test_an_argo_rollout_nobody_drives_is_answered_at_every_step(
    observed: Harness, kube: KubeApiFake, pg_url: str, pg_engine: Engine
) -> None:
    api = observed
    kube.seed(ROLLOUTS, {
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
        "metadata": {"name": "fraud", "namespace": "risk-prod"},
        "spec": {"replicas": 4, "template": template("scorer:1"),
                 "strategy": {"canary": {"steps": STEPS}}},
    })  # fmt: skip
    step_until_recorded(api, kube, 1)  # first deploy: stable at once, at T0
    stable = kube.get(ROLLOUTS, "risk-prod", "fraud")["status"]["stableRS"]

    api.clock.advance(60)  # someone (GitOps) ships scorer:2; Argo starts the canary
    kube.store.write(ROLLOUTS, "risk-prod", "fraud", lambda o: {
        **o, "spec": {**o["spec"], "template": template("scorer:2")}}, status=False,
        manager="argocd-controller")  # fmt: skip
    step_until_recorded(api, kube, 2, steps=2)  # a new pod hash, then setWeight 20, at T0+60
    canary = kube.get(ROLLOUTS, "risk-prod", "fraud")["status"]["currentPodHash"]
    kube.argo.step("risk-prod", "fraud")  # the 30 s pause starts (no traffic change)
    api.clock.advance(10)
    first_look = ask_analysis(api, canary, stable, 20)  # T0+70
    api.clock.advance(31)
    step_until_recorded(api, kube, 3, steps=2)  # the 30 s pause ends, setWeight 50, at T0+101
    kube.argo.step("risk-prod", "fraud")  # the last step's pause (until promoted) begins
    api.clock.advance(20)
    second_look = ask_analysis(api, canary, stable, 50)  # T0+121
    api.clock.advance(20)
    kube.store.write(ROLLOUTS, "risk-prod", "fraud", lambda o: {
        **o, "status": {**o["status"], "pauseConditions": None}}, status=True,
        manager="kubectl-argo-rollouts")  # `kubectl argo rollouts promote`  # fmt: skip
    step_until_recorded(api, kube, 4, steps=2)  # promoted, at T0+141

    before = serving(api, T0 - timedelta(seconds=1))
    assert before["revisions"] == []
    assert before["traffic_entry"] is None
    at_start = serving(api, T0 + timedelta(seconds=30))
    assert split_of(at_start) == {stable: 100.0}
    assert (at_start["source"], at_start["owner"]) == ("observed", "argo-rollouts")
    assert at_start["revisions"][0]["artifact_uri"] == "scorer:1"

    first_step = serving(api, T0 + timedelta(seconds=75))
    assert split_of(first_step) == {stable: 80.0, canary: 20.0}
    assert first_step["traffic_entry"]["data"]["step"] == 1
    assert first_step["analysis"] is None, "no analysis was asked before the first step"
    assert {r["revision"]: r["artifact_uri"] for r in first_step["revisions"]}[canary] == "scorer:2"

    second_step = serving(api, T0 + timedelta(seconds=110))
    assert split_of(second_step) == {stable: 50.0, canary: 50.0}
    links = second_step["traffic_entry"]["data"]["links"]
    session = api.ledger.entry(first_look["ledger_seq"]).data()["session"]  # type: ignore[union-attr]
    assert (links["analysis_session"], links["analysis_verdict"]) == (session, "pass")
    assert second_step["analysis"]["seq"] == first_look["ledger_seq"]
    assert second_step["analysis"]["data"]["result"]["verdict"] == "pass"

    promoted = serving(api, T0 + timedelta(seconds=150))
    assert split_of(promoted) == {canary: 100.0}
    assert promoted["traffic_entry"]["data"]["phase"] == "Healthy"
    assert promoted["analysis"]["seq"] == second_look["ledger_seq"]
    assert promoted["traffic_entry"]["data"]["links"]["analysis_looks"] == 2

    page = api.call(
        "GET", "/ui/serving", "auditor",
        params={"model": str(MODEL), "at": (T0 + timedelta(seconds=110)).isoformat()},
    )  # fmt: skip
    assert page.status_code == 200
    html = page.text
    for expected in (canary, stable, "50%", "observed", "argo-rollouts", "rollouts-controller",
                     f"analysis session #{session}"):  # fmt: skip
        assert expected in html, expected
    assert "No analysis linked" not in html

    env = {**os.environ, "CANARY_ANALYZER_DATABASE_URL": pg_url}
    verify = subprocess.run(
        [sys.executable, "-m", "analyzer.cli", "ledger", "verify"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_a_person_patching_canary_traffic_percent_is_answered_as_manual(
    make_api: Callable[..., Harness], kube: KubeApiFake
) -> None:
    from tests.fakes.kube_api import INFERENCE_SERVICES

    api = make_api()
    kube.seed(INFERENCE_SERVICES, {
        "apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
        "metadata": {"name": "fraud", "namespace": "risk-prod"},
        "spec": {"predictor": {"model": {"storageUri": "s3://m/v1"}}},
    })  # fmt: skip
    kube.kserve.reconcile("risk-prod", "fraud")
    recorder = ObservedTrafficRecorder(api.engine, api.ledger, clock=api.clock)
    observer = TrafficObserver(
        kube.api_client(), recorder, kinds=["inferenceservices"], namespaces=["risk-prod"],
        registry=CollectorRegistry(), backoff=WatchBackoff(initial=0.05, maximum=0.2),
    )  # fmt: skip
    observer.start()
    try:
        assert observer.wait_synced(10)
        api.clock.advance(60)
        kube.store.write(INFERENCE_SERVICES, "risk-prod", "fraud", lambda o: {
            **o, "spec": {"predictor": {"model": {"storageUri": "s3://m/v2"},
                                        "canaryTrafficPercent": 30}}},
            status=False, manager="kubectl-edit")  # fmt: skip
        kube.kserve.reconcile("risk-prod", "fraud")
        deadline = time.monotonic() + 5
        while traffic_count(api) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        answer = serving(api, T0 + timedelta(seconds=61))
    finally:
        observer.stop()
    assert split_of(answer) == {"fraud-predictor-00001": 70.0, "fraud-predictor-00002": 30.0}
    assert (answer["source"], answer["owner"]) == ("observed", "manual")
    assert answer["traffic_entry"]["data"]["owner_manager"] == "kubectl-edit"
