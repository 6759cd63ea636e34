"""Shared fixtures: PostgreSQL scratch databases built from Alembic migrations."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import structlog
from alembic import command
from sqlalchemy import Engine
from sqlalchemy.engine import URL

import analyzer.logging
from analyzer.db import alembic_config, make_engine
from tests import pg

analyzer.logging.cache_loggers = False


def _test_logging_defaults() -> None:
    """structlog's defaults, except that exceptions are rendered as plain tracebacks: the
    default rich renderer spends seconds on one traceback with its locals (it made a test that
    logs one unexpected error take 6 s, and time out on a loaded machine)."""
    structlog.reset_defaults()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.StackInfoRenderer(),
            structlog.dev.set_exc_info,
            structlog.processors.TimeStamper(fmt="%Y-%m-%d %H:%M:%S", utc=False),
            structlog.dev.ConsoleRenderer(
                colors=False, exception_formatter=structlog.dev.plain_traceback
            ),
        ]
    )


_test_logging_defaults()


@pytest.fixture(autouse=True)
def _logging_as_the_test_found_it() -> Iterator[None]:
    """A test that configures the service's logging (the CLI, a wired service) leaves structlog's
    defaults behind it, so a later test's ``capture_logs`` sees its events at every level."""
    yield
    if analyzer.logging._configured:
        _test_logging_defaults()
        analyzer.logging._configured = False


@pytest.fixture(scope="session")
def pg_server() -> Iterator[URL]:
    """The PostgreSQL server of this session (tests/pg.py: env URL, a container, or local)."""
    source = pg.choose_server(os.environ, docker=pg.docker_reachable())
    if source == "docker":
        with pg.container_server() as url:
            yield url
        return
    url = pg.maintenance_url()
    try:
        pg.check_reachable(url)
    except pg.PostgresUnavailableError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"{exc} (CI must provide PostgreSQL; see .ci/run)")
        pytest.skip(f"{exc}; set CANARY_ANALYZER_TEST_DATABASE_URL to run PostgreSQL tests")
    yield url


@pytest.fixture(scope="session")
def pg_template(pg_server: URL) -> Iterator[str]:
    """A database migrated to head, used as the template for every scratch database."""
    with pg.scratch_database(pg_server, drop_in_background=False) as url:
        command.upgrade(alembic_config(url.render_as_string(hide_password=False)), "head")
        yield str(url.database)
        pg.stop_template_copies(str(url.database))
    failures = pg.dropper.drain()  # the scratch databases' drops, queued by their tests
    assert not failures, f"scratch databases left behind: {failures}"


@pytest.fixture
def pg_url(pg_server: URL, pg_template: str) -> Iterator[str]:
    """URL of a fresh, migrated PostgreSQL database for this test alone."""
    with pg.scratch_database(pg_server, template=pg_template) as url:
        yield url.render_as_string(hide_password=False)


@pytest.fixture
def pg_engine(pg_url: str) -> Iterator[Engine]:
    engine = make_engine(pg_url)
    yield engine
    engine.dispose()


@pytest.fixture
def empty_pg_url(pg_server: URL) -> Iterator[str]:
    """URL of a fresh, *unmigrated* PostgreSQL database."""
    with pg.scratch_database(pg_server) as url:
        yield url.render_as_string(hide_password=False)


@pytest.fixture
def sqlite_url(tmp_path: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path}/ledger.sqlite3"
