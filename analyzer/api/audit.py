"""Audit queries for model-risk officers: serving-at-T, the event ledger, verify, export.

Every route is rate limited per token (bulk sweeps of decision history are a model-extraction
risk). A token scoped to namespaces must name a model in one of them for event queries and
exports, because the ledger pages by time and filtering afterwards would break paging. The
queries themselves live in ``audit_queries`` so the web pages under ``/ui/`` ask the same ones.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from analyzer.api import audit_queries
from analyzer.api.deps import AuditorActor, Services, ServicesDep
from analyzer.api.schemas import (
    EntryOut,
    EventsOut,
    MirroredOut,
    ServingOut,
    ServingRevisionOut,
    VerifyOut,
)
from analyzer.domain.events import EventType
from analyzer.ledger.chain import EntryRecord
from analyzer.ledger.export import entry_json
from analyzer.rollouts.control import Actor

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])

ModelQuery = Annotated[str, Query(description="NAMESPACE/NAME", max_length=320)]
_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or invalid token"},
    403: {"description": "Role or namespace not allowed"},
    422: {"description": "Invalid query parameter"},
    429: {"description": "Rate limited (Retry-After)"},
}


def _entry(entry: EntryRecord) -> EntryOut:
    return EntryOut.model_validate(entry_json(entry))


@router.get("/serving", summary="Which revisions served a model at an instant", responses=_ERRORS)
def serving(
    services: ServicesDep,
    actor: AuditorActor,
    model: ModelQuery,
    at: Annotated[datetime, Query(description="ISO 8601 with a time zone")],
) -> ServingOut:
    answer = audit_queries.serving(services.ledger, actor, model, at)
    traffic = answer.traffic_entry
    data = traffic.data() if traffic is not None else {}
    analysis = audit_queries.linked_analysis(services.ledger, actor, traffic) if traffic else None
    return ServingOut(
        model=answer.model,
        at=answer.at,
        revisions=[
            ServingRevisionOut(
                revision=r.revision,
                weight=r.weight,
                artifact_uri=r.artifact_uri,
                step=r.step,
                model_version=r.model_version,
                artifact_digest=r.artifact_digest,
            )
            for r in answer.revisions
        ],
        traffic_entry=_entry(traffic) if traffic else None,
        source=str(data.get("source", "engine")) if traffic else None,
        owner=data.get("owner") if traffic else None,
        approvals=[_entry(e) for e in answer.approvals],
        registrations=[_entry(e) for e in answer.registrations],
        analysis=_entry(analysis) if analysis else None,
        promotions=[_entry(e) for e in answer.promotions],
        mirrored=_mirrored(services, actor, model, at),
    )


def _mirrored(services: Services, actor: Actor, model: str, at: datetime) -> list[MirroredOut]:
    """The shadow mirror at ``at``, if one was copying requests (it never served)."""
    entry = audit_queries.mirror_at(services.ledger, actor, model, at)
    if entry is None:
        return []
    data = entry.data()
    revision = str(data.get("mirrored_revision") or entry.revision or "")
    return [
        MirroredOut(revision=revision, percent=float(data["mirror_percent"]), entry=_entry(entry))
    ]


@router.get("/events", summary="Ledger entries, filtered, cursor-paged", responses=_ERRORS)
def events(
    *,
    services: ServicesDep,
    actor: AuditorActor,
    model: ModelQuery | None = None,
    rollout: Annotated[str | None, Query(max_length=64)] = None,
    type: Annotated[list[EventType] | None, Query()] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> EventsOut:
    page = audit_queries.events(
        services.ledger,
        actor,
        model=model,
        rollout=rollout,
        types=type or (),
        since=since,
        until=until,
        cursor=cursor,
        limit=limit,
    )
    return EventsOut(entries=[_entry(e) for e in page.entries], next_cursor=page.next_cursor)


@router.get("/verify", summary="Recompute the ledger's hash chain", responses=_ERRORS)
def verify(services: ServicesDep, actor: AuditorActor) -> VerifyOut:
    report, checked, finding = audit_queries.verify(services.ledger, services.checkpoints)
    if finding is not None:  # a chain cut after the newest checkpoint verifies on its own
        return VerifyOut(
            intact=False,
            entries=report.entries,
            head_seq=report.head_seq,
            head_hash=report.head_hash,
            first_bad_seq=finding.first_bad_seq,
            problem=finding.problem,
            summary=f"ledger BROKEN at seq {finding.first_bad_seq}: {finding.problem}",
            checkpoint_checked=True,
        )
    return VerifyOut(
        intact=report.intact,
        entries=report.entries,
        head_seq=report.head_seq,
        head_hash=report.head_hash,
        first_bad_seq=report.first_bad_seq,
        problem=report.problem,
        summary=report.summary(),
        checkpoint_checked=checked,
    )


@router.get(
    "/export",
    summary="Export ledger entries as JSON or CSV (streamed)",
    responses={**_ERRORS, 200: {"content": {"application/json": {}, "text/csv": {}}}},
)
def export(
    *,
    services: ServicesDep,
    actor: AuditorActor,
    format: Literal["json", "csv"] = "json",
    model: ModelQuery | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> StreamingResponse:
    return audit_queries.export(
        services.ledger, actor, format=format, model=model, since=since, until=until
    )
