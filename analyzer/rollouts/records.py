"""Ledger events the rollout engine and service write (one place, one shape)."""

from __future__ import annotations

from typing import Any

from analyzer.domain.errors import IntegrationError, NotFoundError
from analyzer.domain.events import EventType, LedgerEvent
from analyzer.domain.rollout import Rollout
from analyzer.targets.base import TrafficTarget


def traffic_changed(rollout: Rollout, weight: int, *, actor: str, cause: str) -> LedgerEvent:
    """The model's whole split after a change, so "who served at T" is one lookup."""
    split = [{"revision": rollout.baseline_revision, "weight": 100 - weight}]
    split.append({"revision": rollout.canary_revision, "weight": weight})
    if weight == 100 and cause == "promoted":
        split = [{"revision": rollout.canary_revision, "weight": 100}]
    return LedgerEvent(
        type=EventType.TRAFFIC_CHANGED,
        actor=actor,
        model=rollout.model,
        rollout_id=rollout.id,
        revision=rollout.canary_revision,
        data={"split": split, "step": rollout.step_index, "canary_weight": weight, "cause": cause},
    )


def about(rollout: Rollout, kind: EventType, actor: str, **data: Any) -> LedgerEvent:
    return LedgerEvent(
        type=kind,
        actor=actor,
        model=rollout.model,
        rollout_id=rollout.id,
        revision=rollout.canary_revision,
        data=data,
    )


def abort_on_target(
    target: TrafficTarget, rollout: Rollout, *, actor: str, cause: str
) -> tuple[list[LedgerEvent], int | None]:
    """Send the canary to 0 % and say what the target confirmed: the events to record and the
    confirmed weight (0), or None when it could not be confirmed (the engine retries).

    A model object that no longer exists serves nothing: that counts as confirmed, recorded
    with the target's message, so a deleted InferenceService is not retried forever.
    """
    try:
        target.abort(rollout.model)
    except NotFoundError as exc:
        gone = about(rollout, EventType.TARGET_ERROR, actor, operation="abort", error=str(exc))
        return [gone, traffic_changed(rollout, 0, actor=actor, cause="object gone")], 0
    except IntegrationError as exc:
        return [
            about(rollout, EventType.TARGET_ERROR, actor, operation="abort", error=str(exc))
        ], None
    return [traffic_changed(rollout, 0, actor=actor, cause=cause)], 0
