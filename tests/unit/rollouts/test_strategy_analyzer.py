"""What the engine's analyzer asks of a look for each strategy: blue/green reads the baseline
from its time-matched window, and neither it nor a shadow run checks a traffic split."""

from __future__ import annotations

from datetime import timedelta

import pytest

from analyzer.analyses.catalog import ProfileCatalog
from analyzer.analyses.looks import LookInput, LookOutcome
from analyzer.domain.result import AnalysisResult
from analyzer.domain.rollout import Rollout, Step, StepPlan, Strategy
from analyzer.domain.verdict import Verdict
from analyzer.judge import JudgeState
from analyzer.wiring import ProfileAnalyzer
from tests.unit.rollouts.test_machine import PLAN, T0, rollout

MINUTE = timedelta(minutes=1)


class Capture:
    def __init__(self) -> None:
        self.looks: list[LookInput] = []

    def run(self, look: LookInput, *, timeout: float | None = None) -> LookOutcome:
        self.looks.append(look)
        result = AnalysisResult(verdict=Verdict.INCONCLUSIVE, score=0.0, reason="captured",
                                metrics=(), alpha=look.profile.alpha)  # fmt: skip
        return result, JudgeState()

    def warm_up(self) -> None: ...

    def close(self) -> None: ...


def look_of(plan: StepPlan) -> LookInput:
    capture = Capture()
    subject: Rollout = rollout(plan=plan, profile="knative", step_index=0)
    ProfileAnalyzer(ProfileCatalog(), capture).analyze(subject, since=T0, now=T0 + 2 * MINUTE)
    (look,) = capture.looks
    return look


@pytest.mark.parametrize(
    ("offset", "expected"), [(None, 10 * MINUTE), (timedelta(days=1), timedelta(days=1))]
)
def test_blue_green_reads_the_baseline_from_the_time_matched_window(
    offset: timedelta | None, expected: timedelta
) -> None:
    plan = StepPlan(steps=(Step(weight=100, dwell=10 * MINUTE),), strategy=Strategy.BLUE_GREEN,
                    baseline_offset=offset)  # fmt: skip
    look = look_of(plan)
    assert look.baseline_offset == expected
    assert look.profile.canary_weight is None  # the cut serves 100 %: no split to check
    assert look.profile.alpha == 0.05  # one judged window: the profile's whole alpha


def test_shadow_checks_no_split_and_reads_both_arms_now() -> None:
    plan = StepPlan(steps=(Step(weight=20, dwell=10 * MINUTE),), strategy=Strategy.SHADOW)
    look = look_of(plan)
    assert look.baseline_offset is None
    assert look.profile.canary_weight is None  # mirrored copies may be shed: not a broken split


def test_a_canary_step_is_unchanged() -> None:
    look = look_of(PLAN)
    assert look.baseline_offset is None
    assert look.profile.canary_weight == 0.1  # step 0 of 10 → 25 → 50 → 100
    assert look.profile.alpha == pytest.approx(0.05 / 3)
