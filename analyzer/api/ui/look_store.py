"""A rollout's entries for its page, with what each look says kept in the database.

A rollout of 500 looks holds ~2 MB of judge results, of which the pictures read a dozen numbers
per look. Reading and decoding all of it on every request of a page nobody had opened since the
process started was most of that page's cost (docs/ui.md, *Speed*). So what each look says — its
:class:`~analyzer.api.ui.charts.LookParts` and the timeline's one-line summary — is kept in
``ui_look_summaries`` (``tables.py``), and the page's one query reads, for each look that has a
usable row, that row instead of the payload.

Why a row can be trusted as much as the entry:

* it is made from a payload only when ``sha256(prev_hash ‖ payload)`` is the entry's hash — for
  a compact look (``ledger/compact.py``), its base's payload too — so it says what the hashed
  entry says, never what a row rewritten in place says;
* it is used only while the entry's stored hash, and a compact look's base's, are still the
  ones it was made from (checked in the query), and only by the code that made it
  (:data:`VERSION`);
* it is derived data: :func:`check_stored` re-derives every row from its entry and names the
  rows that differ (the verify page runs it), so a row edited in the database is found like an
  edited entry is.

The charts drawn from a rollout's looks alone are kept the same way in ``ui_look_charts``, under
the :func:`digest` of the (seq, hash) of every look they were drawn from, only when every one
of those looks was proven as above (``pictures.py`` draws, keeps and checks them). They are kept
as data, not markup: a page escapes them as it escapes any recorded text.

The evidence pack never reads it: the pack decodes every payload it carries.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC
from typing import Any

import msgspec
from sqlalchemy import Connection, Engine, and_, case, insert, literal, or_, select, true
from sqlalchemy.dialects import postgresql, sqlite

from analyzer.api.ui.charts import LookParts, look_parts
from analyzer.api.ui.summaries import summary_of
from analyzer.api.ui.tables import ui_look_charts, ui_look_summaries
from analyzer.domain.events import EventType
from analyzer.domain.model import ModelRef
from analyzer.ledger.chain import EntryRecord, entry_hash
from analyzer.ledger.compact import expand_all
from analyzer.ledger.tables import ledger_entries

# Raise when what a summary holds, or how it is made, changes: older rows are then unused.
VERSION = 1
ANALYSIS = EventType.ANALYSIS_RECORDED.value
# The base seq of a compact look, from its canonical payload (ledger/compact.py).
BASE = re.compile(r'"repeats":\{"base":(\d+)[,}]')


class StoredLook(msgspec.Struct, frozen=True):
    """What one look entry says: its parts for the pictures (None: not a readable look) and
    its one-line summary for the timeline."""

    parts: LookParts | None
    line: str


_DECODER = msgspec.json.Decoder(StoredLook)
_ENCODER = msgspec.json.Encoder()


@dataclass(frozen=True, kw_only=True, slots=True)
class RolloutRead:
    """A rollout's entries, oldest first. A look whose summary was read (``stored``: its JSON
    text, decoded by :func:`stored_look` when a page has not got it already) comes with an
    empty payload: only its columns and hashes were read."""

    entries: list[EntryRecord]
    stored: dict[int, str]
    truncated: bool
    # bases of compact looks read for their expansion (when not among ``entries`` with a payload)
    bases: dict[int, EntryRecord]


def stored_look(summary: str) -> StoredLook:
    """A kept summary's JSON text, decoded."""
    return _DECODER.decode(summary)


def base_seq(entry: EntryRecord) -> int | None:
    """A compact look's base seq, from its payload; None for any other entry."""
    if entry.event_type != ANALYSIS or not entry.payload:
        return None
    found = BASE.search(entry.payload)
    return int(found.group(1)) if found else None


