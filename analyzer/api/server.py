"""``canary-analyzer serve``: build the app from settings and run it under uvicorn.

``build_app`` is the builder the CLI calls; every piece can be handed in instead, which is how
the load benchmark and tests run the real app. ``run_server`` is the whole serving process: the
API, the rollout scheduler, and an orderly close of both.
"""

from __future__ import annotations

import gc
import socket
import sys
import threading
from collections.abc import Callable
from datetime import timedelta
from functools import partial
from typing import TYPE_CHECKING

import structlog
import uvicorn
from fastapi import FastAPI

from analyzer.analyses.service import AnalysisService
from analyzer.api.app import create_app
from analyzer.api.auth import Authenticator, JwksFetcher
from analyzer.api.flagger import PolicyGateEvaluator
from analyzer.change_record_checkpoints import PromotionCheckpointNotes
from analyzer.checkpointing import build_checkpointing
from analyzer.config import Settings
from analyzer.domain.errors import ConfigurationError
from analyzer.ledger.store import Clock, utc_now
from analyzer.ledger.watch import ChainWatch, HeadCheckpointer
from analyzer.rollouts.scheduler import TickScheduler
from analyzer.wiring import (
    Service,
    build_observer,
    build_service,
    servicenow_client,
    warm_up,
)

if TYPE_CHECKING:  # built only when the settings enable it (the Kubernetes client: wiring.py)
    from analyzer.observer import TrafficObserver

log = structlog.get_logger(__name__)


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
        service.looks,
        clock=clock,
        cache_seconds=api.analysis_cache_seconds,
        lookback=timedelta(seconds=api.analysis_lookback_seconds),
        deadline_seconds=api.analysis_deadline_seconds,
    )
    app = create_app(
        settings,
        engine=service.engine,
        ledger=service.ledger,
        rollouts=service.rollouts,
        analyses=analyses,
        gate_evaluator=PolicyGateEvaluator(settings.gates.policy, service.gate_map),
        profiles=service.profiles,
        authenticator=Authenticator.from_settings(api, jwks_fetcher=jwks_fetcher),
        clock=clock,
        fleet_engine=service.fleets,
    )
    # The scheduler's ticks reach /metrics too (target and gate errors, verdicts, appends).
    service.rollout_engine.add_observer(app.state.services.metrics)
    return app


def freeze_startup_objects() -> None:
    """Move everything built at start-up out of the garbage collector's reach.

    The modules, app, engine and caches of a serving process live until it exits, yet every
    full (generation 2) collection walks them all: measured at ~100 ms per collection under
    load, a stall every request in flight pays (docs/benchmarks.md). Frozen objects are still
    freed by reference counting; only the cycle detector stops visiting them.
    """
    gc.collect()
    gc.freeze()


class _Server(uvicorn.Server):
    """uvicorn's server, running ``after_start`` on its own thread once the socket listens.

    ``after_start`` is where slow start-up work goes that requests do not need in order to be
    answered (the look workers' imports): health probes answer while it runs. If it raises, the
    server stops and :meth:`failure` says why.
    """

    def __init__(self, config: uvicorn.Config, after_start: Callable[[], None]) -> None:
        super().__init__(config)
        self._after_start = after_start
        self._failure: Exception | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started and not self.should_exit:
            threading.Thread(target=self._run_after_start, name="after-start", daemon=True).start()

    def _run_after_start(self) -> None:
        try:
            self._after_start()
        except Exception as exc:  # a process that cannot look must not pretend to serve
            log.error("serve.after_start.failed", error=str(exc))
            self._failure = exc
            self.should_exit = True

    def failure(self) -> Exception | None:
        return self._failure


