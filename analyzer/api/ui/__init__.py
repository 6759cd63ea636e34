"""Read-only web pages under ``/ui/`` for model-risk officers and auditors (docs/ui.md).

Server-rendered HTML over the services the API already has: the same audit queries
(:mod:`analyzer.api.audit_queries`), the same authenticator, roles, tenant namespaces and rate
limits. No scripts, no external assets; every page is a GET that changes nothing, except the
login and logout forms (the rollout page keeps what it derived from the ledger — each look's
summary, the looks' charts — in its own tables for the next page: ``look_store.py``).
"""

from __future__ import annotations

from importlib.resources import files

from fastapi import FastAPI

from analyzer.api.ui import audit_pages, fleet_pages, login, rollout_pages
from analyzer.api.ui.rendering import UiState, build_templates
from analyzer.api.ui.security import UiSecurityHeadersMiddleware


def install_ui(app: FastAPI) -> None:
    """Add the pages, their templates and their security headers to ``app``."""
    static = files("analyzer.api.ui").joinpath("static")
    app.state.ui = UiState(
        templates=build_templates(),
        stylesheet=static.joinpath("ui.css").read_bytes(),
        favicon=static.joinpath("favicon.svg").read_bytes(),
    )
    routers = (login.router, rollout_pages.router, fleet_pages.router, audit_pages.router)
    for router in (*routers, login.fallback):
        app.include_router(router)  # the fallback (404 page) last: it matches every /ui/ path
    app.add_middleware(UiSecurityHeadersMiddleware)