def read_rollout(
    engine: Engine, model: ModelRef | None, rollout_id: str, limit: int
) -> RolloutRead:
    """The rollout's first ``limit`` entries (of ``model``, when given) in time order, each
    look with its usable summary instead of its payload; compact looks read with their payload
    expanded from their base."""
    t, s = ledger_entries.c, ui_look_summaries.c
    base = ledger_entries.alias("base")
    usable = and_(
        s.seq == t.seq, s.hash == t.hash, s.version == VERSION, t.event_type == ANALYSIS,
        or_(s.base_seq.is_(None),
            s.base_hash == select(base.c.hash).where(base.c.seq == s.base_seq).scalar_subquery()),
    )  # fmt: skip
    # a look with a usable summary: its payload is not read (nor decompressed by the server)
    payload = case((s.seq.is_(None), t.payload), else_=literal("")).label("payload")
    columns = (t.seq, t.recorded_at, t.event_type, t.schema_version, t.actor, t.model,
               t.rollout_id, t.revision, payload, t.prev_hash, t.hash, s.summary)  # fmt: skip
    query = (
        select(*columns)
        .select_from(ledger_entries.outerjoin(ui_look_summaries, usable))
        .where(t.rollout_id == rollout_id, t.model == str(model) if model is not None else true())
        .order_by(t.recorded_at, t.seq)
        .limit(limit + 1)
    )
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    truncated = len(rows) > limit
    records: list[EntryRecord] = []
    stored: dict[int, str] = {}
    for row in rows[:limit]:
        records.append(_record(row))
        if row.summary is not None:
            stored[row.seq] = row.summary
    readable = [r for r in records if r.seq not in stored]
    with_payload = {r.seq for r in readable}
    wanted = {b for r in readable if (b := base_seq(r)) is not None} - with_payload
    bases = _entries_at(engine, sorted(wanted)) if wanted else {}
    expanded = {r.seq: r for r in expand_all(readable, lambda seqs: [
        bases[seq] for seq in seqs if seq in bases])}  # fmt: skip
    entries = [expanded.get(r.seq, r) for r in records]
    return RolloutRead(entries=entries, stored=stored, truncated=truncated, bases=bases)


def _record(row: Any) -> EntryRecord:
    seq, at, kind, schema, actor, model, rollout, revision, payload, prev_hash, hash_ = row[:11]
    if at.tzinfo is not UTC:  # psycopg gives the session's zone; SQLite, naive UTC
        at = at.astimezone(UTC) if at.tzinfo is not None else at.replace(tzinfo=UTC)
    return EntryRecord(
        seq=seq, recorded_at=at, event_type=kind, schema_version=schema, actor=actor,
        model=model, rollout_id=rollout, revision=revision, payload=payload,
        prev_hash=prev_hash, hash=hash_,
    )  # fmt: skip


def _entries_at(engine: Engine, seqs: Sequence[int]) -> dict[int, EntryRecord]:
    t = ledger_entries.c
    columns = (t.seq, t.recorded_at, t.event_type, t.schema_version, t.actor, t.model,
               t.rollout_id, t.revision, t.payload, t.prev_hash, t.hash)  # fmt: skip
    with engine.connect() as conn:
        rows = conn.execute(select(*columns, literal(None).label("summary"))
                            .where(t.seq.in_(seqs))).all()  # fmt: skip
    return {row.seq: _record(row) for row in rows}


def _hashes(entry: EntryRecord) -> bool:
    """Whether the entry's payload is the one its hash was made of."""
    try:
        return bool(entry.payload) and entry_hash(entry.prev_hash, entry.payload) == entry.hash
    except ValueError:  # a prev_hash that is not hex
        return False


def summary_rows(
    read: RolloutRead, made: Callable[[EntryRecord], StoredLook | None]
) -> list[dict[str, Any]]:
    """Rows to keep for the looks read with their payload: only those whose payload (and a
    compact look's base's) hashes to the entry's hash. ``made``: what the page made of a look
    (None: not made)."""
    known = {e.seq: e for e in read.entries if e.payload} | read.bases
    rows = []
    for entry in read.entries:
        if entry.event_type != ANALYSIS or entry.seq in read.stored or not entry.payload:
            continue
        base: EntryRecord | None = None
        if (wanted := base_seq(entry)) is not None:
            base = known.get(wanted)
            if entry.expanded is None or base is None or not _hashes(base):
                continue  # read as stored, or from an unproven base: made afresh each time
        look = made(entry)
        if look is None or not _hashes(entry):
            continue
        rows.append({
            "seq": entry.seq, "hash": entry.hash, "version": VERSION,
            "base_seq": base.seq if base is not None else None,
            "base_hash": base.hash if base is not None else None,
            "summary": _ENCODER.encode(look).decode("utf-8"),
        })  # fmt: skip
    return rows


def keep(engine: Engine, rows: Sequence[dict[str, Any]]) -> None:
    """Keep (or replace) these summaries."""
    if not rows:
        return
    with engine.begin() as conn:
        conn.execute(_upsert(conn), list(rows))