def run_server(settings: Settings, *, host: str | None = None, port: int | None = None) -> None:
    """Serve the API and run the rollout scheduler until interrupted; then close both.

    The socket opens before the look workers have started (each spends about a second on
    imports, several under load): they are warmed right after, and a look that comes first
    waits for them (docs/benchmarks.md, Start-up).
    """
    service = build_service(settings, warm_looks=False)
    app = build_app(settings, service=service)
    scheduler = TickScheduler(service.rollout_engine, interval_seconds=1.0)
    # Signed head checkpoints (docs/ledger.md): the watch checks the newest one, and signs the
    # head it has verified every checkpoint_interval_seconds.
    checkpointing = build_checkpointing(settings)
    watch = ChainWatch(
        service.ledger,
        history=settings.ledger.verify_history_entries,
        report=app.state.services.metrics.chain_checked,
        checkpoints=checkpointing.directory if checkpointing else None,
        trusted=checkpointing.trusted if checkpointing and checkpointing.directory else None,
    )
    interval = settings.ledger.verify_interval_seconds
    scheduler.add_periodic("ledger-chain-watch", interval, watch.check)
    if checkpointing is not None:
        metrics = app.state.services.metrics
        metrics.checkpoints_enabled.set(1)
        checkpointer = HeadCheckpointer(
            watch,
            checkpointing.signer,
            directory=checkpointing.directory,
            report=metrics.checkpoint_written,
        )
        every = settings.ledger.checkpoint_interval_seconds
        scheduler.add_periodic("ledger-checkpoint", every, checkpointer.write)
        if settings.ledger.checkpoint_change_request_notes:
            service.rollout_engine.add_observer(
                change_request_notes(settings, service, checkpointer)
            )
    retention = timedelta(days=settings.api.analysis_session_retention_days)
    analyses = app.state.services.analyses
    scheduler.add_periodic("analysis-session-prune", 3600, lambda: analyses.prune(retention))
    if service.challengers is not None:  # registry.watch: challenger versions start rollouts
        scheduler.add_periodic("registry-challenger-poll", settings.registry.poll_seconds,
                               service.challengers.poll)  # fmt: skip
    if service.fleets is not None:  # fleet rollouts look when due (docs/fleets.md)
        scheduler.add_periodic("fleet-looks", 10, service.fleets.tick)
    # Watches what the cluster serves (docs/ledger.md); its series join the API's /metrics.
    observer = build_observer(settings, service, registry=app.state.services.metrics.registry)
    stop = _Stop(scheduler, app.state.services.analyses, service, observer)
    # On SIGTERM uvicorn finishes the lifespan's shutdown, then re-raises the signal, which
    # ends the process before uvicorn.run returns: the closing must happen in the lifespan.
    app.router.on_shutdown.append(stop)
    scheduler.start()
    if observer is not None:
        observer.start()
    freeze_startup_objects()
    config = uvicorn.Config(
        app,
        host=host or settings.api.host,
        port=port or settings.api.port,
        log_config=None,  # structlog (analyzer.logging) owns the log format
        proxy_headers=False,
        server_header=False,
    )
    server = _Server(config, after_start=partial(warm_up, service))
    try:
        server.run()
    finally:
        stop()  # uvicorn returned (start-up failed, or a second signal): close all the same
    failure = server.failure()
    if isinstance(failure, ConfigurationError):
        raise failure
    if failure is not None:
        raise ConfigurationError(f"start-up failed: {failure}") from failure
    if not server.started:
        sys.exit(3)  # what uvicorn.run does when the server could not start (port in use)


def change_request_notes(
    settings: Settings, service: Service, checkpointer: HeadCheckpointer
) -> PromotionCheckpointNotes:
    """The promotion checkpoint notes (docs/ledger.md), or ``ConfigurationError`` when no
    ServiceNow instance is configured to write them to."""
    client = servicenow_client(settings)
    if client is None:
        raise ConfigurationError(
            "ledger.checkpoint_change_request_notes needs servicenow.instance_url and credentials"
        )
    service.closables.append(client)

    def change_request_of(rollout_id: str) -> str | None:
        return service.rollouts.get(rollout_id).change_request

    table = settings.gates.servicenow.check.table
    return PromotionCheckpointNotes(checkpointer, client, change_request_of, table=table)


class _Stop:
    """Closes the serving process's parts once, in order: no new ticks and no more watches,
    then the analysis recorder, then the look workers and the database pool."""

    def __init__(
        self,
        scheduler: TickScheduler,
        analyses: AnalysisService,
        service: Service,
        observer: TrafficObserver | None = None,
    ):
        watches = (observer.stop,) if observer is not None else ()
        self._parts = (scheduler.shutdown, *watches, analyses.close, service.close)
        self._done = False

    def __call__(self) -> None:
        if self._done:
            return
        self._done = True
        for close in self._parts:
            try:
                close()
            except Exception:  # one part failing to close must not keep the others open
                log.exception("serve.close.failed", part=getattr(close, "__qualname__", "?"))
        log.info(
            "serve.stopped",
            detail="scheduler, traffic observer, look workers and database pool closed",
        )
