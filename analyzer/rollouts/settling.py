"""The record a settlement (``truth.settle``) writes: the rollout's new row and its ledger entries.

Pure: no database, no target, no clock (``now`` is passed in). Every entry that reports what the
target showed, rather than what it confirmed to a call of ours, carries ``source: observed``;
entries written for an intent a crash left unconfirmed carry ``observed_after_restart: true``.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from analyzer.domain.events import EventType, LedgerEvent
from analyzer.domain.rollout import Rollout, RolloutState, Strategy
from analyzer.rollouts import records
from analyzer.rollouts.truth import Fix, Settlement


def corrected(
    rollout: Rollout, settlement: Settlement, *, now: datetime, actor: str
) -> tuple[Rollout, list[LedgerEvent]]:
    """The rollout as the target shows it, and the entries that record why.

    Only for fixes that change the record (``PROMOTED``, ``ABORTED``, ``STEP_APPLIED``,
    ``NOT_APPLIED``, ``FOREIGN``); the others are handled by the engine's normal path.
    """
    fix, seen, why = settlement.fix, settlement.observed_weight, settlement.reason
    base = replace(
        rollout, version=rollout.version + 1, updated_at=now, pending_move=None, reason=why
    )
    flags: dict[str, Any] = {"observed_after_restart": settlement.after_restart}
    if rollout.pending_move is not None:
        flags["requested"] = rollout.pending_move.to_json()
    if fix is Fix.PROMOTED and rollout.strategy is Strategy.SHADOW:
        passed = replace(
            base, state=RolloutState.SHADOW_PASSED, applied_weight=0, next_tick_at=None,
        )  # fmt: skip
        why = "the mirror was removed after the shadow window passed; the commit was lost"
        return passed, [
            _observed_traffic(passed, 0, actor, "shadow passed", flags),
            records.shadow_judged(passed, passed=True, actor=actor, reason=why),
        ]
    if fix is Fix.PROMOTED:
        done = replace(
            base, state=RolloutState.PROMOTED, step_index=len(rollout.plan.steps) - 1,
            step_started_at=now, applied_weight=100, next_tick_at=None,
        )  # fmt: skip
        return done, [
            _observed_traffic(done, 100, actor, "promoted", flags),
            records.about(done, EventType.ROLLOUT_PROMOTED, actor, reason=why, **flags),
        ]
    if fix is Fix.ABORTED:
        done = replace(base, state=RolloutState.ABORTED, applied_weight=0, next_tick_at=None)
        return done, [
            records.about(
                done,
                EventType.ROLLOUT_ABORTED,
                actor,
                reason=why,
                from_weight=rollout.applied_weight,
                **flags,
            ),
            _observed_traffic(done, 0, actor, "aborted", flags),
        ]
    if fix is Fix.STEP_APPLIED:
        move = rollout.pending_move
        assert move is not None, "a step is found applied only for a pending step"
        moved = replace(
            base, state=RolloutState.PROGRESSING, step_index=move.step, step_started_at=now,
            analysis_started_at=rollout.analysis_started_at or now, consecutive_errors=0,
            judge_state={}, applied_weight=seen, next_tick_at=now + rollout.plan.analysis_interval,
        )  # fmt: skip
        return moved, [_observed_traffic(moved, seen, actor, f"step {move.step}", flags)]
    if fix is Fix.NOT_APPLIED:
        cleared = replace(base, next_tick_at=now)
        return cleared, [
            records.about(
                cleared, EventType.TARGET_ERROR, actor, operation="settle", error=why, **flags
            ),
        ]
    if fix is Fix.FOREIGN:
        paused = replace(base, paused=True, applied_weight=seen, next_tick_at=now)
        return paused, [
            _observed_traffic(paused, seen, actor, "outside canary-analyzer", flags),
            records.about(paused, EventType.ROLLOUT_PAUSED, actor, reason=why, **flags),
        ]
    raise ValueError(f"{fix} does not change the record")


def _observed_traffic(
    rollout: Rollout, weight: int, actor: str, cause: str, flags: dict[str, Any]
) -> LedgerEvent:
    return records.traffic_changed(
        rollout, weight, actor=actor, cause=cause, source=records.OBSERVED, **flags
    )
