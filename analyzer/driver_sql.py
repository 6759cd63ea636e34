"""Hot statements run on the DBAPI cursor of the caller's connection, compiled once (issue 20).

A fresh Argo look runs three statements in its transaction: the session row's lock, the ledger
head's lock and the write (the row's update with the entry's insert and the head's move as
CTEs). A transaction of the two locks cost 0.68 ms of CPU through ``Connection.execute`` (the
execution context, parameter and result processing, the cache key of the statement) and 0.40 ms
sent as the text SQLAlchemy compiled, on the same psycopg connection (``bench/driver_sql.py``;
docs/benchmarks.md, "The fresh call after this round"). psycopg prepares it on the server after
a few runs either way (its ``prepare_threshold``), as it did under ``Connection.execute``.

Only where it is exact: PostgreSQL through psycopg, for statements whose columns need no bind or
result processing by SQLAlchemy (integers, floats, texts, ``timestamptz``: psycopg converts them
as SQLAlchemy's psycopg dialect does, which leaves them to the driver). Everything else, SQLite
included, runs through ``Connection.execute`` as before. The statement runs in the caller's
transaction on the same DBAPI connection: begin, commit, rollback and their event hooks stay
SQLAlchemy's.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import Executable
from sqlalchemy.sql.compiler import Compiled


class DriverStatement:
    """``statement`` (a module constant, its parameters bound by name) compiled once and run
    on the driver's cursor on PostgreSQL; thread-safe (what it keeps is immutable once made)."""

    def __init__(self, statement: Executable) -> None:
        self.statement = statement
        self._compiled: tuple[str, dict[str, Any]] | None = None
        # Rows come back as plain tuples and are named here: psycopg's named rows build the
        # result's column descriptions again for every statement run.
        self._row: type | None = None

    def first(self, conn: Connection, parameters: Mapping[str, Any]) -> Any | None:
        """The first row of a query (attribute access by column name, as a ``Row``), or None."""
        if conn.dialect.driver != "psycopg":
            return conn.execute(self.statement, dict(parameters)).first()
        cursor = self._execute(conn, parameters)
        try:
            found = cursor.fetchone()
            if found is None:
                return None
            if self._row is None:
                names = [column.name for column in cursor.description or ()]
                self._row = namedtuple("Row", names, rename=True)  # type: ignore[misc]
            return self._row._make(found)  # type: ignore[attr-defined]
        finally:
            cursor.close()

    def run(self, conn: Connection, parameters: Mapping[str, Any]) -> None:
        """Execute it (no rows wanted)."""
        if conn.dialect.driver != "psycopg":
            conn.execute(self.statement, dict(parameters))
            return
        self._execute(conn, parameters).close()

    def _execute(self, conn: Connection, parameters: Mapping[str, Any]) -> Any:
        """A cursor that ran the statement; a driver error raised as SQLAlchemy raises it (an
        ``OperationalError`` is the API's 503), its connection invalidated on a disconnect."""
        if self._compiled is None:
            compiled: Compiled = self.statement.compile(dialect=conn.dialect)  # type: ignore[attr-defined]
            # literal values in the statement (``id == 1``) are bound parameters of their own
            self._compiled = (str(compiled), dict(compiled.params))
        sql, constants = self._compiled
        bound = {**constants, **parameters}
        driver = conn.connection.driver_connection
        assert driver is not None  # an open connection, in the caller's transaction
        dbapi = conn.dialect.loaded_dbapi
        try:
            return driver.execute(sql, bound)
        except dbapi.Error as exc:
            lost = conn.dialect.is_disconnect(exc, driver, None)
            if lost:
                conn.invalidate(exc)
            raise DBAPIError.instance(
                sql, bound, exc, dbapi.Error, connection_invalidated=lost, dialect=conn.dialect
            ) from exc
