"""Ledger events the rollout engine and service write (one place, one shape)."""

from __future__ import annotations

from typing import Any

from analyzer.domain.events import EventType, LedgerEvent
from analyzer.domain.rollout import Rollout


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
