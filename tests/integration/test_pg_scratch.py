"""tests/pg.py's scratch databases: tests commit without waiting for the WAL flush, benchmarks
(``durable=True``) as production does, so a benchmark never hides a commit's latency."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL

from tests import pg

pytestmark = pytest.mark.postgres


def _synchronous_commit(url: URL) -> str:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return str(conn.execute(text("SHOW synchronous_commit")).scalar_one())
    finally:
        engine.dispose()


def test_a_test_database_does_not_wait_for_the_flush(pg_server: URL) -> None:
    with pg.scratch_database(pg_server) as url:
        assert _synchronous_commit(url) == "off"


def test_a_benchmark_database_commits_as_production_does(pg_server: URL) -> None:
    server_default = _synchronous_commit(pg_server)
    with pg.scratch_database(pg_server, durable=True) as url:
        assert _synchronous_commit(url) == server_default == "on"
