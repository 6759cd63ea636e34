"""The fleet engine: starts fleet rollouts, looks at their waves, moves models, keeps the record.

Each look is a reconcile in three parts, so no database transaction (and no lock on the
ledger's head) is held while hundreds of models move:

1. read the fleet's record; read the counts (one query per metric and judged wave) and judge
   (pure: ``looking.py``, ``judge.py``, ``watch.py``);
2. move the models the judgement asks for (``moves.py``: intents committed before the target
   calls, confirmations or errors after);
3. store the new state, the look and its ``fleet_wave_judged`` entry in one transaction, guarded
   by the record's version (``store.py``: a replica that lost the race changes nothing; moves
   are idempotent).

A source that fails makes an ``error`` look that moves nothing (never promote on missing data);
past the wave's deadline the fleet holds. A rollback the target refuses is retried at every
later look until it lands. A wave's upgrades are stored as pending before the first move, so a
process that dies mid-wave leaves them for the next look to complete before anything is judged.
A passed wave whose successor names promotion gates waits, asking at every look, until they
are open; an approver's four-eyes approval of such a wave is recorded by :meth:`approve`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import Engine

from analyzer.domain.approvals import counted_approval
from analyzer.domain.errors import (
    ConflictError,
    IntegrationError,
    InvalidInputError,
    PermissionDeniedError,
)
from analyzer.domain.events import EventType, LedgerEvent
from analyzer.domain.fleet import ModelPhase
from analyzer.domain.verdict import Verdict
from analyzer.fleets import entries, progress
from analyzer.fleets.entries import ACTOR
from analyzer.fleets.history import FleetHistory, fleet_history
from analyzer.fleets.looking import FleetJudging, LookOutcome
from analyzer.fleets.moves import FleetMover
from analyzer.fleets.plan import cut_waves
from analyzer.fleets.ports import (
    FleetGateChecker,
    FleetSource,
    FleetTarget,
    NoWaveGates,
    WaveGateCheck,
    WaveGateRequest,
)
from analyzer.fleets.progress import FleetStatus, Step
from analyzer.fleets.repository import FleetRecord, LookRecord
from analyzer.fleets.spec import FleetSpec
from analyzer.fleets.store import FleetStore
from analyzer.ledger.store import Ledger
from gates.manual_approval import APPROVER_ROLE, same_identity
from gates.policy import MANUAL_APPROVAL


def _utc_now() -> datetime:
    return datetime.now(UTC)


class FleetEngine:
    """Fleet rollouts on one database: ``start``, ``look``/``tick``, ``abort``, ``resume``,
    ``approve``.

    ``source``, ``target`` and ``gates`` are the Protocols of ``ports.py``; ``clock`` is
    injected (tests and the fleet demo run simulated time).
    """

    def __init__(
        self,
        *,
        db: Engine,
        ledger: Ledger,
        source: FleetSource,
        target: FleetTarget,
        clock: Callable[[], datetime] = _utc_now,
        new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
        move_concurrency: int = 8,
        gates: FleetGateChecker | None = None,
    ) -> None:
        self._store = FleetStore(db=db, ledger=ledger, clock=clock)
        self._mover = FleetMover(store=self._store, target=target, concurrency=move_concurrency)
        self._judging = FleetJudging(source)
        self._clock = clock
        self._new_id = new_id
        self._gates: FleetGateChecker = gates or NoWaveGates()
        self._log = structlog.get_logger("analyzer.fleets")

    # -- reading -------------------------------------------------------------------------
    def get(self, fleet_id: str) -> FleetRecord:
        return self._store.get(fleet_id)

    def recent(self, *, limit: int = 100) -> list[FleetRecord]:
        return self._store.recent(limit=limit)

    def looks(self, fleet_id: str, *, limit: int = 500) -> list[LookRecord]:
        return self._store.looks(fleet_id, limit=limit)

    def history(self, record: FleetRecord) -> FleetHistory:
        """Why each rolled-back model went back, each wave's counts by cause, and what the
        watch covers (``history.py``), from the fleet's ledger entries and ``record``."""
        return fleet_history(
            record.state, record.waves, self._store.history_entries(record.id),
            new_version=record.spec.version.name, watch_seconds=record.spec.watch_seconds,
        )  # fmt: skip

    # -- starting ------------------------------------------------------------------------
    def start(self, spec: FleetSpec, *, initiator: str) -> FleetRecord:
        """Resolve the models, record the start, and move the first wave."""
        models = self._mover.models(spec)
        if not models:
            raise InvalidInputError("the selector matches no InferenceService", field="selector")
        self._store.refuse_overlap(spec, models)
        old = self._mover.read_old(spec, models)
        waves = cut_waves(spec.name, models, spec.plan)
        now = self._clock()
        if waves[0][0].gates:
            opening = self._gates.check(
                self._gate_request(
                    spec, fleet_id="", initiator=initiator, waves=waves, wave=0, now=now
                )
            )
            if not opening.open:
                raise ConflictError(f"wave 1's gates are closed: {opening.reason}")
        state, first = progress.initial_state(waves, now=now.timestamp())
        record = FleetRecord(
            id=self._new_id(), spec=spec, state=state, waves=waves, old=old, initiator=initiator,
            created_at=now, updated_at=now,
            next_look_at=now,  # due at once if the process dies before the first wave moved
            version=1, pending_upgrades=first,
        )  # fmt: skip
        self._store.insert(record, entries.start_events(record, initiator))
        failed = self._mover.move(record, first, to_new=True, why="wave 1")
        return self._store_moves(record, failed)

    # -- moving --------------------------------------------------------------------------
    def _store_moves(self, record: FleetRecord, failed: Mapping[str, str]) -> FleetRecord:
        """After a wave's upgrade: models that failed to load are sent back and count as
        rolled back; the window since the upgrade starts now (every model is ready)."""
        state = record.state
        phases = dict(state.phases)
        frozen = dict(state.frozen)
        for m in failed:
            phases[m] = ModelPhase.ROLLED_BACK
            frozen[m] = 0.0
        retry = self._mover.move(
            record, list(failed), to_new=False, why="failed to load the new version"
        )
        ready = self._clock()
        new_state = replace(state, phases=phases, frozen=frozen, wave_ready_at=ready.timestamp())
        new = replace(
            record,
            state=new_state,
            retry_rollbacks=tuple(sorted({*record.retry_rollbacks, *retry})),
            next_look_at=ready + timedelta(seconds=record.spec.look_interval_seconds),
            pending_upgrades=(),
        )
        return self._store.save(record, new, events=[])

    def _upgrade(self, record: FleetRecord, models: Sequence[str], why: str) -> FleetRecord:
        failed = self._mover.move(record, models, to_new=True, why=why)
        return self._store_moves(record, failed)

    # -- looking -------------------------------------------------------------------------
    def tick(self) -> int:
        """Look at every progressing fleet whose next look is due; return how many."""
        due = self._store.due(self._clock())
        for fleet_id in due:
            try:
                self.look(fleet_id)
            except ConflictError:
                continue  # another replica looked first
            except Exception:  # one broken fleet must not stop the others' looks
                self._log.exception("fleet.look.failed", fleet=fleet_id)
        return len(due)

    def look(self, fleet_id: str) -> FleetRecord:
        """One look at the fleet's current wave (and its watched waves) now, and what it
        decides."""
        record = self.get(fleet_id)
        if record.state.status is not FleetStatus.PROGRESSING:
            return record
        if record.pending_upgrades:
            wave = record.state.wave + 1
            return self._upgrade(record, record.pending_upgrades, f"wave {wave} (completing moves)")
        record = self._retry_rollbacks(record)
        now = self._clock()
        if record.state.gated:
            return self._try_next_wave(self._watch_while_gated(record, now), now)
        try:
            outcome = self._judging.judge(record, now)
        except (IntegrationError, InvalidInputError) as exc:
            # a source that failed, or refused the query: a look that moves nothing
            return self._error_look(record, now, f"metric source: {exc}")
        watched = [w for _, w in outcome.watched]
        if outcome.wave is None:  # the post-completion watch
            step = progress.after_watch(record.state, watched, now=now.timestamp())
            return self._apply(record, step, outcome, now)
        gate = None
        if outcome.wave.final and outcome.wave.verdict is Verdict.PASS:
            gate = self._next_wave_gates(record, now)
        step = progress.after_look(
            record.state, record.waves, outcome.wave, now=now.timestamp(),
            next_open=gate is None or gate.open, gate_reason=gate.reason if gate else "",
            watched=watched, watch_seconds=record.spec.watch_seconds,
        )  # fmt: skip
        return self._apply(record, step, outcome, now, gate=gate)

    def _gate_request(
        self,
        spec: FleetSpec,
        *,
        fleet_id: str,
        initiator: str,
        waves: Sequence[tuple[Any, tuple[str, ...]]],
        wave: int,
        now: datetime,
    ) -> WaveGateRequest:
        return WaveGateRequest(
            fleet_id=fleet_id, namespace=spec.namespace, name=spec.name,
            version=spec.version.name, initiator=initiator, change_request=spec.change_request,
            wave=wave, percent=waves[wave][0].percent, gates=tuple(waves[wave][0].gates),
            now=now,
        )  # fmt: skip

    def _next_wave_gates(self, record: FleetRecord, now: datetime) -> WaveGateCheck | None:
        """The gates of the wave after the current one (None: there is none, or it has none)."""
        nxt = record.state.wave + 1
        if nxt >= len(record.waves) or not record.waves[nxt][0].gates:
            return None
        request = self._gate_request(
            record.spec, fleet_id=record.id, initiator=record.initiator, waves=record.waves,
            wave=nxt, now=now,
        )  # fmt: skip
        return self._gates.check(request)

    def _watch_while_gated(self, record: FleetRecord, now: datetime) -> FleetRecord:
        """While the next wave waits for its gates, the passed waves are still watched (a look
        without a current wave); a source that fails skips it (nothing moves)."""
        try:
            outcome = self._judging.judge(record, now)
        except (IntegrationError, InvalidInputError) as exc:
            self._log.warning("fleet.watch.error", fleet=record.id, reason=str(exc))
            return record
        if not outcome.watched:
            return record
        watched = [w for _, w in outcome.watched]
        step = progress.after_watch(record.state, watched, now=now.timestamp())
        return self._apply(record, step, outcome, now)

    def _try_next_wave(self, record: FleetRecord, now: datetime) -> FleetRecord:
        """The current wave passed; its successor moves once its gates open."""
        gate = self._next_wave_gates(record, now)
        events = [entries.gate_event(record, gate, now)] if gate is not None else []
        if gate is not None and not gate.open:
            waiting = replace(
                record,
                state=replace(record.state, reason=f"wave {record.state.wave + 2} waits for its "
                              f"gates: {gate.reason}"),
                next_look_at=now + timedelta(seconds=record.spec.look_interval_seconds),
            )  # fmt: skip
            return self._store.save(record, waiting, events=events)
        step = progress.start_next(
            replace(record.state, gated=False), record.waves, now=now.timestamp(),
            reason=f"wave {record.state.wave + 1} passed, gates open",
        )  # fmt: skip
        new = replace(record, state=step.state, pending_upgrades=step.upgrades)
        new = self._store.save(record, new, events=events)
        return self._upgrade(new, step.upgrades, f"wave {new.state.wave + 1}")

    def _apply(
        self,
        record: FleetRecord,
        step: Step,
        outcome: LookOutcome,
        now: datetime,
        *,
        gate: WaveGateCheck | None = None,
    ) -> FleetRecord:
        judgement = outcome.headline()
        wave_no = record.state.wave + 1
        failed_back = self._mover.move(
            record, step.rollbacks, to_new=False, why=f"wave {wave_no}: {judgement.reason}"
        )
        summary = entries.look_summary(outcome)
        events = [entries.judged_event(record, summary, now)]
        if gate is not None:
            events.append(entries.gate_event(record, gate, now))
        if step.state.status is not record.state.status:
            events.append(entries.status_event(record, step.state, ACTOR))
        new = replace(
            record,
            state=step.state,
            retry_rollbacks=tuple(sorted({*record.retry_rollbacks, *failed_back})),
            next_look_at=now + timedelta(seconds=record.spec.look_interval_seconds),
            pending_upgrades=step.upgrades,
        )
        # The next wave's moves are committed to (with this look) before they are made.
        new = self._store.save(record, new, events=events, look=(judgement, now, summary))
        if step.upgrades:
            new = self._upgrade(new, step.upgrades, f"wave {new.state.wave + 1}")
        return new

    def _retry_rollbacks(self, record: FleetRecord) -> FleetRecord:
        if not record.retry_rollbacks:
            return record
        still = self._mover.move(
            record, record.retry_rollbacks, to_new=False, why="retrying a rollback"
        )
        new = replace(record, retry_rollbacks=tuple(sorted(still)))
        return self._store.save(record, new, events=[])

    def _error_look(self, record: FleetRecord, now: datetime, reason: str) -> FleetRecord:
        """A look without evidence: recorded, nothing moves; past the wave's deadline the fleet
        holds (it never promotes on missing data)."""
        self._log.warning("fleet.look.error", fleet=record.id, reason=reason)
        spec, _ = record.waves[record.state.wave]
        state = record.state
        events: list[LedgerEvent] = []
        in_wave = state.watch_until is None
        if in_wave and now.timestamp() - state.wave_ready_at >= spec.deadline_seconds:
            held = f"wave {state.wave + 1} held: deadline reached without evidence ({reason})"
            state = replace(state, status=FleetStatus.HELD, reason=held)
            events.append(entries.status_event(record, state, ACTOR))
        self._store.error_look(record, now, final=state.status is FleetStatus.HELD, reason=reason)
        new = replace(
            record,
            state=state,
            next_look_at=now + timedelta(seconds=record.spec.look_interval_seconds),
        )
        return self._store.save(record, new, events=events)

    # -- operators -----------------------------------------------------------------------
    def abort(self, fleet_id: str, *, actor: str, reason: str) -> FleetRecord:
        record = self.get(fleet_id)
        if record.state.status is FleetStatus.ABORTED:
            return record  # aborting twice changes nothing
        if record.state.status.terminal:
            raise ConflictError(f"fleet rollout {fleet_id} is already {record.state.status}")
        step = progress.abort(record.state, reason=f"aborted by {actor}: {reason}")
        failed = self._mover.move(record, step.rollbacks, to_new=False, why=f"aborted by {actor}")
        new = replace(
            record,
            state=step.state,
            retry_rollbacks=tuple(sorted({*record.retry_rollbacks, *failed})),
        )
        events = [entries.status_event(record, step.state, actor)]
        return self._store.save(record, new, events=events)

    def resume(self, fleet_id: str, *, actor: str, reason: str) -> FleetRecord:
        record = self.get(fleet_id)
        if record.state.status is not FleetStatus.HELD:
            raise ConflictError(f"fleet rollout {fleet_id} is {record.state.status}, not held")
        now = self._clock()
        gate = self._next_wave_gates(record, now)
        step = progress.resume(
            record.state, record.waves, now=now.timestamp(), reason=f"resumed by {actor}: {reason}",
            next_open=gate is None or gate.open, gate_reason=gate.reason if gate else "",
            watch_seconds=record.spec.watch_seconds,
        )  # fmt: skip
        new = replace(
            record,
            state=step.state,
            next_look_at=now + timedelta(seconds=record.spec.look_interval_seconds),
            pending_upgrades=step.upgrades,
        )
        events = [entries.status_event(record, step.state, actor)]
        if gate is not None:
            events.append(entries.gate_event(record, gate, now))
        new = self._store.save(record, new, events=events)
        if step.upgrades:
            new = self._upgrade(new, step.upgrades, f"wave {new.state.wave + 1}")
        return new

    def approve(
        self,
        fleet_id: str,
        *,
        actor: str,
        roles: frozenset[str],
        comment: str,
        wave: int | None = None,
    ) -> tuple[FleetRecord, int]:
        """Record a four-eyes approval of a wave that names the ``manual-approval`` gate (by
        default the next such wave not yet moved; ``wave`` is 0-based) as an
        ``approval_given`` ledger entry of the fleet, which that gate reads at the wave's next
        gate check. Refused for the fleet's initiator and without the ``approver`` role
        (``PermissionDeniedError``), for a wave outside the plan (``InvalidInputError``), and
        when no wave still to move needs it, or the fleet has ended (``ConflictError``)."""
        record = self.get(fleet_id)
        if record.state.status.terminal:
            raise ConflictError(f"cannot approve a fleet rollout that is {record.state.status}")
        if same_identity(actor, record.initiator):
            raise PermissionDeniedError(
                f"{actor} started this fleet rollout and cannot approve it (four eyes)"
            )
        if APPROVER_ROLE not in roles:
            raise PermissionDeniedError(
                f"{actor} does not hold the 'approver' role (admin is not enough: the approval "
                "gate counts approvers only)"
            )
        target = _approval_wave(record, wave)
        event = LedgerEvent(
            type=EventType.APPROVAL_GIVEN,
            actor=actor,
            rollout_id=record.id,
            data={
                "fleet": f"{record.spec.namespace}/{record.spec.name}",
                "step": target,
                "wave": target + 1,
                "comment": comment,
                "roles": sorted(roles),
                "change_request": record.spec.change_request,
            },
        )
        self._store.append([event])
        return record, target


def _approval_wave(record: FleetRecord, asked: int | None) -> int:
    """The wave (0-based) an approval counts for: one naming the manual-approval gate that has
    not moved yet (the first wave's gates were asked at the start)."""
    waves = record.waves
    if asked is not None and not 0 <= asked < len(waves):
        raise InvalidInputError(
            f"the plan has no wave {asked + 1} (waves 1 to {len(waves)})", field="wave"
        )
    moved = record.state.wave  # waves up to the current one have moved
    remaining = [k for k in range(moved + 1, len(waves)) if MANUAL_APPROVAL in waves[k][0].gates]
    return counted_approval(
        asked,
        remaining,
        describe=lambda k: f"wave {k + 1}",
        nothing_left="no wave of this fleet rollout still to move names the manual-approval gate",
    )
