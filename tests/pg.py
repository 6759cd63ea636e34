"""PostgreSQL for tests: one scratch database per test that needs a clean one.

``CANARY_ANALYZER_TEST_DATABASE_URL`` names a maintenance database on the server (``.ci/run``
creates a scratch one per run). The schema is built once per session by Alembic into a template
database; each test then gets ``CREATE DATABASE … TEMPLATE`` (a file copy, ~50 ms), so tests can
commit for real, run several processes, and never see each other's rows.

In CI (``CI`` set) a missing server fails loudly. Locally, without a server, the tests are
skipped with the reason, or run on a testcontainers PostgreSQL when a Docker engine exists.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import OperationalError

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


class PostgresUnavailableError(RuntimeError):
    pass


def maintenance_url() -> URL:
    return make_url(os.environ.get("CANARY_ANALYZER_TEST_DATABASE_URL", DEFAULT_URL))


def check_reachable(url: URL) -> None:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            conn.execute(text("select 1"))
    except OperationalError as exc:
        raise PostgresUnavailableError(
            f"PostgreSQL not reachable at {url.render_as_string(hide_password=True)}: {exc.orig}"
        ) from exc
    finally:
        engine.dispose()


def _admin(url: URL, statement: str) -> None:
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(statement))
    finally:
        engine.dispose()


def create_database(url: URL, name: str, template: str | None = None) -> URL:
    suffix = f" TEMPLATE {template}" if template else ""
    _admin(url, f'CREATE DATABASE "{name}"{suffix}')
    return url.set(database=name)


def drop_database(url: URL, name: str) -> None:
    _admin(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def scratch_database(url: URL, template: str | None = None) -> Iterator[URL]:
    name = f"ca_test_{uuid.uuid4().hex[:12]}"
    created = create_database(url, name, template)
    try:
        yield created
    finally:
        drop_database(url, name)
