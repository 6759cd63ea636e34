"""The fleet engine: starts fleet rollouts, looks at their waves, moves models, keeps the record.

Each look is a reconcile in three parts, so no database transaction (and no lock on the
ledger's head) is held while hundreds of models move:

1. read the fleet's record; read the counts (one query per metric) and judge (pure);
2. move the models the judgement asks for: the intents of a batch are appended to the ledger
   (``traffic_change_requested``) and committed *before* the target calls, the confirmations
   (``traffic_changed``, weight 100 on the model's new revision) or errors (``target_error``)
   after, so a crash leaves intents, never silence;
3. store the new state, the look and its ``fleet_wave_judged`` entry in one transaction, guarded
   by the record's version (a replica that lost the race changes nothing; moves are idempotent).

A source that fails makes an ``error`` look that moves nothing (never promote on missing data);
past the wave's deadline the fleet holds. A rollback the target refuses is retried at every
later look until it lands. A wave's upgrades are stored as pending before the first move, so a
process that dies mid-wave leaves them for the next look to complete before anything is judged.
A passed wave whose successor names promotion gates waits, asking at every look, until they
are open.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from analyzer.domain.errors import (
    ConflictError,
    IntegrationError,
    InvalidInputError,
    NotFoundError,
)
from analyzer.domain.events import EventType, LedgerEvent
from analyzer.domain.fleet import ModelPhase, ServedModel
from analyzer.domain.model import ModelRef
from analyzer.domain.verdict import Verdict
from analyzer.fleets import entries, progress
from analyzer.fleets.entries import ACTOR
from analyzer.fleets.judge import WaveJudgement, judge_wave
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
from analyzer.fleets.repository import (
    FleetRecord,
    LookRecord,
    OldVersion,
    from_row,
    load,
    looks_of,
    to_row,
)
from analyzer.fleets.spec import FleetSpec
from analyzer.fleets.tables import ACTIVE_STATUSES, fleet_looks, fleet_rollouts
from analyzer.ledger.store import Ledger


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


class FleetEngine:
    """Fleet rollouts on one database: ``start``, ``look``/``tick``, ``abort``, ``resume``.

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
        if move_concurrency < 1:
            raise InvalidInputError("must be at least 1", field="move_concurrency")
        self._db = db
        self._ledger = ledger
        self._source = source
        self._target = target
        self._clock = clock
        self._new_id = new_id
        # Models load in seconds each on ModelMesh; a wave of 200 moved one by one would take
        # many minutes, so moves (and the reads at the start) run this many at a time.
        self._concurrency = move_concurrency
        self._gates: FleetGateChecker = gates or NoWaveGates()
        self._log = structlog.get_logger("analyzer.fleets")

    # -- reading -------------------------------------------------------------------------
    def get(self, fleet_id: str) -> FleetRecord:
        with self._db.connect() as conn:
            return load(conn, fleet_id)

    def recent(self, *, limit: int = 100) -> list[FleetRecord]:
        with self._db.connect() as conn:
            rows = conn.execute(
                select(fleet_rollouts).order_by(fleet_rollouts.c.created_at.desc()).limit(limit)
            )
            return [from_row(r) for r in rows]

    def looks(self, fleet_id: str, *, limit: int = 500) -> list[LookRecord]:
        with self._db.connect() as conn:
            load(conn, fleet_id)
            return looks_of(conn, fleet_id, limit=limit)

    # -- starting ------------------------------------------------------------------------
    def start(self, spec: FleetSpec, *, initiator: str) -> FleetRecord:
        """Resolve the models, record the start, and move the first wave."""
        models = list(spec.models) or self._target.select(spec.namespace, spec.selector)
        if not models:
            raise InvalidInputError("the selector matches no InferenceService", field="selector")
        self._refuse_overlap(spec, models)
        old: dict[str, OldVersion] = {}

        def read(name: str) -> ServedModel | NotFoundError:
            try:
                return self._target.read(ModelRef(namespace=spec.namespace, name=name))
            except NotFoundError as exc:
                return exc

        with ThreadPoolExecutor(max_workers=self._concurrency) as pool:
            found = list(pool.map(read, models))
        for i, (name, served) in enumerate(zip(models, found, strict=True)):
            if isinstance(served, NotFoundError):
                raise InvalidInputError(str(served), field=f"models[{i}]") from served
            old[name] = OldVersion(storage_uri=served.storage_uri, runtime=served.runtime)
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
            id=self._new_id(),
            spec=spec,
            state=state,
            waves=waves,
            old=old,
            initiator=initiator,
            created_at=now,
            updated_at=now,
            next_look_at=now,  # due at once if the process dies before the first wave moved
            version=1,
            pending_upgrades=first,
        )
        try:
            with self._db.begin() as conn:
                conn.execute(insert(fleet_rollouts).values(**to_row(record)))
                self._ledger.append_many(conn, entries.start_events(record, initiator))
        except IntegrityError as exc:  # uq_fleet_rollouts_one_active
            raise ConflictError(
                f"fleet {spec.namespace}/{spec.name} already has an active rollout"
            ) from exc
        failed = self._move(record, first, to_new=True, why="wave 1")
        return self._store_moves(record, failed)

    def _refuse_overlap(self, spec: FleetSpec, models: Sequence[str]) -> None:
        """A model moves in one active fleet rollout at a time (two would fight over it)."""
        with self._db.connect() as conn:
            rows = conn.execute(
                select(fleet_rollouts).where(
                    fleet_rollouts.c.namespace == spec.namespace,
                    fleet_rollouts.c.status.in_(ACTIVE_STATUSES),
                )
            )
            for row in rows:
                other = from_row(row)
                shared = sorted(set(models) & set(other.state.phases))
                if shared:
                    raise ConflictError(
                        f"{len(shared)} of these models (first: {shared[0]}) are in the active "
                        f"fleet rollout {other.id} ({other.spec.namespace}/{other.spec.name})"
                    )

    # -- moving --------------------------------------------------------------------------
    def _move(
        self, record: FleetRecord, models: Sequence[str], *, to_new: bool, why: str
    ) -> dict[str, str]:
        """Move ``models`` (to the new version or back); return the ones that failed, why."""
        if not models:
            return {}
        spec = record.spec
        revision = spec.version.name if to_new else spec.from_version
        wave = record.state.wave

        def where(name: str) -> tuple[str, str | None]:
            if to_new:
                return spec.version.uri_for(name), spec.version.runtime
            old = record.old[name]
            return old.storage_uri, old.runtime

        def event(kind: EventType, name: str, data: Mapping[str, Any]) -> LedgerEvent:
            ref = ModelRef(namespace=spec.namespace, name=name)
            return LedgerEvent(
                type=kind,
                actor=ACTOR,
                model=ref,
                rollout_id=record.id,
                revision=revision,
                data=data,
            )

        with self._db.begin() as conn:
            self._ledger.append_many(
                conn,
                [
                    event(
                        EventType.TRAFFIC_CHANGE_REQUESTED,
                        m,
                        {"to": revision, "artifact_uri": where(m)[0], "wave": wave, "reason": why},
                    )
                    for m in models
                ],
            )

        def move(m: str) -> str | None:
            uri, runtime = where(m)
            try:
                self._target.move(
                    ModelRef(namespace=spec.namespace, name=m), storage_uri=uri, runtime=runtime
                )
            except (IntegrationError, NotFoundError) as exc:
                return f"{type(exc).__name__}: {exc}"
            return None

        with ThreadPoolExecutor(max_workers=self._concurrency) as pool:
            outcomes = list(pool.map(move, models))
        failed: dict[str, str] = {}
        done: list[LedgerEvent] = []
        for m, error in zip(models, outcomes, strict=True):
            if error is not None:
                failed[m] = error
                done.append(event(EventType.TARGET_ERROR, m, {"error": error, "wave": wave}))
                continue
            split = [{"revision": revision, "weight": 100}]
            data = {"split": split, "step": wave, "artifact_uri": where(m)[0], "reason": why}
            done.append(event(EventType.TRAFFIC_CHANGED, m, data))
        with self._db.begin() as conn:
            self._ledger.append_many(conn, done)
        if failed:
            self._log.warning("fleet.moves.failed", fleet=record.id, failed=len(failed))
        return failed

    def _store_moves(self, record: FleetRecord, failed: Mapping[str, str]) -> FleetRecord:
        """After a wave's upgrade: models that failed to load are sent back and count as
        rolled back; the window since the upgrade starts now (every model is ready)."""
        state = record.state
        phases = dict(state.phases)
        frozen = dict(state.frozen)
        for m in failed:
            phases[m] = ModelPhase.ROLLED_BACK
            frozen[m] = 0.0
        retry = self._move(record, list(failed), to_new=False, why="failed to load the new version")
        ready = self._clock()
        new_state = replace(state, phases=phases, frozen=frozen, wave_ready_at=ready.timestamp())
        new = replace(
            record,
            state=new_state,
            retry_rollbacks=tuple(sorted({*record.retry_rollbacks, *retry})),
            next_look_at=ready + timedelta(seconds=record.spec.look_interval_seconds),
            pending_upgrades=(),
        )
        return self._save(record, new, events=[])

    def _complete_upgrades(self, record: FleetRecord) -> FleetRecord:
        """Finish a wave's moves that a previous process committed to and did not confirm
        (moves are idempotent); the wave's window since the upgrade starts when they are done."""
        wave = record.state.wave + 1
        failed = self._move(
            record, record.pending_upgrades, to_new=True, why=f"wave {wave} (completing moves)"
        )
        return self._store_moves(record, failed)

    # -- looking -------------------------------------------------------------------------
    def tick(self) -> int:
        """Look at every progressing fleet whose next look is due; return how many."""
        now = self._clock()
        with self._db.connect() as conn:
            due = [
                r.id
                for r in conn.execute(
                    select(fleet_rollouts.c.id).where(
                        fleet_rollouts.c.status == FleetStatus.PROGRESSING.value,
                        fleet_rollouts.c.next_look_at <= now,
                    )
                )
            ]
        for fleet_id in due:
            try:
                self.look(fleet_id)
            except ConflictError:
                continue  # another replica looked first
            except Exception:  # one broken fleet must not stop the others' looks
                self._log.exception("fleet.look.failed", fleet=fleet_id)
        return len(due)

    def look(self, fleet_id: str) -> FleetRecord:
        """One look at the fleet's current wave now, and what it decides."""
        record = self.get(fleet_id)
        if record.state.status is not FleetStatus.PROGRESSING:
            return record
        if record.pending_upgrades:
            return self._complete_upgrades(record)
        record = self._retry_rollbacks(record)
        now = self._clock()
        if record.state.gated:
            return self._try_next_wave(record, now)
        state = record.state
        try:
            counts = self._counts(record, now)
            look = progress.wave_look(state, record.waves, counts, now=now.timestamp())
            judgement = judge_wave(
                [m.metric for m in record.spec.metrics],
                record.spec.policy(len(record.waves)),
                look,
            )
        except (IntegrationError, InvalidInputError) as exc:
            # a source that failed, or refused the query: a look that moves nothing
            return self._error_look(record, now, f"metric source: {exc}")
        gate = None
        if judgement.final and judgement.verdict is Verdict.PASS:
            gate = self._next_wave_gates(record, now)
        step = progress.after_look(
            state, record.waves, judgement, now=now.timestamp(),
            next_open=gate is None or gate.open, gate_reason=gate.reason if gate else "",
        )  # fmt: skip
        return self._apply(record, step, judgement, now, gate=gate)

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
            return self._save(record, waiting, events=events)
        step = progress.start_next(
            replace(record.state, gated=False), record.waves, now=now.timestamp(),
            reason=f"wave {record.state.wave + 1} passed, gates open",
        )  # fmt: skip
        new = replace(record, state=step.state, pending_upgrades=step.upgrades)
        new = self._save(record, new, events=events)
        failed = self._move(new, step.upgrades, to_new=True, why=f"wave {new.state.wave + 1}")
        return self._store_moves(new, failed)

    def _counts(self, record: FleetRecord, now: datetime) -> Any:
        state = record.state
        # the wave, and every model that may be a control (the judge picks by the clock)
        models = [m for m, p in state.phases.items() if p is not ModelPhase.ROLLED_BACK]
        models += [m for m in record.waves[state.wave][1] if m not in models]
        return self._source.read(
            [m.query for m in record.spec.metrics],
            namespace=record.spec.namespace,
            models=models,
            before_end=_at(state.wave_started_at),
            after_start=_at(state.wave_ready_at),
            at=now,
        )

    def _apply(
        self,
        record: FleetRecord,
        step: Step,
        judgement: WaveJudgement,
        now: datetime,
        *,
        gate: WaveGateCheck | None = None,
    ) -> FleetRecord:
        wave_no = record.state.wave + 1
        failed_back = self._move(
            record, step.rollbacks, to_new=False, why=f"wave {wave_no}: {judgement.reason}"
        )
        events = [entries.judged_event(record, judgement, now)]
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
        new = self._save(record, new, events=events, look=(judgement, now))
        if step.upgrades:
            failed = self._move(new, step.upgrades, to_new=True, why=f"wave {new.state.wave + 1}")
            new = self._store_moves(new, failed)
        return new

    def _retry_rollbacks(self, record: FleetRecord) -> FleetRecord:
        if not record.retry_rollbacks:
            return record
        still = self._move(record, record.retry_rollbacks, to_new=False, why="retrying a rollback")
        return self._save(record, replace(record, retry_rollbacks=tuple(sorted(still))), events=[])

    def _error_look(self, record: FleetRecord, now: datetime, reason: str) -> FleetRecord:
        """A look without evidence: recorded, nothing moves; past the wave's deadline the fleet
        holds (it never promotes on missing data)."""
        self._log.warning("fleet.look.error", fleet=record.id, reason=reason)
        spec, _ = record.waves[record.state.wave]
        state = record.state
        events: list[LedgerEvent] = []
        if now.timestamp() - state.wave_ready_at >= spec.deadline_seconds:
            held = f"wave {state.wave + 1} held: deadline reached without evidence ({reason})"
            state = replace(state, status=FleetStatus.HELD, reason=held)
            events.append(entries.status_event(record, state, ACTOR))
        with self._db.begin() as conn:
            conn.execute(
                insert(fleet_looks).values(
                    fleet_id=record.id,
                    at=now,
                    wave=record.state.wave,
                    verdict=Verdict.ERROR.value,
                    final=state.status is FleetStatus.HELD,
                    reason=reason,
                    rollbacks="[]",
                    summary="{}",
                )
            )
        new = replace(
            record,
            state=state,
            next_look_at=now + timedelta(seconds=record.spec.look_interval_seconds),
        )
        return self._save(record, new, events=events)

    # -- operators -----------------------------------------------------------------------
    def abort(self, fleet_id: str, *, actor: str, reason: str) -> FleetRecord:
        record = self.get(fleet_id)
        if record.state.status is FleetStatus.ABORTED:
            return record  # aborting twice changes nothing
        if record.state.status.terminal:
            raise ConflictError(f"fleet rollout {fleet_id} is already {record.state.status}")
        step = progress.abort(record.state, reason=f"aborted by {actor}: {reason}")
        failed = self._move(record, step.rollbacks, to_new=False, why=f"aborted by {actor}")
        new = replace(
            record,
            state=step.state,
            retry_rollbacks=tuple(sorted({*record.retry_rollbacks, *failed})),
        )
        return self._save(record, new, events=[entries.status_event(record, step.state, actor)])

    def resume(self, fleet_id: str, *, actor: str, reason: str) -> FleetRecord:
        record = self.get(fleet_id)
        if record.state.status is not FleetStatus.HELD:
            raise ConflictError(f"fleet rollout {fleet_id} is {record.state.status}, not held")
        now = self._clock()
        gate = self._next_wave_gates(record, now)
        step = progress.resume(
            record.state, record.waves, now=now.timestamp(), reason=f"resumed by {actor}: {reason}",
            next_open=gate is None or gate.open, gate_reason=gate.reason if gate else "",
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
        new = self._save(record, new, events=events)
        if step.upgrades:
            failed = self._move(new, step.upgrades, to_new=True, why=f"wave {new.state.wave + 1}")
            new = self._store_moves(new, failed)
        return new

    # -- the record ----------------------------------------------------------------------
    def _save(
        self,
        old: FleetRecord,
        new: FleetRecord,
        *,
        events: Sequence[LedgerEvent],
        look: tuple[WaveJudgement, datetime] | None = None,
    ) -> FleetRecord:
        now = self._clock()
        stored = replace(new, version=old.version + 1, updated_at=now)
        row = to_row(stored)
        with self._db.begin() as conn:
            done = conn.execute(
                update(fleet_rollouts)
                .where(fleet_rollouts.c.id == old.id, fleet_rollouts.c.version == old.version)
                .values(**{k: v for k, v in row.items() if k != "id"})
            )
            if done.rowcount != 1:
                raise ConflictError(f"fleet rollout {old.id} changed under this look")
            if look is not None:
                judgement, at = look
                conn.execute(
                    insert(fleet_looks).values(
                        fleet_id=old.id,
                        at=at,
                        wave=old.state.wave,
                        verdict=judgement.verdict.value,
                        final=judgement.final,
                        reason=judgement.reason,
                        rollbacks=json.dumps(list(judgement.rollbacks)),
                        summary=json.dumps(entries.summary(judgement), sort_keys=True),
                    )
                )
            if events:
                self._ledger.append_many(conn, events)
        return stored
