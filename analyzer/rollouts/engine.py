"""The rollout engine: one reconcile per due rollout per tick, safe across replicas and crashes.

A tick has three phases:

1. **Claim** (short transaction): due rollouts are selected with ``FOR UPDATE SKIP LOCKED`` and
   leased to this replica (``acquired_by``/``acquired_until``), so replicas never work on the
   same rollout and a dead replica's lease simply expires.
2. **Evaluate** (no transaction held): fetch metrics and judge, ask the gates, and ``decide``.
3. **Apply** (one transaction): lock the row, check that the lease is still ours and the version
   unchanged (a human may have aborted or paused meanwhile: then the work is discarded), call
   the traffic target, and write the new state together with its ledger entries. Replaying a
   tick finds a newer version and changes nothing, so every step is executed exactly once.

Crash safety: a process killed between the target call and the commit leaves the target ahead
of the database. The next tick observes the target (``read_weight``), records what it saw in the
ledger, and drives the target back to what the database claims before deciding anew.
"""

from __future__ import annotations

import socket
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import Engine, and_, or_, select, update

from analyzer.domain.errors import FatalIntegrationError, IntegrationError, NotFoundError
from analyzer.domain.events import EventType, LedgerEvent
from analyzer.domain.result import AnalysisResult
from analyzer.domain.rollout import Rollout, RolloutState
from analyzer.domain.verdict import Verdict
from analyzer.ledger.store import Clock, Ledger, utc_now
from analyzer.rollouts import records
from analyzer.rollouts.machine import Action, Decision, GateOutcome, decide
from analyzer.rollouts.ports import GateCheck, GateChecker, RolloutAnalyzer, TickObserver
from analyzer.rollouts.repository import from_row, load, to_row
from analyzer.rollouts.tables import rollouts
from analyzer.targets.base import TrafficTarget

log = structlog.get_logger(__name__)
TARGET_RETRY = timedelta(seconds=10)


def default_replica_id() -> str:
    return f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True, kw_only=True, slots=True)
class _Evaluation:
    decision: Decision
    analysis: AnalysisResult | None = None
    judge_state: dict[str, Any] | None = None
    gates: GateCheck | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class _Outcome:
    rollout: Rollout
    events: list[LedgerEvent]
    applied_weight: int | None = None  # set when the target confirmed a new weight


