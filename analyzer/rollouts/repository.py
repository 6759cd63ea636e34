"""Rows of the ``rollouts`` table to and from :class:`~analyzer.domain.rollout.Rollout`."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Row, select

from analyzer.domain.errors import InvalidInputError, NotFoundError
from analyzer.domain.model import ModelRef, Tier
from analyzer.domain.rollout import (
    LookMark,
    PendingMove,
    Rollout,
    RolloutState,
    Step,
    StepPlan,
    Strategy,
)
from analyzer.rollouts.tables import rollouts


def plan_to_json(plan: StepPlan) -> dict[str, Any]:
    """The plan as stored (``rollouts.plan``) and shown; the strategy is part of it, so rows
    written before strategies existed read back as canaries."""
    extra: dict[str, Any] = {"strategy": plan.strategy.value}
    if plan.baseline_offset is not None:
        extra["baseline_offset_seconds"] = plan.baseline_offset.total_seconds()
    return extra | {
        "steps": [
            {"weight": s.weight, "dwell_seconds": s.dwell.total_seconds(), "gates": list(s.gates)}
            for s in plan.steps
        ],
        "analysis_interval_seconds": plan.analysis_interval.total_seconds(),
        "max_bake_seconds": plan.max_bake.total_seconds(),
        "consecutive_error_limit": plan.consecutive_error_limit,
    }


def plan_from_json(data: dict[str, Any]) -> StepPlan:
    try:
        steps = tuple(
            Step(
                weight=int(s["weight"]),
                dwell=timedelta(seconds=float(s.get("dwell_seconds", 0))),
                gates=tuple(s.get("gates", ())),
            )
            for s in data["steps"]
        )
        return StepPlan(
            steps=steps,
            analysis_interval=timedelta(seconds=float(data.get("analysis_interval_seconds", 60))),
            max_bake=timedelta(seconds=float(data.get("max_bake_seconds", 1800))),
            consecutive_error_limit=int(data.get("consecutive_error_limit", 4)),
            strategy=Strategy(data.get("strategy", Strategy.CANARY.value)),
            baseline_offset=(
                timedelta(seconds=float(data["baseline_offset_seconds"]))
                if data.get("baseline_offset_seconds") is not None
                else None
            ),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInputError(f"invalid step plan: {exc}", field="plan") from exc


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def from_row(row: Row[Any]) -> Rollout:
    m = row._mapping
    return Rollout(
        id=m["id"],
        model=ModelRef.parse(m["model"]),
        tier=Tier(m["tier"]),
        baseline_revision=m["baseline_revision"],
        canary_revision=m["canary_revision"],
        profile=m["profile"],
        plan=plan_from_json(json.loads(m["plan"])),
        state=RolloutState(m["state"]),
        step_index=m["step_index"],
        paused=bool(m["paused"]),
        initiator=m["initiator"],
        created_at=_utc(m["created_at"]) or datetime.now(UTC),
        updated_at=_utc(m["updated_at"]) or datetime.now(UTC),
        step_started_at=_utc(m["step_started_at"]),
        analysis_started_at=_utc(m["analysis_started_at"]),
        next_tick_at=_utc(m["next_tick_at"]),
        change_request=m["change_request"],
        artifact_uri=m["artifact_uri"],
        model_version=m["model_version"],
        artifact_digest=m["artifact_digest"],
        consecutive_errors=m["consecutive_errors"],
        reason=m["reason"],
        version=m["version"],
        judge_state=json.loads(m["judge_state"]),
        applied_weight=m["applied_weight"],
        pending_move=_pending_from_text(m["pending_move"]),
        last_look=LookMark.from_json(json.loads(m["last_look"])) if m["last_look"] else None,
    )


def _pending_from_text(text: str | None) -> PendingMove | None:
    if not text:
        return None
    return PendingMove.from_json(json.loads(text))


def to_row(rollout: Rollout) -> dict[str, Any]:
    return {
        "id": rollout.id,
        "model": str(rollout.model),
        "tier": rollout.tier.value,
        "baseline_revision": rollout.baseline_revision,
        "canary_revision": rollout.canary_revision,
        "profile": rollout.profile,
        "plan": json.dumps(plan_to_json(rollout.plan), sort_keys=True),
        "state": rollout.state.value,
        "step_index": rollout.step_index,
        "paused": rollout.paused,
        "initiator": rollout.initiator,
        "created_at": rollout.created_at,
        "updated_at": rollout.updated_at,
        "step_started_at": rollout.step_started_at,
        "analysis_started_at": rollout.analysis_started_at,
        "next_tick_at": rollout.next_tick_at,
        "change_request": rollout.change_request,
        "artifact_uri": rollout.artifact_uri,
        "model_version": rollout.model_version,
        "artifact_digest": rollout.artifact_digest,
        "consecutive_errors": rollout.consecutive_errors,
        "reason": rollout.reason,
        "version": rollout.version,
        "judge_state": json.dumps(rollout.judge_state, sort_keys=True),
        "applied_weight": rollout.applied_weight,
        "pending_move": (
            json.dumps(rollout.pending_move.to_json(), sort_keys=True)
            if rollout.pending_move is not None
            else None
        ),
        "last_look": (
            json.dumps(rollout.last_look.to_json(), sort_keys=True)
            if rollout.last_look is not None
            else None
        ),
    }


def load(conn: Connection, rollout_id: str, *, for_update: bool = False) -> Row[Any]:
    query = select(rollouts).where(rollouts.c.id == rollout_id)
    if for_update:
        query = query.with_for_update()
    row = conn.execute(query).first()
    if row is None:
        raise NotFoundError(f"no rollout {rollout_id!r}")
    return row


def rollout_json(rollout: Rollout, applied_weight: int | None = None) -> dict[str, Any]:
    """The public JSON view of a rollout (API, CLI)."""
    return {
        "id": rollout.id,
        "model": str(rollout.model),
        "tier": rollout.tier.value,
        "baseline_revision": rollout.baseline_revision,
        "canary_revision": rollout.canary_revision,
        "profile": rollout.profile,
        "plan": plan_to_json(rollout.plan),
        "strategy": rollout.strategy.value,
        "state": rollout.state.value,
        "step_index": rollout.step_index,
        "canary_weight": rollout.canary_weight,
        "applied_weight": applied_weight,
        "paused": rollout.paused,
        "initiator": rollout.initiator,
        "created_at": rollout.created_at.isoformat(),
        "updated_at": rollout.updated_at.isoformat(),
        "step_started_at": rollout.step_started_at.isoformat() if rollout.step_started_at else None,
        "change_request": rollout.change_request,
        "artifact_uri": rollout.artifact_uri,
        "model_version": rollout.model_version,
        "artifact_digest": rollout.artifact_digest,
        "consecutive_errors": rollout.consecutive_errors,
        "reason": rollout.reason,
    }
