"""The embedded default: the same migrations and guarantees on a SQLite file."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from analyzer.db import make_engine
from analyzer.ledger.store import Ledger
from tests.integration.ledger.helpers import T0, SteppingClock, run_cli, traffic


def test_sqlite_migrate_append_verify_and_guard(sqlite_url: str) -> None:
    migrated = run_cli("migrate", database_url=sqlite_url)
    assert migrated.returncode == 0, migrated.stderr
    engine = make_engine(sqlite_url)
    ledger = Ledger(engine, clock=SteppingClock(T0))
    ledger.record(traffic({"a": 100}))
    ledger.record(traffic({"a": 90, "b": 10}))
    for statement in ("UPDATE ledger_entries SET actor='x'", "DELETE FROM ledger_entries"):
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(text(statement))
    verified = run_cli("ledger", "verify", database_url=sqlite_url)
    assert verified.returncode == 0, verified.stderr
    assert "2 entries" in verified.stdout
    with engine.begin() as conn:
        conn.execute(text("DROP TRIGGER ledger_entries_no_update"))
        conn.execute(text("UPDATE ledger_entries SET actor='mallory' WHERE seq=2"))
    broken = run_cli("ledger", "verify", database_url=sqlite_url)
    assert broken.returncode == 1
    assert "seq 2" in broken.stdout
    engine.dispose()
