"""A missing ``ledger_head`` row (deleted by a superuser past the trigger), on PostgreSQL.

Before issue 13: ``ledger verify`` died with a ``NoResultFound`` traceback, ``/api/v1/audit/verify``
and starting a rollout answered 500, ``/readyz`` said ready, and the chain watch's job failed
with "periodic job failed" instead of reporting a broken chain.
"""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text
from structlog.testing import capture_logs

from analyzer.domain.errors import LedgerHeadMissingError
from analyzer.ledger.watch import ChainWatch
from tests.integration.ledger.helpers import T0, run_cli
from tests.integration.ledger.test_ledger_postgres import _seed

pytestmark = pytest.mark.postgres


def delete_head(engine: Engine) -> None:
    """What a superuser can do: bypass the forward-only trigger and delete the head row."""
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE ledger_head DISABLE TRIGGER ledger_head_forward"))
        conn.execute(text("DELETE FROM ledger_head"))
        conn.execute(text("ALTER TABLE ledger_head ENABLE TRIGGER ledger_head_forward"))


def test_verify_reports_the_missing_head_and_still_checks_the_links(pg_engine: Engine) -> None:
    ledger = _seed(pg_engine)  # 6 entries
    delete_head(pg_engine)
    report = ledger.verify()
    assert not report.intact
    assert report.entries == 6
    assert report.first_bad_seq == 7  # seq 1-6 link; nothing vouches for what followed
    assert report.problem is not None
    assert "head row" in report.problem
    with pytest.raises(LedgerHeadMissingError):
        ledger.head()


def test_verify_cli_exits_1_with_a_message_and_no_traceback(pg_engine: Engine, pg_url: str) -> None:
    _seed(pg_engine)
    delete_head(pg_engine)
    result = run_cli("ledger", "verify", database_url=pg_url)
    assert result.returncode == 1, result.stderr
    assert "ledger BROKEN at seq 7" in result.stdout
    assert "head row (ledger_head id 1) is missing" in result.stdout
    assert "Traceback" not in result.stderr + result.stdout


def test_the_chain_watch_reports_a_broken_chain_not_a_failed_job(pg_engine: Engine) -> None:
    ledger = _seed(pg_engine)
    delete_head(pg_engine)
    watch = ChainWatch(ledger, clock=lambda: T0)
    with capture_logs() as logs:
        status = watch.check()  # before the fix: NoResultFound escaped to the scheduler
    assert not status.intact
    assert status.problem is not None
    assert "head row" in status.problem
    assert [e["event"] for e in logs if e["log_level"] == "error"] == ["ledger.chain.broken"]


def test_a_watch_already_running_reports_it_at_its_next_check(pg_engine: Engine) -> None:
    ledger = _seed(pg_engine)
    watch = ChainWatch(ledger, clock=lambda: T0)
    assert watch.check().intact
    delete_head(pg_engine)
    with capture_logs() as logs:
        status = watch.check()
    assert not status.intact
    assert status.first_bad_seq == 7
    assert any(e["event"] == "ledger.chain.broken" for e in logs)
    assert not watch.check().intact  # sticky
