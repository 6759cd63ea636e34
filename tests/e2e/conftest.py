"""End-to-end: the real app (``build_app`` over ``build_service``) under uvicorn on 127.0.0.1,
a seeded PostgreSQL ledger, and Debian's Chromium driven through Playwright.

The browser is ``/usr/bin/chromium`` from the Debian package (``.ci/run`` installs it); never
``playwright install``, which downloads a browser build and cannot work on a closed network.
Without Chromium or the ``playwright`` package the tests are skipped locally, saying why, and
**fail** when ``CI`` is set: a browser suite that silently skips in CI would hide a broken
install, as a missing PostgreSQL or Prometheus would.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import Engine
from sqlalchemy.engine import URL

from analyzer.api.server import build_app
from analyzer.config import ApiSettings, RateLimitSettings, Settings, StaticTokenSettings
from analyzer.db import make_engine
from analyzer.wiring import build_service
from tests import pg
from tests.integration.api.conftest import Running
from tests.integration.ui.seed import Seeded, seed_history

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
AUDITOR_TOKEN = "e2e-auditor-token-0123456789abcdef"


def browser_problem() -> str | None:
    """Why no browser can be driven here, or None."""
    if importlib.util.find_spec("playwright") is None:
        return "the playwright package is not installed (pip install -e '.[dev]')"
    if not CHROMIUM.is_file() or not os.access(CHROMIUM, os.X_OK):
        return f"{CHROMIUM} is missing (apt-get install -y chromium; never `playwright install`)"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium per test module."""
    problem = browser_problem()
    if problem is not None:
        if os.environ.get("CI"):
            pytest.fail(f"{problem} (CI must provide Chromium; see .ci/run)")
        pytest.skip(f"{problem}; the browser tests need Debian's Chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield launched
        launched.close()


@dataclass
class App:
    url: str
    engine: Engine
    seeded: Seeded


def e2e_settings(database_url: str) -> Settings:
    token = StaticTokenSettings(subject="auditor-e2e", roles=("auditor",), token=AUDITOR_TOKEN)
    fast = RateLimitSettings(per_second=1000, burst=1000)
    return Settings(
        database_url=SecretStr(database_url),
        api=ApiSettings(static_tokens=(token,), rate_limit_audit=fast),
    )


def start_app(pg_server: URL, pg_template: str) -> Iterator[App]:
    """A seeded scratch database and the production app over it, until the generator closes."""
    with pg.scratch_database(pg_server, template=pg_template) as url:
        database_url = url.render_as_string(hide_password=False)
        engine = make_engine(database_url)
        seeded = seed_history(engine)
        settings = e2e_settings(database_url)
        service = build_service(settings)
        app = build_app(settings, service=service)
        running = Running(app)
        try:
            yield App(url=running.url, engine=engine, seeded=seeded)
        finally:
            running.stop()
            app.state.services.analyses.close()
            service.close()
            engine.dispose()


@pytest.fixture(scope="module")
def app(pg_server: URL, pg_template: str) -> Iterator[App]:
    """Shared by the tests that only read."""
    yield from start_app(pg_server, pg_template)


@pytest.fixture
def own_app(pg_server: URL, pg_template: str) -> Iterator[App]:
    """For a test that alters the database."""
    yield from start_app(pg_server, pg_template)
