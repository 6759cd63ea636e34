"""Audit queries for model-risk officers: serving-at-T, the event ledger, verify, export.

Every route is rate limited per token (bulk sweeps of decision history are a model-extraction
risk). A token scoped to namespaces must name a model in one of them for event queries and
exports, because the ledger pages by time and filtering afterwards would break paging.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse

from analyzer.api.auth import Permission, ensure_namespace
from analyzer.api.deps import ServicesDep, require
from analyzer.api.schemas import (
    EntryOut,
    EventsOut,
    ServingOut,
    ServingRevisionOut,
    VerifyOut,
)
from analyzer.domain.errors import InvalidInputError, PermissionDeniedError
from analyzer.domain.events import EventType
from analyzer.domain.model import ModelRef
from analyzer.ledger.chain import EntryRecord
from analyzer.ledger.export import CSV_COLUMNS, entry_json, iter_selected
from analyzer.rollouts.control import Actor

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])

Auditor = Annotated[Actor, Depends(require(Permission.AUDIT, limit="audit"))]
ModelQuery = Annotated[str, Query(description="NAMESPACE/NAME", max_length=320)]
_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or invalid token"},
    403: {"description": "Role or namespace not allowed"},
    422: {"description": "Invalid query parameter"},
    429: {"description": "Rate limited (Retry-After)"},
}


def _aware(value: datetime | None, field: str) -> datetime | None:
    if value is not None and (value.tzinfo is None or value.utcoffset() is None):
        raise InvalidInputError(
            "needs a time zone, e.g. 2026-03-04T02:13:00Z or +01:00", field=field
        )
    return value


def _scoped_model(actor: Actor, model: str | None) -> ModelRef | None:
    ref = ModelRef.parse(model) if model is not None else None
    if ref is not None:
        ensure_namespace(actor, ref.namespace)
    elif actor.namespaces is not None:
        raise PermissionDeniedError(
            "your token is limited to namespaces; pass model=NAMESPACE/NAME in one of them"
        )
    return ref


def _entry(entry: EntryRecord) -> EntryOut:
    return EntryOut.model_validate(entry_json(entry))


@router.get("/serving", summary="Which revisions served a model at an instant", responses=_ERRORS)
def serving(
    services: ServicesDep,
    actor: Auditor,
    model: ModelQuery,
    at: Annotated[datetime, Query(description="ISO 8601 with a time zone")],
) -> ServingOut:
    ref = ModelRef.parse(model)
    ensure_namespace(actor, ref.namespace)
    moment = _aware(at, "at")
    assert moment is not None
    answer = services.ledger.serving_at(ref, moment)
    return ServingOut(
        model=answer.model,
        at=answer.at,
        revisions=[
            ServingRevisionOut(
                revision=r.revision, weight=r.weight, artifact_uri=r.artifact_uri, step=r.step
            )
            for r in answer.revisions
        ],
        traffic_entry=_entry(answer.traffic_entry) if answer.traffic_entry else None,
        approvals=[_entry(e) for e in answer.approvals],
        registrations=[_entry(e) for e in answer.registrations],
    )


@router.get("/events", summary="Ledger entries, filtered, cursor-paged", responses=_ERRORS)
def events(
    *,
    services: ServicesDep,
    actor: Auditor,
    model: ModelQuery | None = None,
    rollout: Annotated[str | None, Query(max_length=64)] = None,
    type: Annotated[list[EventType] | None, Query()] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> EventsOut:
    ref = _scoped_model(actor, model)
    page = services.ledger.events(
        model=ref,
        rollout_id=rollout,
        event_types=tuple(type or ()),
        since=_aware(since, "since"),
        until=_aware(until, "until"),
        cursor=cursor,
        limit=limit,
    )
    return EventsOut(entries=[_entry(e) for e in page.entries], next_cursor=page.next_cursor)


@router.get("/verify", summary="Recompute the ledger's hash chain", responses=_ERRORS)
def verify(services: ServicesDep, actor: Auditor) -> VerifyOut:
    report = services.ledger.verify()
    return VerifyOut(
        intact=report.intact,
        entries=report.entries,
        head_seq=report.head_seq,
        head_hash=report.head_hash,
        first_bad_seq=report.first_bad_seq,
        problem=report.problem,
        summary=report.summary(),
    )


@router.get(
    "/export",
    summary="Export ledger entries as JSON or CSV (streamed)",
    responses={**_ERRORS, 200: {"content": {"application/json": {}, "text/csv": {}}}},
)
def export(
    *,
    services: ServicesDep,
    actor: Auditor,
    format: Literal["json", "csv"] = "json",
    model: ModelQuery | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> StreamingResponse:
    ref = _scoped_model(actor, model)
    entries = iter_selected(
        services.ledger, model=ref, since=_aware(since, "since"), until=_aware(until, "until")
    )
    if format == "csv":
        return StreamingResponse(_csv_chunks(entries), media_type="text/csv; charset=utf-8")
    return StreamingResponse(_json_chunks(entries), media_type="application/json")


def _json_chunks(entries: Iterator[EntryRecord]) -> Iterator[str]:
    # The same layout as `canary-analyzer ledger export`, one entry per line.
    yield "["
    for count, entry in enumerate(entries):
        yield (",\n" if count else "\n") + json.dumps(
            entry_json(entry), sort_keys=True, ensure_ascii=False
        )
    yield "\n]\n"


def _csv_chunks(entries: Iterator[EntryRecord]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for entry in entries:
        row = entry_json(entry)
        writer.writerow([row[c] if row[c] is not None else "" for c in CSV_COLUMNS])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue()
