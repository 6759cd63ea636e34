"""The rollout state machine: what to do now, as a pure function.

``decide`` looks at a rollout, the latest verdict of its analysis, the gates guarding the step it
wants to enter and the time, and returns one :class:`Decision`. It never performs the decision:
the engine applies it to the traffic target and writes the new state with its ledger entries in
one transaction. Because ``decide`` reads no clock and keeps no state, replaying a tick with the
same inputs yields the same decision, and every branch is testable with literal values.

Rules, in order:
* terminal or paused rollouts do nothing;
* a ``fail`` verdict aborts at once (traffic to 0 %);
* ``error`` verdicts count toward ``consecutive_error_limit`` and then fail the rollout
  (traffic to 0 %) — an error never promotes;
* a step is left only after its dwell time *and* a ``pass`` verdict, and only when the gates of
  the next step are open; entering the 100 % step is the promotion;
* a step without a ``pass`` by ``max_bake`` fails the rollout: no evidence is not good evidence.

Strategies (``plan.strategy``) share these rules and differ only in what the one step means:
``blue_green`` enters its 100 % step as a *cut* (``ENTER_STEP``: the previous revision stays
deployed at 0 %, ready to be re-pointed to), and a pass after the verification window finishes
it (``PROMOTE``, no second gate check: the gates were asked before the cut); ``shadow`` enters
its step as the mirror and a pass after the shadow window ends it (``PROMOTE`` means "shadow
passed": the mirror is removed, nothing is promoted); ``pinned`` enters its 100 % step as the
promotion itself, behind the gates, with no analysis.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from analyzer.domain.rollout import Rollout, RolloutState, Strategy
from analyzer.domain.verdict import Verdict


class Action(StrEnum):
    NOTHING = "nothing"  # terminal or paused: no tick is scheduled
    WAIT = "wait"  # keep the current weight, tick again later
    CHECK_GATES = "check_gates"  # ask the gates of ``target_step``, then decide again
    HOLD = "hold"  # gates closed: keep the current weight, tick again later
    ENTER_STEP = "enter_step"  # set the canary weight of ``target_step``
    PROMOTE = "promote"  # the canary takes 100 % and becomes the stable revision
    ABORT = "abort"  # the judge found harm: canary to 0 %
    FAIL = "fail"  # no trustworthy evidence (errors, max bake): canary to 0 %


@dataclass(frozen=True, kw_only=True, slots=True)
class GateOutcome:
    """The gates' overall answer for a step (the details go to the ledger, not here)."""

    open: bool
    reason: str


@dataclass(frozen=True, kw_only=True, slots=True)
class Decision:
    action: Action
    reason: str
    target_step: int | None = None
    consecutive_errors: int = 0
    next_tick_in: timedelta | None = None

    @property
    def moves_traffic(self) -> bool:
        return self.action in (Action.ENTER_STEP, Action.PROMOTE, Action.ABORT, Action.FAIL)


def decide(
    rollout: Rollout,
    *,
    now: datetime,
    verdict: Verdict | None = None,
    verdict_reason: str = "",
    gates: GateOutcome | None = None,
) -> Decision:
    """The one thing to do now for ``rollout``."""
    if rollout.state.terminal:
        return Decision(action=Action.NOTHING, reason=f"rollout is {rollout.state.value}")
    if rollout.paused:
        return Decision(action=Action.NOTHING, reason="rollout is paused")
    if rollout.state is RolloutState.PENDING:
        start = (
            "start"
            if rollout.strategy is not Strategy.CANARY
            else (f"start at {rollout.plan.steps[0].weight} %")
        )
        return _towards(rollout, 0, gates, start)
    return _progressing(rollout, now, verdict, verdict_reason, gates)


def _progressing(
    rollout: Rollout,
    now: datetime,
    verdict: Verdict | None,
    verdict_reason: str,
    gates: GateOutcome | None,
) -> Decision:
    plan, interval = rollout.plan, rollout.plan.analysis_interval
    if verdict is None:
        return Decision(action=Action.WAIT, reason="no analysis yet", next_tick_in=interval)
    if verdict is Verdict.FAIL:
        return Decision(action=Action.ABORT, reason=f"analysis failed: {verdict_reason}")
    if verdict is Verdict.ERROR:
        errors = rollout.consecutive_errors + 1
        if errors >= plan.consecutive_error_limit:
            return Decision(
                action=Action.FAIL,
                consecutive_errors=errors,
                reason=f"{errors} consecutive analysis errors (limit "
                f"{plan.consecutive_error_limit}); last: {verdict_reason}",
            )
        return Decision(
            action=Action.WAIT, consecutive_errors=errors, next_tick_in=interval,
            reason=f"analysis error {errors} of {plan.consecutive_error_limit}: {verdict_reason}",
        )  # fmt: skip
    started = rollout.step_started_at or rollout.created_at
    elapsed = now - started
    step = plan.steps[rollout.step_index]
    if verdict is Verdict.PASS and elapsed >= step.dwell:
        target = rollout.step_index + 1
        if target == len(plan.steps):  # blue_green verified, shadow passed: finish in place
            done = (
                "verification window passed"
                if rollout.strategy is Strategy.BLUE_GREEN
                else ("shadow window passed")
            )
            return Decision(
                action=Action.PROMOTE, target_step=rollout.step_index,
                next_tick_in=interval, reason=f"{done}; finishing",
            )  # fmt: skip
        return _towards(rollout, target, gates, f"step {rollout.step_index} passed")
    if verdict is not Verdict.PASS and elapsed >= plan.max_bake:
        return Decision(
            action=Action.FAIL,
            reason=f"no pass within the maximum bake time of {plan.max_bake} at {step.weight} % "
            f"(last verdict {verdict.value}: {verdict_reason})",
        )
    waiting_for = "dwell time" if verdict is Verdict.PASS else f"evidence ({verdict.value})"
    return Decision(
        action=Action.WAIT, next_tick_in=interval,
        reason=f"at {step.weight} % for {elapsed}, waiting for {waiting_for}",
    )  # fmt: skip


def _towards(rollout: Rollout, target: int, gates: GateOutcome | None, why: str) -> Decision:
    """Move to step ``target`` if its gates allow; 100 % is the promotion."""
    interval = rollout.plan.analysis_interval
    weight = rollout.plan.steps[target].weight
    if gates is None:
        return Decision(
            action=Action.CHECK_GATES, target_step=target,
            reason=f"{why}; checking gates for {weight} %",
        )  # fmt: skip
    if not gates.open:
        return Decision(
            action=Action.HOLD, target_step=target, next_tick_in=interval,
            reason=f"{why}; gates for {weight} % closed: {gates.reason}",
        )  # fmt: skip
    finishes = weight == 100 and rollout.strategy in (Strategy.CANARY, Strategy.PINNED)
    action = Action.PROMOTE if finishes else Action.ENTER_STEP
    move = {
        Strategy.BLUE_GREEN: f"cut to {weight} %",
        Strategy.SHADOW: f"mirror {weight} % of requests",
    }.get(rollout.strategy, f"to {weight} %")
    return Decision(
        action=action, target_step=target, next_tick_in=interval, reason=f"{why}; {move}"
    )
