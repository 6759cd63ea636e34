"""Evaluations: CI records one suite's result for a model version; anyone who reads rollouts
can list them.

Each result is an ``evaluation_recorded`` ledger entry (actor: the token's subject), which the
evaluation gate reads back (``gates.evaluation``, docs/gates.md). A token scoped to namespaces
records and reads only its own models.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from analyzer.api.auth import Permission, ensure_namespace
from analyzer.api.deps import ReaderActor, ServicesDep, require
from analyzer.api.schemas import EvaluationIn, EvaluationListOut, EvaluationOut
from analyzer.domain.events import EventType, LedgerEvent
from analyzer.domain.model import ModelRef
from analyzer.domain.rollout import MODEL_VERSION_MAX_LENGTH, MODEL_VERSION_PATTERN
from analyzer.ledger.chain import EntryRecord
from analyzer.ledger.evaluations import evaluation_entries
from analyzer.rollouts.control import Actor
from gates.evaluation import SUITE_PATTERN

router = APIRouter(prefix="/api/v1/evaluations", tags=["evaluations"])

Recorder = Annotated[Actor, Depends(require(Permission.RECORD_EVALUATION))]
_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or invalid token"},
    403: {"description": "Role or namespace not allowed"},
    422: {"description": "Invalid body or query parameter"},
}


def _out(entry: EntryRecord) -> EvaluationOut:
    data = entry.data()
    return EvaluationOut(
        seq=entry.seq,
        recorded_at=entry.recorded_at,
        recorded_by=entry.actor,
        model=entry.model or "",
        model_version=str(data.get("model_version", "")),
        suite=str(data.get("suite", "")),
        passed=data.get("passed") is True,
        metrics=dict(data.get("metrics") or {}),
        report_url=data.get("report_url"),
        commit=data.get("commit"),
        artifact_digest=data.get("artifact_digest"),
    )


@router.post(
    "", status_code=201, summary="Record one evaluation suite's result (CI)", responses=_ERRORS
)
def record_evaluation(body: EvaluationIn, services: ServicesDep, actor: Recorder) -> EvaluationOut:
    model = body.model.ref()
    ensure_namespace(actor, model.namespace)
    event = LedgerEvent(
        type=EventType.EVALUATION_RECORDED,
        actor=actor.subject,
        model=model,
        data={
            "model_version": body.model_version,
            "suite": body.suite,
            "passed": body.passed,
            "metrics": dict(body.metrics),
            "report_url": str(body.report_url) if body.report_url is not None else None,
            "commit": body.commit,
            "artifact_digest": body.artifact_digest,
        },
    )
    entry = services.ledger.record(event)
    services.metrics.ledger_appends.labels(event_type=EventType.EVALUATION_RECORDED.value).inc()
    return _out(entry)


@router.get("", summary="List recorded evaluations of a model, newest first", responses=_ERRORS)
def list_evaluations(
    *,
    services: ServicesDep,
    actor: ReaderActor,
    model: Annotated[str, Query(description="NAMESPACE/NAME", max_length=320)],
    model_version: Annotated[
        str | None, Query(max_length=MODEL_VERSION_MAX_LENGTH, pattern=MODEL_VERSION_PATTERN)
    ] = None,
    suite: Annotated[str | None, Query(max_length=64, pattern=SUITE_PATTERN)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> EvaluationListOut:
    ref = ModelRef.parse(model)
    ensure_namespace(actor, ref.namespace)
    found = evaluation_entries(
        services.ledger, ref, model_version=model_version, suite=suite, limit=limit
    )
    return EvaluationListOut(evaluations=[_out(e) for e in found])
