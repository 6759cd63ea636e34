"""The /ui/ pages over real HTTP (uvicorn on 127.0.0.1) on a seeded PostgreSQL ledger.

Most tests only read, so one seeded database and one server serve a whole module; tests that
change the database or need other settings build their own with ``make_site``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from html import unescape
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine
from sqlalchemy.engine import URL

from analyzer.analyses.catalog import ProfileCatalog
from analyzer.api.app import create_app
from analyzer.api.auth import Authenticator
from analyzer.api.flagger import PolicyGateEvaluator
from analyzer.config import (
    ApiSettings,
    RateLimitSettings,
    Settings,
    StaticTokenSettings,
    UiSettings,
)
from analyzer.db import make_engine
from analyzer.fleets.engine import FleetEngine
from analyzer.ledger.store import Ledger
from analyzer.rollouts.service import RolloutService
from analyzer.targets.memory.target import InMemoryTarget
from gates.policy import GatePolicyConfig
from tests import pg
from tests.integration.api.conftest import ROLES, FakeClock, Running, static_token
from tests.integration.ui.seed import Seeded, seed_history

SCOPED_ADMIN = "static-token-ui-risk-prod-admin-0123456789"
SCOPED_AUDITOR = "static-token-ui-risk-prod-auditor-0123456789"


def ui_test_settings(*, ui: UiSettings | None = None, **api: Any) -> Settings:
    tokens = [
        StaticTokenSettings(subject=f"{role}-user", roles=(role,), token=static_token(role))
        for role in ROLES
    ]
    for subject, role, token in (
        ("risk-prod-admin", "admin", SCOPED_ADMIN),
        ("risk-prod-auditor", "auditor", SCOPED_AUDITOR),
    ):
        tokens.append(
            StaticTokenSettings(
                subject=subject, roles=(role,), token=token, namespaces=("risk-prod",)
            )
        )
    fast = RateLimitSettings(per_second=1000, burst=1000)
    settings: dict[str, Any] = {
        "static_tokens": tuple(tokens),
        "rate_limit_analysis": fast,
        "rate_limit_audit": fast,
        "ui": ui or UiSettings(),
        **api,
    }
    return Settings(api=ApiSettings(**settings))


class NoAnalyses:
    """The pages never judge anything; the app only needs something to close."""

    def close(self) -> None:
        return None


@dataclass
class Site:
    """A running app over a database, and a client that does not follow redirects."""

    url: str
    engine: Engine
    ledger: Ledger
    clock: FakeClock
    seeded: Seeded | None
    http: httpx.Client
    running: Running = field(repr=False)

    def get(
        self,
        path: str,
        role: str | None = "auditor",
        *,
        token: str | None = None,
        cookie: str | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """GET with a bearer header for ``role`` (or ``token``), or only a login ``cookie``."""
        headers = dict(kwargs.pop("headers", {}))
        if token is None and role is not None and cookie is None:
            token = static_token(role)
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        if cookie is not None:
            headers["Cookie"] = f"canary_ui_token={cookie}"
        return self.http.get(self.url + path, headers=headers, **kwargs)

    def close(self) -> None:
        self.http.close()
        self.running.stop()


def build_site(
    engine: Engine,
    seeded: Seeded | None,
    settings: Settings | None = None,
    fleet_engine: FleetEngine | None = None,
) -> Site:
    settings = settings or ui_test_settings()
    clock = FakeClock()
    ledger = Ledger(engine, clock=clock)
    app = create_app(
        settings,
        engine=engine,
        ledger=ledger,
        rollouts=RolloutService(engine, ledger, InMemoryTarget(), clock=clock),
        analyses=NoAnalyses(),  # type: ignore[arg-type]
        gate_evaluator=PolicyGateEvaluator(GatePolicyConfig(), {}),
        profiles=ProfileCatalog(None),
        authenticator=Authenticator.from_settings(settings.api, clock=clock.monotonic),
        registry=CollectorRegistry(),
        clock=clock,
        monotonic=clock.monotonic,
        fleet_engine=fleet_engine,
    )
    running = Running(app)
    return Site(
        url=running.url,
        engine=engine,
        ledger=ledger,
        clock=clock,
        seeded=seeded,
        http=httpx.Client(timeout=10),
        running=running,
    )


@pytest.fixture(scope="module")
def seeded_database(pg_server: URL, pg_template: str) -> Iterator[tuple[Engine, Seeded]]:
    with pg.scratch_database(pg_server, template=pg_template) as url:
        engine = make_engine(url.render_as_string(hide_password=False))
        try:
            yield engine, seed_history(engine)
        finally:
            engine.dispose()


@pytest.fixture(scope="module")
def site(seeded_database: tuple[Engine, Seeded]) -> Iterator[Site]:
    engine, seeded = seeded_database
    built = build_site(engine, seeded)
    yield built
    built.close()


@pytest.fixture
def make_site(pg_engine: Engine) -> Iterator[Callable[..., Site]]:
    """A site on this test's own database, seeded unless ``seed=False`` (with fleet rollouts
    when given their engine)."""
    built: list[Site] = []

    def make(
        *,
        seed: bool = True,
        settings: Settings | None = None,
        fleet_engine: FleetEngine | None = None,
    ) -> Site:
        seeded = seed_history(pg_engine) if seed else None
        site = build_site(pg_engine, seeded, settings, fleet_engine)
        built.append(site)
        return site

    yield make
    for site in built:
        site.close()


def text_of(html: str) -> str:
    """The page's visible text, tags removed and whitespace collapsed (for phrase checks)."""
    inline_gone = re.sub(r"</?(a|span|strong|code|time|em|b)\b[^>]*>", "", html)
    without_tags = re.sub(r"<[^>]+>", " ", inline_gone)
    return re.sub(r"\s+", " ", unescape(without_tags)).strip()


def set_cookies(response: httpx.Response) -> dict[str, str]:
    """``Set-Cookie`` headers by cookie name (the raw header, attributes included)."""
    cookies = {}
    for header in response.headers.get_list("set-cookie"):
        name = header.split("=", 1)[0].strip()
        cookies[name] = header
    return cookies


def cookie_value(set_cookie: str) -> str:
    return set_cookie.split(";", 1)[0].split("=", 1)[1].strip('"')