def _upsert(conn: Connection) -> Any:
    columns = ("hash", "base_seq", "base_hash", "version", "summary")
    if conn.dialect.name == "postgresql":
        stmt = postgresql.insert(ui_look_summaries)
        return stmt.on_conflict_do_update(
            index_elements=["seq"], set_={c: stmt.excluded[c] for c in columns}
        )
    if conn.dialect.name == "sqlite":
        lite = sqlite.insert(ui_look_summaries)
        return lite.on_conflict_do_update(
            index_elements=["seq"], set_={c: lite.excluded[c] for c in columns}
        )
    return insert(ui_look_summaries)


def derive(entry: EntryRecord) -> StoredLook:
    """What a look entry says, from its (expanded) data: what a stored row must equal."""
    data = entry.data()
    return StoredLook(parts=look_parts(data), line=summary_of(entry.event_type, data))


def check_stored(engine: Engine, batch: int = 500) -> list[str]:
    """Every kept summary re-derived from its entry: the rows that differ (or whose entry is
    gone), in words. A row that is merely stale (the entry's hash changed) is not a problem:
    it is never used."""
    problems: list[str] = []
    last = 0
    s = ui_look_summaries.c
    while True:
        with engine.connect() as conn:
            rows = conn.execute(
                select(s.seq, s.hash, s.summary, s.version).where(s.seq > last)
                .order_by(s.seq).limit(batch)
            ).all()  # fmt: skip
        if not rows:
            return problems
        last = rows[-1].seq
        found = _entries_at(engine, [r.seq for r in rows])
        current = [found[r.seq] for r in rows if r.seq in found]
        expanded = {e.seq: e for e in _expand(engine, current)}
        for row in rows:
            entry = expanded.get(row.seq)
            if entry is None:
                problems.append(f"look summary #{row.seq}: no such entry")
            elif (
                row.version == VERSION
                and row.hash == entry.hash
                and _DECODER.decode(row.summary) != derive(entry)
            ):
                problems.append(f"look summary #{row.seq}: differs from its entry")


def _expand(engine: Engine, entries: Iterable[EntryRecord]) -> list[EntryRecord]:
    listed = list(entries)
    wanted = sorted({b for e in listed if (b := base_seq(e)) is not None})
    bases = _entries_at(engine, wanted) if wanted else {}
    return expand_all(listed, lambda seqs: [bases[seq] for seq in seqs if seq in bases])


def digest(looks: Iterable[EntryRecord]) -> str:
    """The name of a set of looks: sha256 of each one's seq and hash, in order."""
    text = "".join(f"{e.seq}:{e.hash}\n" for e in looks)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def kept_charts(engine: Engine, rollout_id: str, looks_digest: str) -> bytes | None:
    """The kept charts of the rollout's looks, when they were drawn from exactly these looks
    by this code."""
    c = ui_look_charts.c
    with engine.connect() as conn:
        found = conn.execute(
            select(c.charts).where(c.rollout_id == rollout_id, c.looks_digest == looks_digest,
                                   c.version == VERSION)
        ).scalar()  # fmt: skip
    return found.encode("utf-8") if found is not None else None


def keep_charts(engine: Engine, rollout_id: str, looks_digest: str, charts: bytes) -> None:
    """Keep the charts of the rollout's looks (one row per rollout: the newest drawn)."""
    values = {"rollout_id": rollout_id, "looks_digest": looks_digest, "version": VERSION,
              "charts": charts.decode("utf-8")}  # fmt: skip
    with engine.begin() as conn:
        if conn.dialect.name in ("postgresql", "sqlite"):
            dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
            stmt = dialect.insert(ui_look_charts).values(values)
            changed = {k: stmt.excluded[k] for k in ("looks_digest", "version", "charts")}
            conn.execute(stmt.on_conflict_do_update(index_elements=["rollout_id"], set_=changed))
        else:
            conn.execute(insert(ui_look_charts).values(values))


def kept_chart_rows(engine: Engine) -> list[tuple[str, str, bytes]]:
    """Every kept charts row of this code: (rollout, looks digest, charts)."""
    c = ui_look_charts.c
    with engine.connect() as conn:
        rows = conn.execute(
            select(c.rollout_id, c.looks_digest, c.charts).where(c.version == VERSION)
        ).all()
    return [(r.rollout_id, r.looks_digest, r.charts.encode("utf-8")) for r in rows]
