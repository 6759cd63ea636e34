"""The rollout JSON of each strategy: a shadow run's weight is a mirror, never a serving share."""

from __future__ import annotations

from datetime import timedelta

from analyzer.api.schemas import RolloutOut
from analyzer.domain.rollout import RolloutState, Step, StepPlan, Strategy
from tests.unit.rollouts.test_machine import rollout

SHADOW = StepPlan(steps=(Step(weight=40, dwell=timedelta(minutes=5)),), strategy=Strategy.SHADOW)


def test_a_shadow_run_serves_zero_and_mirrors_its_weight() -> None:
    out = RolloutOut.of(rollout(plan=SHADOW, step_index=0, applied_weight=40))
    assert (out.strategy, out.canary_weight, out.mirror_percent) == ("shadow", 0, 40)
    assert out.plan.strategy == "shadow"
    assert not out.pending
    passed = RolloutOut.of(rollout(plan=SHADOW, state=RolloutState.SHADOW_PASSED, applied_weight=0))
    assert (passed.state, passed.canary_weight, passed.mirror_percent) == ("shadow_passed", 0, 0)


def test_other_strategies_report_their_serving_weight() -> None:
    blue_green = StepPlan(
        steps=(Step(weight=100, dwell=timedelta(minutes=5)),), strategy=Strategy.BLUE_GREEN
    )
    out = RolloutOut.of(rollout(plan=blue_green, step_index=0, applied_weight=100))
    assert (out.strategy, out.canary_weight, out.mirror_percent) == ("blue_green", 100, None)
