"""Signing in with a token (local use), signing out, the stylesheet, and unknown pages.

The login form is the only page that takes input that changes anything, so it is the one with
CSRF protection (see :mod:`analyzer.api.ui.security`) and its own rate limit per client address
(guessing tokens through it must be as slow as through the API). A token is checked with the
API's :class:`~analyzer.api.auth.Authenticator` before it is put in the cookie, and again on
every page.
"""

from __future__ import annotations

from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from analyzer.api.deps import ServicesDep, authenticate, take_rate_token
from analyzer.api.errors import ApiError
from analyzer.api.ui.forms import read_form
from analyzer.api.ui.rendering import HtmlPageRoute, UiState, error_page, render
from analyzer.api.ui.security import (
    CSRF_COOKIE,
    CSRF_FIELD,
    csrf_cookie_value,
    csrf_problem,
    new_csrf_token,
    safe_next,
)
from analyzer.api.ui.session import TOKEN_COOKIE, clear_ui_cookie, set_ui_cookie, ui_settings
from analyzer.config import UiSettings

log = structlog.get_logger(__name__)

router = APIRouter(route_class=HtmlPageRoute, include_in_schema=False)
fallback = APIRouter(route_class=HtmlPageRoute, include_in_schema=False)

NOTICES = {
    "rejected": "Your saved token was not accepted any more (expired or revoked); sign in again.",
    "logged_out": "You are signed out; the token was removed from this browser.",
}
MAX_TOKEN_CHARS = 8192


@router.get("/ui", include_in_schema=False)
def ui_root() -> RedirectResponse:
    return RedirectResponse("/ui/", status_code=303)


@router.get("/ui/static/ui.css")
def stylesheet(request: Request) -> Response:
    ui: UiState = request.app.state.ui
    return Response(ui.stylesheet, media_type="text/css; charset=utf-8")


@router.get("/ui/static/favicon.svg")
def favicon(request: Request) -> Response:
    ui: UiState = request.app.state.ui
    return Response(ui.favicon, media_type="image/svg+xml")


def _login_form(
    request: Request,
    services: ServicesDep,
    *,
    next_path: str,
    notice: str | None = None,
    error: str | None = None,
    status: int = 200,
) -> Response:
    """The form, with this browser's double-submit token in a hidden field and a cookie."""
    ui = ui_settings(services)
    return _csrf_form(
        request, ui, "login.html", title="Sign in", status=status, next_path=next_path,
        notice=notice, error=error, secure_cookie=ui.cookie_secure,
    )  # fmt: skip


def _csrf_form(
    request: Request,
    ui: UiSettings,
    template: str,
    *,
    title: str,
    status: int = 200,
    **context: Any,
) -> Response:
    """A page whose form posts back: this browser's double-submit token (kept, or a new one)
    in a hidden field and in the CSRF cookie."""
    token = csrf_cookie_value(request) or new_csrf_token()
    response = render(
        request, template, title=title, viewer=None, status=status,
        form_csrf=token, csrf_field=CSRF_FIELD, **context,
    )  # fmt: skip
    set_ui_cookie(response, CSRF_COOKIE, token, ui, max_age=None)
    return response


def _login_disabled(request: Request) -> Response:
    return error_page(
        request,
        404,
        "No login form here",
        "Sign in through your organisation's single sign-on; this deployment "
        "takes tokens only from its SSO proxy.",
    )


@router.get("/ui/login", response_class=HTMLResponse)
def login_page(
    request: Request,
    services: ServicesDep,
    next: Annotated[str | None, Query(max_length=2000)] = None,
    reason: Annotated[str | None, Query(max_length=32)] = None,
) -> Response:
    if not ui_settings(services).login_form:
        return _login_disabled(request)
    notice = NOTICES.get(reason or "")
    return _login_form(request, services, next_path=safe_next(next), notice=notice)


@router.post("/ui/login", response_class=HTMLResponse)
async def login(request: Request, services: ServicesDep) -> Response:
    ui = ui_settings(services)
    if not ui.login_form:
        return _login_disabled(request)
    client = request.client.host if request.client else "unknown"
    take_rate_token(services, "ui_login", f"login:{client}")
    form = await read_form(request)
    next_path = safe_next(form.get("next"))
    problem = csrf_problem(request, form.get(CSRF_FIELD))
    if problem is not None:
        log.warning("ui.login.csrf_refused", client=client, problem=problem)
        return _login_form(
            request,
            services,
            next_path=next_path,
            status=403,
            error=f"Sign-in refused: {problem}. Reload this page and try again.",
        )
    token = form.get("token", "").strip()
    if not token or len(token) > MAX_TOKEN_CHARS:
        return _login_form(
            request,
            services,
            next_path=next_path,
            status=422,
            error="Paste your bearer token into the token field.",
        )
    try:
        actor = await authenticate(services.authenticator, token)
    except ApiError as exc:
        return _login_form(
            request,
            services,
            next_path=next_path,
            status=exc.status,
            error=f"That token was not accepted: {exc.message}.",
        )
    log.info("ui.login", subject=actor.subject)
    response = RedirectResponse(next_path, status_code=303)
    set_ui_cookie(response, TOKEN_COOKIE, token, ui, max_age=ui.session_seconds)
    # A fresh double-submit token for the signed-in session (the logout form uses it).
    set_ui_cookie(response, CSRF_COOKIE, new_csrf_token(), ui, max_age=ui.session_seconds)
    return response


@router.get("/ui/logout", response_class=HTMLResponse)
def logout_page(request: Request, services: ServicesDep) -> Response:
    """A page with the sign-out button (signing out is a POST, like every change)."""
    return _csrf_form(request, ui_settings(services), "logout.html", title="Sign out")


@router.post("/ui/logout", response_class=HTMLResponse)
async def logout(request: Request, services: ServicesDep) -> Response:
    ui = ui_settings(services)
    form = await read_form(request)
    problem = csrf_problem(request, form.get(CSRF_FIELD))
    if problem is not None:
        return error_page(request, 403, "Sign-out refused", f"{problem}.")
    response = RedirectResponse("/ui/login?reason=logged_out", status_code=303)
    clear_ui_cookie(response, TOKEN_COOKIE, ui)
    set_ui_cookie(response, CSRF_COOKIE, new_csrf_token(), ui, max_age=None)
    return response


@fallback.get("/ui/{unknown:path}", response_class=HTMLResponse)
def unknown_page(request: Request, unknown: str) -> Response:
    return error_page(request, 404, "Not found", "There is no such page; start from the overview.")
