"""Alembic is the only schema path: the migrated schema matches the code's table metadata."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine

from analyzer.db import ensure_schema_current, head_revision, make_engine
from analyzer.domain.errors import DatabaseNotReadyError
from analyzer.schema import ALL_METADATA


@pytest.mark.postgres
def test_migrated_postgres_matches_metadata(pg_engine: Engine) -> None:
    with pg_engine.connect() as conn:
        # one comparison over every part's metadata, or each part would see the others as extra
        diff = compare_metadata(MigrationContext.configure(conn), ALL_METADATA)  # type: ignore[arg-type]
    assert diff == []
    ensure_schema_current(pg_engine)


@pytest.mark.postgres
def test_empty_database_is_not_ready(empty_pg_url: str) -> None:
    engine = make_engine(empty_pg_url)
    with pytest.raises(DatabaseNotReadyError, match=f"needs {head_revision()}"):
        ensure_schema_current(engine)
    engine.dispose()


def test_unreachable_database_is_not_ready() -> None:
    engine = make_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")
    with pytest.raises(DatabaseNotReadyError, match="cannot reach"):
        ensure_schema_current(engine)
