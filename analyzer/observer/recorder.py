"""``ObservedTrafficRecorder``: one watched object's observation → at most one ledger entry.

Each observation is recorded in one transaction:

1. lock the object's row in ``observed_objects`` (inserting it first if new, ``ON CONFLICT DO
   NOTHING`` so two replicas never both insert);
2. drop the observation if the row already holds this object (same uid) at the same or a newer
   ``resourceVersion``: a replay after a relist, a second replica's copy, or an event older than
   one already recorded (resourceVersions are compared as integers when both are, as etcd
   issues them; otherwise only equality counts); a deletion a relist found (it carries the
   object's last known version) counts once;
3. register the revisions it names that the ledger does not know yet (``revision_registered``,
   ``source: observed``, with the artifact: KServe's ``storageUri``, Argo's container image);
4. compare its split (revisions serving more than 0 %) with the model's latest
   ``traffic_changed`` entry, whoever wrote it: if equal (the engine already recorded it, or a
   change that did not move traffic), nothing is appended; otherwise append a
   ``traffic_changed`` entry with ``source: observed``;
5. update the row — all in the transaction that holds the ledger append.

An object whose status shows no split yet (never reconciled) is not recorded; a ``DELETED``
object is recorded as serving nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from analyzer.analyses.tables import analysis_sessions
from analyzer.domain.events import EventType, LedgerEvent
from analyzer.domain.model import ModelRef
from analyzer.ledger.chain import EntryRecord
from analyzer.ledger.store import Clock, Ledger, utc_now
from analyzer.ledger.tables import ledger_entries
from analyzer.observer.tables import observed_objects
from analyzer.rollouts.tables import ACTIVE_STATES, rollouts
from analyzer.targets.observed import ObservedSplit

ACTOR_PREFIX = "observed:"


class Outcome(StrEnum):
    RECORDED = "recorded"  # a traffic_changed entry was appended
    UNCHANGED = "unchanged"  # the split equals the model's latest traffic_changed
    REPLAYED = "replayed"  # this resourceVersion (or a newer one) was already recorded
    NO_SPLIT = "no_split"  # the object reports no split yet


@dataclass(frozen=True, kw_only=True, slots=True)
class Recorded:
    outcome: Outcome
    entries: tuple[EntryRecord, ...] = ()


def _newer_or_same(stored: str, seen: str) -> bool:
    if stored.isdigit() and seen.isdigit():
        return int(stored) >= int(seen)
    return stored == seen


def _already_recorded(row: Any, seen: ObservedSplit) -> bool:
    """The row holds this object at this version or later. A deletion found by a relist
    carries the object's last known version, so it counts only if the row is not deleted yet."""
    if row is None or row.uid != seen.uid:
        return False
    if seen.deleted and not row.deleted:
        return False
    return _newer_or_same(row.resource_version, seen.resource_version)


def _ref(model: str) -> ModelRef:
    namespace, _, name = model.partition("/")
    return ModelRef(namespace=namespace, name=name)


