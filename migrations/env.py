"""Alembic environment: runs the migrations in ``versions/`` against the configured URL."""

from __future__ import annotations

from alembic import context

from analyzer.db import make_engine
from analyzer.schema import ALL_METADATA

config = context.config


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=ALL_METADATA)
        with context.begin_transaction():
            context.run_migrations()
        return
    url = config.get_main_option("sqlalchemy.url")
    if url is None:
        raise RuntimeError("sqlalchemy.url is not set")
    engine = make_engine(url)
    with engine.connect() as conn:
        context.configure(connection=conn, target_metadata=ALL_METADATA)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    raise RuntimeError(
        "offline (SQL script) migrations are not supported; run `canary-analyzer migrate`"
    )
run_migrations_online()
