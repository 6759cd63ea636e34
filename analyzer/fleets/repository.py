"""Rows of ``fleet_rollouts`` and ``fleet_looks`` to and from the fleet's values."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Row, select

from analyzer.domain.errors import NotFoundError
from analyzer.domain.fleet import ModelPhase
from analyzer.fleets.plan import WaveSpec
from analyzer.fleets.progress import FleetState, FleetStatus
from analyzer.fleets.spec import FleetSpec, spec_from_json, spec_to_json, wave_from_json
from analyzer.fleets.tables import fleet_looks, fleet_rollouts

Waves = tuple[tuple[WaveSpec, tuple[str, ...]], ...]


@dataclass(frozen=True, kw_only=True, slots=True)
class OldVersion:
    """What a model served before the fleet moved it (where a rollback sends it)."""

    storage_uri: str
    runtime: str | None


@dataclass(frozen=True, kw_only=True, slots=True)
class FleetRecord:
    id: str
    spec: FleetSpec
    state: FleetState
    waves: Waves
    old: Mapping[str, OldVersion]
    initiator: str
    created_at: datetime
    updated_at: datetime
    next_look_at: datetime | None
    version: int
    # rollbacks the target refused or did not confirm: retried at every look until they land
    retry_rollbacks: tuple[str, ...] = field(default=())
    # a wave's upgrades committed to but not confirmed: a process that died while moving them
    # leaves them here, and the next look completes the moves before judging anything
    pending_upgrades: tuple[str, ...] = field(default=())


def utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def state_to_json(record: FleetRecord) -> dict[str, Any]:
    s = record.state
    return {
        "status": s.status.value,
        "wave": s.wave,
        "wave_started_at": s.wave_started_at,
        "wave_ready_at": s.wave_ready_at,
        "reason": s.reason,
        "gated": s.gated,
        "phases": {m: p.value for m, p in s.phases.items()},
        "frozen": dict(s.frozen),
        "upgraded_at": dict(s.upgraded_at),
        "windows": {str(k): list(w) for k, w in s.windows.items()},
        "last_log_e": dict(s.last_log_e),
        "watch_until": s.watch_until,
        "waves": [list(models) for _, models in record.waves],
        "wave_specs": [_wave_json(w) for w, _ in record.waves],
        "old": {
            m: {"storage_uri": o.storage_uri, "runtime": o.runtime} for m, o in record.old.items()
        },
        "retry_rollbacks": list(record.retry_rollbacks),
        "pending_upgrades": list(record.pending_upgrades),
    }


def _wave_json(w: WaveSpec) -> dict[str, Any]:
    return {
        "percent": w.percent,
        "dwell_seconds": w.dwell_seconds,
        "deadline_seconds": w.deadline_seconds,
        "gates": list(w.gates),
    }


def to_row(record: FleetRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "name": record.spec.name,
        "namespace": record.spec.namespace,
        "status": record.state.status.value,
        "spec": json.dumps(spec_to_json(record.spec), sort_keys=True),
        "state": json.dumps(state_to_json(record), sort_keys=True),
        "initiator": record.initiator,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
        "next_look_at": record.next_look_at,
        "version": record.version,
    }


def from_row(row: Row[Any]) -> FleetRecord:
    m = row._mapping
    data = json.loads(m["state"])
    waves = tuple(
        (wave_from_json(spec), tuple(models))
        for spec, models in zip(data["wave_specs"], data["waves"], strict=True)
    )
    state = FleetState(
        status=FleetStatus(data["status"]),
        wave=int(data["wave"]),
        wave_started_at=float(data["wave_started_at"]),
        wave_ready_at=float(data["wave_ready_at"]),
        phases={k: ModelPhase(v) for k, v in data["phases"].items()},
        frozen={k: float(v) for k, v in data["frozen"].items()},
        upgraded_at={k: float(v) for k, v in data["upgraded_at"].items()},
        reason=data.get("reason", ""),
        gated=bool(data.get("gated", False)),
        # records written before the watch have none of these: their passed waves are not
        # watched, which is what they did when they were written
        windows={int(k): (float(a), float(b)) for k, (a, b) in data.get("windows", {}).items()},
        last_log_e={k: float(v) for k, v in data.get("last_log_e", {}).items()},
        watch_until=data.get("watch_until"),
    )
    return FleetRecord(
        id=m["id"],
        spec=spec_from_json(json.loads(m["spec"])),
        state=state,
        waves=waves,
        old={k: OldVersion(**v) for k, v in data["old"].items()},
        initiator=m["initiator"],
        created_at=utc(m["created_at"]),
        updated_at=utc(m["updated_at"]),
        next_look_at=utc(m["next_look_at"]) if m["next_look_at"] is not None else None,
        version=int(m["version"]),
        retry_rollbacks=tuple(data.get("retry_rollbacks", ())),
        pending_upgrades=tuple(data.get("pending_upgrades", ())),
    )


def load(conn: Connection, fleet_id: str) -> FleetRecord:
    row = conn.execute(select(fleet_rollouts).where(fleet_rollouts.c.id == fleet_id)).first()
    if row is None:
        raise NotFoundError(f"fleet rollout {fleet_id} not found")
    return from_row(row)


@dataclass(frozen=True, kw_only=True, slots=True)
class LookRecord:
    id: int
    at: datetime
    wave: int
    verdict: str
    final: bool
    reason: str
    rollbacks: tuple[str, ...]
    summary: dict[str, Any]


def look_from_row(row: Row[Any]) -> LookRecord:
    m = row._mapping
    return LookRecord(
        id=int(m["id"]),
        at=utc(m["at"]),
        wave=int(m["wave"]),
        verdict=m["verdict"],
        final=bool(m["final"]),
        reason=m["reason"],
        rollbacks=tuple(json.loads(m["rollbacks"])),
        summary=json.loads(m["summary"]),
    )


def looks_of(conn: Connection, fleet_id: str, *, limit: int = 500) -> list[LookRecord]:
    rows = conn.execute(
        select(fleet_looks)
        .where(fleet_looks.c.fleet_id == fleet_id)
        .order_by(fleet_looks.c.id)
        .limit(limit)
    )
    return [look_from_row(r) for r in rows]
