"""Deterministic fault injection for the crash-window tests.

* :class:`CrashingTarget` lets the N-th traffic-moving call (``set_weight``, ``promote``,
  ``abort``) reach the target and then "kills the process": it raises :class:`SimulatedCrash`, a
  ``BaseException`` that no ``except Exception`` swallows, so the open transaction is rolled back
  exactly as a SIGKILL would leave it (the target, like a cluster, keeps the change).
* :class:`CommitKiller` terminates the PostgreSQL backend of the N-th committing connection right
  before its ``COMMIT`` is sent, from another connection, so the commit fails the way a dropped
  connection or a database failover makes it fail.
* :class:`World` is what survives a crash (the database, the target, the clock); engines are
  processes that come and go.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

import psycopg
import structlog.testing
from sqlalchemy import Connection, Engine, event
from sqlalchemy.exc import DBAPIError

from analyzer.domain.model import ModelRef
from analyzer.domain.rollout import Rollout
from analyzer.domain.verdict import Verdict
from analyzer.ledger.store import Ledger
from analyzer.rollouts.engine import RolloutEngine
from analyzer.rollouts.ports import OpenGates
from analyzer.rollouts.service import RolloutService
from analyzer.targets.base import TrafficState, TrafficTarget
from tests.integration.rollouts.harness import ManualClock, ScriptedAnalyzer

MOVES = ("set_weight", "promote", "abort")


class SimulatedCrash(BaseException):  # not an error to handle: a death
    """The process died here."""


@dataclass
class CrashingTarget:
    """Wraps a real target; ``crash_after`` = N kills the process right after the N-th move."""

    inner: TrafficTarget
    crash_after: int | None = None
    moves: list[tuple[str, int | None]] = field(default_factory=list)
    crashed: bool = False

    def read_weight(self, ref: ModelRef) -> TrafficState:
        return self.inner.read_weight(ref)

    def set_weight(self, ref: ModelRef, weight: int) -> TrafficState:
        move = lambda: self.inner.set_weight(ref, weight)  # noqa: E731
        return self._then_maybe_crash("set_weight", weight, move)

    def promote(self, ref: ModelRef) -> TrafficState:
        return self._then_maybe_crash("promote", 100, lambda: self.inner.promote(ref))

    def abort(self, ref: ModelRef) -> TrafficState:
        return self._then_maybe_crash("abort", 0, lambda: self.inner.abort(ref))

    def _then_maybe_crash(
        self, op: str, weight: int | None, call: Callable[[], TrafficState]
    ) -> TrafficState:
        state = call()
        self.moves.append((op, weight))
        if self.crash_after is not None and len(self.moves) == self.crash_after:
            self.crashed = True
            raise SimulatedCrash(f"killed right after {op}({weight})")
        return state


class CommitKiller:
    """Drops the connection of the ``at``-th commit on ``engine`` right before it is sent."""

    def __init__(self, engine: Engine, admin_url: str, *, at: int | None) -> None:
        self.at, self.seen, self.fired = at, 0, False
        self._admin_url = admin_url
        event.listen(engine, "commit", self._before_commit)

    def _before_commit(self, conn: Connection) -> None:
        self.seen += 1
        if self.at is None or self.seen != self.at:
            return
        self.fired = True
        pid = conn.connection.dbapi_connection.info.backend_pid  # type: ignore[union-attr]
        with psycopg.connect(self._admin_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,))


@dataclass
class World:
    """The database, the target and the clock: what a crash of the engine process leaves."""

    db: Engine
    target: CrashingTarget
    script: Callable[[Rollout], Verdict]
    clock: ManualClock = field(default_factory=ManualClock)
    restarts: int = 0

    @property
    def ledger(self) -> Ledger:
        return Ledger(self.db, clock=self.clock)

    def service(self) -> RolloutService:
        return RolloutService(self.db, self.ledger, self.target, clock=self.clock)

    def engine(self) -> RolloutEngine:
        return RolloutEngine(
            self.db, self.ledger, self.target, ScriptedAnalyzer(self.script), OpenGates(),
            clock=self.clock, replica_id=f"replica-{self.restarts}",
        )  # fmt: skip

    def run(self, rollout_id: str, *, minutes: int = 40) -> Rollout:
        """Tick once a minute until the rollout is over and confirmed; a crash starts a new
        engine (the dead one's lease expires), a dropped commit is left to the next tick."""
        # The engine logs each injected fault with its traceback; captured, not rendered (the
        # console renderer spends seconds on each one).
        with structlog.testing.capture_logs():
            return self._run(rollout_id, minutes)

    def _run(self, rollout_id: str, minutes: int) -> Rollout:
        engine = self.engine()
        for _ in range(minutes):
            try:
                engine.tick()
            except SimulatedCrash:
                self.restarts += 1
                engine = self.engine()
            except DBAPIError:
                pass  # the claim's commit lost its connection: the process lives on
            self.clock.advance(timedelta(minutes=1))
            current = self.service().get(rollout_id)
            if current.state.terminal and current.confirmed:
                return current
        return self.service().get(rollout_id)
