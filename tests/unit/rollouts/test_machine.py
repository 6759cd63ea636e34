"""The pure rollout state machine over literal rollouts."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from analyzer.domain.errors import InvalidInputError
from analyzer.domain.model import ModelRef, Tier
from analyzer.domain.rollout import Rollout, RolloutState, Step, StepPlan
from analyzer.domain.verdict import Verdict
from analyzer.rollouts.machine import Action, GateOutcome, decide

T0 = datetime(2026, 3, 4, 2, 0, tzinfo=UTC)
OPEN = GateOutcome(open=True, reason="all open")
CLOSED = GateOutcome(open=False, reason="servicenow: CHG0031337 not approved")
PLAN = StepPlan(
    steps=tuple(Step(weight=w, dwell=timedelta(minutes=5)) for w in (10, 25, 50, 100)),
    analysis_interval=timedelta(minutes=1),
    max_bake=timedelta(minutes=20),
    consecutive_error_limit=3,
)


def rollout(**changes: object) -> Rollout:
    base = Rollout(
        id="r1", model=ModelRef(namespace="risk-prod", name="fraud"), tier=Tier.HOT_PATH,
        baseline_revision="fraud-00001", canary_revision="fraud-00002", profile="default",
        plan=PLAN, state=RolloutState.PROGRESSING, step_index=0, paused=False,
        initiator="alice", created_at=T0, updated_at=T0, step_started_at=T0,
    )  # fmt: skip
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_pending_asks_gates_then_enters_first_step() -> None:
    pending = rollout(state=RolloutState.PENDING, step_index=-1, step_started_at=None)
    first = decide(pending, now=T0)
    assert first.action is Action.CHECK_GATES
    assert first.target_step == 0
    entered = decide(pending, now=T0, gates=OPEN)
    assert (entered.action, entered.target_step) == (Action.ENTER_STEP, 0)
    held = decide(pending, now=T0, gates=CLOSED)
    assert held.action is Action.HOLD
    assert "CHG0031337" in held.reason


def test_fail_verdict_aborts_at_once_even_before_dwell() -> None:
    decision = decide(rollout(), now=T0 + timedelta(seconds=30), verdict=Verdict.FAIL,
                      verdict_reason="latency p99 +40%")  # fmt: skip
    assert decision.action is Action.ABORT
    assert "latency p99 +40%" in decision.reason
    assert decision.moves_traffic


def test_pass_before_dwell_waits() -> None:
    decision = decide(rollout(), now=T0 + timedelta(minutes=4), verdict=Verdict.PASS)
    assert decision.action is Action.WAIT
    assert decision.next_tick_in == PLAN.analysis_interval


def test_pass_after_dwell_checks_next_gates_then_advances() -> None:
    now = T0 + timedelta(minutes=5)
    assert decide(rollout(), now=now, verdict=Verdict.PASS).action is Action.CHECK_GATES
    advanced = decide(rollout(), now=now, verdict=Verdict.PASS, gates=OPEN)
    assert (advanced.action, advanced.target_step) == (Action.ENTER_STEP, 1)
    held = decide(rollout(), now=now, verdict=Verdict.PASS, gates=CLOSED)
    assert held.action is Action.HOLD


def test_entering_the_last_step_is_the_promotion() -> None:
    at_50 = rollout(step_index=2)
    decision = decide(at_50, now=T0 + timedelta(minutes=6), verdict=Verdict.PASS, gates=OPEN)
    assert (decision.action, decision.target_step) == (Action.PROMOTE, 3)


def test_errors_count_to_the_limit_then_fail_never_promote() -> None:
    now = T0 + timedelta(minutes=10)
    first = decide(rollout(), now=now, verdict=Verdict.ERROR, verdict_reason="timeout")
    assert (first.action, first.consecutive_errors) == (Action.WAIT, 1)
    third = decide(rollout(consecutive_errors=2), now=now, verdict=Verdict.ERROR,
                   verdict_reason="timeout")  # fmt: skip
    assert third.action is Action.FAIL
    assert "3 consecutive analysis errors" in third.reason


def test_pass_resets_the_error_count() -> None:
    decision = decide(rollout(consecutive_errors=2), now=T0 + timedelta(minutes=1),
                      verdict=Verdict.PASS)  # fmt: skip
    assert decision.consecutive_errors == 0


def test_inconclusive_until_max_bake_fails() -> None:
    waiting = decide(rollout(), now=T0 + timedelta(minutes=19), verdict=Verdict.INCONCLUSIVE)
    assert waiting.action is Action.WAIT
    failed = decide(rollout(), now=T0 + timedelta(minutes=20), verdict=Verdict.INCONCLUSIVE)
    assert failed.action is Action.FAIL
    assert "maximum bake" in failed.reason


def test_healthy_canary_held_by_gates_is_not_failed_at_max_bake() -> None:
    decision = decide(rollout(), now=T0 + timedelta(hours=2), verdict=Verdict.PASS, gates=CLOSED)
    assert decision.action is Action.HOLD


@pytest.mark.parametrize(
    "state", [RolloutState.PROMOTED, RolloutState.ABORTED, RolloutState.FAILED]
)
def test_terminal_rollouts_do_nothing(state: RolloutState) -> None:
    assert decide(rollout(state=state), now=T0, verdict=Verdict.FAIL).action is Action.NOTHING


def test_paused_rollout_does_nothing_even_on_fail() -> None:
    assert decide(rollout(paused=True), now=T0, verdict=Verdict.FAIL).action is Action.NOTHING


def test_decide_is_deterministic() -> None:
    args = {"now": T0 + timedelta(minutes=7), "verdict": Verdict.PASS, "gates": OPEN}
    assert decide(rollout(), **args) == decide(rollout(), **args)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ((10, 50), "last step must be 100"),
        ((50, 25, 100), "strictly increase"),
        ((), "at least one"),
        ((100,), "canary step below 100 % before the promotion"),
    ],
)
def test_invalid_plans_are_refused(weights: tuple[int, ...], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        StepPlan(steps=tuple(Step(weight=w, dwell=timedelta(0)) for w in weights))


def test_canary_weight_claims_follow_state() -> None:
    assert rollout(step_index=1).canary_weight == 25
    assert rollout(state=RolloutState.ABORTED).canary_weight == 0
    assert rollout(state=RolloutState.PROMOTED).canary_weight == 100
