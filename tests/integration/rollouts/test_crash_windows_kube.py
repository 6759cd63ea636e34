"""The crash windows of ``test_crash_windows.py`` with the KServe target, through the real
kubernetes client, against the fake apiserver (a controller that reconciles a read behind, so
every move is observed, not assumed): the process killed right after each patch the target
confirmed, and the PostgreSQL connection dropped right before each commit of a run.

Argo Rollouts moves its own weights (the Argo target refuses driven steps at start, tested
below); what Argo moves reaches the ledger through the traffic observer, whose restarts and
replays are tested in ``tests/integration/observer/``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack

import pytest
from sqlalchemy import Engine
from sqlalchemy.engine import URL

from analyzer.domain.errors import InvalidInputError
from analyzer.domain.model import ModelRef, Tier
from analyzer.domain.rollout import Rollout
from analyzer.domain.verdict import Verdict
from analyzer.ledger.store import Ledger
from analyzer.rollouts.control import StartRollout
from analyzer.rollouts.service import RolloutService
from analyzer.targets.argo import ArgoRolloutTarget, ArgoTargetSettings
from tests.fakes.kube_api import INFERENCE_SERVICES, ROLLOUTS, KubeApiFake
from tests.integration.rollouts.crash_windows import (
    BAD_STEPS,
    GOOD_STEPS,
    MadeTarget,
    bad,
    good,
    sweep_commits,
    sweep_target_calls,
)
from tests.integration.rollouts.harness import ALICE, PLAN, ManualClock
from tests.integration.targets.support import MODEL, FakeClock, deploy_canary, kserve_target

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


@pytest.fixture
def kserve() -> Iterator[Callable[[ModelRef], MadeTarget]]:
    """Each call: a fresh fake apiserver holding an InferenceService with a v2 canary at 0 %."""
    with ExitStack() as stack:

        def make(model: ModelRef) -> MadeTarget:
            kube = stack.enter_context(KubeApiFake(controller_lag_reads=1))
            stable, canary = deploy_canary(kube, model)
            return MadeTarget(
                target=kserve_target(kube, FakeClock()), stable=stable, canary=canary, model=model
            )

        yield make


@pytest.mark.parametrize(("script", "expected"), [(good, GOOD_STEPS), (bad, BAD_STEPS)])
def test_kserve_killed_right_after_each_target_call(
    pg_server: URL, pg_template: str, script: Callable[[Rollout], Verdict],
    expected: list[tuple[str, int]], kserve: Callable[[ModelRef], MadeTarget],
) -> None:  # fmt: skip
    sweep_target_calls(pg_server, pg_template, script, expected, kserve)


@pytest.mark.parametrize(("script", "expected"), [(good, GOOD_STEPS), (bad, BAD_STEPS)])
def test_kserve_connection_dropped_right_before_each_commit(
    pg_server: URL, pg_template: str, script: Callable[[Rollout], Verdict],
    expected: list[tuple[str, int]], kserve: Callable[[ModelRef], MadeTarget],
) -> None:  # fmt: skip
    assert sweep_commits(pg_server, pg_template, script, expected, kserve) >= 10


def test_kserve_predictor_ends_where_the_record_says(pg_server: URL, pg_template: str) -> None:
    """The sweeps compare the record with the target's answer; this reads the object itself."""
    with ExitStack() as stack:
        kube = stack.enter_context(KubeApiFake(controller_lag_reads=1))
        stable, canary = deploy_canary(kube)
        made = MadeTarget(target=kserve_target(kube, FakeClock()), stable=stable,
                          canary=canary, model=MODEL)  # fmt: skip
        sweep_target_calls(pg_server, pg_template, bad, BAD_STEPS, lambda _: made)
        predictor = kube.get(INFERENCE_SERVICES, MODEL.namespace, MODEL.name)["spec"]["predictor"]
        assert predictor["canaryTrafficPercent"] == 0


def test_a_driven_rollout_on_an_argo_rollout_is_refused_at_once(pg_engine: Engine) -> None:
    with KubeApiFake() as kube:
        kube.seed(ROLLOUTS, {
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
            "metadata": {"name": MODEL.name, "namespace": MODEL.namespace},
            "spec": {"replicas": 2, "strategy": {"canary": {"steps": [{"setWeight": 20}]}}},
        })  # fmt: skip
        target = ArgoRolloutTarget(kube.api_client(), settings=ArgoTargetSettings())
        clock = ManualClock()
        service = RolloutService(pg_engine, Ledger(pg_engine, clock=clock), target, clock=clock)
        request = StartRollout(
            model=MODEL, tier=Tier.STANDARD, baseline_revision="aaa", canary_revision="bbb",
            profile="knative", plan=PLAN,
        )  # fmt: skip
        with pytest.raises(InvalidInputError, match="Argo moves its weights") as refused:
            service.start(request, ALICE)
        assert refused.value.field == "model"
        assert service.list() == []
        assert kube.requests_to("PATCH") == []
