"""What every route receives: the injected services and the authenticated, authorized actor."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Protocol

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine

from analyzer.analyses.catalog import ProfileCatalog
from analyzer.analyses.service import AnalysisService
from analyzer.api.auth import Authenticator, Permission, authorize, token_digest
from analyzer.api.errors import ApiError
from analyzer.api.metrics import ApiMetrics
from analyzer.api.ratelimit import TokenBucketLimiter, retry_after_header
from analyzer.config import Settings
from analyzer.fleets.engine import FleetEngine
from analyzer.ledger.checkpoint import CheckpointDirectory, TrustedKeys
from analyzer.ledger.store import Clock, Ledger
from analyzer.rollouts.control import Actor, RolloutControl
from gates.base import GateContext
from gates.policy import GateEvaluation


class GateEvaluator(Protocol):
    """Decides whether a model's promotion gates are open (Flagger ``confirm-promotion``)."""

    def evaluate(self, context: GateContext) -> GateEvaluation: ...


@dataclass(frozen=True, kw_only=True)
class Services:
    settings: Settings
    engine: Engine
    ledger: Ledger
    rollouts: RolloutControl
    analyses: AnalysisService
    profiles: ProfileCatalog
    gates: GateEvaluator
    authenticator: Authenticator
    metrics: ApiMetrics
    clock: Clock
    limiters: Mapping[str, TokenBucketLimiter]
    # The signed checkpoint sink and the keys it is checked with (docs/ledger.md), when
    # configured: GET /audit/verify also compares the chain with the newest checkpoint.
    checkpoints: tuple[CheckpointDirectory, TrustedKeys] | None = None
    fleets: FleetEngine | None = None  # fleet rollouts (docs/fleets.md), when configured


_bearer = HTTPBearer(
    auto_error=False,
    description="An OIDC access token from the configured issuer, or a static token.",
)


# Dependencies that do no I/O are ``async def``: FastAPI runs a plain ``def`` dependency in the
# threadpool, a hop of ~0.1 ms of CPU each (issue 20: an Argo call made four, now one).
async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


async def flagger_actor(
    request: Request,
    services: ServicesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Actor:
    """Like ``require(Permission.FLAGGER)``, also reading ``metadata.token`` from the payload.

    Flagger's webhook spec has no headers, so a token can only travel in the webhook's static
    metadata. The header wins when both are present; the token is never recorded.
    """
    token = credentials.credentials if credentials is not None else None
    if token is None:
        token = _metadata_token(await request.body())
    actor = await authenticate(services.authenticator, token)
    authorize(actor, Permission.FLAGGER)
    return actor


async def authenticate(authenticator: Authenticator, token: str | None) -> Actor:
    """The token's actor, or a 401 ``ApiError``: a static token, or an OIDC token verified
    before, is matched on the event loop; anything else (a JWT to verify, whose keys may have
    to be fetched; a refusal) in a thread."""
    actor = authenticator.known_actor(token)
    if actor is not None:
        return actor
    return await run_in_threadpool(authenticator.authenticate, token)


def _metadata_token(body: bytes) -> str | None:
    try:
        payload = json.loads(body)
    except ValueError:
        return None
    metadata = payload.get("metadata") if isinstance(payload, dict) else None
    token = metadata.get("token") if isinstance(metadata, dict) else None
    return token if isinstance(token, str) and token else None


def require(permission: Permission, *, limit: str | None = None) -> Callable[..., Awaitable[Actor]]:
    """A dependency: authenticate, authorize ``permission`` and take a rate-limit token."""

    async def dependency(
        services: ServicesDep,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Actor:
        token = credentials.credentials if credentials is not None else None
        actor = await authenticate(services.authenticator, token)
        authorize(actor, permission)
        if limit is not None and token is not None:
            take_rate_token(services, limit, token_digest(token))
        return actor

    return dependency


# The caller of a route, by what the route needs (the role checks of docs/api.md). One
# dependency per permission, shared by every router that asks for it.
ReaderActor = Annotated[Actor, Depends(require(Permission.READ_ROLLOUTS))]
StarterActor = Annotated[Actor, Depends(require(Permission.START_ROLLOUT))]
OperatorActor = Annotated[Actor, Depends(require(Permission.OPERATE))]
ApproverActor = Annotated[Actor, Depends(require(Permission.APPROVE))]
AuditorActor = Annotated[Actor, Depends(require(Permission.AUDIT, limit="audit"))]


def take_rate_token(services: Services, limit: str, key: str) -> None:
    """Take one token from the ``limit`` bucket of ``key`` (a token digest), or raise a 429.

    The API and the web pages share the buckets, so a token cannot double its audit rate by
    reading through both.
    """
    wait = services.limiters[limit].take(key)
    if wait is not None:
        raise ApiError(
            429,
            "rate_limited",
            f"too many {limit} requests for this token; retry after {wait:.1f} s",
            headers={"Retry-After": retry_after_header(wait)},
        )
