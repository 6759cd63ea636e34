"""Strategies in the plan and the pure state machine: what each strategy's one step means."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

from analyzer.domain.errors import InvalidInputError
from analyzer.domain.rollout import RolloutState, Step, StepPlan, Strategy
from analyzer.domain.verdict import Verdict
from analyzer.rollouts.machine import Action, decide
from analyzer.rollouts.repository import plan_from_json, plan_to_json
from tests.unit.rollouts.test_machine import OPEN, T0, rollout

MINUTE = timedelta(minutes=1)


def plan(strategy: Strategy, weight: int = 100, dwell: timedelta = 5 * MINUTE) -> StepPlan:
    return StepPlan(steps=(Step(weight=weight, dwell=dwell),), strategy=strategy)


@pytest.mark.parametrize(
    ("strategy", "steps", "message"),
    [
        (Strategy.BLUE_GREEN, (10, 100), "exactly one step"),
        (Strategy.BLUE_GREEN, (50,), "cut to 100 %"),
        (Strategy.PINNED, (25,), "cut to 100 %"),
        (Strategy.SHADOW, (10, 20), "exactly one step"),
    ],
)
def test_single_step_strategies_refuse_other_shapes(
    strategy: Strategy, steps: tuple[int, ...], message: str
) -> None:
    with pytest.raises(InvalidInputError, match=message) as caught:
        StepPlan(steps=tuple(Step(weight=w, dwell=5 * MINUTE) for w in steps), strategy=strategy)
    assert caught.value.field == "plan.steps"


def test_a_judged_window_must_last_an_analysis_interval() -> None:
    with pytest.raises(InvalidInputError, match="at least one analysis interval"):
        plan(Strategy.BLUE_GREEN, dwell=timedelta(seconds=30))
    assert plan(Strategy.PINNED, dwell=timedelta(0)).steps[0].dwell == timedelta(0)


def test_baseline_offset_only_for_blue_green_and_never_reaching_past_the_cut() -> None:
    with pytest.raises(InvalidInputError, match="shorter than the verification window") as c:
        StepPlan(steps=(Step(weight=100, dwell=10 * MINUTE),), strategy=Strategy.BLUE_GREEN,
                 baseline_offset=5 * MINUTE)  # fmt: skip
    assert c.value.field == "plan.baseline_offset_seconds"
    with pytest.raises(InvalidInputError, match="only a blue_green"):
        StepPlan(steps=(Step(weight=100, dwell=MINUTE),), strategy=Strategy.SHADOW,
                 baseline_offset=timedelta(days=1))  # fmt: skip
    default = plan(Strategy.BLUE_GREEN, dwell=10 * MINUTE)
    assert default.verification_offset == 10 * MINUTE  # the window just before the cut
    daily = dataclasses.replace(default, baseline_offset=timedelta(days=1))
    assert daily.verification_offset == timedelta(days=1)


def test_strategy_and_offset_round_trip_and_old_rows_read_as_canaries() -> None:
    daily = StepPlan(steps=(Step(weight=100, dwell=MINUTE),), strategy=Strategy.BLUE_GREEN,
                     baseline_offset=timedelta(days=1))  # fmt: skip
    assert plan_from_json(plan_to_json(daily)) == daily
    old = plan_to_json(StepPlan.default())
    del old["strategy"]
    assert plan_from_json(old).strategy is Strategy.CANARY


def test_blue_green_enters_its_step_as_a_cut_then_finishes_after_the_window() -> None:
    bg = plan(Strategy.BLUE_GREEN)
    pending = rollout(plan=bg, state=RolloutState.PENDING, step_index=-1, step_started_at=None)
    assert decide(pending, now=T0).action is Action.CHECK_GATES  # the gates come before the cut
    cut = decide(pending, now=T0, gates=OPEN)
    assert (cut.action, cut.target_step) == (Action.ENTER_STEP, 0)
    assert "cut to 100 %" in cut.reason
    cutover = rollout(plan=bg, step_index=0)
    assert cutover.canary_weight == 100
    early = decide(cutover, now=T0 + 4 * MINUTE, verdict=Verdict.PASS)
    assert early.action is Action.WAIT
    done = decide(cutover, now=T0 + 5 * MINUTE, verdict=Verdict.PASS)
    assert (done.action, done.target_step) == (Action.PROMOTE, 0)  # no second gate check
    bad = decide(cutover, now=T0 + MINUTE, verdict=Verdict.FAIL, verdict_reason="p99 +30%")
    assert bad.action is Action.ABORT  # re-point back


def test_shadow_mirrors_then_passes_in_place() -> None:
    sh = plan(Strategy.SHADOW, weight=20)
    pending = rollout(plan=sh, state=RolloutState.PENDING, step_index=-1, step_started_at=None)
    mirror = decide(pending, now=T0, gates=OPEN)
    assert (mirror.action, mirror.target_step) == (Action.ENTER_STEP, 0)
    assert "mirror 20 %" in mirror.reason
    running = rollout(plan=sh, step_index=0)
    passed = decide(running, now=T0 + 5 * MINUTE, verdict=Verdict.PASS)
    assert passed.action is Action.PROMOTE
    assert "shadow window passed" in passed.reason
    assert rollout(plan=sh, state=RolloutState.SHADOW_PASSED).canary_weight == 0
    assert RolloutState.SHADOW_PASSED.terminal


def test_pinned_promotes_straight_behind_its_gates() -> None:
    pinned = plan(Strategy.PINNED, dwell=timedelta(0))
    pending = rollout(plan=pinned, state=RolloutState.PENDING, step_index=-1, step_started_at=None)
    assert decide(pending, now=T0, gates=OPEN).action is Action.PROMOTE


def test_canary_plans_keep_their_rules() -> None:
    with pytest.raises(InvalidInputError, match="canary step below 100"):
        StepPlan(steps=(Step(weight=100, dwell=MINUTE),))
    assert StepPlan.for_strategy(Strategy.CANARY) == StepPlan.default()
    for strategy in (Strategy.BLUE_GREEN, Strategy.SHADOW, Strategy.PINNED):
        assert StepPlan.for_strategy(strategy).strategy is strategy
