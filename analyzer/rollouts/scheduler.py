"""The in-process timer that ticks the rollout engine (APScheduler 3.x).

APScheduler only ticks: it keeps no job store and decides nothing. Which replica works on which
rollout is settled in the database by the engine's leases (APScheduler 3's persistent job stores
cannot be shared between processes, see its FAQ), so any number of replicas can run this timer.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC
from typing import Protocol

import structlog
from apscheduler.schedulers.background import BackgroundScheduler

log = structlog.get_logger(__name__)


class Tickable(Protocol):
    def tick(self) -> int: ...


class TickScheduler:
    def __init__(self, engine: Tickable, *, interval_seconds: float = 1.0) -> None:
        if interval_seconds <= 0:
            raise ValueError("interval_seconds must be positive")
        self._engine = engine
        self._interval = interval_seconds
        self._scheduler = BackgroundScheduler(
            timezone=UTC,
            # One tick at a time; a tick that overran is not made up for, the next one covers it.
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )

    def add_periodic(self, job_id: str, seconds: float, job: Callable[[], object]) -> None:
        """Also run ``job`` every ``seconds`` on this timer's thread pool (before ``start``);
        a job that raises is logged and runs again at its next time."""

        def run() -> None:
            try:
                job()
            except Exception:
                log.exception("periodic job failed", job=job_id)

        self._scheduler.add_job(run, "interval", seconds=seconds, id=job_id)

    def start(self) -> None:
        self._scheduler.add_job(
            self._tick, "interval", seconds=self._interval, id="rollout-engine-tick"
        )
        self._scheduler.start()
        log.info("rollout scheduler started", interval_seconds=self._interval)

    def shutdown(self) -> None:
        self._scheduler.shutdown(wait=True)
        log.info("rollout scheduler stopped")

    def _tick(self) -> None:
        try:
            worked = self._engine.tick()
        except Exception:  # the timer must survive a broken tick; the next one retries
            log.exception("rollout engine tick failed")
            return
        if worked:
            log.debug("rollout engine tick", rollouts=worked)
