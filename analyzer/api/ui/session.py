"""Who is looking: the same tokens, roles and namespaces as the API, presented by a browser.

A browser cannot add an ``Authorization`` header by itself, so a page accepts the token from
two places, in this order:

1. ``Authorization: Bearer`` — what an SSO reverse proxy (oauth2-proxy with
   ``--pass-authorization-header``) injects; the production setup.
2. The ``canary_ui_token`` cookie that ``/ui/login`` sets (HttpOnly, SameSite=Strict, Path=/ui,
   Secure unless switched off) — for local use; ignored when ``api.ui.login_form`` is off.

Only these pages read the cookie: the API's dependencies read the header alone, and the cookie's
path keeps browsers from even sending it to ``/api/``. Tokens are verified by the API's
:class:`~analyzer.api.auth.Authenticator` on every request, so an expired or revoked token stops
working at once; nothing about a session is stored on the server.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import Request
from starlette.responses import Response

from analyzer.api.auth import PERMISSIONS, Permission, authorize, token_digest
from analyzer.api.deps import Services, ServicesDep, authenticate, take_rate_token
from analyzer.config import UiSettings
from analyzer.rollouts.control import Actor

TOKEN_COOKIE = "canary_ui_token"
COOKIE_PATH = "/ui"


@dataclass(frozen=True, kw_only=True, slots=True)
class Viewer:
    """An authenticated person looking at the pages."""

    actor: Actor
    token_key: str  # the token's digest: the rate-limit bucket it shares with the API
    via_cookie: bool

    def may(self, permission: Permission) -> bool:
        return bool(self.actor.roles & PERMISSIONS[permission])

    def sees(self, namespace: str) -> bool:
        return self.actor.namespaces is None or namespace in self.actor.namespaces

    def sees_model(self, model: str | None) -> bool:
        """Whether an entry about ``model`` is visible; entries about no model are for unscoped
        viewers only (fail closed)."""
        if model is None:
            return self.actor.namespaces is None
        return self.sees(model.partition("/")[0])

    @property
    def subject(self) -> str:
        return self.actor.subject

    @property
    def roles_text(self) -> str:
        return ", ".join(sorted(self.actor.roles)) or "no roles"

    @property
    def namespaces_text(self) -> str:
        if self.actor.namespaces is None:
            return "all namespaces"
        return ", ".join(sorted(self.actor.namespaces)) or "no namespaces"

    @property
    def may_audit(self) -> bool:
        return self.may(Permission.AUDIT)


def ui_settings(services: Services) -> UiSettings:
    return services.settings.api.ui


def presented_token(request: Request, ui: UiSettings) -> tuple[str | None, bool]:
    """The token this request carries and whether it came from the login cookie."""
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, value = header.partition(" ")
        token = value.strip() if scheme.lower() == "bearer" else ""
        return token or None, False
    if ui.login_form:
        cookie = request.cookies.get(TOKEN_COOKIE)
        if cookie:
            return cookie, True
    return None, False


def viewer_with(
    permission: Permission, *, audit_rate: bool = False
) -> Callable[..., Awaitable[Viewer]]:
    """A dependency: authenticate from header or cookie, authorize, maybe take an audit token.

    Raises the API's own errors (401 ``ApiError``, 403 ``PermissionDeniedError``, 429); the
    pages' route class turns them into a redirect to the login form or an error page.
    """

    async def dependency(request: Request, services: ServicesDep) -> Viewer:
        token, via_cookie = presented_token(request, ui_settings(services))
        actor = await authenticate(services.authenticator, token)
        assert token is not None  # authenticate refuses a missing token
        authorize(actor, permission)
        viewer = Viewer(actor=actor, token_key=token_digest(token), via_cookie=via_cookie)
        if audit_rate:
            take_audit_token(services, viewer)
        return viewer

    return dependency


def take_audit_token(services: Services, viewer: Viewer) -> None:
    """Pages that read the ledger draw from the same per-token bucket as the audit API."""
    take_rate_token(services, "audit", viewer.token_key)


def set_ui_cookie(
    response: Response, name: str, value: str, ui: UiSettings, *, max_age: int | None
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=COOKIE_PATH,
        secure=ui.cookie_secure,
        httponly=True,
        samesite="strict",
    )


def clear_ui_cookie(response: Response, name: str, ui: UiSettings) -> None:
    response.delete_cookie(
        name, path=COOKIE_PATH, secure=ui.cookie_secure, httponly=True, samesite="strict"
    )
