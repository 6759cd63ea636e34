"""ArgoRolloutTarget against the fake apiserver: exact patches, paths and content types."""

from __future__ import annotations

from typing import Any

import pytest

from analyzer.domain.errors import (
    FatalIntegrationError,
    InvalidInputError,
    NotFoundError,
    RetryableError,
)
from analyzer.targets.argo import ArgoRolloutTarget, ArgoTargetSettings
from analyzer.targets.base import TrafficTarget
from analyzer.targets.kube import RetryPolicy
from tests.fakes.kube_api import ROLLOUTS, KubeApiFake
from tests.integration.targets.support import MODEL, FakeClock

ROLLOUT_PATH = "/apis/argoproj.io/v1alpha1/namespaces/models/rollouts/iris"
CANARY, STABLE = "6c54544bf9", "5b8d7f9c6d"


def rollout(*, paused: bool = False) -> dict[str, Any]:
    steps = [{"setWeight": 20}, {"pause": {}}, {"setWeight": 50}, {"pause": {"duration": "10m"}}]
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": "iris", "namespace": "models"},
        "spec": {"replicas": 5, "paused": paused, "strategy": {"canary": {"steps": steps}}},
    }


def paused_status(*, weights: bool = True) -> dict[str, Any]:
    status: dict[str, Any] = {
        "phase": "Paused",
        "message": "CanaryPauseStep",
        "observedGeneration": "1",
        "currentPodHash": CANARY,
        "stableRS": STABLE,
        "currentStepIndex": 1,
        "controllerPause": True,
        "pauseConditions": [{"reason": "CanaryPauseStep", "startTime": "2026-11-27T03:00:00Z"}],
        "replicas": 5,
        "updatedReplicas": 1,
    }
    if weights:
        status["canary"] = {
            "weights": {
                "canary": {"weight": 20, "podTemplateHash": CANARY},
                "stable": {"weight": 80, "podTemplateHash": STABLE},
            }
        }
    return status


def argo_target(kube: KubeApiFake, clock: FakeClock) -> ArgoRolloutTarget:
    settings = ArgoTargetSettings(
        poll_interval=1.0,
        confirm_timeout=10.0,
        retry=RetryPolicy(max_attempts=3, initial_backoff=0.1),
    )
    return ArgoRolloutTarget(kube.api_client(), settings=settings, clock=clock, sleep=clock.sleep)


@pytest.fixture
def seeded(kube: KubeApiFake, clock: FakeClock) -> KubeApiFake:
    kube.seed(ROLLOUTS, rollout(), status=paused_status())
    clock.on_sleep = lambda: kube.argo.reconcile("models", "iris")  # the controller reacts
    return kube


def test_is_a_traffic_target(kube: KubeApiFake, clock: FakeClock) -> None:
    assert isinstance(argo_target(kube, clock), TrafficTarget)


def test_reads_step_hashes_weights_and_phase(seeded: KubeApiFake, clock: FakeClock) -> None:
    status = argo_target(seeded, clock).read_status(MODEL)
    assert (status.current_step_index, status.step_count) == (1, 4)
    assert (status.stable_hash, status.canary_hash) == (STABLE, CANARY)
    assert (status.canary_weight, status.weight_source) == (20, "traffic-router")
    assert status.phase == "Paused"
    assert status.paused
    assert status.pause_reasons == ("CanaryPauseStep",)
    assert status.observed
    assert not status.aborted
    state = argo_target(seeded, clock).read_weight(MODEL)
    assert (state.stable_revision, state.canary_revision, state.canary_weight) == (
        STABLE,
        CANARY,
        20,
    )
    assert state.settled


def test_without_a_traffic_router_the_weight_is_the_canary_replica_share(
    kube: KubeApiFake, clock: FakeClock
) -> None:
    kube.seed(ROLLOUTS, rollout(), status=paused_status(weights=False))
    status = argo_target(kube, clock).read_status(MODEL)
    assert (status.canary_weight, status.weight_source) == (20, "replicas")


def test_abort_is_the_exact_status_subresource_merge_patch(
    seeded: KubeApiFake, clock: FakeClock
) -> None:
    generation = seeded.get(ROLLOUTS, "models", "iris")["metadata"]["generation"]
    state = argo_target(seeded, clock).abort(MODEL)
    [patch] = seeded.requests_to("PATCH")
    assert patch.path == f"{ROLLOUT_PATH}/status"
    assert patch.content_type == "application/merge-patch+json"
    assert patch.body == {"status": {"abort": True}}
    assert patch.status == 200
    assert state.canary_weight == 0
    assert state.stable_revision == STABLE
    stored = seeded.get(ROLLOUTS, "models", "iris")
    assert stored["status"]["abort"] is True
    assert stored["status"]["phase"] == "Degraded"
    assert stored["metadata"]["generation"] == generation, "a status write is not a spec change"


