"""``DriverStatement``: the hot statements sent on psycopg's cursor give what
``Connection.execute`` gives (the same rows, the same values and types), fail as SQLAlchemy
fails (a lost connection is an ``OperationalError``, the API's 503, and is invalidated), and
run through ``Connection.execute`` on SQLite."""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
import pytest
from sqlalchemy import Engine, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError, OperationalError

from analyzer.analyses.tables import analysis_sessions
from analyzer.db import make_engine
from analyzer.driver_sql import DriverStatement
from analyzer.ledger.tables import ledger_head

pytestmark = pytest.mark.postgres

T0 = datetime(2026, 12, 6, 9, 30, 0, 123456, tzinfo=UTC)
_t = analysis_sessions.c
BY_CANARY = select(analysis_sessions).where(_t.canary == bindparam("b_canary"))
LOCK = BY_CANARY.with_for_update(skip_locked=True)
HEAD = select(ledger_head.c.seq, ledger_head.c.hash).where(ledger_head.c.id == 1)


def _add_session(engine: Engine, canary: str, **extra: object) -> None:
    row = {
        "namespace": "risk", "model": "fraud", "canary": canary, "baseline": "b",
        "profile_key": "p@0", "profile_name": "p", "window_start": T0, "looks": 3,
        "judge_state": '{"metrics": {}}', "created_at": T0, "updated_at": T0,
        "bake_seconds": 540.5, "look_base_seq": 2**40,
    } | extra  # fmt: skip
    with engine.begin() as conn:
        conn.execute(insert(analysis_sessions), row)


def test_rows_are_those_of_connection_execute(pg_engine: Engine) -> None:
    _add_session(pg_engine, "c1", last_result='{"verdict": "pass"}', last_look_at=T0)
    with pg_engine.begin() as conn:
        expected = conn.execute(LOCK, {"b_canary": "c1"}).first()
        found = DriverStatement(LOCK).first(conn, {"b_canary": "c1"})
        head = DriverStatement(HEAD).first(conn, {})  # a literal (id = 1) bound by the statement
    assert expected is not None
    assert found is not None
    assert found._fields == tuple(expected._fields)
    for name in expected._fields:
        want, got = getattr(expected, name), getattr(found, name)
        assert got == want, name
        assert type(got) is type(want), name
    assert found.window_start == T0
    assert found.window_start.tzinfo is not None
    assert head is not None
    assert (head.seq, len(head.hash)) == (0, 64)


def test_no_row_is_none_and_a_write_is_in_the_callers_transaction(pg_engine: Engine) -> None:
    _add_session(pg_engine, "c2")
    bump = DriverStatement(
        update(analysis_sessions)
        .where(_t.canary == bindparam("b_canary"))
        .values(looks=bindparam("s_looks"))
    )
    with pg_engine.connect() as conn:
        assert DriverStatement(LOCK).first(conn, {"b_canary": "nobody"}) is None
        with conn.begin() as txn:
            bump.run(conn, {"b_canary": "c2", "s_looks": 99})
            txn.rollback()  # SQLAlchemy's rollback undoes the driver's write
        with conn.begin():
            assert conn.execute(BY_CANARY, {"b_canary": "c2"}).one().looks == 3
            bump.run(conn, {"b_canary": "c2", "s_looks": 4})
    with pg_engine.connect() as conn:
        assert conn.execute(BY_CANARY, {"b_canary": "c2"}).one().looks == 4


def test_a_driver_error_is_sqlalchemys(pg_engine: Engine) -> None:
    _add_session(pg_engine, "c3")
    _add_session(pg_engine, "c3b")
    clash = DriverStatement(
        update(analysis_sessions).where(_t.canary == "c3b").values(canary=bindparam("s_canary"))
    )
    with pg_engine.begin() as conn:
        with pytest.raises(IntegrityError) as caught:
            clash.run(conn, {"s_canary": "c3"})
        conn.rollback()
    assert isinstance(caught.value.orig, psycopg.errors.UniqueViolation)


def test_a_lost_connection_is_an_operational_error_and_is_not_reused(
    pg_engine: Engine, pg_url: str
) -> None:
    _add_session(pg_engine, "c4")
    conn = pg_engine.connect()
    pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
    with psycopg.connect(pg_url.replace("+psycopg", ""), autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,))
    with pytest.raises(OperationalError) as caught:
        DriverStatement(LOCK).first(conn, {"b_canary": "c4"})
    conn.close()
    assert caught.value.connection_invalidated
    with pg_engine.begin() as conn:  # the pool hands out a live connection
        assert DriverStatement(LOCK).first(conn, {"b_canary": "c4"}) is not None


def test_sqlite_runs_it_through_sqlalchemy(tmp_path: object) -> None:
    from alembic import command

    from analyzer.db import alembic_config

    url = f"sqlite:///{tmp_path}/x.db"
    command.upgrade(alembic_config(url), "head")
    engine = make_engine(url)
    try:
        _add_session(engine, "c5")
        with engine.begin() as conn:
            found = DriverStatement(BY_CANARY).first(conn, {"b_canary": "c5"})
            head = DriverStatement(HEAD).first(conn, {})
        assert found is not None
        assert (found.looks, found.bake_seconds) == (3, 540.5)
        assert head is not None
        assert head.seq == 0
    finally:
        engine.dispose()
