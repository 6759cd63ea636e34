"""The fleet rollouts' rows: read them, insert a new one, and store a look's outcome guarded by
the record's version (a replica that lost the race changes nothing), with its ledger entries in
the same transaction."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from analyzer.domain.errors import ConflictError
from analyzer.domain.events import EventType, LedgerEvent
from analyzer.domain.verdict import Verdict
from analyzer.fleets.history import HISTORY_EVENTS, RecordedEntry
from analyzer.fleets.judge import WaveJudgement
from analyzer.fleets.progress import FleetStatus
from analyzer.fleets.repository import FleetRecord, LookRecord, from_row, load, looks_of, to_row
from analyzer.fleets.spec import FleetSpec
from analyzer.fleets.tables import ACTIVE_STATUSES, fleet_looks, fleet_rollouts
from analyzer.ledger.chain import EntryRecord
from analyzer.ledger.store import Ledger


class FleetStore:
    def __init__(self, *, db: Engine, ledger: Ledger, clock: Callable[[], datetime]) -> None:
        self._db = db
        self._ledger = ledger
        self._clock = clock

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

    def history_entries(self, fleet_id: str) -> list[RecordedEntry]:
        """The fleet's ledger entries that say why its models went back (``history.py``)."""
        return [
            _recorded(e)
            for e in self._ledger.each_event(rollout_id=fleet_id, event_types=HISTORY_EVENTS)
        ]

    def due(self, now: datetime) -> list[str]:
        """The progressing fleets whose next look is due."""
        with self._db.connect() as conn:
            return [
                r.id
                for r in conn.execute(
                    select(fleet_rollouts.c.id).where(
                        fleet_rollouts.c.status == FleetStatus.PROGRESSING.value,
                        fleet_rollouts.c.next_look_at <= now,
                    )
                )
            ]

    def refuse_overlap(self, spec: FleetSpec, models: Sequence[str]) -> None:
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

    def insert(self, record: FleetRecord, events: Sequence[LedgerEvent]) -> None:
        try:
            with self._db.begin() as conn:
                conn.execute(insert(fleet_rollouts).values(**to_row(record)))
                self._ledger.append_many(conn, events)
        except IntegrityError as exc:  # uq_fleet_rollouts_one_active
            spec = record.spec
            raise ConflictError(
                f"fleet {spec.namespace}/{spec.name} already has an active rollout"
            ) from exc

    def append(self, events: Sequence[LedgerEvent]) -> None:
        """Ledger entries alone, in their own transaction (a move's intents or outcomes)."""
        with self._db.begin() as conn:
            self._ledger.append_many(conn, events)

    def save(
        self,
        old: FleetRecord,
        new: FleetRecord,
        *,
        events: Sequence[LedgerEvent],
        look: tuple[WaveJudgement, datetime, dict[str, Any]] | None = None,
    ) -> FleetRecord:
        """Store ``new`` over ``old`` (``ConflictError`` if another replica stored first), the
        look (its judgement, time and summary) and the ledger entries, in one transaction."""
        stored = replace(new, version=old.version + 1, updated_at=self._clock())
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
                judgement, at, summary = look
                conn.execute(
                    insert(fleet_looks).values(
                        fleet_id=old.id, at=at, wave=old.state.wave,
                        verdict=judgement.verdict.value, final=judgement.final,
                        reason=judgement.reason, rollbacks=json.dumps(list(summary["rollbacks"])),
                        summary=json.dumps(summary, sort_keys=True),
                    )
                )  # fmt: skip
            if events:
                self._ledger.append_many(conn, events)
        return stored

    def error_look(self, record: FleetRecord, at: datetime, *, final: bool, reason: str) -> None:
        """A look without evidence (the source failed): recorded, nothing judged."""
        with self._db.begin() as conn:
            conn.execute(
                insert(fleet_looks).values(
                    fleet_id=record.id, at=at, wave=record.state.wave,
                    verdict=Verdict.ERROR.value, final=final, reason=reason, rollbacks="[]",
                    summary="{}",
                )
            )  # fmt: skip


def _recorded(entry: EntryRecord) -> RecordedEntry:
    return RecordedEntry(
        seq=entry.seq, at=entry.recorded_at, type=EventType(entry.event_type), actor=entry.actor,
        model=entry.model.partition("/")[2] if entry.model else None, revision=entry.revision,
        data=entry.data(),
    )  # fmt: skip
