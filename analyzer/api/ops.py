"""Operations: liveness, readiness (database reachable and migrated) and Prometheus metrics.

Unauthenticated on purpose: kubelet probes and Prometheus scrapes carry no tokens, and none of
these answers reveals model data.
"""

from __future__ import annotations

from collections import Counter

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from analyzer.api.deps import ServicesDep
from analyzer.api.errors import error_response
from analyzer.api.schemas import HealthOut
from analyzer.db import ensure_schema_current
from analyzer.domain.errors import DatabaseNotReadyError
from analyzer.domain.rollout import RolloutState

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="The process is alive")
def healthz() -> HealthOut:
    return HealthOut(status="ok")


@router.get(
    "/readyz",
    summary="The database is reachable and migrated",
    responses={503: {"description": "Not ready (says what to run)"}},
)
def readyz(services: ServicesDep) -> JSONResponse:
    try:
        ensure_schema_current(services.engine)
        services.ledger.head()  # a ledger without its head row cannot record anything
    except DatabaseNotReadyError as exc:  # LedgerHeadMissingError included
        return error_response(503, "database_not_ready", str(exc))
    return JSONResponse(HealthOut(status="ready").model_dump())


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}},
)
def metrics(services: ServicesDep) -> Response:
    counts: Counter[tuple[str, bool]] = Counter()
    try:
        for state in (RolloutState.PENDING, RolloutState.PROGRESSING):
            for rollout in services.rollouts.list(state=state, limit=1000):
                counts[(rollout.state.value, rollout.paused)] += 1
        services.metrics.set_rollout_counts((s, p, n) for (s, p), n in counts.items())
        services.metrics.ledger_head.set(services.ledger.head()[0])
    except Exception:
        services.metrics.integration_errors.labels(integration="database").inc()
    body = generate_latest(services.metrics.registry)
    return Response(content=body, media_type=CONTENT_TYPE_LATEST)
