"""InMemoryTarget specifics: injected failures change nothing, calls are thread-safe."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from analyzer.domain.errors import RetryableError
from analyzer.targets.memory import InMemoryTarget
from tests.integration.targets.support import MODEL


def test_injected_failure_leaves_the_weight_untouched() -> None:
    target = InMemoryTarget()
    target.add_model(MODEL, stable_revision="v1", canary_revision="v2", weight=10)
    target.fail_next(1)
    with pytest.raises(RetryableError):
        target.set_weight(MODEL, 50)
    assert target.read_weight(MODEL).canary_weight == 10
    assert target.set_weight(MODEL, 50).canary_weight == 50


def test_latency_goes_through_the_injected_sleep() -> None:
    slept: list[float] = []
    target = InMemoryTarget(latency=0.25, sleep=slept.append)
    target.add_model(MODEL, stable_revision="v1", canary_revision="v2")
    target.abort(MODEL)
    assert slept == [0.25]


def test_concurrent_calls_keep_a_consistent_split() -> None:
    target = InMemoryTarget()
    target.add_model(MODEL, stable_revision="v1", canary_revision="v2")
    with ThreadPoolExecutor(max_workers=8) as pool:
        states = list(pool.map(lambda w: target.set_weight(MODEL, w % 101), range(400)))
    assert all(sum(s.percent for s in state.shares) == 100 for state in states)
    assert len(target.calls) == 400


def test_deploy_canary_starts_a_new_canary_at_zero() -> None:
    target = InMemoryTarget()
    target.add_model(MODEL, stable_revision="v1", canary_revision="v2")
    target.promote(MODEL)
    target.deploy_canary(MODEL, "v3")
    state = target.read_weight(MODEL)
    assert (state.stable_revision, state.canary_revision, state.canary_weight) == ("v2", "v3", 0)
