"""Every crash window, deterministically: the process killed right after each target call, and
the database connection dropped right before each commit — for a good canary (promoted) and a
bad one (aborted by the judge), on PostgreSQL with the in-memory target.

After each fault the rollout must reach the state the target really has, every step must be sent
to the target exactly once (never twice, never undone), nothing may move toward the canary after
an abort, each step must be in the ledger once, the serving answer must match the target, and
``ledger verify`` must pass (``crash_windows.check``). The KServe and Argo variants, against the
fake Kubernetes API, are in ``test_crash_windows_kube.py``.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy.engine import URL

from analyzer.domain.events import EventType
from analyzer.domain.model import ModelRef
from analyzer.domain.rollout import Rollout, RolloutState
from analyzer.domain.verdict import Verdict
from analyzer.targets.memory.target import InMemoryTarget
from tests.integration.rollouts.crash_windows import (
    BAD_STEPS,
    GOOD_STEPS,
    MOVES,
    MadeTarget,
    SimulatedCrash,
    bad,
    check,
    good,
    start,
    sweep_commits,
    sweep_target_calls,
    world,
)
from tests.integration.rollouts.harness import ALICE, MODEL

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

STABLE, CANARY = "fraud-00001", "fraud-00002"


def memory_target(model: ModelRef = MODEL) -> MadeTarget:
    target = InMemoryTarget()
    target.add_model(model, stable_revision=STABLE, canary_revision=CANARY)
    return MadeTarget(target=target, stable=STABLE, canary=CANARY, model=model)


@pytest.mark.parametrize(("script", "expected"), [(good, GOOD_STEPS), (bad, BAD_STEPS)])
def test_killed_right_after_each_target_call(
    pg_server: URL, pg_template: str, script: Callable[[Rollout], Verdict],
    expected: list[tuple[str, int]],
) -> None:  # fmt: skip
    sweep_target_calls(pg_server, pg_template, script, expected, memory_target)


@pytest.mark.parametrize(("script", "expected"), [(good, GOOD_STEPS), (bad, BAD_STEPS)])
def test_connection_dropped_right_before_each_commit(
    pg_server: URL, pg_template: str, script: Callable[[Rollout], Verdict],
    expected: list[tuple[str, int]],
) -> None:  # fmt: skip
    assert sweep_commits(pg_server, pg_template, script, expected, memory_target) >= 10


def test_an_api_abort_killed_after_the_target_call_is_confirmed_not_undone(
    pg_server: URL, pg_template: str
) -> None:
    with world(pg_server, pg_template, good, memory_target) as w:
        rollout_id = start(w)
        w.run(rollout_id, minutes=4)  # at 25 %
        assert w.target.read_weight(MODEL).canary_weight == 25
        w.target.crash_after = len(w.target.moves) + 1
        with pytest.raises(SimulatedCrash):
            w.service().abort(rollout_id, ALICE, "pager: fraud FPR up")
        recorded = w.service().get(rollout_id)
        assert recorded.state is RolloutState.ABORTED  # the decision committed before the call
        assert recorded.applied_weight == 25  # and says it is not confirmed
        final = w.run(rollout_id)
        check(w, final, [("set_weight", 10), ("set_weight", 25), ("abort", 0)])
        aborts = w.ledger.events(rollout_id=rollout_id, event_types=[EventType.ROLLOUT_ABORTED],
                                 limit=10).entries  # fmt: skip
        assert [(a.actor, a.data()["reason"]) for a in aborts] == [("alice", "pager: fraud FPR up")]


def test_every_move_is_one_of_the_three(pg_server: URL, pg_template: str) -> None:
    """The injector sees every traffic move the engine makes (so the sweeps above cover all)."""
    with world(pg_server, pg_template, good, memory_target) as w:
        w.run(start(w))
        assert {op for op, _ in w.target.moves} <= set(MOVES)
        assert len(w.target.moves) == len(GOOD_STEPS)
