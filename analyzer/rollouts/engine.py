"""The rollout engine: one reconcile per due rollout per tick, safe across replicas and crashes.

A tick has four phases:

1. **Claim** (short transaction): due rollouts are selected with ``FOR UPDATE SKIP LOCKED`` and
   leased to this replica (``acquired_by``/``acquired_until``), so replicas never work on the
   same rollout and a dead replica's lease simply expires.
2. **Settle**: the target's view is read first and the record brought in line with it
   (``truth.settle``: roll forward, never back) — a promotion or abort that happened is recorded
   as having happened, a step a crash left unconfirmed is recorded as applied, a change made
   outside canary-analyzer is recorded and pauses the rollout.
3. **Evaluate** (no transaction held): fetch metrics and judge, ask the gates, and ``decide``.
4. **Apply**: lock the row, check that the lease is still ours and the version unchanged (a
   human may have aborted or paused meanwhile: then the work is discarded), and write the
   decision with its evidence. A decision that moves traffic is committed as an *intent* first
   (``pending_move`` and a ``traffic_change_requested`` entry; for an abort, the terminal state
   itself), and only then is the target called, in a second transaction that records what the
   target confirmed. Replaying a tick finds a newer version and changes nothing, so every step
   is executed exactly once.

Crash safety: a process killed (or a connection dropped) between the target call and the second
commit leaves the intent behind; the next tick's settle phase reads the target and records what
it really shows. Nothing is ever pushed back toward a canary the target shows off traffic.
"""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import Connection, Engine, and_, bindparam, or_, select, update

from analyzer.domain.errors import FatalIntegrationError, IntegrationError, NotFoundError
from analyzer.domain.events import EventType, LedgerEvent
from analyzer.domain.result import AnalysisResult
from analyzer.domain.rollout import MoveKind, PendingMove, Rollout, RolloutState, Strategy
from analyzer.domain.verdict import Verdict
from analyzer.ledger.store import Clock, Ledger, utc_now
from analyzer.rollouts import records
from analyzer.rollouts.aliases import RegistryAliases
from analyzer.rollouts.compaction import LookCompactor, Written
from analyzer.rollouts.machine import Action, Decision, GateOutcome, decide
from analyzer.rollouts.ports import GateCheck, GateChecker, RolloutAnalyzer, TickObserver
from analyzer.rollouts.records import TARGET_RETRY, abort_and_confirm
from analyzer.rollouts.repository import from_row, load, to_row
from analyzer.rollouts.settling import corrected
from analyzer.rollouts.tables import rollouts
from analyzer.rollouts.truth import Fix, Observed, settle
from analyzer.targets.base import MirrorTarget, TrafficState, TrafficTarget
from analyzer.targets.mirror import target_for

log = structlog.get_logger(__name__)


def default_replica_id() -> str:
    return f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True, kw_only=True, slots=True)
class _Wait:
    """A decision that moves nothing (wait for the next look), written with its batch."""

    seen: Rollout
    new: Rollout
    events: list[LedgerEvent]


