"""Hot statements run on the DBAPI cursor of the caller's connection, compiled once (issue 20).

A fresh Argo look runs three statements in its transaction: the session row's lock, the ledger
head's lock and the write (the row's update with the entry's insert and the head's move as
CTEs). Through ``Connection.execute`` each cost ~0.3 ms of CPU here (the execution context,
parameter and result processing, the cache key of the statement); sent as the text SQLAlchemy
compiled, on the same psycopg connection, ~0.13 ms (`bench/driver_sql.py`). The statement is
also prepared on the server after a few runs (psycopg's ``prepare_threshold``), which saves
PostgreSQL its parse and plan.

Only where it is exact: PostgreSQL through psycopg, for statements whose columns need no bind or
result processing by SQLAlchemy (integers, floats, texts, ``timestamptz``: psycopg converts them
as SQLAlchemy's psycopg dialect does, which leaves them to the driver). Everything else, SQLite
included, runs through ``Connection.execute`` as before. The statement runs in the caller's
transaction on the same DBAPI connection: begin, commit, rollback and their event hooks stay
SQLAlchemy's.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from psycopg import Cursor
from psycopg.rows import namedtuple_row
from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import Executable
from sqlalchemy.sql.compiler import Compiled


class DriverStatement:
    """``statement`` (a module constant, its parameters bound by name) compiled once per
    dialect and run on the driver's cursor on PostgreSQL; thread-safe (the compiled text is
    immutable once made)."""

    def __init__(self, statement: Executable) -> None:
        self.statement = statement
        self._compiled: tuple[str, dict[str, Any]] | None = None

    def first(self, conn: Connection, parameters: Mapping[str, Any]) -> Any | None:
        """The first row (attribute access by column name, as a ``Row``), or None."""
        if conn.dialect.driver != "psycopg":
            return conn.execute(self.statement, dict(parameters)).first()
        with self._cursor(conn, parameters, rows=True) as cursor:
            return cursor.fetchone() if cursor.description is not None else None

    def run(self, conn: Connection, parameters: Mapping[str, Any]) -> None:
        """Execute it (no rows wanted)."""
        if conn.dialect.driver != "psycopg":
            conn.execute(self.statement, dict(parameters))
            return
        with self._cursor(conn, parameters, rows=False):
            pass

    @contextmanager
    def _cursor(
        self, conn: Connection, parameters: Mapping[str, Any], *, rows: bool
    ) -> Iterator[Cursor[Any]]:
        """A cursor that ran the statement; a driver error raised as SQLAlchemy raises it (an
        ``OperationalError`` is the API's 503), its connection invalidated on a disconnect."""
        sql, constants = self._text(conn)
        bound = {**constants, **parameters}
        driver = conn.connection.driver_connection
        assert driver is not None  # an open connection, in the caller's transaction
        dbapi = conn.dialect.loaded_dbapi
        try:
            with driver.cursor(row_factory=namedtuple_row) if rows else driver.cursor() as cursor:
                cursor.execute(sql, bound)
                yield cursor
        except dbapi.Error as exc:
            lost = conn.dialect.is_disconnect(exc, driver, None)
            if lost:
                conn.invalidate(exc)
            raise DBAPIError.instance(
                sql, bound, exc, dbapi.Error, connection_invalidated=lost, dialect=conn.dialect
            ) from exc

    def _text(self, conn: Connection) -> tuple[str, dict[str, Any]]:
        if self._compiled is None:
            compiled: Compiled = self.statement.compile(dialect=conn.dialect)  # type: ignore[attr-defined]
            # literal values in the statement (``id == 1``) are bound parameters of their own
            self._compiled = (str(compiled), dict(compiled.params))
        return self._compiled
