"""Concurrent appenders in separate processes produce one valid chain, never a fork."""

from __future__ import annotations

import multiprocessing

import pytest
from sqlalchemy import text

from analyzer.db import make_engine
from analyzer.domain.events import EventType, LedgerEvent
from analyzer.ledger.store import Ledger

WRITERS, APPENDS = 4, 500


def _append_many_times(url: str, writer: int, count: int) -> None:
    engine = make_engine(url)
    ledger = Ledger(engine)
    for i in range(count):
        ledger.record(
            LedgerEvent(type=EventType.ANALYSIS_RECORDED, actor=f"writer-{writer}", data={"i": i})
        )
    engine.dispose()


def _run_writers(url: str, writers: int, appends: int) -> None:
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_append_many_times, args=(url, w, appends)) for w in range(writers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=240)
        assert p.exitcode == 0, f"writer exited with {p.exitcode}"


@pytest.mark.postgres
def test_four_processes_append_to_postgres_as_one_chain(pg_url: str) -> None:
    _run_writers(pg_url, WRITERS, APPENDS)
    engine = make_engine(pg_url)
    report = Ledger(engine).verify()
    assert report.intact, report.summary()
    assert report.entries == WRITERS * APPENDS
    with engine.connect() as conn:
        per_writer = dict(
            conn.execute(text("SELECT actor, count(*) FROM ledger_entries GROUP BY actor")).all()
        )
    assert per_writer == {f"writer-{w}": APPENDS for w in range(WRITERS)}
    engine.dispose()


def test_two_processes_append_to_sqlite_as_one_chain(sqlite_url: str) -> None:
    from alembic import command

    from analyzer.db import alembic_config

    command.upgrade(alembic_config(sqlite_url), "head")
    _run_writers(sqlite_url, 2, 100)
    report = Ledger(make_engine(sqlite_url)).verify()
    assert report.intact, report.summary()
    assert report.entries == 200
