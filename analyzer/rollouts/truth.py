"""Settling a rollout's record with what its target really serves: roll forward, never back.

The target is the truth about traffic; the rollout's row is what canary-analyzer intended and
confirmed. They disagree when a process died between a target call and its commit, when the
database connection dropped at the commit, or when someone else (a person with ``kubectl``, a
GitOps sync, another controller) moved traffic. :func:`settle` compares the two, as a pure
function, and says how the record must change. Its rules:

* **A promotion that happened is recorded as having happened**, whoever made it.
* **A canary found at 0 % while the record says it serves is recorded as aborted**, and nothing
  ever sends traffic back to it: a canary pulled from traffic (by our abort before a crash, or by
  a person) stays pulled until someone starts a new rollout.
* **A step that was applied is recorded as applied**, from the moment it was seen, when the
  record holds the intent for exactly that step (a crash after ``set_weight``).
* **An intent the target did not take** (it still shows the previous weight) is cleared, and the
  next tick decides afresh.
* **Any other weight was set outside canary-analyzer**: it is recorded as observed and the
  rollout is paused for a person, who may resume it (the step's weight is then restored) or
  abort it. Pushing traffic back silently would undo someone's deliberate change.
* A target still applying the pending move (its desired state asks for it, its routing does not
  show it yet) is waited for, up to ``SETTLE_PATIENCE``; without a pending move the routing is
  what serves, settled or not.

``settle`` is only consulted for rollouts that are not terminal; a terminal rollout whose 0 %
is unconfirmed is handled by the engine's abort retry (abort is idempotent).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from analyzer.domain.rollout import MoveKind, Rollout

# How long a move the target accepted may take to show before the record stops waiting for it and
# judges what the routing shows (a KServe canary revision that never becomes ready, say).
SETTLE_PATIENCE = timedelta(minutes=5)


@dataclass(frozen=True, kw_only=True, slots=True)
class Observed:
    """What the target shows for a rollout's canary.

    ``canary_weight``: the share the rollout's canary revision serves (0 if it serves nothing or
    is not deployed). ``promoted``: the rollout's canary is the stable revision serving 100 %.
    ``settled``: the serving system reports its routing applied (no controller still moving).
    ``requested_weight``: the canary weight the object's desired state asks for, if it has one.
    """

    canary_weight: int
    promoted: bool
    settled: bool
    requested_weight: int | None = None


class Fix(StrEnum):
    NONE = "none"  # record and target agree
    WAIT = "wait"  # the target is still moving: look again later
    PROMOTED = "promoted"  # the canary is the stable revision: record the promotion
    ABORTED = "aborted"  # the canary is off traffic: record the abort, never undo it
    STEP_APPLIED = "step_applied"  # the pending step is what the target serves
    NOT_APPLIED = "not_applied"  # the pending move did not reach the target: clear it
    RESTORE = "restore"  # resumed after an outside change: set the step's weight again
    FOREIGN = "foreign"  # a weight nobody in this record asked for: record it and pause


@dataclass(frozen=True, kw_only=True, slots=True)
class Settlement:
    fix: Fix
    reason: str
    observed_weight: int
    after_restart: bool = False  # the record held an intent that a crash left unconfirmed


def settle(rollout: Rollout, observed: Observed, *, now: datetime) -> Settlement:
    """How ``rollout``'s record must change to agree with ``observed`` (see the module rules)."""
    seen = observed.canary_weight
    pending = rollout.pending_move
    applied = rollout.applied_weight or 0
    after_restart = pending is not None
    if observed.promoted:
        return Settlement(
            fix=Fix.PROMOTED, observed_weight=100, after_restart=after_restart,
            reason="the target shows the canary promoted (stable at 100 %)"
            + (" after the promotion's commit was lost" if _is_promote(rollout) else
               " by someone other than canary-analyzer"),
        )  # fmt: skip
    if (
        pending is not None
        and not observed.settled
        and observed.requested_weight == pending.weight
        and seen != pending.weight
        and now - pending.requested_at < SETTLE_PATIENCE
    ):
        return Settlement(fix=Fix.WAIT, observed_weight=seen,
                          reason="the target is still applying the requested change")  # fmt: skip
    if seen == 0 and applied > 0:
        return Settlement(
            fix=Fix.ABORTED, observed_weight=0, after_restart=after_restart,
            reason=f"the target shows the canary at 0 % while {applied} % was confirmed: it was "
            "taken off traffic (an abort whose commit was lost, or by hand); it stays off",
        )  # fmt: skip
    if pending is not None:
        if pending.kind is MoveKind.STEP and seen == pending.weight:
            return Settlement(
                fix=Fix.STEP_APPLIED, observed_weight=seen, after_restart=True,
                reason=f"step {pending.step} ({seen} %) was applied; its commit was lost",
            )  # fmt: skip
        if seen == applied:
            return Settlement(
                fix=Fix.NOT_APPLIED, observed_weight=seen, after_restart=True,
                reason=f"the requested {_describe(rollout)} did not reach the target "
                f"(still {seen} %); deciding again",
            )  # fmt: skip
        return _foreign(rollout, seen, after_restart=True)
    if seen == applied:
        if rollout.applied_weight is not None and seen != rollout.canary_weight:
            return Settlement(
                fix=Fix.RESTORE, observed_weight=seen,
                reason=f"resumed at {seen} %: restoring step {rollout.step_index} "
                f"({rollout.canary_weight} %)",
            )  # fmt: skip
        return Settlement(fix=Fix.NONE, observed_weight=seen, reason="target agrees")
    return _foreign(rollout, seen, after_restart=False)


def _foreign(rollout: Rollout, seen: int, *, after_restart: bool) -> Settlement:
    return Settlement(
        fix=Fix.FOREIGN, observed_weight=seen, after_restart=after_restart,
        reason=f"the target serves the canary at {seen} % but canary-analyzer applied "
        f"{rollout.applied_weight or 0} %"
        + (f" and asked for {_describe(rollout)}" if rollout.pending_move else "")
        + ": traffic was moved outside canary-analyzer; paused for a person to resume or abort",
    )  # fmt: skip


def _is_promote(rollout: Rollout) -> bool:
    return rollout.pending_move is not None and rollout.pending_move.kind is MoveKind.PROMOTE


def _describe(rollout: Rollout) -> str:
    move = rollout.pending_move
    if move is None:
        return "nothing"
    if move.kind is MoveKind.PROMOTE:
        return "promotion"
    return f"step {move.step} ({move.weight} %)"
