"""Alembic is the only schema path: the migrated schema matches the code's table metadata."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, text

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


def _lz4_migration_columns() -> tuple[tuple[str, str], ...]:
    path = Path(__file__).parents[3] / "migrations" / "versions" / "0017_lz4_toast.py"
    spec = importlib.util.spec_from_file_location("lz4_toast", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return tuple(module.COLUMNS)


@pytest.mark.postgres
def test_postgres_compresses_the_document_columns_with_lz4(pg_engine: Engine) -> None:
    """Migration 0017: the ledger's payloads and the looks' states are lz4-compressed (the
    ledger's insert runs under the head's row lock; pglz made it ~40 % slower), and a value
    written now is stored lz4-compressed and read back as written."""
    columns = _lz4_migration_columns()
    assert ("ledger_entries", "payload") in columns
    with pg_engine.connect() as conn:
        methods = {
            (row.table, row.column): row.method
            for row in conn.execute(
                text(
                    "SELECT c.relname AS table, a.attname AS column, a.attcompression AS method "
                    "FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
                    "WHERE c.relnamespace = 'public'::regnamespace AND a.attnum > 0"
                )
            )
        }
        assert {methods[c] for c in columns} == {"l"}, methods
        # every named column exists: a renamed one would make the migration fail, not skip
        assert set(columns) <= set(methods)
        document = '{"evidence":"' + "canary-vs-baseline " * 500 + '"}'
        conn.execute(text("CREATE TEMP TABLE probe (doc text COMPRESSION lz4)"))
        conn.execute(text("INSERT INTO probe VALUES (:d)"), {"d": document})
        stored = conn.execute(text("SELECT pg_column_compression(doc), doc FROM probe")).one()
        assert stored == ("lz4", document)
