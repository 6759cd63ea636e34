"""Group commit: concurrent callers each get their own committed entry; the chain verifies."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import Engine

from analyzer.domain.events import EventType, LedgerEvent
from analyzer.ledger.group_commit import BatchingRecorder
from analyzer.ledger.store import Ledger

pytestmark = pytest.mark.postgres


def test_concurrent_records_are_batched_and_each_caller_gets_its_entry(pg_engine: Engine) -> None:
    ledger = Ledger(pg_engine)
    recorder = BatchingRecorder(ledger)

    def record(i: int) -> tuple[int, int]:
        event = LedgerEvent(type=EventType.ANALYSIS_RECORDED, actor=f"a{i}", data={"i": i})
        entry = recorder.record(event)
        return i, entry.seq

    try:
        with ThreadPoolExecutor(max_workers=16) as pool:
            results = list(pool.map(record, range(200)))
    finally:
        recorder.close()
    seqs = sorted(seq for _, seq in results)
    assert seqs == list(range(1, 201))
    by_seq = {e.seq: e for e in ledger.iter_entries()}
    for i, seq in results:
        assert by_seq[seq].data() == {"i": i}
        assert by_seq[seq].actor == f"a{i}"
    assert ledger.verify().intact


def test_a_bad_event_fails_alone_not_its_batch(pg_engine: Engine) -> None:
    ledger = Ledger(pg_engine)
    recorder = BatchingRecorder(ledger)
    bad = LedgerEvent(type=EventType.ANALYSIS_RECORDED, actor="x" * 300)  # actor column is 256

    def record(i: int) -> int | str:
        event = bad if i == 5 else LedgerEvent(type=EventType.ANALYSIS_RECORDED, actor=f"a{i}")
        try:
            return recorder.record(event).seq
        except Exception as exc:
            return type(exc).__name__

    try:
        with ThreadPoolExecutor(max_workers=10) as pool:
            results = list(pool.map(record, range(10)))
    finally:
        recorder.close()
    assert results[5] == "DataError"
    good = [r for i, r in enumerate(results) if i != 5]
    assert sorted(good) == list(range(1, 10))  # type: ignore[type-var]
    assert ledger.verify().intact
    with pytest.raises(RuntimeError, match="closed"):
        recorder.record(LedgerEvent(type=EventType.ANALYSIS_RECORDED, actor="late"))
