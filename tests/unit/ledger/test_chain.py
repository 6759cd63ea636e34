"""The hash chain, pure: building entries and detecting every single-byte change."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer.domain.events import EventType, LedgerEvent
from analyzer.domain.model import ModelRef
from analyzer.ledger.chain import (
    GENESIS_HASH,
    EntryRecord,
    build_entry,
    canonical_json,
    entry_hash,
    format_time,
    verify_chain,
)

T0 = datetime(2026, 3, 4, 2, 13, tzinfo=UTC)

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**12), 10**12),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=12),
)  # fmt: skip
json_data = st.dictionaries(st.text(min_size=1, max_size=8), json_scalars, max_size=4)
events = st.builds(
    LedgerEvent,
    type=st.sampled_from(list(EventType)),
    actor=st.text(min_size=1, max_size=20),
    model=st.one_of(st.none(), st.just(ModelRef(namespace="risk-prod", name="credit-v2"))),
    rollout_id=st.one_of(st.none(), st.uuids().map(str)),
    revision=st.one_of(st.none(), st.text(min_size=1, max_size=10)),
    data=json_data,
)


def chain_of(evts: list[LedgerEvent]) -> list[EntryRecord]:
    records: list[EntryRecord] = []
    seq, prev = 0, GENESIS_HASH
    for i, event in enumerate(evts):
        record = build_entry(
            prev_seq=seq, prev_hash=prev, event=event, recorded_at=T0 + timedelta(seconds=i)
        )
        records.append(record)
        seq, prev = record.seq, record.hash
    return records


@given(events, st.integers(0, 2**62), st.integers(0, 10**9))
@settings(max_examples=200, deadline=None)
def test_the_payload_rendered_before_the_lock_is_the_canonical_json_of_the_whole(
    event: LedgerEvent, prev_seq: int, micros: int
) -> None:
    # append_many renders each event's JSON before locking the head and joins in the seq and
    # time under the lock: the result must be byte for byte what verify recomputes
    moment = T0 + timedelta(microseconds=micros)
    record = build_entry(prev_seq=prev_seq, prev_hash=GENESIS_HASH, event=event, recorded_at=moment)
    whole = {
        "seq": prev_seq + 1, "recorded_at": format_time(moment), "type": event.type.value,
        "schema": 1, "actor": event.actor,
        "model": str(event.model) if event.model is not None else None,
        "rollout": event.rollout_id, "revision": event.revision, "data": dict(event.data),
    }  # fmt: skip
    assert record.payload == canonical_json(whole)
    assert verify_chain([record], start=(prev_seq, GENESIS_HASH)).intact


nested_data = st.dictionaries(
    st.text(max_size=8),
    st.recursive(
        json_scalars | st.integers(), lambda inner: st.lists(inner, max_size=3)
        | st.dictionaries(st.text(max_size=4), inner, max_size=3), max_leaves=12,
    ),
    max_size=5,
)  # fmt: skip


@given(
    events, nested_data, st.text(max_size=6), st.integers(0, 2**62),
    st.datetimes(timezones=st.timezones()),
)  # fmt: skip
@settings(max_examples=300, deadline=None)
def test_a_prepared_payload_of_nested_data_at_any_time_is_the_canonical_whole(
    event: LedgerEvent, data: dict[str, object], actor: str, prev_seq: int, moment: datetime
) -> None:
    # prepare encodes runs of keys as dicts with their braces cut, build_entry quotes the time
    event = dataclasses.replace(event, data=data, actor=actor or "a")
    record = build_entry(prev_seq=prev_seq, prev_hash=GENESIS_HASH, event=event, recorded_at=moment)
    whole = {
        "seq": prev_seq + 1, "recorded_at": format_time(moment), "type": event.type.value,
        "schema": 1, "actor": event.actor,
        "model": str(event.model) if event.model is not None else None,
        "rollout": event.rollout_id, "revision": event.revision, "data": data,
    }  # fmt: skip
    assert record.payload == canonical_json(whole)
    assert record.hash == entry_hash(GENESIS_HASH, canonical_json(whole))


def test_first_entry_hash_is_sha256_of_zero_prev_and_payload() -> None:
    import hashlib

    event = LedgerEvent(type=EventType.ROLLOUT_STARTED, actor="alice", data={"weight": 10})
    record = build_entry(prev_seq=0, prev_hash=GENESIS_HASH, event=event, recorded_at=T0)
    assert record.seq == 1
    assert record.hash == hashlib.sha256(bytes(32) + record.payload.encode()).hexdigest()
    assert '"recorded_at":"2026-03-04T02:13:00.000000Z"' in record.payload
    assert record.data() == {"weight": 10}


def test_canonical_json_is_order_independent_and_refuses_nan() -> None:
    assert canonical_json({"b": 1, "a": [1, 2]}) == canonical_json({"a": [1, 2], "b": 1})
    assert canonical_json({"b": 1, "a": 2}) == '{"a":2,"b":1}'
    with pytest.raises(ValueError, match="Out of range"):
        canonical_json({"x": float("nan")})


def test_naive_times_are_refused() -> None:
    event = LedgerEvent(type=EventType.ROLLOUT_STARTED, actor="alice")
    with pytest.raises(ValueError, match="timezone-aware"):
        build_entry(
            prev_seq=0, prev_hash=GENESIS_HASH, event=event, recorded_at=T0.replace(tzinfo=None)
        )


@given(st.lists(events, max_size=12))
@settings(max_examples=60, deadline=None)
def test_any_sequence_of_appends_verifies(evts: list[LedgerEvent]) -> None:
    records = chain_of(evts)
    head = (records[-1].seq, records[-1].hash) if records else (0, GENESIS_HASH)
    report = verify_chain(records, head=head)
    assert report.intact, report.summary()
    assert report.entries == len(evts)


def _flip_byte(text: str, index: int) -> str:
    raw = bytearray(text.encode())
    raw[index % len(raw)] ^= 0x01
    return raw.decode(errors="replace")


@given(
    st.lists(events, min_size=1, max_size=8),
    st.integers(min_value=0),
    st.integers(min_value=0),
    st.sampled_from(["payload", "hash", "prev_hash"]),
)
@settings(max_examples=150, deadline=None)
def test_any_single_byte_change_is_detected(
    evts: list[LedgerEvent], which: int, where: int, field: str
) -> None:
    records = chain_of(evts)
    target = which % len(records)
    original = getattr(records[target], field)
    changed = _flip_byte(original, where)
    if changed == original:  # flipping inside a multi-byte character can map back; nothing changed
        return
    records[target] = dataclasses.replace(records[target], **{field: changed})
    report = verify_chain(records, head=(len(evts), chain_of(evts)[-1].hash))
    assert not report.intact
    assert report.first_bad_seq is not None
    assert report.first_bad_seq == target + 1  # the altered entry itself, never the next


def test_removed_middle_entry_is_named() -> None:
    records = chain_of([LedgerEvent(type=EventType.TRAFFIC_CHANGED, actor="x")] * 5)
    del records[2]
    report = verify_chain(records, head=(5, records[-1].hash))
    assert report.first_bad_seq == 3
    assert "removed" in (report.problem or "")


def test_removed_tail_is_caught_by_the_head_anchor() -> None:
    records = chain_of([LedgerEvent(type=EventType.TRAFFIC_CHANGED, actor="x")] * 5)
    head = (5, records[-1].hash)
    report = verify_chain(records[:3], head=head)
    assert not report.intact
    assert report.first_bad_seq == 4


def test_altered_column_without_rehash_is_caught() -> None:
    records = chain_of([LedgerEvent(type=EventType.APPROVAL_GIVEN, actor="bob")] * 2)
    records[0] = dataclasses.replace(records[0], actor="mallory")
    report = verify_chain(records, head=(2, records[-1].hash))
    assert report.first_bad_seq == 1
    assert "columns" in (report.problem or "")


def test_entry_hash_depends_on_prev() -> None:
    assert entry_hash(GENESIS_HASH, "{}") != entry_hash("1" * 64, "{}")


# -- an entry edited and re-hashed by hand: the report names it, not the entry after it ----------
def _rewritten(records: list[EntryRecord], index: int, actor: str) -> EntryRecord:
    """Entry ``index`` with a different actor and its hash recomputed (what a database owner
    with the triggers disabled can do); it keeps its seq, time and prev_hash."""
    original = records[index]
    event = LedgerEvent(type=EventType(original.event_type), actor=actor, data=original.data())
    return build_entry(
        prev_seq=original.seq - 1,
        prev_hash=original.prev_hash,
        event=event,
        recorded_at=original.recorded_at,
    )


def _five() -> list[EntryRecord]:
    return chain_of([LedgerEvent(type=EventType.APPROVAL_GIVEN, actor=f"a{i}") for i in range(5)])


def test_an_edited_and_rehashed_entry_is_named_not_the_next_one() -> None:
    records = _five()
    head = (5, records[-1].hash)
    records[2] = _rewritten(records, 2, "mallory")
    report = verify_chain(records, head=head)
    assert report.first_bad_seq == 3  # before issue 13: 4, the entry whose prev_hash broke
    assert "entry 3 was changed and re-hashed" in (report.problem or "")
    assert "entry 4, which was chained to" in (report.problem or "")
    assert (report.entries, report.head_seq, report.head_hash) == (2, 2, records[1].hash)


def test_the_second_to_last_is_told_by_the_head_and_the_last_by_its_hash() -> None:
    records = _five()
    head = (5, records[-1].hash)
    records[3] = _rewritten(records, 3, "mallory")
    report = verify_chain(records, head=head)
    assert report.first_bad_seq == 4
    assert "entry 4 was changed and re-hashed" in (report.problem or "")
    records = _five()
    records[4] = _rewritten(records, 4, "mallory")
    last = verify_chain(records, head=head)
    assert last.first_bad_seq == 5
    assert "the last entry was changed and re-hashed" in (last.problem or "")


def test_a_rewritten_prev_hash_names_its_own_entry() -> None:
    records = _five()
    head = (5, records[-1].hash)
    moved = _rewritten(records, 2, "a2")
    records[2] = dataclasses.replace(
        moved, prev_hash="1" * 64, hash=entry_hash("1" * 64, moved.payload)
    )
    report = verify_chain(records, head=head)
    assert report.first_bad_seq == 3
    assert "entry 3 was changed and re-hashed: its prev_hash does not match entry 2's hash" in (
        report.problem or ""
    )
    records[2] = dataclasses.replace(records[2], hash="2" * 64)  # and not even re-hashed
    assert "entry 3 was altered" in (verify_chain(records, head=head).problem or "")


def test_without_anything_after_the_pair_it_says_it_cannot_tell() -> None:
    records = _five()
    records[3] = _rewritten(records, 3, "mallory")
    report = verify_chain(records)  # no head: an incremental look at the end of the chain
    assert report.first_bad_seq == 4
    assert "entry 4 or entry 5 was changed and re-hashed" in (report.problem or "")


@given(st.integers(min_value=0, max_value=6), st.integers(min_value=7, max_value=9))
@settings(max_examples=40, deadline=None)
def test_any_single_rewritten_and_rehashed_entry_is_named_exactly(index: int, size: int) -> None:
    records = chain_of([LedgerEvent(type=EventType.TRAFFIC_CHANGED, actor="x")] * size)
    head = (size, records[-1].hash)
    records[index] = _rewritten(records, index, "mallory")
    report = verify_chain(records, head=head)
    assert report.first_bad_seq == index + 1, report.problem
