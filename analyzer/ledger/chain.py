"""The hash chain: canonical payloads, entry hashes and chain verification. Pure.

Each entry's payload is the canonical JSON of *every* recorded field (seq, time, type, actor,
model, rollout, revision, data, schema version), and ``hash = sha256(prev_hash ‖ payload)`` where
``prev_hash`` is the previous entry's hash as 32 raw bytes (64 zero hex digits before the first
entry). Because the payload repeats the indexed columns, altering a column without re-hashing is
caught too, not only altering the payload.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from analyzer.domain.events import PAYLOAD_SCHEMA_VERSION, LedgerEvent

GENESIS_HASH = "0" * 64
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


# json.dumps with these arguments builds this very encoder at every call (~2.5 µs of ~4 for a
# small value, and a look encodes several); it keeps no state between calls (each encode makes
# its own cycle markers), so one serves every thread.
_CANONICAL = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)


def canonical_json(value: Any) -> str:
    """Deterministic JSON: sorted keys, no whitespace, UTF-8, no NaN/Infinity."""
    return _CANONICAL.encode(value)


def format_time(moment: datetime) -> str:
    """UTC, microsecond precision, ``Z`` suffix: the one textual form of time in payloads."""
    if moment.tzinfo is None:
        raise ValueError("ledger times must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def entry_hash(prev_hash: str, payload: str) -> str:
    return hashlib.sha256(bytes.fromhex(prev_hash) + payload.encode("utf-8")).hexdigest()


@dataclass(frozen=True, kw_only=True, slots=True)
class EntryRecord:
    """A ledger row as stored: the columns plus the payload and hashes."""

    seq: int
    recorded_at: datetime
    event_type: str
    schema_version: int
    actor: str
    model: str | None
    rollout_id: str | None
    revision: str | None
    payload: str
    prev_hash: str
    hash: str
    # A compact look's full data, reconstructed from its base entry when it was read
    # (ledger/compact.py); None for every other entry, and for a compact look read alone.
    expanded: Mapping[str, Any] | None = None

    def data(self) -> dict[str, Any]:
        """The event's own data: as recorded, or a compact look's expanded in full."""
        if self.expanded is not None:
            return dict(self.expanded)
        return self.stored_data()

    def stored_data(self) -> dict[str, Any]:
        """The event's data exactly as the hashed payload holds it."""
        decoded: dict[str, Any] = json.loads(self.payload)["data"]
        return decoded


def _payload_dict(columns: Mapping[str, Any], data: Any) -> dict[str, Any]:
    """The dictionary whose canonical JSON is the payload: every column plus the event data."""
    return {
        "seq": columns["seq"],
        "recorded_at": format_time(columns["recorded_at"]),
        "type": columns["event_type"],
        "schema": columns["schema_version"],
        "actor": columns["actor"],
        "model": columns["model"],
        "rollout": columns["rollout_id"],
        "revision": columns["revision"],
        "data": data,
    }


def columns_of(record: EntryRecord) -> dict[str, Any]:
    """The record's indexed columns (everything but payload and hashes)."""
    return {
        "seq": record.seq,
        "recorded_at": record.recorded_at,
        "event_type": record.event_type,
        "schema_version": record.schema_version,
        "actor": record.actor,
        "model": record.model,
        "rollout_id": record.rollout_id,
        "revision": record.revision,
    }


@dataclass(frozen=True, slots=True)
class PreparedEvent:
    """An event's payload rendered but for its seq and time (``prepare``): what an append does
    before it locks the ledger head, so the lock is held for a string join and a hash per
    entry, not for rendering each entry's JSON (issue 20: replicas queued on the head)."""

    event: LedgerEvent
    head: str  # '{"actor":…,"data":…,"model":…,'
    middle: str  # ',"revision":…,"rollout":…,"schema":…,'
    tail: str  # ',"type":…}'


