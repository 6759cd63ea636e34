"""Database engines and the schema-version check.

PostgreSQL (psycopg 3) in production and tests; a SQLite file as the embedded default. SQLite
transactions start with ``BEGIN IMMEDIATE`` so that two writers never both read the ledger head
before one of them writes (PostgreSQL gets the same guarantee from ``SELECT … FOR UPDATE``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

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
        kwargs.setdefault("pool_pre_ping", True)
        engine = create_engine(url, **kwargs)
    if current_url is not None:
        _connect_with_current_url(engine, current_url)
    return engine


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