def test_abort_without_a_traffic_router_waits_for_the_canary_pods_to_go(
    kube: KubeApiFake, clock: FakeClock
) -> None:
    kube.seed(ROLLOUTS, rollout(), status=paused_status(weights=False))
    clock.on_sleep = lambda: kube.argo.reconcile("models", "iris")
    state = argo_target(kube, clock).abort(MODEL)
    assert (state.canary_revision, state.canary_weight) == (CANARY, 0)
    assert clock.sleeps, "the replica share was 20 % until the controller scaled the canary down"


def test_abort_not_shown_by_the_controller_is_retryable(
    seeded: KubeApiFake, clock: FakeClock
) -> None:
    clock.on_sleep = None  # the controller is down
    with pytest.raises(RetryableError, match="abort was accepted"):
        argo_target(seeded, clock).abort(MODEL)
    assert clock.now >= 10.0
    assert seeded.get(ROLLOUTS, "models", "iris")["status"]["abort"] is True


def test_abort_wins_over_concurrent_writers(seeded: KubeApiFake, clock: FakeClock) -> None:
    # Like the CLI, the abort patch carries no resourceVersion: another writer cannot make it
    # fail with a 409.
    seeded.interfere_next(3)
    state = argo_target(seeded, clock).abort(MODEL)
    assert state.canary_weight == 0
    assert [p.status for p in seeded.requests_to("PATCH")] == [200]


def test_abort_retries_a_server_error(seeded: KubeApiFake, clock: FakeClock) -> None:
    seeded.fail_next(1, status=503, method="PATCH")
    argo_target(seeded, clock).abort(MODEL)
    assert [p.status for p in seeded.requests_to("PATCH")] == [503, 200]


def test_promote_full_patches_status_then_unpauses_spec(
    kube: KubeApiFake, clock: FakeClock
) -> None:
    kube.seed(ROLLOUTS, rollout(paused=True), status=paused_status())
    clock.on_sleep = lambda: kube.argo.reconcile("models", "iris")
    state = argo_target(kube, clock).promote(MODEL)
    status_patch, spec_patch = kube.requests_to("PATCH")
    assert (status_patch.path, status_patch.body) == (
        f"{ROLLOUT_PATH}/status",
        {"status": {"promoteFull": True}},
    )
    assert (spec_patch.path, spec_patch.body) == (ROLLOUT_PATH, {"spec": {"paused": False}})
    assert {status_patch.content_type, spec_patch.content_type} == {"application/merge-patch+json"}
    assert (state.stable_revision, state.canary_revision, state.canary_weight) == (CANARY, None, 0)


def test_promote_without_a_canary_is_a_no_op(kube: KubeApiFake, clock: FakeClock) -> None:
    kube.seed(ROLLOUTS, rollout(), status={**paused_status(), "stableRS": CANARY})
    state = argo_target(kube, clock).promote(MODEL)
    assert state.canary_revision is None
    assert kube.requests_to("PATCH") == []


def test_abort_of_a_fully_promoted_rollout_changes_nothing(
    kube: KubeApiFake, clock: FakeClock
) -> None:
    kube.seed(ROLLOUTS, rollout(), status={**paused_status(), "stableRS": CANARY})
    state = argo_target(kube, clock).abort(MODEL)
    assert (state.stable_revision, state.canary_revision, state.canary_weight) == (CANARY, None, 0)
    assert kube.requests_to("PATCH") == []


def test_promote_of_an_aborted_rollout_is_refused(seeded: KubeApiFake, clock: FakeClock) -> None:
    target = argo_target(seeded, clock)
    target.abort(MODEL)
    with pytest.raises(FatalIntegrationError, match="aborted"):
        target.promote(MODEL)


def test_set_weight_is_refused_without_touching_the_rollout(
    seeded: KubeApiFake, clock: FakeClock
) -> None:
    target = argo_target(seeded, clock)
    with pytest.raises(FatalIntegrationError, match="owns the canary weights"):
        target.set_weight(MODEL, 30)
    with pytest.raises(InvalidInputError):
        target.set_weight(MODEL, 130)
    assert seeded.requests == []


def test_missing_rollout_is_not_found(kube: KubeApiFake, clock: FakeClock) -> None:
    with pytest.raises(NotFoundError):
        argo_target(kube, clock).abort(MODEL)
