"""Appending to and reading from the ledger through SQLAlchemy connections.

Appends take a :class:`~sqlalchemy.Connection` inside the caller's transaction, so a state change
and the ledger entries that record it commit (or roll back) together. The head row is locked for
the rest of that transaction (``SELECT … FOR UPDATE`` on PostgreSQL, ``BEGIN IMMEDIATE`` on
SQLite), so concurrent writers in any number of processes produce one chain, never a fork.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Row,
    and_,
    bindparam,
    func,
    insert,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.sql.dml import UpdateBase

from analyzer.domain.errors import InvalidInputError, LedgerHeadMissingError
from analyzer.domain.events import EventType, LedgerEvent
from analyzer.domain.model import ModelRef
from analyzer.driver_sql import DriverStatement
from analyzer.ledger.chain import (
    EntryRecord,
    PreparedEvent,
    VerifyReport,
    build_entry,
    columns_of,
    prepare,
    verify_chain,
)
from analyzer.ledger.compact import expand_all
from analyzer.ledger.tables import ledger_entries, ledger_head

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def _as_utc(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything stored is UTC.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _record(row: Row[Any]) -> EntryRecord:
    m = row._mapping
    return EntryRecord(
        seq=m["seq"],
        recorded_at=_as_utc(m["recorded_at"]),
        event_type=m["event_type"],
        schema_version=m["schema_version"],
        actor=m["actor"],
        model=m["model"],
        rollout_id=m["rollout_id"],
        revision=m["revision"],
        payload=m["payload"],
        prev_hash=m["prev_hash"],
        hash=m["hash"],
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class Page:
    entries: tuple[EntryRecord, ...]
    next_cursor: str | None


@dataclass(frozen=True, kw_only=True, slots=True)
class ServingRevision:
    revision: str
    weight: float
    artifact_uri: str | None
    step: int | None
    model_version: str | None = None  # registry version, as registered with the revision
    artifact_digest: str | None = None


def _serving_revision(
    revision: str, weight: float, step: int | None, registration: Mapping[str, Any] | None
) -> ServingRevision:
    """A serving revision with what its latest registration recorded (nothing if none)."""
    found = registration or {}
    return ServingRevision(
        revision=revision,
        weight=weight,
        artifact_uri=found.get("artifact_uri"),
        step=step,
        model_version=found.get("model_version"),
        artifact_digest=found.get("artifact_digest"),
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class ServingAnswer:
    """Which revisions served a model at an instant, and the entry that put them there."""

    model: str
    at: datetime
    revisions: tuple[ServingRevision, ...]
    traffic_entry: EntryRecord | None
    approvals: tuple[EntryRecord, ...]
    registrations: tuple[EntryRecord, ...]
    # The latest promotion of each serving revision before the change (a baseline's provenance:
    # the rollout that made it the stable revision), in the order of ``revisions``.
    promotions: tuple[EntryRecord, ...] = ()


def encode_cursor(recorded_at: datetime, seq: int) -> str:
    raw = json.dumps([recorded_at.isoformat(), seq]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        moment, seq = json.loads(base64.urlsafe_b64decode(padded))
        position = _as_utc(datetime.fromisoformat(moment)), int(seq)
    except (ValueError, TypeError, OverflowError) as exc:  # overflow: a year past 9999 in UTC
        raise InvalidInputError("not a cursor returned by this API", field="cursor") from exc
    if not 0 <= position[1] < 2**63:  # a BIGINT column: anything else is a database error
        raise InvalidInputError("not a cursor returned by this API", field="cursor")
    return position


class Ledger:
    """The audit ledger on one database. The clock is injected so tests control time."""

    def __init__(self, engine: Engine, *, clock: Clock = utc_now) -> None:
        self._engine = engine
        self._clock = clock

    @property
    def engine(self) -> Engine:
        return self._engine

    def append(self, conn: Connection, event: LedgerEvent) -> EntryRecord:
        """Append one event inside the caller's transaction on ``conn``."""
        return self.append_many(conn, [event])[0]

    def append_many(self, conn: Connection, events: Sequence[LedgerEvent]) -> list[EntryRecord]:
        """Append events in order inside the caller's transaction; one head update for all.

        Their JSON is rendered before the head is locked (``chain.prepare``): under the lock
        only the seq and time are joined in and each entry hashed."""
        records = self._chained(conn, [prepare(event) for event in events])
        if records:
            conn.execute(ledger_entries.insert(), [_row_values(r) for r in records])
            conn.execute(_HEAD_MOVE, _head_values(records[-1]))
        return records

    def append_with(
        self,
        conn: Connection,
        event: LedgerEvent,
        statement: UpdateBase,
        parameters: Callable[[EntryRecord], Mapping[str, Any]],
    ) -> EntryRecord:
        """Append ``event`` and execute ``statement`` with ``parameters(entry)`` (the state
        change it records, which may name the entry's seq) in the caller's transaction: on
        PostgreSQL in **one** round trip after the head's lock (the entry's insert and the
        head's move as data-modifying CTEs of ``statement``), elsewhere one after the other.
        ``statement``'s parameters must be bound by name (``bindparam``)."""
        prepared = prepare(event)  # rendered before the head is locked, as in append_many
        (record,) = self._chained(conn, [prepared])
        own = dict(parameters(record))
        entry = {f"entry_{key}": value for key, value in _row_values(record).items()}
        if conn.dialect.name == "postgresql":
            _with_append(statement).run(conn, {**own, **entry, **_head_values(record)})
        else:
            conn.execute(_APPEND_ONE, entry)
            conn.execute(_HEAD_MOVE, _head_values(record))
            conn.execute(statement, own)
        return record

    def _chained(self, conn: Connection, prepared: Sequence[PreparedEvent]) -> list[EntryRecord]:
        """The entries for ``prepared``, chained after the head, which is now locked."""
        head = _HEAD_LOCK.first(conn, {})
        if head is None:
            raise LedgerHeadMissingError()
        seq, prev_hash = int(head.seq), str(head.hash)
        now = self._clock()
        records: list[EntryRecord] = []
        for event in prepared:
            record = build_entry(prev_seq=seq, prev_hash=prev_hash, event=event, recorded_at=now)
            records.append(record)
            seq, prev_hash = record.seq, record.hash
        return records

    def record(self, event: LedgerEvent) -> EntryRecord:
        """Append one event in a transaction of its own."""
        with self._engine.begin() as conn:
            return self.append(conn, event)

    def head(self) -> tuple[int, str]:
        """The stored head (seq, hash); ``LedgerHeadMissingError`` when its row is gone."""
        with self._engine.connect() as conn:
            row = conn.execute(
                select(ledger_head.c.seq, ledger_head.c.hash).where(ledger_head.c.id == 1)
            ).first()
        if row is None:
            raise LedgerHeadMissingError()
        return int(row.seq), str(row.hash)

    def entry(self, seq: int) -> EntryRecord | None:
        """The entry at ``seq`` as stored (unverified), or None when there is none."""
        with self._engine.connect() as conn:
            row = conn.execute(select(ledger_entries).where(ledger_entries.c.seq == seq)).first()
        return self.expanded([_record(row)])[0] if row is not None else None

    def expanded(self, entries: Sequence[EntryRecord]) -> list[EntryRecord]:
        """``entries`` with their compact looks expanded (``ledger/compact.py``): bases not
        among them are read in one query."""
        return expand_all(entries, self._entries_at)

    def _entries_at(self, seqs: Sequence[int]) -> list[EntryRecord]:
        with self._engine.connect() as conn:
            rows = conn.execute(select(ledger_entries).where(ledger_entries.c.seq.in_(seqs)))
            return [_record(row) for row in rows]

    def stored_hashes(self, seqs: Sequence[int]) -> dict[int, str]:
        """The stored (unverified) hash of each entry in ``seqs`` that exists, by seq."""
        found: dict[int, str] = {}
        t = ledger_entries.c
        with self._engine.connect() as conn:
            for start in range(0, len(seqs), 1000):
                chunk = list(seqs[start : start + 1000])
                found.update(
                    (int(row.seq), str(row.hash))
                    for row in conn.execute(select(t.seq, t.hash).where(t.seq.in_(chunk)))
                )
        return found

    def last_stored_seq(self) -> int:
        """The highest seq in the table (0 when empty), whatever the head says."""
        with self._engine.connect() as conn:
            last = conn.execute(select(func.max(ledger_entries.c.seq))).scalar()
        return int(last or 0)

    def iter_entries(
        self, batch: int = 5000, *, after: int = 0, up_to: int | None = None
    ) -> Iterator[EntryRecord]:
        """Entries after seq ``after`` (up to ``up_to``) in seq order, in keyset-paged batches."""
        last = after
        bound = ledger_entries.c.seq <= up_to if up_to is not None else true()
        while True:
            with self._engine.connect() as conn:
                rows = conn.execute(
                    select(ledger_entries)
                    .where(ledger_entries.c.seq > last, bound)
                    .order_by(ledger_entries.c.seq)
                    .limit(batch)
                ).all()
            if not rows:
                return
            for row in rows:
                yield _record(row)
            last = rows[-1].seq

    def verify(self, *, after: tuple[int, str] | None = None) -> VerifyReport:
        """Recompute the chain up to the head as read first; the service may go on appending.

        ``after``: the (seq, hash) of an entry verified before, to check only what follows it
        (``ChainWatch``); by default the whole chain from genesis.

        Entries appended while this runs are left for the next verification (scanning them
        against the older head would report a chain that "ends after its head" on any live
        ledger). Then nothing may lie beyond the head as it is at the end: only an append moves
        the head, so a row past it was written some other way.
        """
        try:
            head = self.head()
        except LedgerHeadMissingError as exc:
            return self._verify_headless(str(exc), after)
        entries = self.iter_entries(after=after[0] if after else 0, up_to=head[0])
        report = verify_chain(entries, head=head, start=after)
        if not report.intact:
            return report
        t = ledger_entries.c
        with self._engine.connect() as conn:  # one statement: one snapshot of both
            found = conn.execute(
                select(ledger_head.c.seq, select(func.max(t.seq)).scalar_subquery()).where(
                    ledger_head.c.id == 1
                )
            ).first()
        if found is None:
            return self._verify_headless(str(LedgerHeadMissingError()), after)
        now_head, last = found
        if last is not None and int(last) > int(now_head):
            return replace(
                report,
                first_bad_seq=int(now_head) + 1,
                problem=f"entries after the stored head (seq {now_head}) up to seq {last} were "
                "not written by an append",
            )
        return report

    def _verify_headless(self, problem: str, after: tuple[int, str] | None) -> VerifyReport:
        """Without the head row the links can still be checked, but not that the tail is whole:
        the report is broken just past the last entry that links (or where a link breaks)."""
        report = verify_chain(self.iter_entries(after=after[0] if after else 0), start=after)
        if not report.intact:
            return replace(report, problem=f"{report.problem}; also, {problem}")
        return replace(report, first_bad_seq=report.head_seq + 1, problem=problem)

    def each_event(self, **query: Any) -> Iterator[EntryRecord]:
        """Every entry :meth:`events` selects with ``query`` (its filters), in time order, read
        in pages of 1000 as they are consumed."""
        cursor: str | None = None
        while True:
            page = self.events(cursor=cursor, limit=1000, **query)
            yield from page.entries
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def events(
        self,
        *,
        model: ModelRef | None = None,
        rollout_id: str | None = None,
        event_types: Sequence[EventType] = (),
        actor: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        cursor: str | None = None,
        limit: int = 100,
        newest_first: bool = False,
    ) -> Page:
        """Entries in time order (then seq), filtered, one keyset page at a time.

        ``newest_first`` walks backwards from ``until`` (or the head); a cursor then continues
        towards older entries. ``actor`` matches the recorded actor exactly.
        """
        if not 1 <= limit <= 1000:
            raise InvalidInputError("limit must be between 1 and 1000", field="limit")
        t = ledger_entries.c
        conditions = []
        if model is not None:
            conditions.append(t.model == str(model))
        if rollout_id is not None:
            conditions.append(t.rollout_id == rollout_id)
        if event_types:
            conditions.append(t.event_type.in_([e.value for e in event_types]))
        if actor is not None:
            conditions.append(t.actor == actor)
        if since is not None:
            conditions.append(t.recorded_at >= _as_utc(since))
        if until is not None:
            conditions.append(t.recorded_at < _as_utc(until))
        if cursor is not None:
            conditions.append(_beyond(decode_cursor(cursor), newest_first=newest_first))
        order = (t.recorded_at.desc(), t.seq.desc()) if newest_first else (t.recorded_at, t.seq)
        query = (
            select(ledger_entries)
            .where(and_(true(), *conditions))
            .order_by(*order)
            .limit(limit + 1)
        )
        with self._engine.connect() as conn:
            rows = [_record(r) for r in conn.execute(query)]
        more = len(rows) > limit
        rows = self.expanded(rows[:limit])
        next_cursor = encode_cursor(rows[-1].recorded_at, rows[-1].seq) if more else None
        return Page(entries=tuple(rows), next_cursor=next_cursor)

    def serving_at(self, model: ModelRef, at: datetime) -> ServingAnswer:
        """Which revisions served ``model`` at ``at``: one index seek for the latest split."""
        t = ledger_entries.c
        at = _as_utc(at)
        with self._engine.connect() as conn:
            row = conn.execute(
                select(ledger_entries)
                .where(
                    t.model == str(model),
                    t.event_type == EventType.TRAFFIC_CHANGED.value,
                    t.recorded_at <= at,
                )
                .order_by(t.recorded_at.desc(), t.seq.desc())
                .limit(1)
            ).first()
            if row is None:
                return ServingAnswer(
                    model=str(model),
                    at=at,
                    revisions=(),
                    traffic_entry=None,
                    approvals=(),
                    registrations=(),
                )
            entry = _record(row)
            split = entry.data().get("split", [])
            names = [s["revision"] for s in split if s.get("weight", 0) > 0]
            registrations, approvals, promotions = self._context_of(conn, model, names, entry)
        registered = {r.revision: r.data() for r in registrations}
        step = entry.data().get("step")
        revisions = tuple(
            _serving_revision(
                s["revision"], float(s["weight"]), step, registered.get(s["revision"])
            )
            for s in split
            if s.get("weight", 0) > 0
        )
        return ServingAnswer(
            model=str(model),
            at=at,
            revisions=revisions,
            traffic_entry=entry,
            approvals=approvals,
            registrations=registrations,
            promotions=promotions,
        )

    def mirror_at(self, model: ModelRef, at: datetime) -> EntryRecord | None:
        """The shadow mirror in force for ``model`` at ``at`` (its latest ``mirror_changed``
        entry, when that one still copies requests), or None. A mirrored revision never
        served: this is reported beside ``serving_at``, never inside it."""
        t = ledger_entries.c
        with self._engine.connect() as conn:
            row = conn.execute(
                select(ledger_entries)
                .where(
                    t.model == str(model),
                    t.event_type == EventType.MIRROR_CHANGED.value,
                    t.recorded_at <= _as_utc(at),
                )
                .order_by(t.recorded_at.desc(), t.seq.desc())
                .limit(1)
            ).first()
        if row is None:
            return None
        entry = _record(row)
        return entry if entry.data().get("mirror_percent") else None

    @staticmethod
    def _context_of(
        conn: Connection, model: ModelRef, revisions: Sequence[str], traffic: EntryRecord
    ) -> tuple[tuple[EntryRecord, ...], tuple[EntryRecord, ...], tuple[EntryRecord, ...]]:
        """In one query: the latest registration and promotion of each serving revision, and
        the approvals and gate checks of the rollout that made this traffic change, all before
        it."""
        t = ledger_entries.c
        provenance = [EventType.REVISION_REGISTERED.value, EventType.ROLLOUT_PROMOTED.value]
        wanted = []
        if revisions:
            wanted.append(
                and_(
                    t.model == str(model),
                    t.revision.in_(list(revisions)),
                    t.event_type.in_(provenance),
                )
            )
        if traffic.rollout_id is not None:
            approvals = [EventType.APPROVAL_GIVEN.value, EventType.GATE_CHECKED.value]
            wanted.append(and_(t.rollout_id == traffic.rollout_id, t.event_type.in_(approvals)))
        if not wanted:
            return (), (), ()
        rows = [
            _record(r)
            for r in conn.execute(
                # A promotion is recorded with (just after) its own traffic change: seq <= it.
                select(ledger_entries)
                .where(t.seq <= traffic.seq + _PROMOTION_AFTER, or_(*wanted))
                .order_by(t.seq)
            )
        ]
        latest: dict[str, dict[str, EntryRecord]] = {kind: {} for kind in provenance}
        for r in rows:
            mine = r.event_type in latest and r.model == str(model) and r.revision is not None
            if mine and (r.seq < traffic.seq or _promoted_by(r, traffic)):
                latest[r.event_type][r.revision or ""] = r
        registered = latest[EventType.REVISION_REGISTERED.value]
        promoted = latest[EventType.ROLLOUT_PROMOTED.value]
        others = tuple(
            r
            for r in rows
            if r.event_type not in latest
            and r.rollout_id == traffic.rollout_id
            and r.seq < traffic.seq
        )
        return (
            tuple(registered[name] for name in revisions if name in registered),
            others,
            tuple(promoted[name] for name in revisions if name in promoted),
        )