@dataclass(frozen=True, kw_only=True, slots=True)
class _Evaluation:
    decision: Decision
    analysis: AnalysisResult | None = None
    judge_state: dict[str, Any] | None = None
    gates: GateCheck | None = None
    # the analysis window (step start, look time): a backtest re-reads exactly this evidence
    window: tuple[datetime, datetime] | None = None


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
        batch: int = 500,
        tick_budget: float = 10.0,
        aliases: RegistryAliases | None = None,
        compact_looks: bool = True,
        mirror: MirrorTarget | None = None,
    ) -> None:
        self._engine = engine
        # The request mirror shadow runs are driven through (None: shadow runs are refused).
        self._mirror = mirror
        # Registry aliases moved with the traffic (challenger, champion); None: no registry.
        self._aliases = aliases
        self._ledger = ledger
        self._target = target
        self._analyzer = analyzer
        self._gates = gates
        self._clock = clock
        self.replica_id = replica_id or default_replica_id()
        # The ledger names the replica that executed each step, so operators can trace it.
        self._actor = f"canary-analyzer/{self.replica_id}"
        self._lease = lease
        # A tick claims up to ``batch`` due rollouts at a time and keeps claiming while more are
        # due, for at most ``tick_budget`` seconds (then the next tick goes on): throughput
        # follows the number of due rollouts instead of a fixed 20 per tick (issue 20).
        self._batch = batch
        self._tick_budget = tick_budget
        self._observers: list[TickObserver] = []
        # Looks that repeat the last verdict are written compactly (docs/ledger.md); False
        # writes every look whole (benchmarks compare the two).
        self._compactor = LookCompactor(enabled=compact_looks)

    def add_observer(self, observer: TickObserver) -> None:
        """Also tell ``observer`` what every committed tick recorded (see ``TickObserver``)."""
        self._observers.append(observer)

    def _target_for(self, rollout: Rollout) -> TrafficTarget:
        """The traffic for most strategies; the mirror for a shadow run."""
        return target_for(rollout, self._target, self._mirror)

    def _notify(self, events: list[LedgerEvent]) -> None:
        for observer in self._observers:
            try:
                observer.recorded(events)
            except Exception:  # metrics must never undo or repeat a committed tick
                log.exception("tick observer failed", observer=type(observer).__name__)

    def tick(self) -> int:
        """Reconcile every rollout that is due now (batch after batch, within the tick's time
        budget); return how many were worked on."""
        started, worked = time.monotonic(), 0
        while True:
            claimed = self._claim()
            waits: list[_Wait] = []
            for rollout in claimed:
                with structlog.contextvars.bound_contextvars(rollout_id=rollout.id):
                    try:
                        self._reconcile(rollout, waits=waits)
                    except Exception:  # one broken rollout must not stop the others
                        log.exception("reconcile failed; the lease expires and it is retried")
            self._flush(waits)
            worked += len(claimed)
            if len(claimed) < self._batch or time.monotonic() - started >= self._tick_budget:
                return worked

    def _claim(self) -> list[Rollout]:
        """Lease up to ``batch`` due rollouts to this replica, oldest due first, and return them
        as leased: one statement (``UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED)
        RETURNING …``), so replicas claiming together never take the same rollout."""
        now, c = self._clock(), rollouts.c
        # paused rollouts too while a move is pending: what the target did must be settled
        active = and_(
            c.state.in_(("pending", "progressing")),
            or_(c.paused.is_(False), c.pending_move.is_not(None)),
        )
        # terminal rollouts whose 0 % the target has not confirmed yet (abort retried); one that
        # never had a weight applied or asked for has nothing of ours to take back
        unconfirmed = and_(
            c.state.in_(("aborted", "failed")),
            or_(
                and_(c.applied_weight.is_not(None), c.applied_weight != 0),
                c.pending_move.is_not(None),
            ),
        )
        due = and_(
            or_(active, unconfirmed),
            or_(c.next_tick_at.is_(None), c.next_tick_at <= now),
            or_(c.acquired_until.is_(None), c.acquired_until < now),
        )
        due_ids = (
            select(c.id).where(due).order_by(c.next_tick_at).limit(self._batch)
            .with_for_update(skip_locked=True).scalar_subquery()
        )  # fmt: skip
        lease = {"acquired_by": self.replica_id, "acquired_until": now + self._lease}
        claim = update(rollouts).where(c.id.in_(due_ids)).values(**lease).returning(rollouts)
        with self._engine.begin() as conn:
            rows = conn.execute(claim).all()
        claimed = [from_row(row) for row in rows]
        # the oldest due first, as the subquery chose them (RETURNING keeps no order)
        far = datetime.max.replace(tzinfo=now.tzinfo)
        return sorted(claimed, key=lambda r: (r.next_tick_at or far, r.id))

    def reconcile(self, rollout_id: str) -> None:
        """Settle, evaluate and apply one claimed rollout."""
        with self._engine.connect() as conn:
            rollout = from_row(load(conn, rollout_id))
        self._reconcile(rollout)

    def _reconcile(self, rollout: Rollout, *, waits: list[_Wait] | None = None) -> None:
        """Settle, evaluate and apply ``rollout`` as claimed; with ``waits``, a decision that
        moves nothing is added there for the batch's single write instead of written now."""
        if rollout.state.terminal:
            self._confirm_abort(rollout)
            return
        settled = self._settle(rollout)
        if settled is None:
            return
        if settled.paused:  # claimed only to settle a pending move
            self._release(settled, retry_in=None)
            return
        self._apply(settled, self._evaluate(settled), waits=waits)

    # -- phase 0: the target's truth first -----------------------------------------------
    def _settle(self, rollout: Rollout) -> Rollout | None:
        """Bring the record in line with what the target serves (``truth.settle``); the rollout
        to go on with, or None when this tick is over."""
        try:
            state = self._target_for(rollout).read_weight(rollout.model)
        except (IntegrationError, NotFoundError) as exc:
            if rollout.pending_move is None:
                return rollout  # nothing to settle; the apply phase surfaces target trouble
            error = records.about(rollout, EventType.TARGET_ERROR, self._actor,
                                  operation="read", error=str(exc))  # fmt: skip
            self._release(rollout, retry_in=TARGET_RETRY, events=[error])
            return None
        now = self._clock()
        settlement = settle(rollout, observe(rollout, state), now=now)
        if settlement.fix is Fix.NONE:
            return rollout
        if settlement.fix is Fix.WAIT:
            self._release(rollout, retry_in=TARGET_RETRY)
            return None
        if settlement.fix is Fix.RESTORE:
            if rollout.paused:
                return rollout
            restore = Decision(action=Action.ENTER_STEP, reason=settlement.reason,
                               target_step=rollout.step_index)  # fmt: skip
            self._apply(rollout, _Evaluation(decision=restore))
            return None
        new, events = corrected(rollout, settlement, now=now, actor=self._actor)
        go_on = settlement.fix is Fix.NOT_APPLIED
        if not self._write(rollout, new, events, keep_lease=go_on):
            return None
        log.warning("record settled with the target", fix=settlement.fix.value,
                    reason=settlement.reason, observed=settlement.observed_weight)  # fmt: skip
        return new if go_on else None

    # -- phase 2: evaluate without locks ---------------------------------------------------
    def _evaluate(self, rollout: Rollout) -> _Evaluation:
        now = self._clock()
        analysis, judge_state, verdict, why = None, None, None, ""
        window: tuple[datetime, datetime] | None = None
        if rollout.state is RolloutState.PROGRESSING:
            # Each step is judged on its own evidence, from the moment its weight was applied.
            since = rollout.step_started_at or rollout.created_at
            window = (since, now)
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
            decision=decision, analysis=analysis, judge_state=judge_state, gates=gates,
            window=window,
        )  # fmt: skip

    # -- phase 3: apply -------------------------------------------------------------------
    def _apply(
        self, seen: Rollout, evaluation: _Evaluation, *, waits: list[_Wait] | None = None
    ) -> None:
        """Record the decision with its evidence; a traffic move is committed as an intent
        first (``pending_move``, or the terminal state of an abort), then performed. A decision
        that moves nothing goes to ``waits`` when given (written with its batch)."""
        now, decision = self._clock(), evaluation.decision
        base = replace(
            seen, version=seen.version + 1, updated_at=now, reason=decision.reason,
            judge_state=evaluation.judge_state or seen.judge_state,
        )  # fmt: skip
        events = _evaluation_events(seen, evaluation, self._actor)
        judged = list(events)  # what a hold records: the evidence, not the move
        action = decision.action
        if action in (Action.ABORT, Action.FAIL):
            state = RolloutState.ABORTED if action is Action.ABORT else RolloutState.FAILED
            kind = EventType.ROLLOUT_ABORTED if action is Action.ABORT else EventType.ROLLOUT_FAILED
            # a rollout failed by consecutive errors keeps their count (it equals the limit)
            errors = decision.consecutive_errors or seen.consecutive_errors
            new = replace(base, state=state, next_tick_at=now, consecutive_errors=errors)
            events.append(records.about(new, kind, self._actor, reason=decision.reason,
                                        from_weight=seen.applied_weight))  # fmt: skip
            if seen.strategy is Strategy.SHADOW:
                events.append(records.shadow_judged(new, passed=False, actor=self._actor,
                                                    reason=decision.reason))  # fmt: skip
        elif decision.moves_traffic:
            step = decision.target_step
            assert step is not None, "traffic moves to a step only with a target step"
            promote = action is Action.PROMOTE
            move = PendingMove(kind=MoveKind.PROMOTE if promote else MoveKind.STEP, step=step,
                               weight=seen.plan.steps[step].weight, requested_at=now)  # fmt: skip
            new = replace(base, pending_move=move)
            strategy = {} if seen.strategy is Strategy.CANARY else {"strategy": seen.strategy.value}
            events.append(records.about(new, EventType.TRAFFIC_CHANGE_REQUESTED, self._actor,
                                        reason=decision.reason, move=move.to_json(),
                                        from_weight=seen.applied_weight, **strategy))  # fmt: skip
        else:
            new = replace(
                base, consecutive_errors=decision.consecutive_errors,
                next_tick_at=now + (decision.next_tick_in or seen.plan.analysis_interval),
            )  # fmt: skip
            if waits is not None:
                waits.append(_Wait(seen=seen, new=new, events=events))
                return
        alias = None
        if self._aliases is not None and decision.moves_traffic and new.pending_move is not None:
            alias = self._aliases.alias_for(seen, new.pending_move)
        if alias is not None:
            held = replace(base, next_tick_at=now + TARGET_RETRY)
            if not self._write_with_alias(seen, (new, events), (held, judged), alias):
                return
        elif not self._write(seen, new, events, keep_lease=decision.moves_traffic):
            return
        log.info("tick", action=action.value, reason=decision.reason, state=new.state.value)
        if new.state.terminal:
            self._confirm_abort(new)
        elif new.pending_move is not None:
            self._perform(new)

    def _perform(self, rollout: Rollout) -> None:
        """Call the target for the committed pending move and record what it confirmed."""
        with self._engine.begin() as conn:
            current = self._lock_if_ours(conn, rollout)
            if current is None:
                return
            new, events = self._move(current, self._clock())
            self._save(conn, new, release=True)
            self._ledger.append_many(conn, events)
        self._notify(events)

    def _move(self, rollout: Rollout, now: datetime) -> tuple[Rollout, list[LedgerEvent]]:
        move = rollout.pending_move
        assert move is not None, "only a pending move is performed"
        base = replace(rollout, version=rollout.version + 1, updated_at=now)
        target = self._target_for(rollout)
        try:
            if move.kind is MoveKind.PROMOTE:
                target.promote(rollout.model)
            else:
                target.set_weight(rollout.model, move.weight)
        except FatalIntegrationError as exc:
            # The pending move stays unless the target shows it did not happen (a refusal before
            # any write): the abort that follows must then confirm 0 %, even if nothing of ours
            # was confirmed before — and must not touch an object we never changed.
            failed = replace(base, state=RolloutState.FAILED, next_tick_at=now,
                             reason=f"the traffic target refused: {exc}",
                             pending_move=None if self._untouched(rollout) else move)  # fmt: skip
            return failed, [
                records.about(failed, EventType.TARGET_ERROR, self._actor, error=str(exc)),
                records.about(failed, EventType.ROLLOUT_FAILED, self._actor, reason=failed.reason),
                *(self._restore_champion(failed) if move.kind is MoveKind.PROMOTE else []),
            ]
        except (IntegrationError, NotFoundError) as exc:
            # The move may or may not have reached the target: the next tick settles it.
            retry = replace(base, next_tick_at=now + TARGET_RETRY)
            return retry, [records.about(rollout, EventType.TARGET_ERROR, self._actor,
                                         operation=move.kind.value, error=str(exc))]  # fmt: skip
        done = replace(base, pending_move=None, applied_weight=move.weight, step_index=move.step,
                       step_started_at=now)  # fmt: skip
        if move.kind is MoveKind.PROMOTE and rollout.strategy is Strategy.SHADOW:
            done = replace(done, state=RolloutState.SHADOW_PASSED, applied_weight=0,
                           next_tick_at=None)  # fmt: skip
            return done, [
                records.traffic_changed(done, 0, actor=self._actor, cause="shadow passed"),
                records.shadow_judged(done, passed=True, actor=self._actor,
                                      reason=done.reason or "shadow window passed"),
            ]  # fmt: skip
        if move.kind is MoveKind.PROMOTE:
            done = replace(done, state=RolloutState.PROMOTED, applied_weight=100,
                           next_tick_at=None)  # fmt: skip
            return done, [
                records.traffic_changed(done, 100, actor=self._actor, cause="promoted"),
                records.about(done, EventType.ROLLOUT_PROMOTED, self._actor, reason=done.reason),
            ]
        done = replace(
            done, state=RolloutState.PROGRESSING, consecutive_errors=0,
            analysis_started_at=rollout.analysis_started_at or now,
            judge_state={},  # a new step is a new analysis (see ProfileAnalyzer for its alpha)
            next_tick_at=now + rollout.plan.analysis_interval,
        )  # fmt: skip
        cause = f"step {move.step}"
        return done, [records.traffic_changed(done, move.weight, actor=self._actor, cause=cause)]

    def _restore_champion(self, rollout: Rollout) -> list[LedgerEvent]:
        """The target refused a promotion whose champion alias had already moved: point it back
        at the version it named before (from the alias_moved entry). Best effort — a registry
        that refuses now is recorded; the rollout has failed either way."""
        if self._aliases is None:
            return []
        champion = self._aliases.champion
        page = self._ledger.events(rollout_id=rollout.id, event_types=[EventType.ALIAS_MOVED],
                                   newest_first=True, limit=20)  # fmt: skip
        moves = [e.data() for e in page.entries if e.data().get("alias") == champion]
        if not moves or not moves[0].get("moved") or moves[0].get("restored"):
            return []
        previous = moves[0].get("previous_version")
        if previous is None:  # there was no champion before: nothing to point back at
            return []
        try:
            return [
                self._aliases.restore(
                    rollout,
                    champion,
                    str(previous),
                    actor=self._actor,
                    why="the traffic target refused the promotion",
                )
            ]
        except IntegrationError as exc:
            return [self._aliases.refused(rollout, champion, exc, actor=self._actor,
                                          operation="restore_alias")]  # fmt: skip

    def _untouched(self, rollout: Rollout) -> bool:
        """True when the target still shows what was confirmed before the pending move."""
        try:
            seen = observe(rollout, self._target_for(rollout).read_weight(rollout.model))
        except (IntegrationError, NotFoundError):
            return False
        return not seen.promoted and seen.canary_weight == (rollout.applied_weight or 0)

    def _confirm_abort(self, rollout: Rollout) -> None:
        """A terminal rollout whose 0 % is not confirmed: ask the target (abort is idempotent)."""
        now = self._clock()
        with self._engine.begin() as conn:
            current = self._lock_if_ours(conn, rollout)
            if current is None:
                return
            target = self._target_for(current)
            events, new = abort_and_confirm(target, current, actor=self._actor, now=now)
            self._save(conn, new, release=True)
            self._ledger.append_many(conn, events)
        self._notify(events)

    # -- writing ---------------------------------------------------------------------------
    def _flush(self, waits: list[_Wait]) -> None:
        """Write a batch's wait decisions in one transaction: the rows still unchanged and ours
        are updated (one statement, executed for many) and their entries appended with one
        ledger head update; the others' work is discarded, as :meth:`_write` would."""
        if not waits:
            return
        c = rollouts.c
        with self._engine.begin() as conn:
            ids = sorted(w.seen.id for w in waits)  # one lock order for every writer
            current = {
                row.id: (row.version, row.acquired_by)
                for row in conn.execute(
                    select(c.id, c.version, c.acquired_by)
                    .where(c.id.in_(ids)).order_by(c.id).with_for_update()
                )
            }  # fmt: skip
            ours: list[_Wait] = []
            stale: list[str] = []
            for wait in waits:
                if current.get(wait.seen.id) == (wait.seen.version, self.replica_id):
                    ours.append(wait)
                else:
                    stale.append(wait.seen.id)
            if stale:
                log.info("rollouts changed while evaluating; their work is discarded",
                         rollout_ids=stale)  # fmt: skip
                conn.execute(
                    update(rollouts).where(c.id.in_(stale), c.acquired_by == self.replica_id)
                    .values(acquired_by=None, acquired_until=None)
                )  # fmt: skip
            if not ours:
                return
            written = self._compactor.prepare(conn, [(w.new, w.events) for w in ours])
            rows = []
            for item in written:
                values = to_row(item.rollout) | {"acquired_by": None, "acquired_until": None}
                values["row_id"] = values.pop("id")
                rows.append(values)
            conn.execute(update(rollouts).where(c.id == bindparam("row_id")), rows)
            self._append(conn, written)  # last: the ledger head's lock is held until the commit
        events = [e for w in ours for e in w.events]
        for wait in ours:
            log.info("tick", action=Action.WAIT.value, reason=wait.new.reason,
                     state=wait.new.state.value, rollout_id=wait.new.id)  # fmt: skip
        self._notify(events)

    def _lock_if_ours(self, conn: Connection, seen: Rollout) -> Rollout | None:
        """Lock the row; the rollout if it is unchanged since ``seen`` and still leased to us.

        Otherwise (a person aborted or paused meanwhile, or the lease went to another replica)
        this tick's work is discarded and our lease, if still held, released."""
        row = load(conn, seen.id, for_update=True)
        current = from_row(row)
        if current.version == seen.version and row._mapping["acquired_by"] == self.replica_id:
            return current
        log.info("rollout changed while evaluating; this tick's work is discarded")
        conn.execute(
            update(rollouts)
            .where(rollouts.c.id == seen.id, rollouts.c.acquired_by == self.replica_id)
            .values(acquired_by=None, acquired_until=None)
        )
        return None

    def _write(
        self, seen: Rollout, new: Rollout, events: list[LedgerEvent], *, keep_lease: bool
    ) -> bool:
        """Commit ``new`` and its entries if ``seen`` is still current and ours."""
        with self._engine.begin() as conn:
            if self._lock_if_ours(conn, seen) is None:
                return False
            self._save_and_append(conn, new, events, release=not keep_lease)
        self._notify(events)
        return True

    def _save_and_append(
        self, conn: Connection, new: Rollout, events: list[LedgerEvent], *, release: bool
    ) -> None:
        """Save ``new`` (with its ``last_look``) and append its events, looks that repeat the
        last verdict compactly; the append last, so the ledger head is locked only to the
        commit."""
        written = self._compactor.prepare(conn, [(new, events)])
        self._save(conn, written[0].rollout, release=release)
        self._append(conn, written)

    def _append(self, conn: Connection, written: Sequence[Written]) -> None:
        records = self._ledger.append_many(conn, [e for w in written for e in w.compacted])
        self._compactor.appended(written, records)

    def _write_with_alias(
        self,
        seen: Rollout,
        move: tuple[Rollout, list[LedgerEvent]],
        hold: tuple[Rollout, list[LedgerEvent]],
        alias: str,
    ) -> bool:
        """Move the registry alias the move carries, then commit the move's intent — both under
        the row lock, so nobody aborts in between. A registry that refuses or does not answer
        commits the hold instead (same weight, asked again next tick): fail closed, the traffic
        never moves ahead of the registry. True when the move was committed."""
        assert self._aliases is not None, "called only with aliases configured"
        (new, events), (held, judged) = move, hold
        with self._engine.begin() as conn:
            if self._lock_if_ours(conn, seen) is None:
                return False
            try:
                moved = self._aliases.move(seen, alias, actor=self._actor)
            except IntegrationError as exc:
                reason = f"held: the model registry did not move alias {alias!r}: {exc}"
                refusal = self._aliases.refused(seen, alias, exc, actor=self._actor)
                recorded, committed = [*judged, refusal], False
                self._save_and_append(conn, replace(held, reason=reason), recorded, release=True)
                log.warning("registry refused an alias move; held", alias=alias, error=str(exc))
            else:
                # the ledger reads in order: evidence, alias moved, traffic move asked
                recorded, committed = [*judged, moved, *events[len(judged) :]], True
                self._save_and_append(conn, new, recorded, release=False)
        self._notify(recorded)
        return committed

    def _release(
        self, seen: Rollout, *, retry_in: timedelta | None, events: Sequence[LedgerEvent] = ()
    ) -> None:
        now = self._clock()
        next_tick = now + retry_in if retry_in is not None else seen.next_tick_at
        later = replace(seen, version=seen.version + 1, updated_at=now, next_tick_at=next_tick)
        self._write(seen, later, list(events), keep_lease=False)

    @staticmethod
    def _save(conn: Connection, rollout: Rollout, *, release: bool) -> None:
        values = to_row(rollout)
        if release:
            values |= {"acquired_by": None, "acquired_until": None}
        conn.execute(update(rollouts).where(rollouts.c.id == rollout.id).values(**values))


