"""Rollouts: start, list, read, and the on-call controls abort / pause / resume / approve.

Coded against :class:`~analyzer.rollouts.control.RolloutControl` only. Tenant scoping is checked
on the rollout's model before any action, so a token for one namespace cannot even learn the
state of another namespace's rollout by trying to abort it.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response

from analyzer.api.auth import ensure_namespace
from analyzer.api.deps import (
    ApproverActor,
    OperatorActor,
    ReaderActor,
    Services,
    ServicesDep,
    StarterActor,
)
from analyzer.api.schemas import (
    ApprovalOut,
    ApproveIn,
    ReasonIn,
    RolloutListOut,
    RolloutOut,
    RolloutStartIn,
)
from analyzer.domain.events import EventType
from analyzer.domain.model import ModelRef
from analyzer.domain.rollout import Rollout, RolloutState, StepPlan
from analyzer.rollouts.control import Actor, StartRollout

router = APIRouter(prefix="/api/v1/rollouts", tags=["rollouts"])

RolloutId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_.\-]{1,64}$", description="Rollout id")]
_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or invalid token"},
    403: {"description": "Role, namespace or four-eyes rule refuses it"},
    404: {"description": "No such rollout"},
    409: {"description": "Not allowed in the rollout's current state"},
    422: {"description": "Invalid body"},
}


def _scoped(services: Services, rollout_id: str, actor: Actor) -> Rollout:
    rollout = services.rollouts.get(rollout_id)
    ensure_namespace(actor, rollout.model.namespace)
    return rollout


def _recorded(services: Services, event: EventType) -> None:
    services.metrics.ledger_appends.labels(event_type=event.value).inc()


@router.post("", status_code=201, summary="Start a driven rollout", responses=_ERRORS)
def start_rollout(body: RolloutStartIn, services: ServicesDep, actor: StarterActor) -> RolloutOut:
    model = body.model.ref()
    ensure_namespace(actor, model.namespace)
    request = StartRollout(
        model=model,
        tier=body.tier,
        baseline_revision=body.baseline_revision,
        canary_revision=body.canary_revision,
        profile=body.profile,
        plan=(
            body.plan.plan(body.strategy)
            if body.plan is not None
            else StepPlan.for_strategy(body.strategy)
        ),
        change_request=body.change_request,
        artifact_uri=body.artifact_uri,
        model_version=body.model_version,
        artifact_digest=body.artifact_digest,
        artifact_signature=body.artifact_signature,
        artifact_sigstore_bundle=json.dumps(body.artifact_sigstore_bundle)
        if body.artifact_sigstore_bundle is not None
        else None,
    )
    rollout = services.rollouts.start(request, actor)
    _recorded(services, EventType.ROLLOUT_STARTED)
    return RolloutOut.of(rollout)


@router.get("", summary="List rollouts", responses=_ERRORS)
def list_rollouts(
    services: ServicesDep,
    actor: ReaderActor,
    model: Annotated[str | None, Query(description="NAMESPACE/NAME", max_length=320)] = None,
    state: RolloutState | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> RolloutListOut:
    ref = ModelRef.parse(model) if model is not None else None
    if ref is not None:
        ensure_namespace(actor, ref.namespace)
    found = services.rollouts.list(model=ref, state=state, namespaces=actor.namespaces, limit=limit)
    return RolloutListOut(rollouts=[RolloutOut.of(r) for r in found])


@router.get("/{rollout_id}", summary="Read one rollout", responses=_ERRORS)
def get_rollout(rollout_id: RolloutId, services: ServicesDep, actor: ReaderActor) -> RolloutOut:
    return RolloutOut.of(_scoped(services, rollout_id, actor))


@router.post(
    "/{rollout_id}/abort",
    summary="Abort: canary traffic to 0 % now (idempotent)",
    description="200 when the target confirmed 0 %; 202 with `pending: true` and the "
    "`applied_weight` the target still shows when the abort is recorded but not yet confirmed "
    "(the service retries it every 10 s until it is).",
    responses={**_ERRORS, 202: {"model": RolloutOut, "description": "recorded, not confirmed"}},
)
def abort_rollout(
    rollout_id: RolloutId,
    body: ReasonIn,
    services: ServicesDep,
    actor: OperatorActor,
    response: Response,
) -> RolloutOut:
    _scoped(services, rollout_id, actor)
    rollout = services.rollouts.abort(rollout_id, actor, body.reason)
    _recorded(services, EventType.ROLLOUT_ABORTED)
    out = RolloutOut.of(rollout)
    if out.pending:
        services.metrics.integration_errors.labels(integration="target").inc()
        response.status_code = 202
    return out


@router.post("/{rollout_id}/pause", summary="Pause at the current step", responses=_ERRORS)
def pause_rollout(
    rollout_id: RolloutId, body: ReasonIn, services: ServicesDep, actor: OperatorActor
) -> RolloutOut:
    _scoped(services, rollout_id, actor)
    rollout = services.rollouts.pause(rollout_id, actor, body.reason)
    _recorded(services, EventType.ROLLOUT_PAUSED)
    return RolloutOut.of(rollout)


@router.post("/{rollout_id}/resume", summary="Resume a paused rollout", responses=_ERRORS)
def resume_rollout(
    rollout_id: RolloutId, services: ServicesDep, actor: OperatorActor
) -> RolloutOut:
    _scoped(services, rollout_id, actor)
    rollout = services.rollouts.resume(rollout_id, actor)
    _recorded(services, EventType.ROLLOUT_RESUMED)
    return RolloutOut.of(rollout)


@router.post(
    "/{rollout_id}/approve",
    summary="Four-eyes approval of the next gated step (refused for the initiator)",
    responses={
        **_ERRORS,
        409: {"description": "No remaining manual-approval check would count this approval"},
    },
)
def approve_rollout(
    rollout_id: RolloutId, body: ApproveIn, services: ServicesDep, actor: ApproverActor
) -> ApprovalOut:
    _scoped(services, rollout_id, actor)
    recorded = services.rollouts.approve(rollout_id, actor, body.comment, body.step)
    _recorded(services, EventType.APPROVAL_GIVEN)
    return ApprovalOut.of_approval(recorded)
