"""Every strategy end to end on the fake apiserver through the real kubernetes client:
blue/green on a KServe InferenceService, shadow on KServe + an Istio VirtualService mirror;
good → promoted / shadow passed, bad → re-pointed back / shadow failed, with the ledger and
``serving_at`` exact at instants inside each phase."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import pytest
from sqlalchemy import Engine

from analyzer.domain.events import EventType
from analyzer.domain.model import Tier
from analyzer.domain.rollout import Rollout, RolloutState, Step, StepPlan, Strategy
from analyzer.domain.verdict import Verdict
from analyzer.ledger.store import Ledger
from analyzer.rollouts.control import StartRollout
from analyzer.rollouts.engine import RolloutEngine
from analyzer.rollouts.ports import OpenGates
from analyzer.rollouts.service import RolloutService
from analyzer.targets.istio import IstioMirrorSettings, IstioMirrorTarget
from tests.fakes.kube_api import INFERENCE_SERVICES, VIRTUAL_SERVICES, KubeApiFake
from tests.integration.rollouts.harness import ALICE, T0, ManualClock, ScriptedAnalyzer
from tests.integration.targets.support import MODEL, FakeClock, deploy_canary, kserve_target
from tests.integration.targets.test_istio_mirror import predict_route, virtual_service

pytestmark = pytest.mark.postgres

MINUTE = timedelta(minutes=1)
BLUE_GREEN = StepPlan(
    steps=(Step(weight=100, dwell=3 * MINUTE),), analysis_interval=MINUTE,
    max_bake=10 * MINUTE, strategy=Strategy.BLUE_GREEN,
)  # fmt: skip
SHADOW = StepPlan(
    steps=(Step(weight=50, dwell=3 * MINUTE),), analysis_interval=MINUTE,
    max_bake=10 * MINUTE, strategy=Strategy.SHADOW,
)  # fmt: skip


@pytest.fixture
def kube() -> Iterator[KubeApiFake]:
    with KubeApiFake(controller_lag_reads=1) as fake:
        yield fake


@dataclass
class Run:
    service: RolloutService
    ledger: Ledger
    rollout: Rollout
    stable: str
    canary: str

    def served(self, minute: float) -> dict[str, float]:
        answer = self.ledger.serving_at(MODEL, T0 + timedelta(minutes=minute))
        return {r.revision: r.weight for r in answer.revisions}

    def final(self) -> Rollout:
        return self.service.get(self.rollout.id)

    def entries(self, kind: EventType) -> list[tuple[float, dict[str, object]]]:
        page = self.ledger.events(rollout_id=self.rollout.id, event_types=[kind], limit=100)
        return [((e.recorded_at - T0).total_seconds() / 60, e.data()) for e in page.entries]


def drive(engine: Engine, kube: KubeApiFake, plan: StepPlan, *, bad_from_look: int | None,
          minutes: int = 8) -> Run:  # fmt: skip
    stable, canary = deploy_canary(kube)
    clock, target_clock = ManualClock(), FakeClock()
    target = kserve_target(kube, target_clock)
    mirror = IstioMirrorTarget(
        kube.api_client(), settings=IstioMirrorSettings(route_name="predict"),
        sleep=target_clock.sleep,
    )  # fmt: skip
    ledger = Ledger(engine, clock=clock)
    service = RolloutService(engine, ledger, target, clock=clock, mirror=mirror)
    analyzer = ScriptedAnalyzer(
        lambda r: (
            Verdict.FAIL
            if bad_from_look is not None and analyzer.looks >= bad_from_look
            else Verdict.PASS
        )
    )
    rollout_engine = RolloutEngine(
        engine, ledger, target, analyzer, OpenGates(), clock=clock, replica_id="e2e",
        mirror=mirror,
    )  # fmt: skip
    request = StartRollout(
        model=MODEL, tier=Tier.STANDARD, baseline_revision=stable, canary_revision=canary,
        profile="knative", plan=plan, model_version="2",
    )  # fmt: skip
    rollout = service.start(request, ALICE)
    for _ in range(minutes):
        rollout_engine.tick()
        clock.advance(MINUTE)
    return Run(service=service, ledger=ledger, rollout=rollout, stable=stable, canary=canary)


def predictor(kube: KubeApiFake) -> dict[str, object]:
    return dict(kube.get(INFERENCE_SERVICES, MODEL.namespace, MODEL.name)["spec"]["predictor"])


def test_blue_green_on_kserve_cuts_verifies_and_promotes(
    pg_engine: Engine, kube: KubeApiFake
) -> None:
    run = drive(pg_engine, kube, BLUE_GREEN, bad_from_look=None)
    assert run.final().state is RolloutState.PROMOTED
    sent = [r.body["spec"]["predictor"].get("canaryTrafficPercent", "removed")
            for r in kube.requests_to("PATCH", "inferenceservices")]  # fmt: skip
    assert sent == [100, None]  # the cut, then the promotion
    assert "canaryTrafficPercent" not in predictor(kube)
    assert run.served(0.5) == {run.canary: 100.0}  # inside the verification window
    assert run.served(2.5) == {run.canary: 100.0}
    assert run.served(5) == {run.canary: 100.0}
    causes = [d["cause"] for _, d in run.entries(EventType.TRAFFIC_CHANGED)]
    assert causes == ["step 0", "promoted"]


def test_blue_green_on_kserve_that_fails_is_re_pointed_to_the_previous_revision(
    pg_engine: Engine, kube: KubeApiFake
) -> None:
    run = drive(pg_engine, kube, BLUE_GREEN, bad_from_look=2)
    assert run.final().state is RolloutState.ABORTED
    assert predictor(kube)["canaryTrafficPercent"] == 0  # KServe routes 100 % to prev again
    changes = [(m, d["canary_weight"]) for m, d in run.entries(EventType.TRAFFIC_CHANGED)]
    assert changes == [(0, 100), (2, 0)]
    assert run.served(1.5) == {run.canary: 100.0}
    assert run.served(2.5) == {run.stable: 100.0}


def test_shadow_on_kserve_and_istio_passes_and_never_serves(
    pg_engine: Engine, kube: KubeApiFake
) -> None:
    kube.seed(VIRTUAL_SERVICES, virtual_service())
    run = drive(pg_engine, kube, SHADOW, bad_from_look=None)
    assert run.final().state is RolloutState.SHADOW_PASSED
    assert kube.requests_to("PATCH", "inferenceservices") == []  # serving traffic never moved
    assert "mirror" not in predict_route(kube)  # torn down
    mirrors = [(m, d["mirror_percent"]) for m, d in run.entries(EventType.MIRROR_CHANGED)]
    assert mirrors == [(0, 50), (3, 0)]
    vs_patches = kube.requests_to("PATCH", "virtualservices")
    assert [p.body["spec"]["http"][1].get("mirrorPercentage") for p in vs_patches] == [
        {"value": 50.0}, None,
    ]  # fmt: skip
    assert run.served(1.5) == {}  # no traffic entry at all: the challenger never served
    verdicts = [d["verdict"] for _, d in run.entries(EventType.SHADOW_JUDGED)]
    assert verdicts == ["passed"]


def test_shadow_on_kserve_and_istio_fails_and_tears_the_mirror_down(
    pg_engine: Engine, kube: KubeApiFake
) -> None:
    kube.seed(VIRTUAL_SERVICES, virtual_service())
    run = drive(pg_engine, kube, SHADOW, bad_from_look=1)
    assert run.final().state is RolloutState.ABORTED
    assert "mirror" not in predict_route(kube)
    verdicts = [d["verdict"] for _, d in run.entries(EventType.SHADOW_JUDGED)]
    assert verdicts == ["failed"]


def test_shadow_is_refused_where_the_mesh_is_absent(pg_engine: Engine) -> None:
    from analyzer.domain.errors import InvalidInputError

    with KubeApiFake(mesh=False) as bare, pytest.raises(InvalidInputError) as caught:
        drive(pg_engine, bare, SHADOW, bad_from_look=None, minutes=0)
    assert caught.value.field == "model"
    assert "is the mesh installed" in str(caught.value)


def test_pinned_on_kserve_is_one_gated_cutover_without_analysis(
    pg_engine: Engine, kube: KubeApiFake
) -> None:
    pinned = StepPlan(steps=(Step(weight=100, dwell=timedelta(0)),), strategy=Strategy.PINNED)
    run = drive(pg_engine, kube, pinned, bad_from_look=1, minutes=2)  # a judge would fail it
    assert run.final().state is RolloutState.PROMOTED  # nothing was judged
    sent = [r.body["spec"]["predictor"].get("canaryTrafficPercent", "removed")
            for r in kube.requests_to("PATCH", "inferenceservices")]  # fmt: skip
    assert sent == [None]  # the promotion only: KServe rolls the latest revision out
    assert run.entries(EventType.ANALYSIS_RECORDED) == []
    assert [d["open"] for _, d in run.entries(EventType.GATE_CHECKED)] == [True]
    assert run.served(0.5) == {run.canary: 100.0}
    assert run.served(-0.5) == {}
