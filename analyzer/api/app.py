"""``create_app``: the FastAPI application, built from injected services only.

Nothing is created at import time: the caller (``analyzer.api.server.build_app`` today,
``analyzer.wiring`` later) builds the engine, ledger, rollout control, analysis service, gate
evaluator and clock, and hands them in. Tests do the same with fakes and a scratch database.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from fastapi import Depends, FastAPI
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine

from analyzer.analyses.catalog import ProfileCatalog
from analyzer.analyses.service import AnalysisService
from analyzer.api import analyses as analyses_routes
from analyzer.api import audit, evaluations, evidence_pack, flagger, fleets, ops
from analyzer.api import rollouts as rollouts_routes
from analyzer.api.auth import Authenticator
from analyzer.api.deps import GateEvaluator, Services
from analyzer.api.docs_pages import offline_docs_app
from analyzer.api.errors import BodyLimitMiddleware, install_error_handlers
from analyzer.api.inputs import JsonBodyGuardMiddleware, refuse_control_characters
from analyzer.api.metrics import ApiMetrics, MetricsMiddleware
from analyzer.api.ratelimit import TokenBucketLimiter
from analyzer.api.ui import install_ui
from analyzer.checkpointing import build_checkpointing
from analyzer.config import RateLimitSettings, Settings
from analyzer.fleets.engine import FleetEngine
from analyzer.ledger.checkpoint import CheckpointDirectory, TrustedKeys
from analyzer.ledger.store import Clock, Ledger, utc_now
from analyzer.rollouts.control import RolloutControl

DESCRIPTION = """Progressive-delivery analysis for ML models.

* `POST /api/v1/analyses`: the Argo Rollouts web-provider endpoint (always 200 + JSON verdict).
* Rollouts: start, read, abort, pause, resume, approve.
* Fleet rollouts: many models upgraded in waves and judged together (docs/fleets.md).
* Evaluations: CI records a suite's result for a model version (the evaluation gate reads it).
* Audit: which revision served when, the event ledger, its verification and export.
* Flagger webhooks: confirm-promotion, rollback, pre-rollout.
* Web pages for auditors under `/ui/` (not part of this schema; see docs/ui.md).

Authenticate with `Authorization: Bearer <token>`; see docs/api.md for roles.
"""


def _limiter(limits: RateLimitSettings, monotonic: Callable[[], float]) -> TokenBucketLimiter:
    return TokenBucketLimiter(per_second=limits.per_second, burst=limits.burst, clock=monotonic)


def _checkpoint_check(settings: Settings) -> tuple[CheckpointDirectory, TrustedKeys] | None:
    """The checkpoint directory and trusted keys from ``ledger`` settings, when a directory is
    configured (``ConfigurationError`` for a key that cannot be read)."""
    checkpointing = build_checkpointing(settings)
    if checkpointing is None or checkpointing.directory is None:
        return None
    return checkpointing.directory, checkpointing.trusted


def create_app(
    settings: Settings,
    *,
    engine: Engine,
    ledger: Ledger,
    rollouts: RolloutControl,
    analyses: AnalysisService,
    gate_evaluator: GateEvaluator,
    profiles: ProfileCatalog | None = None,
    authenticator: Authenticator | None = None,
    registry: CollectorRegistry | None = None,
    clock: Clock = utc_now,
    monotonic: Callable[[], float] = time.monotonic,
    fleet_engine: FleetEngine | None = None,
) -> FastAPI:
    """The API over the given services. ``monotonic`` drives rate limits and JWKS caching."""
    api = settings.api
    metrics = ApiMetrics(registry or CollectorRegistry())
    services = Services(
        checkpoints=_checkpoint_check(settings),
        settings=settings,
        engine=engine,
        ledger=ledger,
        rollouts=rollouts,
        analyses=analyses,
        profiles=profiles or ProfileCatalog(api.profiles_dir),
        gates=gate_evaluator,
        authenticator=authenticator or Authenticator.from_settings(api, clock=monotonic),
        metrics=metrics,
        clock=clock,
        limiters={
            "analysis": _limiter(api.rate_limit_analysis, monotonic),
            "audit": _limiter(api.rate_limit_audit, monotonic),
            "ui_login": _limiter(api.rate_limit_audit, monotonic),  # per client address
        },
        fleets=fleet_engine,
    )
    # /docs and /redoc with their assets served here (air-gapped clusters); / → /ui/
    app = offline_docs_app(
        title="canary-analyzer", version="0.1.0", description=DESCRIPTION,
        openapi_url="/openapi.json",
        dependencies=[Depends(refuse_control_characters)],  # every route: no NUL, no C0
    )  # fmt: skip
    app.state.services = services
    install_error_handlers(app)
    for module in (analyses_routes, rollouts_routes, fleets, evaluations, audit, flagger, ops):
        app.include_router(module.router)
    app.include_router(evidence_pack.router)  # GET /api/v1/rollouts/{id}/evidence-pack
    install_ui(app)  # the /ui/ pages (docs/ui.md)
    # The last added is outermost: metrics time everything, 413s included; JSON bodies are
    # checked for depth after their size is bounded.
    app.add_middleware(JsonBodyGuardMiddleware)
    app.add_middleware(BodyLimitMiddleware, max_bytes=api.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app