class ObservedTrafficRecorder:
    """Writes observations to the ledger exactly once (see the module docstring)."""

    def __init__(self, engine: Engine, ledger: Ledger, *, clock: Clock = utc_now) -> None:
        self._engine = engine
        self._ledger = ledger
        self._clock = clock

    def record(self, seen: ObservedSplit, *, received_at: datetime | None = None) -> Recorded:
        if not seen.deleted and not seen.shares:
            return Recorded(outcome=Outcome.NO_SPLIT)
        with self._engine.begin() as conn:
            row = self._lock_row(conn, seen)
            if _already_recorded(row, seen):
                return Recorded(outcome=Outcome.REPLAYED)
            events = self._registrations(conn, seen)
            latest = self._latest_split(conn, seen.model)
            if latest != seen.split_map() or (seen.deleted and latest is None):
                events.append(self._traffic_event(conn, seen, received_at))
            entries = self._ledger.append_many(conn, events) if events else []
            self._store_row(conn, seen)
        changed = any(e.event_type == EventType.TRAFFIC_CHANGED.value for e in entries)
        outcome = Outcome.RECORDED if changed else Outcome.UNCHANGED
        return Recorded(outcome=outcome, entries=tuple(entries))

    # -- the row ------------------------------------------------------------------------
    def _key(self, seen: ObservedSplit) -> Any:
        t = observed_objects.c
        return (t.kind == seen.kind) & (t.namespace == seen.namespace) & (t.name == seen.name)

    def _lock_row(self, conn: Connection, seen: ObservedSplit) -> Any:
        query = select(observed_objects).where(self._key(seen)).with_for_update()
        row = conn.execute(query).first()
        if row is not None:
            return row
        values = self._row_values(seen) | {"resource_version": "", "uid": ""}
        conn.execute(_insert_ignoring_conflict(conn, values))
        row = conn.execute(query).one()
        return None if row.uid == "" else row

    def _row_values(self, seen: ObservedSplit) -> dict[str, Any]:
        return {
            "kind": seen.kind, "namespace": seen.namespace, "name": seen.name, "uid": seen.uid,
            "resource_version": seen.resource_version, "generation": seen.generation,
            "model": seen.model, "split": json.dumps(seen.split_map(), sort_keys=True),
            "deleted": int(seen.deleted), "updated_at": self._clock(),
        }  # fmt: skip

    def _store_row(self, conn: Connection, seen: ObservedSplit) -> None:
        conn.execute(update(observed_objects).where(self._key(seen)).values(self._row_values(seen)))

    # -- what the ledger already says ---------------------------------------------------
    @staticmethod
    def _latest_split(conn: Connection, model: str) -> dict[str, int] | None:
        t = ledger_entries.c
        row = conn.execute(
            select(ledger_entries.c.payload)
            .where(t.model == model, t.event_type == EventType.TRAFFIC_CHANGED.value)
            .order_by(t.recorded_at.desc(), t.seq.desc())
            .limit(1)
        ).first()
        if row is None:
            return None
        split = json.loads(row.payload).get("data", {}).get("split", [])
        return {str(s["revision"]): int(s["weight"]) for s in split if s.get("weight", 0) > 0}

    def _registrations(self, conn: Connection, seen: ObservedSplit) -> list[LedgerEvent]:
        t = ledger_entries.c
        events = []
        for revision in seen.revisions:
            known = conn.execute(
                select(t.seq)
                .where(
                    t.model == seen.model,
                    t.revision == revision.revision,
                    t.event_type == EventType.REVISION_REGISTERED.value,
                )
                .limit(1)
            ).first()
            if known is None:
                events.append(
                    LedgerEvent(
                        type=EventType.REVISION_REGISTERED, actor=ACTOR_PREFIX + "cluster",
                        model=_ref(seen.model), revision=revision.revision,
                        data={"artifact_uri": revision.artifact_uri, "source": "observed",
                              "kind": seen.kind, "uid": seen.uid,
                              "resource_version": seen.resource_version},
                    )
                )  # fmt: skip
        return events

    # -- the entry ----------------------------------------------------------------------
    def _traffic_event(
        self, conn: Connection, seen: ObservedSplit, received_at: datetime | None
    ) -> LedgerEvent:
        rollout_id = self._active_rollout(conn, seen.model)
        session = self._analysis_session(conn, seen)
        split = [{"revision": r, "weight": w} for r, w in seen.split_map().items()]
        links: dict[str, Any] = {"rollout": rollout_id}
        if session is not None:
            links |= {"analysis_session": int(session.id), "analysis_verdict": session.last_verdict,
                      "analysis_looks": int(session.looks)}  # fmt: skip
        data = {
            "source": "observed", "split": split, "step": seen.step,
            "canary_weight": seen.canary_weight, "cause": _cause(seen),
            "kind": seen.kind, "namespace": seen.namespace, "name": seen.name,
            "uid": seen.uid, "generation": seen.generation,
            "resource_version": seen.resource_version,
            "stable_revision": seen.stable_revision, "canary_revision": seen.canary_revision,
            "phase": seen.phase, "owner": seen.owner, "owner_manager": seen.owner_manager,
            "requested_by": seen.requested_by,
            "changed_at": seen.changed_at.isoformat() if seen.changed_at else None,
            "received_at": received_at.isoformat() if received_at else None,
            "links": links,
        }  # fmt: skip
        return LedgerEvent(
            type=EventType.TRAFFIC_CHANGED,
            actor=ACTOR_PREFIX + (seen.owner_manager or seen.owner),
            model=_ref(seen.model),
            rollout_id=rollout_id,
            revision=seen.canary_revision or seen.stable_revision,
            data=data,
        )

    @staticmethod
    def _active_rollout(conn: Connection, model: str) -> str | None:
        t = rollouts.c
        found = conn.execute(
            select(t.id).where(t.model == model, t.state.in_(ACTIVE_STATES)).limit(1)
        ).first()
        return str(found.id) if found is not None else None

    @staticmethod
    def _analysis_session(conn: Connection, seen: ObservedSplit) -> Any:
        """The latest session judging this canary against this baseline (after a promotion:
        the one that judged the now-stable revision as canary)."""
        t = analysis_sessions.c
        namespace, _, name = seen.model.partition("/")
        canary = seen.canary_revision or seen.stable_revision
        if canary is None:
            return None
        query = select(analysis_sessions).where(
            t.namespace == namespace, t.model == name, t.canary == canary
        )
        if seen.canary_revision is not None and seen.stable_revision is not None:
            query = query.where(t.baseline == seen.stable_revision)
        return conn.execute(query.order_by(t.updated_at.desc()).limit(1)).first()


def _cause(seen: ObservedSplit) -> str:
    if seen.deleted:
        return f"{seen.kind} deleted: serves nothing"
    if seen.aborted:
        return f"aborted ({seen.phase}): canary at {seen.canary_weight}%"
    if seen.canary_revision is None:
        return "stable only"
    return f"canary at {seen.canary_weight}%"


def _insert_ignoring_conflict(conn: Connection, values: dict[str, Any]) -> Any:
    dialect = conn.dialect.name
    if dialect == "postgresql":
        return postgresql.insert(observed_objects).values(values).on_conflict_do_nothing()
    if dialect == "sqlite":
        return sqlite.insert(observed_objects).values(values).on_conflict_do_nothing()
    return insert(observed_objects).values(values)