# How far after a traffic change its own promotion entry may be (same transaction, a few entries).
_PROMOTION_AFTER = 8


def _promoted_by(entry: EntryRecord, traffic: EntryRecord) -> bool:
    """``entry`` is the promotion recorded with ``traffic`` (same rollout, same instant)."""
    return (
        entry.event_type == EventType.ROLLOUT_PROMOTED.value
        and entry.rollout_id == traffic.rollout_id
        and entry.recorded_at == traffic.recorded_at
    )


def _beyond(position: tuple[datetime, int], *, newest_first: bool) -> ColumnElement[bool]:
    """Entries strictly after ``position`` in the page order (keyset paging)."""
    t = ledger_entries.c
    moment, seq = position
    if newest_first:
        return or_(t.recorded_at < moment, and_(t.recorded_at == moment, t.seq < seq))
    return or_(t.recorded_at > moment, and_(t.recorded_at == moment, t.seq > seq))


# Built once: an append's statements differ only in their parameters (building them per call
# was a third of a fresh Argo look's ledger CPU, issue 20).
_HEAD_LOCK = DriverStatement(
    select(ledger_head.c.seq, ledger_head.c.hash).where(ledger_head.c.id == 1).with_for_update()
)
_HEAD_MOVE = (
    update(ledger_head)
    .where(ledger_head.c.id == 1)
    .values(seq=bindparam("head_seq"), hash=bindparam("head_hash"))
)
_APPEND_ONE = insert(ledger_entries).values(
    {column.name: bindparam(f"entry_{column.name}") for column in ledger_entries.c}
)
_WITH_APPEND: dict[int, tuple[UpdateBase, DriverStatement]] = {}


def _with_append(statement: UpdateBase) -> DriverStatement:
    """``statement`` with the entry's insert and the head's move as data-modifying CTEs
    (PostgreSQL runs all three in one statement, in one snapshot: they touch different rows).
    Cached per statement (the callers' are module constants), so it is compiled once."""
    hit = _WITH_APPEND.get(id(statement))
    if hit is None or hit[0] is not statement:
        combined = statement.add_cte(_APPEND_ONE.cte("appended")).add_cte(
            _HEAD_MOVE.cte("head_moved")
        )
        hit = _WITH_APPEND[id(statement)] = (statement, DriverStatement(combined))
    return hit[1]


def _head_values(record: EntryRecord) -> dict[str, Any]:
    return {"head_seq": record.seq, "head_hash": record.hash}


def _row_values(record: EntryRecord) -> dict[str, Any]:
    hashed = {"payload": record.payload, "prev_hash": record.prev_hash, "hash": record.hash}
    return columns_of(record) | hashed
