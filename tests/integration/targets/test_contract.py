"""One contract suite for every TrafficTarget: memory, and KServe through the fake apiserver."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from analyzer.domain.errors import FatalIntegrationError, InvalidInputError, NotFoundError
from analyzer.domain.model import ModelRef
from analyzer.targets.base import TrafficTarget
from analyzer.targets.memory import InMemoryTarget
from tests.fakes.kube_api import KubeApiFake
from tests.integration.targets.support import MODEL, FakeClock, deploy_canary, kserve_target


@dataclass
class World:
    target: TrafficTarget
    ref: ModelRef
    stable: str
    canary: str


@pytest.fixture(params=["memory", "kserve"])
def world(request: pytest.FixtureRequest) -> Iterator[World]:
    if request.param == "memory":
        target = InMemoryTarget()
        target.add_model(MODEL, stable_revision="iris-v1", canary_revision="iris-v2")
        yield World(target, MODEL, "iris-v1", "iris-v2")
        return
    with KubeApiFake(controller_lag_reads=1) as kube:
        stable, canary = deploy_canary(kube)
        yield World(kserve_target(kube, FakeClock()), MODEL, stable, canary)


def test_satisfies_the_protocol(world: World) -> None:
    assert isinstance(world.target, TrafficTarget)


def test_initial_state_is_canary_at_zero(world: World) -> None:
    state = world.target.read_weight(world.ref)
    assert (state.stable_revision, state.canary_revision) == (world.stable, world.canary)
    assert state.canary_weight == 0
    assert state.stable_weight == 100


@pytest.mark.parametrize("steps", [[10], [10, 25, 50], [50, 10], [100]])
def test_set_weight_is_applied_and_observed(world: World, steps: list[int]) -> None:
    for weight in steps:
        state = world.target.set_weight(world.ref, weight)
        assert (state.canary_revision, state.canary_weight) == (world.canary, weight)
        assert state.stable_revision == world.stable
        assert state.percent_of(world.canary) == weight
        assert state.requested_weight == weight
        assert state.settled
    observed = world.target.read_weight(world.ref)
    assert observed.percent_of(world.canary) == steps[-1]
    assert observed.percent_of(world.stable) == 100 - steps[-1]
    assert sum(s.percent for s in observed.shares) == 100


@pytest.mark.parametrize("weight", [25, 100])
def test_abort_after_any_weight_returns_to_the_stable_revision(world: World, weight: int) -> None:
    world.target.set_weight(world.ref, weight)
    state = world.target.abort(world.ref)
    assert state.percent_of(world.stable) == 100
    assert state.percent_of(world.canary) == 0
    assert state.stable_revision == world.stable


def test_set_weight_is_idempotent(world: World) -> None:
    first = world.target.set_weight(world.ref, 25)
    again = world.target.set_weight(world.ref, 25)
    assert first.canary_weight == again.canary_weight == 25


def test_abort_returns_all_traffic_to_stable(world: World) -> None:
    world.target.set_weight(world.ref, 50)
    state = world.target.abort(world.ref)
    assert state.canary_weight == 0
    assert state.stable_revision == world.stable
    assert world.target.read_weight(world.ref).canary_weight == 0
    assert world.target.abort(world.ref).canary_weight == 0  # idempotent


def test_promote_makes_the_canary_stable(world: World) -> None:
    world.target.set_weight(world.ref, 50)
    state = world.target.promote(world.ref)
    assert state.stable_revision == world.canary
    assert state.canary_revision is None
    assert state.canary_weight == 0
    assert [(s.revision, s.percent) for s in state.shares if s.percent] == [(world.canary, 100)]
    assert world.target.promote(world.ref).stable_revision == world.canary  # idempotent


def test_after_promotion_there_is_no_canary_to_weight(world: World) -> None:
    world.target.promote(world.ref)
    with pytest.raises(FatalIntegrationError, match="no canary revision"):
        world.target.set_weight(world.ref, 10)
    assert world.target.read_weight(world.ref).percent_of(world.canary) == 100


@pytest.mark.parametrize("weight", [-1, 101, 12.5, True])
def test_invalid_weight_is_rejected_before_any_change(world: World, weight: object) -> None:
    with pytest.raises(InvalidInputError):
        world.target.set_weight(world.ref, weight)  # type: ignore[arg-type]
    assert world.target.read_weight(world.ref).canary_weight == 0


def test_unknown_model_is_not_found(world: World) -> None:
    ghost = ModelRef(namespace="models", name="ghost")
    with pytest.raises(NotFoundError):
        world.target.read_weight(ghost)
    with pytest.raises(NotFoundError):
        world.target.set_weight(ghost, 10)
