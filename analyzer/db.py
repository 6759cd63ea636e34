"""Database engines and the schema-version check.

PostgreSQL (psycopg 3) in production and tests; a SQLite file as the embedded default. SQLite
transactions start with ``BEGIN IMMEDIATE`` so that two writers never both read the ledger head
before one of them writes (PostgreSQL gets the same guarantee from ``SELECT … FOR UPDATE``).
"""

from __future__ import annotations

import select
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError, SQLAlchemyError

from analyzer.domain.errors import DatabaseNotReadyError, DatabaseUnreachableError

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def make_engine(url: str, *, current_url: Callable[[], str] | None = None, **kwargs: Any) -> Engine:
    """An engine for ``url``; SQLite files get their directory created and serialized writes.

    ``current_url``: asked again for every new connection, so credentials rotated in a mounted
    file (``CANARY_ANALYZER_DATABASE_URL_FILE``, Vault dynamic database secrets) are used
    without a restart; connections already open keep theirs until the pool recycles them.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)
        _serialize_sqlite_writes(engine)
    else:
        cheap_check = "pool_pre_ping" not in kwargs and parsed.get_driver_name() == "psycopg"
        kwargs.setdefault("pool_pre_ping", not cheap_check)
        engine = create_engine(url, **kwargs)
        if cheap_check:
            check_connections_on_checkout(engine)
    if current_url is not None:
        _connect_with_current_url(engine, current_url)
    return engine


# A pooled connection back from a transaction less than this long ago is checked by its socket
# alone; one idle longer is pinged. Load balancers and NAT tables drop idle connections without a
# word only after minutes (AWS NLB 350 s, GCP 600 s), never within seconds.
PING_AFTER_IDLE_SECONDS = 10.0


def check_connections_on_checkout(
    engine: Engine,
    *,
    ping_after_idle: float = PING_AFTER_IDLE_SECONDS,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Hand out only live PostgreSQL connections, as ``pool_pre_ping`` does, without a round
    trip for a connection in steady use (issue 20: ``pool_pre_ping``'s ``SELECT 1`` at every
    checkout and its round trip: an empty transaction costs 0.175 ms of CPU with it, 0.060 ms
    with this check, medians of 5 × 2,000 on an idle 2-vCPU machine, 2026-12-07).

    A connection returned to the pool less than ``ping_after_idle`` seconds ago is checked by
    its socket: a server that closed it (a restart, a failover, ``pg_terminate_backend``, an
    idle-session timeout) has sent its termination notice or EOF, so the socket is readable,
    while a live idle connection's is not. One idle longer is pinged as ``pool_pre_ping`` pings
    it. Either way a dead one is replaced before the caller sees it (SQLAlchemy retries the
    checkout on ``DisconnectionError``)."""
    dialect = engine.dialect

    @event.listens_for(engine, "connect")
    def _connected(_dbapi_connection: Any, record: Any) -> None:
        record.info[_RETURNED_AT] = clock()

    @event.listens_for(engine, "checkin")
    def _returned(_dbapi_connection: Any, record: Any) -> None:
        if record is not None:
            record.info[_RETURNED_AT] = clock()

    @event.listens_for(engine, "checkout")
    def _live(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        returned = record.info.get(_RETURNED_AT)
        if returned is None or clock() - returned > ping_after_idle:
            try:
                dialect.do_ping(dbapi_connection)
            except dialect.loaded_dbapi.Error as exc:
                raise DisconnectionError(f"the pooled connection failed its ping: {exc}") from exc
        elif _closed_by_server(dbapi_connection):
            raise DisconnectionError("the server closed the pooled connection")


_RETURNED_AT = "canary_analyzer_returned_at"


def _closed_by_server(dbapi_connection: Any) -> bool:
    """An idle psycopg connection that is broken or has something to read (EOF, or the
    server's termination notice: an idle connection is sent nothing else we ask for)."""
    if dbapi_connection.closed or dbapi_connection.broken:
        return True
    poller = select.poll()  # not select.select: a busy process's descriptors pass 1024
    poller.register(dbapi_connection.fileno(), select.POLLIN)
    return bool(poller.poll(0))


def _connect_with_current_url(engine: Engine, current_url: Callable[[], str]) -> None:
    @event.listens_for(engine, "do_connect")
    def _fresh_credentials(
        dialect: Any, _record: Any, cargs: list[Any], cparams: dict[str, Any]
    ) -> None:
        fresh_args, fresh_params = dialect.create_connect_args(make_url(current_url()))
        cargs[:] = fresh_args
        cparams.update(fresh_params)  # keeps connect_args such as SQLite's timeout


def _serialize_sqlite_writes(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def alembic_config(url: str) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    # ConfigParser interpolation would choke on '%' in URL-encoded passwords.
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    if head is None:
        raise DatabaseNotReadyError("no migrations found")
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def ensure_schema_current(engine: Engine) -> None:
    """Refuse to run on an unreachable or unmigrated database, saying what to run."""
    try:
        current = current_revision(engine)
    except SQLAlchemyError as exc:
        raise DatabaseUnreachableError(
            f"cannot reach the database at {engine.url.render_as_string(hide_password=True)}: "
            f"{exc.__class__.__name__}: {exc.orig if hasattr(exc, 'orig') else exc}"
        ) from exc
    head = head_revision()
    if current != head:
        raise DatabaseNotReadyError(
            f"database schema is at {current or 'nothing (empty database)'}, this version needs "
            f"{head}: run `canary-analyzer migrate` first"
        )
