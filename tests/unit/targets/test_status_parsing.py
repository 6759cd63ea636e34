"""Pure parsing of KServe and Argo status blocks into TrafficState, over literal objects."""

from __future__ import annotations

from typing import Any

import pytest

from analyzer.domain.errors import InvalidInputError
from analyzer.targets.argo import parse_rollout_status
from analyzer.targets.base import check_weight
from analyzer.targets.kserve import parse_traffic_state
from analyzer.targets.kserve.status import deployment_mode, routing_agrees


def isvc(traffic: list[dict[str, Any]], **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "iris", "generation": 3},
        "spec": {"predictor": {"canaryTrafficPercent": 20}},
        "status": {
            "observedGeneration": 3,
            "conditions": [{"type": "Ready", "status": "True"}],
            "components": {"predictor": {"traffic": traffic, **status}},
        },
    }


def entry(rev: str, percent: int, *, latest: bool, tag: str) -> dict[str, Any]:
    return {"revisionName": rev, "percent": percent, "latestRevision": latest, "tag": tag}


SPLIT = [entry("r1", 80, latest=False, tag="prev"), entry("r2", 20, latest=True, tag="latest")]
ROLLED = {
    "latestRolledoutRevision": "r1",
    "latestCreatedRevision": "r2",
    "latestReadyRevision": "r2",
}


def test_split_between_prev_and_latest() -> None:
    state = parse_traffic_state(isvc(SPLIT, **ROLLED))
    assert (state.stable_revision, state.canary_revision, state.canary_weight) == ("r1", "r2", 20)
    assert state.requested_weight == 20
    assert state.settled
    assert state.percent_of("r1") == 80


def test_split_over_the_same_revision_is_no_canary() -> None:
    state = parse_traffic_state(
        isvc(
            [entry("r2", 0, latest=False, tag="prev"), entry("r2", 100, latest=True, tag="latest")]
        )
    )
    assert (state.stable_revision, state.canary_revision, state.canary_weight) == ("r2", None, 0)
    assert state.percent_of("r2") == 100


def test_routing_that_does_not_match_the_spec_is_not_settled() -> None:
    stale = isvc(SPLIT, **ROLLED)
    stale["spec"]["predictor"]["canaryTrafficPercent"] = 50  # asked for 50, still serving 20
    assert not routing_agrees(stale)
    assert not parse_traffic_state(stale).settled
    promoted_in_spec = isvc(SPLIT, **ROLLED)
    del promoted_in_spec["spec"]["predictor"]["canaryTrafficPercent"]
    assert not routing_agrees(promoted_in_spec), "no prev entry expected once the field is gone"
    full = isvc([entry("r2", 100, latest=True, tag="latest")], latestRolledoutRevision="r2")
    del full["spec"]["predictor"]["canaryTrafficPercent"]
    assert routing_agrees(full)


def test_not_ready_or_revision_in_flight_is_not_settled() -> None:
    obj = isvc(SPLIT, **ROLLED)
    obj["status"]["conditions"] = [{"type": "Ready", "status": "False"}]
    assert not parse_traffic_state(obj).settled
    in_flight = isvc(SPLIT, **{**ROLLED, "latestCreatedRevision": "r3"})
    assert not parse_traffic_state(in_flight).settled


def test_prev_not_yet_repointed_after_a_roll_back_is_not_applied() -> None:
    # After 100 % then 0 %: KServe has moved latestRolledoutRevision back to r1 but its ksvc
    # still splits over r2; the next pass re-points prev.
    between = [entry("r2", 0, latest=True, tag=""), entry("r2", 100, latest=False, tag="prev")]
    status = {**ROLLED, "latestRolledoutRevision": "r1", "previousRolledoutRevision": "r1"}
    obj = isvc(between, **status)
    obj["spec"]["predictor"]["canaryTrafficPercent"] = 0
    assert not routing_agrees(obj)
    done = [entry("r2", 0, latest=True, tag=""), entry("r1", 100, latest=False, tag="prev")]
    obj = isvc(done, **status)
    obj["spec"]["predictor"]["canaryTrafficPercent"] = 0
    assert routing_agrees(obj)
    assert parse_traffic_state(obj).settled


def test_a_canary_step_at_100_is_still_reported_as_the_canary() -> None:
    full = [entry("r2", 100, latest=True, tag="")]
    status = {**ROLLED, "latestRolledoutRevision": "r2", "previousRolledoutRevision": "r1"}
    obj = isvc(full, **status)
    obj["spec"]["predictor"]["canaryTrafficPercent"] = 100
    state = parse_traffic_state(obj)
    assert (state.stable_revision, state.canary_revision, state.canary_weight) == ("r1", "r2", 100)
    assert state.settled
    del obj["spec"]["predictor"]["canaryTrafficPercent"]  # promoted: r2 is simply stable
    state = parse_traffic_state(obj)
    assert (state.stable_revision, state.canary_revision, state.canary_weight) == ("r2", None, 0)


def test_deployment_mode_prefers_status_then_annotation() -> None:
    annotated = {"metadata": {"annotations": {"serving.kserve.io/deploymentMode": "Standard"}}}
    assert deployment_mode(annotated) == "Standard"
    assert deployment_mode({**annotated, "status": {"deploymentMode": "RawDeployment"}}) == (
        "RawDeployment"
    )
    assert deployment_mode({"metadata": {}}) == "Serverless"


def test_argo_status_with_string_observed_generation() -> None:
    obj: dict[str, Any] = {
        "metadata": {"generation": 4},
        "spec": {"strategy": {"canary": {"steps": [{"setWeight": 10}, {"pause": {}}]}}},
        "status": {
            "observedGeneration": "4",
            "phase": "Progressing",
            "stableRS": "aaa",
            "currentPodHash": "bbb",
            "currentStepIndex": 0,
            "canary": {"weights": {"canary": {"weight": 10}, "stable": {"weight": 90}}},
        },
    }
    status = parse_rollout_status(obj)
    assert status.observed
    assert (status.step_count, status.current_step_index, status.canary_weight) == (2, 0, 10)
    obj["status"]["observedGeneration"] = "3"
    assert not parse_rollout_status(obj).observed


@pytest.mark.parametrize("weight", [0, 1, 50, 100])
def test_check_weight_accepts_0_to_100(weight: int) -> None:
    assert check_weight(weight) == weight


@pytest.mark.parametrize("weight", [-1, 101, 5.0, True, "10", None])
def test_check_weight_rejects_the_rest(weight: object) -> None:
    with pytest.raises(InvalidInputError, match=r"0\.\.100"):
        check_weight(weight)  # type: ignore[arg-type]