class RolloutEngine:
    def __init__(
        self,
        engine: Engine,
        ledger: Ledger,
        target: TrafficTarget,
        analyzer: RolloutAnalyzer,
        gates: GateChecker,
        *,
        clock: Clock = utc_now,
        replica_id: str | None = None,
        lease: timedelta = timedelta(seconds=60),
        batch: int = 20,
    ) -> None:
        self._engine = engine
        self._ledger = ledger
        self._target = target
        self._analyzer = analyzer
        self._gates = gates
        self._clock = clock
        self.replica_id = replica_id or default_replica_id()
        # The ledger names the replica that executed each step, so operators can trace it.
        self._actor = f"canary-analyzer/{self.replica_id}"
        self._lease = lease
        self._batch = batch
        self._observers: list[TickObserver] = []

    def add_observer(self, observer: TickObserver) -> None:
        """Also tell ``observer`` what every committed tick recorded (see ``TickObserver``)."""
        self._observers.append(observer)

    def _notify(self, events: list[LedgerEvent]) -> None:
        for observer in self._observers:
            try:
                observer.recorded(events)
            except Exception:  # metrics must never undo or repeat a committed tick
                log.exception("tick observer failed", observer=type(observer).__name__)

    def tick(self) -> int:
        """Reconcile every rollout that is due now; return how many were worked on."""
        claimed = self._claim()
        for rollout_id in claimed:
            with structlog.contextvars.bound_contextvars(rollout_id=rollout_id):
                try:
                    self.reconcile(rollout_id)
                except Exception:  # one broken rollout must not stop the others
                    log.exception("reconcile failed; the lease expires and it is retried")
        return len(claimed)

    def _claim(self) -> list[str]:
        now, c = self._clock(), rollouts.c
        active = and_(c.state.in_(("pending", "progressing")), c.paused.is_(False))
        # terminal rollouts whose 0 % the target has not confirmed yet (abort retried); one that
        # never had a weight applied (applied_weight NULL) has nothing of ours to take back
        unconfirmed = and_(
            c.state.in_(("aborted", "failed")),
            c.applied_weight.is_not(None),
            c.applied_weight != 0,
        )
        due = and_(
            or_(active, unconfirmed),
            or_(c.next_tick_at.is_(None), c.next_tick_at <= now),
            or_(c.acquired_until.is_(None), c.acquired_until < now),
        )
        query = (
            select(c.id).where(due).order_by(c.next_tick_at).limit(self._batch)
            .with_for_update(skip_locked=True)
        )  # fmt: skip
        with self._engine.begin() as conn:
            ids = list(conn.execute(query).scalars())
            if ids:
                lease = {"acquired_by": self.replica_id, "acquired_until": now + self._lease}
                conn.execute(update(rollouts).where(c.id.in_(ids)).values(**lease))
        return ids

    def reconcile(self, rollout_id: str) -> None:
        """Evaluate and apply one claimed rollout."""
        with self._engine.connect() as conn:
            row = load(conn, rollout_id)
        rollout, applied = from_row(row), row._mapping["applied_weight"]
        if rollout.state.terminal:
            self._apply(rollout, _Evaluation(decision=_retry_abort(rollout)), retry_only=True)
            return
        self._observe_drift(rollout, applied)
        self._apply(rollout, self._evaluate(rollout))

    def _evaluate(self, rollout: Rollout) -> _Evaluation:
        now = self._clock()
        analysis, judge_state, verdict, why = None, None, None, ""
        if rollout.state is RolloutState.PROGRESSING:
            # Each step is judged on its own evidence, from the moment its weight was applied.
            since = rollout.step_started_at or rollout.created_at
            try:
                outcome = self._analyzer.analyze(rollout, since=since, now=now)
                analysis, judge_state = outcome.result, outcome.judge_state
                verdict, why = analysis.verdict, analysis.reason
            except Exception as exc:  # failures are data: an analysis that raised is an error
                log.exception("analysis raised")
                verdict, why = Verdict.ERROR, f"analysis raised {exc.__class__.__name__}: {exc}"
        decision = decide(rollout, now=now, verdict=verdict, verdict_reason=why)
        gates = None
        if decision.action is Action.CHECK_GATES and decision.target_step is not None:
            gates = self._gates.check(rollout, target_step=decision.target_step, now=now)
            answer = GateOutcome(open=gates.open, reason=gates.reason)
            decision = decide(rollout, now=now, verdict=verdict, verdict_reason=why, gates=answer)
        return _Evaluation(
            decision=decision, analysis=analysis, judge_state=judge_state, gates=gates
        )

    def _observe_drift(self, rollout: Rollout, applied: int | None) -> None:
        """Record and undo a target that is ahead of the database (a crash mid-apply)."""
        if applied is None:
            return
        try:
            observed = self._target.read_weight(rollout.model).canary_weight
        except IntegrationError:
            return  # the apply phase surfaces target trouble
        if observed == applied:
            return
        with self._engine.begin() as conn:
            current = from_row(load(conn, rollout.id, for_update=True))
            if current.version != rollout.version:
                return
            self._target.set_weight(rollout.model, applied)
            seen = records.traffic_changed(current, observed, actor=self._actor, cause="observed")
            back = records.traffic_changed(current, applied, actor=self._actor, cause="reconciled")
            self._ledger.append_many(conn, [seen, back])
        self._notify([seen, back])
        log.warning("target drifted from the recorded weight", observed=observed, recorded=applied)

    def _apply(self, seen: Rollout, evaluation: _Evaluation, *, retry_only: bool = False) -> None:
        now = self._clock()
        with self._engine.begin() as conn:
            row = load(conn, seen.id, for_update=True)
            current = from_row(row)
            if current.version != seen.version or row._mapping["acquired_by"] != self.replica_id:
                log.info("rollout changed while evaluating; this tick's work is discarded")
                conn.execute(
                    update(rollouts)
                    .where(rollouts.c.id == seen.id, rollouts.c.acquired_by == self.replica_id)
                    .values(acquired_by=None, acquired_until=None)
                )
                return
            if retry_only:
                outcome = self._retry_target_abort(current, now)
            else:
                outcome = self._execute(current, evaluation, now)
            values = to_row(outcome.rollout) | {"acquired_by": None, "acquired_until": None}
            if outcome.applied_weight is not None:
                values["applied_weight"] = outcome.applied_weight
            conn.execute(update(rollouts).where(rollouts.c.id == seen.id).values(**values))
            events = _evaluation_events(current, evaluation, self._actor) + outcome.events
            self._ledger.append_many(conn, events)
        self._notify(events)
        decision = evaluation.decision
        log.info("tick", action=decision.action.value, reason=decision.reason,
                 state=outcome.rollout.state.value)  # fmt: skip

    def _execute(self, rollout: Rollout, evaluation: _Evaluation, now: datetime) -> _Outcome:
        """Perform the decision on the target; the new rollout, its events, the applied weight."""
        decision = evaluation.decision
        base = replace(
            rollout, version=rollout.version + 1, updated_at=now,
            judge_state=evaluation.judge_state or rollout.judge_state,
        )  # fmt: skip
        waiting = replace(
            base, consecutive_errors=decision.consecutive_errors, reason=decision.reason,
            next_tick_at=now + (decision.next_tick_in or rollout.plan.analysis_interval),
        )  # fmt: skip
        if not decision.moves_traffic:
            return _Outcome(rollout=waiting, events=[])
        try:
            return self._move(base, decision, now)
        except FatalIntegrationError as exc:
            failed = replace(base, state=RolloutState.FAILED, next_tick_at=now,
                             reason=f"the traffic target refused: {exc}")  # fmt: skip
            return _Outcome(rollout=failed, events=[
                records.about(failed, EventType.TARGET_ERROR, self._actor, error=str(exc)),
                records.about(failed, EventType.ROLLOUT_FAILED, self._actor, reason=failed.reason),
            ])  # fmt: skip
        except (IntegrationError, NotFoundError) as exc:
            retry = replace(waiting, next_tick_at=now + TARGET_RETRY)
            error = records.about(rollout, EventType.TARGET_ERROR, self._actor,
                                  operation=decision.action.value, error=str(exc))  # fmt: skip
            return _Outcome(rollout=retry, events=[error])

    def _move(self, base: Rollout, decision: Decision, now: datetime) -> _Outcome:
        action = decision.action
        if action in (Action.ABORT, Action.FAIL):
            self._target.abort(base.model)
            state = RolloutState.ABORTED if action is Action.ABORT else RolloutState.FAILED
            kind = EventType.ROLLOUT_ABORTED if action is Action.ABORT else EventType.ROLLOUT_FAILED
            done = replace(base, state=state, reason=decision.reason, next_tick_at=None)
            return _Outcome(rollout=done, applied_weight=0, events=[
                records.about(done, kind, self._actor, reason=decision.reason,
                              from_weight=base.canary_weight),
                records.traffic_changed(done, 0, actor=self._actor, cause=state.value),
            ])  # fmt: skip
        step = decision.target_step
        assert step is not None, "traffic moves to a step only with a target step"
        if action is Action.PROMOTE:
            self._target.promote(base.model)
            done = replace(
                base, state=RolloutState.PROMOTED, step_index=step, step_started_at=now,
                reason=decision.reason, next_tick_at=None,
            )  # fmt: skip
            promoted = records.about(
                done, EventType.ROLLOUT_PROMOTED, self._actor, reason=decision.reason
            )
            full = records.traffic_changed(done, 100, actor=self._actor, cause="promoted")
            return _Outcome(rollout=done, applied_weight=100, events=[full, promoted])
        weight = base.plan.steps[step].weight
        self._target.set_weight(base.model, weight)
        moved = replace(
            base, state=RolloutState.PROGRESSING, step_index=step, step_started_at=now,
            analysis_started_at=base.analysis_started_at or now, consecutive_errors=0,
            judge_state={},  # a new step is a new analysis (see ProfileAnalyzer for its alpha)
            reason=decision.reason, next_tick_at=now + base.plan.analysis_interval,
        )  # fmt: skip
        event = records.traffic_changed(moved, weight, actor=self._actor, cause=f"step {step}")
        return _Outcome(rollout=moved, applied_weight=weight, events=[event])

    def _retry_target_abort(self, rollout: Rollout, now: datetime) -> _Outcome:
        """A terminal rollout whose 0 % was never confirmed: try the target again."""
        bumped = replace(rollout, version=rollout.version + 1, updated_at=now)
        events, confirmed = records.abort_on_target(
            self._target, rollout, actor=self._actor, cause="abort confirmed"
        )
        next_tick = None if confirmed is not None else now + TARGET_RETRY
        return _Outcome(
            rollout=replace(bumped, next_tick_at=next_tick), events=events,
            applied_weight=confirmed,
        )  # fmt: skip


def _retry_abort(rollout: Rollout) -> Decision:
    return Decision(action=Action.ABORT, reason=rollout.reason or "confirming 0 % on the target")


def _evaluation_events(rollout: Rollout, evaluation: _Evaluation, actor: str) -> list[LedgerEvent]:
    events: list[LedgerEvent] = []
    if evaluation.analysis is not None:
        events.append(records.about(
            rollout, EventType.ANALYSIS_RECORDED, actor, step=rollout.step_index,
            weight=rollout.canary_weight, result=evaluation.analysis.to_json(),
        ))  # fmt: skip
    if evaluation.gates is not None:
        events.append(records.about(
            rollout, EventType.GATE_CHECKED, actor, target_step=evaluation.decision.target_step,
            open=evaluation.gates.open, reason=evaluation.gates.reason,
            evidence=evaluation.gates.evidence,
        ))  # fmt: skip
    return events
