"""``POST /api/v1/analyses``: the Argo Rollouts web-provider endpoint.

Argo reads the body only on a 2xx, marks a non-JSON 2xx as *Successful without evaluating any
condition* (released versions), and errors when the ``jsonPath`` finds nothing. So every verdict,
``error`` included, is a 200 with a JSON body whose ``verdict`` is one of four strings; non-2xx
answers are left for requests Argo should not count as a measurement (bad template: 422; bad
token: 401/403; throttled: 429; database down: 503).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from analyzer.analyses.service import AnalysisAnswer, AnalysisRequest, Bake
from analyzer.api.auth import Permission, ensure_namespace
from analyzer.api.deps import ServicesDep, require
from analyzer.api.schemas import AnalysisIn, AnalysisOut
from analyzer.domain.errors import InvalidInputError
from analyzer.domain.events import EventType
from analyzer.rollouts.control import Actor

router = APIRouter(prefix="/api/v1", tags=["analyses (Argo Rollouts web provider)"])

AnalysisActor = Annotated[Actor, Depends(require(Permission.ANALYZE, limit="analysis"))]


@router.post(
    "/analyses",
    response_model=AnalysisOut,
    summary="Judge the canary against the baseline (one Argo measurement)",
    responses={
        401: {"description": "Missing or invalid token"},
        403: {"description": "Role or namespace not allowed"},
        422: {"description": "Invalid body (names the field)"},
        429: {"description": "Rate limited (Retry-After)"},
    },
)
def create_analysis(
    body: AnalysisIn, services: ServicesDep, actor: AnalysisActor, http: Request
) -> JSONResponse:
    model = body.model.ref()
    ensure_namespace(actor, model.namespace)
    name, loaded = services.profiles.resolve(body.profile)
    offset = body.baseline_offset_seconds
    if offset is not None and body.bake is not None:
        bake_seconds = (body.bake.looks - 1) * body.bake.interval_seconds
        if bake_seconds > offset:
            raise InvalidInputError(
                f"is {offset} s, shorter than the bake ({bake_seconds:g} s): the baseline's "
                "time-matched window would reach past the cut, when it no longer served",
                field="baseline_offset_seconds",
            )
    request = AnalysisRequest(
        model=model,
        canary=body.canary,
        baseline=body.baseline,
        profile_name=name,
        profile=loaded,
        weight=body.weight,
        rollout=body.rollout,
        deadline_seconds=body.deadline_seconds,
        bake=Bake(looks=body.bake.looks, interval_seconds=body.bake.interval_seconds)
        if body.bake is not None
        else None,
        baseline_offset=timedelta(seconds=body.baseline_offset_seconds)
        if body.baseline_offset_seconds is not None
        else None,
    )
    received = getattr(http.state, "received_monotonic", None)
    answer = services.analyses.analyze(request, actor.subject, received=received)
    services.metrics.ledger_appends.labels(event_type=EventType.ANALYSIS_RECORDED.value).inc()
    if not answer.cached:
        services.metrics.record_analysis(answer.result)
    # Sent as built: FastAPI would validate ``AnalysisOut`` again, and validating and dumping
    # the model here cost ~0.6 ms of a fresh call's CPU (issue 20). ``out`` is its JSON form
    # (a test checks that the model reads it back unchanged).
    return JSONResponse(out(body, name, answer))


def out(body: AnalysisIn, profile: str, answer: AnalysisAnswer) -> dict[str, Any]:
    """The ``AnalysisOut`` body of ``answer``, as JSON-ready values."""
    result: dict[str, Any] = answer.result
    score = result.get("score")
    return {
        "verdict": str(result["verdict"]),
        "score": float(score) if isinstance(score, int | float) else 0.0,
        "reason": str(result.get("reason", "")),
        "rollout": body.rollout or "",
        "model": str(body.model.ref()),
        "canary": body.canary,
        "baseline": body.baseline,
        "profile": profile,
        "look": answer.look,
        "cached": answer.cached,
        "window": {"start": _time(answer.window.start), "end": _time(answer.window.end)},
        "alpha": float(result.get("alpha") or 0.0),
        "warnings": [str(w) for w in result.get("warnings", [])],
        "metrics": list(result.get("metrics", [])),
        "ledger_seq": answer.ledger_seq,
        "bake": result.get("bake"),
    }


def _time(moment: datetime) -> str:
    """As pydantic writes a datetime in JSON (UTC as ``Z``)."""
    text = moment.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text
