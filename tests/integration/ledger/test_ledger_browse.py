"""Browsing the ledger as the web pages do: newest first, by actor, one entry by seq."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine

from analyzer.domain.events import EventType, LedgerEvent
from analyzer.ledger.chain import entry_hash
from analyzer.ledger.store import Ledger, encode_cursor
from tests.integration.ledger.helpers import MODEL, T0, SteppingClock, traffic

pytestmark = pytest.mark.postgres


def _seed(engine: Engine) -> Ledger:
    """Seven entries a minute apart; seq 3 and 6 are approvals by two different people."""
    ledger = Ledger(engine, clock=SteppingClock(T0, timedelta(minutes=1)))
    for step in range(6):
        if step in (2, 5):
            approver = "risk-officer" if step == 2 else "second-officer"
            ledger.record(
                LedgerEvent(
                    type=EventType.APPROVAL_GIVEN, actor=approver, model=MODEL, rollout_id="r1",
                    data={"step": step},
                )
            )  # fmt: skip
        else:
            ledger.record(traffic({"credit-00007": 100 - step, "credit-00008": step}, step=step))
    ledger.record(traffic({"credit-00008": 100}, step=6))
    return ledger


def test_newest_first_pages_backwards_through_every_entry(pg_engine: Engine) -> None:
    ledger = _seed(pg_engine)
    seen, cursor = [], None
    while True:
        page = ledger.events(model=MODEL, cursor=cursor, limit=3, newest_first=True)
        seen.extend(e.seq for e in page.entries)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == [7, 6, 5, 4, 3, 2, 1]
    window = ledger.events(model=MODEL, until=T0 + timedelta(minutes=4), newest_first=True, limit=2)
    assert [e.seq for e in window.entries] == [4, 3]


def test_a_cursor_at_an_entry_finds_what_came_just_before_it(pg_engine: Engine) -> None:
    ledger = _seed(pg_engine)
    seventh = ledger.entry(7)
    assert seventh is not None
    before = ledger.events(
        model=MODEL,
        event_types=[EventType.APPROVAL_GIVEN],
        cursor=encode_cursor(seventh.recorded_at, seventh.seq),
        newest_first=True,
        limit=1,
    )
    assert [(e.seq, e.actor) for e in before.entries] == [(6, "second-officer")]


def test_actor_filter_matches_the_recorded_actor_exactly(pg_engine: Engine) -> None:
    ledger = _seed(pg_engine)
    mine = ledger.events(actor="risk-officer")
    assert [e.seq for e in mine.entries] == [3]
    assert ledger.events(actor="risk").entries == ()


def test_entry_by_seq(pg_engine: Engine) -> None:
    ledger = _seed(pg_engine)
    third = ledger.entry(3)
    assert third is not None
    assert third.event_type == "approval_given"
    assert third.hash == entry_hash(third.prev_hash, third.payload)
    second = ledger.entry(2)
    assert second is not None
    assert third.prev_hash == second.hash
    assert ledger.entry(8) is None
    assert ledger.entry(0) is None
