"""``canary-analyzer serve``: build the app from settings and run it under uvicorn.

``build_app`` is the builder the CLI (and ``analyzer.wiring``, when it absorbs it) calls; every
piece can be handed in instead, which is how the load benchmark and tests run the real app.
"""

from __future__ import annotations

from datetime import timedelta

import uvicorn
from fastapi import FastAPI

from analyzer.analyses.service import AnalysisService
from analyzer.api.app import create_app
from analyzer.api.auth import Authenticator, JwksFetcher
from analyzer.api.flagger import PolicyGateEvaluator
from analyzer.config import Settings
from analyzer.ledger.store import Clock, utc_now
from analyzer.wiring import Service, build_service


def build_app(
    settings: Settings,
    *,
    service: Service | None = None,
    jwks_fetcher: JwksFetcher | None = None,
    clock: Clock = utc_now,
) -> FastAPI:
    """The API over ``service`` (built from ``settings`` when not given)."""
    service = service or build_service(settings, clock=clock)
    api = settings.api
    analyses = AnalysisService(
        service.engine,
        service.ledger,
        service.source,
        clock=clock,
        cache_seconds=api.analysis_cache_seconds,
        lookback=timedelta(seconds=api.analysis_lookback_seconds),
    )
    return create_app(
        settings,
        engine=service.engine,
        ledger=service.ledger,
        rollouts=service.rollouts,
        analyses=analyses,
        gate_evaluator=PolicyGateEvaluator(settings.gates.policy, service.gate_map),
        profiles=service.profiles,
        authenticator=Authenticator.from_settings(api, jwks_fetcher=jwks_fetcher),
        clock=clock,
    )


def run_server(settings: Settings) -> None:
    """Serve the API on ``settings.api.host:port`` until interrupted."""
    app = build_app(settings)
    try:
        uvicorn.run(
            app,
            host=settings.api.host,
            port=settings.api.port,
            log_config=None,  # structlog (analyzer.logging) owns the log format
            proxy_headers=False,
            server_header=False,
        )
    finally:
        app.state.services.analyses.close()
