"""``Ledger.append_with``: an entry and the state change it records in one round trip on
PostgreSQL (data-modifying CTEs), one after the other elsewhere; the same chain either way."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from alembic import command
from sqlalchemy import Engine, bindparam, insert, select, text, update

from analyzer.analyses.tables import analysis_sessions
from analyzer.db import alembic_config, make_engine
from analyzer.ledger.store import Ledger
from analyzer.ledger.tables import ledger_entries, ledger_head
from tests.integration.ledger.helpers import T0, SteppingClock, traffic

# the state change an entry records: here an analysis session's row naming the entry's seq
MARKED = (
    update(analysis_sessions)
    .where(analysis_sessions.c.id == bindparam("b_id"))
    .values(look_base_seq=bindparam("s_seq"), looks=bindparam("s_looks"))
)


def _session(engine: Engine) -> int:
    with engine.begin() as conn:
        return int(
            conn.execute(
                insert(analysis_sessions).returning(analysis_sessions.c.id),
                {
                    "namespace": "risk", "model": "fraud", "canary": "c", "baseline": "b",
                    "profile_key": "p@0", "profile_name": "p", "window_start": T0, "looks": 0,
                    "judge_state": "{}", "created_at": T0, "updated_at": T0,
                },
            ).scalar_one()
        )  # fmt: skip


@pytest.fixture(params=["postgresql", "sqlite"])
def engine(request: pytest.FixtureRequest, sqlite_url: str) -> Iterator[Engine]:
    if request.param == "postgresql":
        url = request.getfixturevalue("pg_url")
    else:
        url = sqlite_url
        command.upgrade(alembic_config(url), "head")
    built = make_engine(url)
    yield built
    built.dispose()


def test_the_entry_and_the_statement_commit_together(engine: Engine) -> None:
    ledger = Ledger(engine, clock=SteppingClock(T0))
    ledger.record(traffic({"a": 100}))
    session = _session(engine)
    with engine.begin() as conn:
        record = ledger.append_with(
            conn,
            traffic({"a": 90, "b": 10}),
            MARKED,
            lambda e: {"b_id": session, "s_seq": e.seq, "s_looks": 1},
        )
    assert record.seq == 2
    with engine.connect() as conn:
        stored = conn.execute(select(ledger_entries.c.hash).where(ledger_entries.c.seq == 2))
        assert stored.scalar_one() == record.hash
        assert tuple(conn.execute(select(ledger_head.c.seq, ledger_head.c.hash)).one()) == (
            2, record.hash,
        )  # fmt: skip
        row = conn.execute(select(analysis_sessions).where(analysis_sessions.c.id == session))
        assert row.one()._mapping["look_base_seq"] == 2
    assert ledger.verify().intact
    entry = ledger.entry(2)
    assert entry is not None
    assert entry.data() == dict(traffic({"a": 90, "b": 10}).data)


def test_nothing_is_written_when_the_transaction_rolls_back(engine: Engine) -> None:
    ledger = Ledger(engine, clock=SteppingClock(T0))
    ledger.record(traffic({"a": 100}))
    session = _session(engine)

    def fails_after_the_append() -> None:
        with engine.begin() as conn:
            ledger.append_with(
                conn,
                traffic({"a": 50}),
                MARKED,
                lambda e: {"b_id": session, "s_seq": e.seq, "s_looks": 1},
            )
            raise RuntimeError("the caller failed after the append")

    with pytest.raises(RuntimeError):
        fails_after_the_append()
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM ledger_entries")).scalar_one() == 1
        looks = select(analysis_sessions.c.looks, analysis_sessions.c.look_base_seq)
        assert tuple(conn.execute(looks).one()) == (0, None)
    assert ledger.verify().intact