def observe(rollout: Rollout, state: TrafficState) -> Observed:
    """What ``state`` (as a target reports it) says about this rollout's canary."""
    canary = rollout.canary_revision
    promoted = state.canary_revision is None and state.stable_revision == canary
    if rollout.strategy is Strategy.SHADOW:
        # a shadow run's "promotion" is the mirror's removal after a pass: a pending finish that
        # the mirror shows done happened (the run passed), whatever a crash lost of its commit
        move = rollout.pending_move
        promoted = move is not None and move.kind is MoveKind.PROMOTE and not state.canary_weight
    if state.canary_revision == canary:
        weight = state.canary_weight
    elif rollout.strategy is Strategy.SHADOW:
        weight = 0  # a mirror to another revision, or none: ours receives no copies
    elif state.shares:  # another revision is the canary now: ours serves what the shares say
        weight = 0 if promoted else state.percent_of(canary)
    else:
        weight = 0
    return Observed(canary_weight=weight, promoted=promoted, settled=state.settled,
                    requested_weight=state.requested_weight)  # fmt: skip


def _evaluation_events(rollout: Rollout, evaluation: _Evaluation, actor: str) -> list[LedgerEvent]:
    events: list[LedgerEvent] = []
    if evaluation.analysis is not None:
        window = {}
        if evaluation.window is not None:
            start, end = evaluation.window
            window = {"window": {"start": start.isoformat(), "end": end.isoformat()}}
        events.append(records.about(
            rollout, EventType.ANALYSIS_RECORDED, actor, step=rollout.step_index,
            weight=rollout.canary_weight, result=evaluation.analysis.to_json(), **window,
        ))  # fmt: skip
    if evaluation.gates is not None:
        events.append(records.about(
            rollout, EventType.GATE_CHECKED, actor, target_step=evaluation.decision.target_step,
            open=evaluation.gates.open, reason=evaluation.gates.reason,
            evidence=evaluation.gates.evidence,
        ))  # fmt: skip
    return events
