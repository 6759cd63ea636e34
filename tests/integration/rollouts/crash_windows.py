"""Deterministic fault injection for the crash-window tests.

* :class:`CrashingTarget` lets the N-th traffic-moving call (``set_weight``, ``promote``,
  ``abort``) reach the target and then "kills the process": it raises :class:`SimulatedCrash`, a
  ``BaseException`` that no ``except Exception`` swallows, so the open transaction is rolled back
  exactly as a SIGKILL would leave it (the target, like a cluster, keeps the change).
* :class:`CommitKiller` terminates the PostgreSQL backend of the N-th committing connection right
  before its ``COMMIT`` is sent, from another connection, so the commit fails the way a dropped
  connection or a database failover makes it fail.
* :class:`World` is what survives a crash (the database, the target, the clock); engines are
  processes that come and go. :func:`check` is what must hold after any window.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import timedelta

import psycopg
import structlog.testing
from sqlalchemy import Connection, Engine, event
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError

from analyzer.db import make_engine
from analyzer.domain.events import EventType
from analyzer.domain.model import ModelRef, Tier
from analyzer.domain.rollout import Rollout, RolloutState, StepPlan
from analyzer.domain.verdict import Verdict
from analyzer.ledger.store import Ledger
from analyzer.rollouts.control import StartRollout
from analyzer.rollouts.engine import RolloutEngine
from analyzer.rollouts.ports import OpenGates
from analyzer.rollouts.service import RolloutService
from analyzer.targets.base import TrafficState, TrafficTarget
from tests import pg
from tests.integration.rollouts.harness import ALICE, MODEL, PLAN, ManualClock, ScriptedAnalyzer

MOVES = ("set_weight", "promote", "abort")
GOOD_STEPS = [("set_weight", 10), ("set_weight", 25), ("set_weight", 50), ("promote", 100)]
BAD_STEPS = [("set_weight", 10), ("set_weight", 25), ("abort", 0)]


def good(_: Rollout) -> Verdict:
    return Verdict.PASS


def bad(rollout: Rollout) -> Verdict:
    return Verdict.FAIL if rollout.step_index == 1 else Verdict.PASS


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
    stable: str
    canary: str
    model: ModelRef = MODEL
    plan: StepPlan = PLAN
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


@dataclass(frozen=True)
class MadeTarget:
    """A fresh target holding one model with a stable and a canary revision."""

    target: TrafficTarget
    stable: str
    canary: str
    model: ModelRef = MODEL


@contextmanager
def world(
    server: URL, template: str, script: Callable[[Rollout], Verdict],
    make_target: Callable[[ModelRef], MadeTarget], *, plan: StepPlan = PLAN,
    database: URL | None = None, model: ModelRef = MODEL,
) -> Iterator[World]:  # fmt: skip
    """A target holding ``model`` and a database: ``database`` if given (a sweep's, shared by
    its runs, each on a model of its own), else a fresh one from the migrated template."""
    with ExitStack() as stack:
        url = database or stack.enter_context(pg.scratch_database(server, template=template))
        db = make_engine(url.render_as_string(hide_password=False))
        made = make_target(model)
        try:
            yield World(db=db, target=CrashingTarget(inner=made.target), script=script,
                        stable=made.stable, canary=made.canary, model=made.model,
                        plan=plan)  # fmt: skip
        finally:
            db.dispose()


def start(w: World) -> str:
    request = StartRollout(
        model=w.model, tier=Tier.HOT_PATH, baseline_revision=w.stable,
        canary_revision=w.canary, profile="fraud", plan=w.plan,
    )  # fmt: skip
    return w.service().start(request, ALICE).id


def check(w: World, rollout: Rollout, expected_moves: list[tuple[str, int]]) -> None:
    """The rollout ended where the target is; every move reached the target once, in order;
    each traffic change is in the ledger once; the serving answer matches; the chain verifies."""
    state = w.target.read_weight(w.model)
    moves = [(op, weight) for op, weight in w.target.moves]
    if expected_moves[-1][0] == "promote":
        assert rollout.state is RolloutState.PROMOTED, rollout
        assert state.canary_revision is None
        assert state.percent_of(w.canary) == 100
        assert moves == expected_moves
    else:
        assert rollout.state is RolloutState.ABORTED, rollout
        assert state.stable_revision == w.stable
        assert not state.canary_weight
        first_abort = moves.index(("abort", 0))
        assert moves[:first_abort] == expected_moves[:-1]
        assert set(moves[first_abort:]) == {("abort", 0)}, "moved toward the canary after abort"
    assert rollout.confirmed, rollout
    ledger = w.ledger
    entries = ledger.events(rollout_id=rollout.id, event_types=[EventType.TRAFFIC_CHANGED],
                            limit=1000).entries  # fmt: skip
    causes = Counter(e.data()["cause"] for e in entries)
    want = {f"step {i}" for i, (op, _) in enumerate(expected_moves) if op == "set_weight"}
    want.add("promoted" if expected_moves[-1][0] == "promote" else "aborted")
    assert set(causes) == want, causes
    assert all(n == 1 for n in causes.values()), causes
    serving = {r.revision: r.weight for r in ledger.serving_at(w.model, w.clock.now).revisions}
    assert serving == {r.revision: float(r.percent) for r in state.shares if r.percent}
    report = ledger.verify()
    assert report.intact, report.summary()


def admin_url(server: URL) -> str:
    return server.set(drivername="postgresql").render_as_string(hide_password=False)


def run_model(nth: int) -> ModelRef:
    """The model of a sweep's ``nth`` run: runs share the sweep's database (creating and
    dropping one per run was most of a sweep's time), each on a model of its own."""
    return ModelRef(namespace=MODEL.namespace, name=f"{MODEL.name}-run{nth}")


def sweep_target_calls(
    server: URL, template: str, script: Callable[[Rollout], Verdict],
    expected: list[tuple[str, int]], make_target: Callable[[ModelRef], MadeTarget],
) -> None:  # fmt: skip
    """Kill the process right after each of the run's target calls, one run per call."""
    with pg.scratch_database(server, template=template) as database:
        for nth in range(1, len(expected) + 1):
            with world(server, template, script, make_target, database=database,
                       model=run_model(nth)) as w:  # fmt: skip
                rollout_id = start(w)
                w.target.crash_after = nth
                final = w.run(rollout_id)
                assert w.target.crashed, f"move {nth} never happened"
                check(w, final, expected)
                after = [e for e in w.ledger.events(rollout_id=rollout_id, limit=1000).entries
                         if e.data().get("observed_after_restart")]  # fmt: skip
                if expected[nth - 1][0] != "abort":  # an abort is retried, not observed
                    assert after, f"crash after move {nth}: no entry says what was found on restart"


def sweep_commits(
    server: URL, template: str, script: Callable[[Rollout], Verdict],
    expected: list[tuple[str, int]], make_target: Callable[[ModelRef], MadeTarget],
) -> int:  # fmt: skip
    """Drop the connection right before each commit of a clean run, one run per commit;
    returns how many commits a clean run makes."""
    with pg.scratch_database(server, template=template) as database:
        with world(server, template, script, make_target, database=database,
                   model=run_model(0)) as w:  # count the commits of a clean run  # fmt: skip
            rollout_id = start(w)
            counter = CommitKiller(w.db, admin_url(server), at=None)
            check(w, w.run(rollout_id), expected)
            commits = counter.seen
        assert commits >= 5, "too few commits to say anything"
        for nth in range(1, commits + 1):
            with world(server, template, script, make_target, database=database,
                       model=run_model(nth)) as w:  # fmt: skip
                rollout_id = start(w)
                killer = CommitKiller(w.db, admin_url(server), at=nth)
                final = w.run(rollout_id)
                assert killer.fired, f"commit {nth} of {commits} never came"
                check(w, final, expected)
    return commits
