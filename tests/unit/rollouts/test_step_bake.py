"""Driven rollouts are bake-aware: each step's bake is its dwell (bounded by the plan)."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from analyzer.domain.rollout import Step, StepPlan
from analyzer.wiring import _step_bake_elapsed
from tests.unit.rollouts.test_machine import PLAN, T0, rollout


def test_the_bake_of_a_step_is_its_dwell() -> None:
    r = rollout()  # dwell 5 min, interval 1 min, max bake 20 min
    assert _step_bake_elapsed(r, since=T0, now=T0) == 0.0
    assert _step_bake_elapsed(r, since=T0, now=T0 + timedelta(minutes=5)) == 1.0
    assert _step_bake_elapsed(r, since=T0, now=T0 + timedelta(minutes=10)) == 2.0


def test_a_short_dwell_still_bakes_two_intervals_and_a_long_one_ends_before_max_bake() -> None:
    short = StepPlan(
        steps=(Step(weight=10, dwell=timedelta(0)), Step(weight=100, dwell=timedelta(0))),
        analysis_interval=timedelta(minutes=1),
        max_bake=timedelta(minutes=20),
    )
    r = rollout(plan=short)
    assert _step_bake_elapsed(r, since=T0, now=T0 + timedelta(minutes=1)) == 0.5
    long = dataclasses.replace(
        PLAN, steps=(Step(weight=10, dwell=timedelta(hours=1)), Step(weight=100, dwell=timedelta()))
    )
    # the pass must come before max bake (20 min), where a step without one fails
    assert _step_bake_elapsed(rollout(plan=long), since=T0, now=T0 + timedelta(minutes=19)) == 1.0


def test_outside_a_step_there_is_no_bake() -> None:
    assert _step_bake_elapsed(rollout(step_index=-1), since=T0, now=T0) is None
