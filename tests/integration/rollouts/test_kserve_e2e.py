"""The engine driving a KServe InferenceService end to end, through the real kubernetes client,
against the fake apiserver (strict resourceVersion/generation/status rules, a controller that
lags a read behind) and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import Engine

from analyzer.domain.events import EventType
from analyzer.domain.model import Tier
from analyzer.domain.rollout import RolloutState
from analyzer.domain.verdict import Verdict
from analyzer.ledger.store import Ledger
from analyzer.rollouts.control import StartRollout
from analyzer.rollouts.engine import RolloutEngine
from analyzer.rollouts.ports import OpenGates
from analyzer.rollouts.service import RolloutService
from tests.fakes.kube_api import INFERENCE_SERVICES, KubeApiFake
from tests.integration.rollouts.harness import ALICE, PLAN, ManualClock, ScriptedAnalyzer
from tests.integration.targets.support import MODEL, FakeClock, deploy_canary, kserve_target

pytestmark = pytest.mark.postgres


@pytest.fixture
def kube() -> Iterator[KubeApiFake]:
    with KubeApiFake(controller_lag_reads=1) as fake:
        yield fake


def drive(engine: Engine, kube: KubeApiFake, bad: bool) -> tuple[RolloutService, str, Ledger]:
    stable, canary = deploy_canary(kube)
    clock, target_clock = ManualClock(), FakeClock()
    target = kserve_target(kube, target_clock)
    ledger = Ledger(engine, clock=clock)
    service = RolloutService(engine, ledger, target, clock=clock)
    analyzer = ScriptedAnalyzer(
        lambda r: Verdict.FAIL if bad and r.step_index == 1 else Verdict.PASS
    )
    rollout_engine = RolloutEngine(
        engine, ledger, target, analyzer, OpenGates(), clock=clock, replica_id="e2e"
    )
    request = StartRollout(
        model=MODEL, tier=Tier.STANDARD, baseline_revision=stable, canary_revision=canary,
        profile="knative", plan=PLAN,
    )  # fmt: skip
    rollout = service.start(request, ALICE)
    for _ in range(12):
        rollout_engine.tick()
        clock.advance(timedelta(minutes=1))
    return service, rollout.id, ledger


def predictor(kube: KubeApiFake) -> dict[str, object]:
    obj = kube.get(INFERENCE_SERVICES, MODEL.namespace, MODEL.name)
    return dict(obj["spec"]["predictor"])


def test_good_canary_is_promoted_on_the_inference_service(
    pg_engine: Engine, kube: KubeApiFake
) -> None:
    service, rollout_id, ledger = drive(pg_engine, kube, bad=False)
    assert service.get(rollout_id).state is RolloutState.PROMOTED
    assert "canaryTrafficPercent" not in predictor(kube)  # promotion removes the field
    patches = kube.requests_to("PATCH", "inferenceservices")
    assert patches, "the target never patched the InferenceService"
    assert all(r.content_type == "application/merge-patch+json" for r in patches)
    sent = [r.body["spec"]["predictor"].get("canaryTrafficPercent", "removed") for r in patches]
    assert sent == [10, 25, 50, None]
    weights = [e.data()["canary_weight"] for e in ledger.events(
        rollout_id=rollout_id, event_types=[EventType.TRAFFIC_CHANGED]).entries]  # fmt: skip
    assert weights == [10, 25, 50, 100]


def test_bad_canary_is_rolled_back_to_zero_on_the_inference_service(
    pg_engine: Engine, kube: KubeApiFake
) -> None:
    service, rollout_id, _ = drive(pg_engine, kube, bad=True)
    assert service.get(rollout_id).state is RolloutState.ABORTED
    assert predictor(kube)["canaryTrafficPercent"] == 0
    assert service.applied_weight(rollout_id) == 0


def test_a_driven_rollout_already_in_flight_on_an_argo_rollout_fails_saying_why(
    pg_engine: Engine, kube: KubeApiFake
) -> None:
    """Starting one is refused (``test_crash_windows_kube.py``); one started before that refusal
    existed (in flight across an upgrade) fails at its first step, touching nothing."""
    from analyzer.targets.memory.target import InMemoryTarget
    from tests.fakes.kube_api import ROLLOUTS
    from tests.integration.targets.test_argo_target import argo_target, paused_status
    from tests.integration.targets.test_argo_target import rollout as argo_rollout

    kube.seed(ROLLOUTS, argo_rollout(), status=paused_status())
    clock = ManualClock()
    target = argo_target(kube, FakeClock())
    ledger = Ledger(pg_engine, clock=clock)
    before_the_upgrade = InMemoryTarget()
    before_the_upgrade.add_model(
        MODEL, stable_revision="iris-stable", canary_revision="iris-canary"
    )
    service = RolloutService(pg_engine, ledger, before_the_upgrade, clock=clock)
    engine = RolloutEngine(
        pg_engine, ledger, target, ScriptedAnalyzer(lambda r: Verdict.PASS), OpenGates(),
        clock=clock, replica_id="e2e",
    )  # fmt: skip
    request = StartRollout(
        model=MODEL, tier=Tier.STANDARD, baseline_revision="iris-stable",
        canary_revision="iris-canary", profile="knative", plan=PLAN,
    )  # fmt: skip
    rollout = service.start(request, ALICE)
    engine.tick()
    failed = service.get(rollout.id)
    assert failed.state is RolloutState.FAILED
    assert "the traffic target refused" in (failed.reason or "")
    assert "Argo" in (failed.reason or "")
    clock.advance(timedelta(minutes=1))
    engine.tick()  # nothing was applied, so nothing is taken back: the user's Rollout is untouched
    assert kube.requests_to("PATCH") == []
