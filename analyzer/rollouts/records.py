"""Ledger events the rollout engine and service write (one place, one shape)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from analyzer.domain.errors import IntegrationError, NotFoundError
from analyzer.domain.events import EventType, LedgerEvent
from analyzer.domain.rollout import Rollout, Strategy
from analyzer.targets.base import TrafficTarget

# How long an unconfirmed target call waits before it is tried again.
TARGET_RETRY = timedelta(seconds=10)

# How a traffic_changed entry knows its split (docs/ledger.md, "What served means"):
CONFIRMED = "confirmed"  # the target confirmed the change canary-analyzer asked for
OBSERVED = "observed"  # seen on the target, whoever made it (after a crash, or by hand)


def traffic_changed(
    rollout: Rollout,
    weight: int,
    *,
    actor: str,
    cause: str,
    source: str = CONFIRMED,
    **extra: Any,
) -> LedgerEvent:
    """The model's whole split after a change, so "who served at T" is one lookup.

    A shadow run's "weight" is its mirror: recorded as ``mirror_changed`` with the unchanged
    split (the incumbent serves 100 %), never as a traffic change of the challenger."""
    if rollout.strategy is Strategy.SHADOW:
        return mirror_changed(rollout, weight, actor=actor, cause=cause, source=source, **extra)
    split = [{"revision": rollout.baseline_revision, "weight": 100 - weight}]
    split.append({"revision": rollout.canary_revision, "weight": weight})
    if weight == 100 and cause == "promoted":
        split = [{"revision": rollout.canary_revision, "weight": 100}]
    data = {"split": split, "step": rollout.step_index, "canary_weight": weight, "cause": cause}
    if rollout.strategy is not Strategy.CANARY:  # new key for new strategies only: old bytes stay
        data["strategy"] = rollout.strategy.value
    return LedgerEvent(
        type=EventType.TRAFFIC_CHANGED,
        actor=actor,
        model=rollout.model,
        rollout_id=rollout.id,
        revision=rollout.canary_revision,
        data=data | {"source": source} | extra,
    )


def mirror_changed(
    rollout: Rollout, percent: int, *, actor: str, cause: str, source: str = CONFIRMED, **extra: Any
) -> LedgerEvent:
    """A shadow run's mirror after a change: who gets copies, and that nobody else served."""
    data = {
        "mirror_percent": percent,
        "mirrored_revision": rollout.canary_revision if percent else None,
        "served": False,  # the mirrored revision's answers are discarded: it never served
        "split": [{"revision": rollout.baseline_revision, "weight": 100}],
        "step": rollout.step_index,
        "cause": cause,
        "strategy": Strategy.SHADOW.value,
        "source": source,
    }
    return LedgerEvent(
        type=EventType.MIRROR_CHANGED,
        actor=actor,
        model=rollout.model,
        rollout_id=rollout.id,
        revision=rollout.canary_revision,
        data=data | extra,
    )


def shadow_judged(rollout: Rollout, *, passed: bool, actor: str, reason: str) -> LedgerEvent:
    """A shadow run's verdict for its challenger's model version (the shadow gate's evidence)."""
    return about(
        rollout, EventType.SHADOW_JUDGED, actor, verdict="passed" if passed else "failed",
        model_version=rollout.model_version, artifact_digest=rollout.artifact_digest,
        incumbent_revision=rollout.baseline_revision, reason=reason,
    )  # fmt: skip


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


def abort_and_confirm(
    target: TrafficTarget, rollout: Rollout, *, actor: str, now: datetime
) -> tuple[list[LedgerEvent], Rollout]:
    """Send the canary to 0 % and the rollout as the target left it: 0 % confirmed (nothing
    pending) or, unconfirmed, to be retried after ``TARGET_RETRY``."""
    events, confirmed = abort_on_target(target, rollout, actor=actor, cause=rollout.state.value)
    new = replace(rollout, version=rollout.version + 1, updated_at=now)
    if confirmed is None:
        return events, replace(new, next_tick_at=now + TARGET_RETRY)
    return events, replace(new, applied_weight=confirmed, pending_move=None, next_tick_at=None)