def prepare(event: LedgerEvent) -> PreparedEvent:
    """Render ``event``'s payload around its seq and time, in canonical key order (actor, data,
    model, recorded_at, revision, rollout, schema, seq, type: the sorted keys of
    ``_payload_dict``), so that ``head + recorded_at + middle + seq + tail`` is exactly the
    canonical JSON of the whole payload.

    Each run of keys is one canonical encoding of a dict of them, its braces cut (a key and a
    value encoded apart, nine calls into ``json.dumps``, took two thirds of preparing a compact
    look: issue 20); the keys of each run sort in the order above."""
    model = str(event.model) if event.model is not None else None
    head = canonical_json({"actor": event.actor, "data": dict(event.data), "model": model})
    middle = canonical_json(
        {"revision": event.revision, "rollout": event.rollout_id, "schema": PAYLOAD_SCHEMA_VERSION}
    )
    return PreparedEvent(
        event=event,
        head=head[:-1],
        middle="," + middle[1:-1],
        tail="," + canonical_json({"type": event.type.value})[1:],
    )


def build_entry(
    *,
    prev_seq: int,
    prev_hash: str,
    event: LedgerEvent | PreparedEvent,
    recorded_at: datetime,
) -> EntryRecord:
    """The next entry after (prev_seq, prev_hash) for ``event`` at ``recorded_at``."""
    if recorded_at.tzinfo is None:
        raise ValueError("ledger times must be timezone-aware")
    prepared = event if isinstance(event, PreparedEvent) else prepare(event)
    source = prepared.event
    columns: dict[str, Any] = {
        "seq": prev_seq + 1,
        "recorded_at": recorded_at.astimezone(UTC),
        "event_type": source.type.value,
        "schema_version": PAYLOAD_SCHEMA_VERSION,
        "actor": source.actor,
        "model": str(source.model) if source.model is not None else None,
        "rollout_id": source.rollout_id,
        "revision": source.revision,
    }
    payload = (
        # a formatted time has nothing JSON escapes: quoted as canonical_json quotes it
        f'{prepared.head},"recorded_at":"{format_time(columns["recorded_at"])}"'
        f'{prepared.middle},"seq":{columns["seq"]}{prepared.tail}'
    )
    return EntryRecord(
        **columns, payload=payload, prev_hash=prev_hash, hash=entry_hash(prev_hash, payload)
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class VerifyReport:
    """Outcome of a chain check. ``first_bad_seq`` is None when the chain is intact."""

    entries: int
    head_seq: int
    head_hash: str
    first_bad_seq: int | None = None
    problem: str | None = None

    @property
    def intact(self) -> bool:
        return self.first_bad_seq is None

    def summary(self) -> str:
        if self.intact:
            return (
                f"ledger intact: {self.entries} entries, "
                f"head seq {self.head_seq} hash {self.head_hash}"
            )
        return f"ledger BROKEN at seq {self.first_bad_seq}: {self.problem}"


_BROKEN_LINK = "prev_hash does not match the previous entry's hash"


def _check_one(record: EntryRecord, expected_seq: int, prev_hash: str) -> str | None:
    """Why ``record`` does not continue the chain, or None when it does."""
    if record.seq != expected_seq:
        return f"expected seq {expected_seq}, found {record.seq} (an entry was removed or inserted)"
    if record.prev_hash != prev_hash:
        return _BROKEN_LINK
    try:
        stored = json.loads(record.payload)
    except ValueError:
        return "payload is not valid JSON"
    try:
        canonical = canonical_json(stored)
    except ValueError:  # a number out of range (1e999 reads as inf): not a payload we wrote
        return "payload is not in canonical form (a number is out of range)"
    if not isinstance(stored, dict) or canonical != record.payload:
        return "payload is not in canonical form"
    if stored != _payload_dict(columns_of(record), stored.get("data")):
        return "columns do not match the hashed payload"
    if entry_hash(prev_hash, record.payload) != record.hash:
        return "hash does not match sha256(prev_hash || payload)"
    return None


def _which_changed(
    prev_seq: int,
    prev_hash: str,
    record: EntryRecord,
    following: EntryRecord | None,
    head: tuple[int, str] | None,
) -> tuple[int, str]:
    """The entry to blame for the broken link between ``prev_seq`` and ``record``, and why.

    An entry edited and re-hashed by hand recomputes on its own; what gives it away is the next
    entry, which was chained to its *original* hash. So when ``record`` recomputes from its
    own prev_hash and still links on (to ``following``, or to the stored head when it is the
    last), it is as written and the entry before it was changed. When it links on to nothing,
    it was changed itself (its prev_hash rewritten). With nothing after it, it cannot be told.
    """
    if prev_seq == 0:
        return record.seq, f"entry {record.seq} is not chained to the genesis hash (64 zeros)"
    if not _HEX64.match(record.prev_hash) or _check_one(record, record.seq, record.prev_hash):
        return record.seq, (
            f"entry {record.seq} was altered: its prev_hash does not match entry {prev_seq}'s "
            "hash and its own hash does not recompute"
        )
    if following is not None:
        links_on = following.prev_hash == record.hash
    elif head is not None and head[0] == record.seq:
        links_on = head[1] == record.hash
    else:
        return prev_seq, (
            f"entry {prev_seq} or entry {record.seq} was changed and re-hashed: the link "
            f"between them is broken (entry {record.seq} was chained to {record.prev_hash[:16]}…, "
            f"entry {prev_seq}'s hash is {prev_hash[:16]}…) and nothing after them tells which"
        )
    if links_on:
        return prev_seq, (
            f"entry {prev_seq} was changed and re-hashed: its hash ({prev_hash[:16]}…) recomputes "
            f"from its payload but no longer links to entry {record.seq}, which was chained to "
            f"{record.prev_hash[:16]}… and still links to what follows it"
        )
    return record.seq, (
        f"entry {record.seq} was changed and re-hashed: its prev_hash does not match entry "
        f"{prev_seq}'s hash and its own hash no longer links to "
        + (f"entry {record.seq + 1}" if following is not None else "the stored head")
    )


def verify_chain(
    records: Iterable[EntryRecord],
    *,
    head: tuple[int, str] | None = None,
    start: tuple[int, str] | None = None,
) -> VerifyReport:
    """Recompute the chain over ``records`` (in seq order); compare with the stored head anchor.

    ``start`` is the (seq, hash) of an entry already verified: ``records`` then continue after
    it (an incremental check); without it they start at seq 1 from the genesis hash. A broken
    link names the entry that was changed when that can be told (``_which_changed``).
    """
    expected_seq, prev_hash = (start[0] + 1, start[1]) if start else (1, GENESIS_HASH)
    earlier_hash = GENESIS_HASH  # the hash before prev_hash (known once two entries are read)
    count = 0
    remaining = iter(records)
    for record in remaining:
        problem = _check_one(record, expected_seq, prev_hash)
        if problem is not None:
            bad_seq = expected_seq if record.seq > expected_seq else record.seq
            verified = (count, expected_seq - 1, prev_hash)
            if problem == _BROKEN_LINK:
                following = next(remaining, None)
                bad_seq, problem = _which_changed(
                    expected_seq - 1, prev_hash, record, following, head
                )
                if bad_seq < record.seq:  # the previous entry is not verified after all
                    verified = (max(0, count - 1), expected_seq - 2, earlier_hash)
            return VerifyReport(
                entries=verified[0],
                head_seq=verified[1],
                head_hash=verified[2],
                first_bad_seq=bad_seq,
                problem=problem,
            )
        earlier_hash = prev_hash
        expected_seq, prev_hash, count = expected_seq + 1, record.hash, count + 1
    last_seq = expected_seq - 1
    if head is not None and head != (last_seq, prev_hash):
        if head[0] == last_seq and last_seq > 0:
            problem = (
                f"the stored head's hash for seq {last_seq} is {head[1][:16]}… but entry "
                f"{last_seq}'s is {prev_hash[:16]}…: the last entry was changed and re-hashed "
                "(or the head altered)"
            )
        else:
            problem = (
                f"stored head is seq {head[0]} but the chain ends at seq {last_seq} "
                "(entries at the end were removed or the head was altered)"
            )
        return VerifyReport(
            entries=count,
            head_seq=last_seq,
            head_hash=prev_hash,
            first_bad_seq=min(head[0], last_seq + 1) if head[0] != last_seq else last_seq,
            problem=problem,
        )
    return VerifyReport(entries=count, head_seq=last_seq, head_hash=prev_hash)
