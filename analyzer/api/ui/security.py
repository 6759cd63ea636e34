"""What keeps the pages safe in a browser: response headers, CSRF checks, redirect targets.

* Every ``/ui`` response carries a strict Content-Security-Policy (no scripts at all, styles only
  from our own stylesheet, no framing, forms only to ourselves), ``nosniff``, ``no-referrer`` (an
  audit URL names models and times; it must not leak to another site) and ``no-store`` (audit
  data must not linger in shared caches).
* The only state-changing requests are the login and logout forms. They need both a
  double-submit token (a random value in an HttpOnly, SameSite=Strict cookie that the form must
  echo) and, when the browser says where the form came from (``Sec-Fetch-Site``, ``Origin`` or
  ``Referer``), that it came from this site. A cross-site form cannot carry the Strict cookie,
  and a browser marks its request ``Sec-Fetch-Site: cross-site``: either refuses it.
* A post-login redirect only ever goes to a path under ``/ui``, never to another host.
"""

from __future__ import annotations

import hmac
import re
import secrets
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'none'; style-src 'self'; img-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
UI_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cache-control", b"no-store"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
)
_OURS = {name for name, _ in UI_HEADERS}

CSRF_COOKIE = "canary_ui_csrf"
CSRF_FIELD = "csrf"
_CSRF_SHAPE = re.compile(r"^[A-Za-z0-9_-]{43}$")  # secrets.token_urlsafe(32)
_SAFE_NEXT = re.compile(r"^/ui(/[A-Za-z0-9._~!$&'()*+,;=:@%/?-]*)?$")


def is_ui_path(path: str) -> bool:
    return path == "/ui" or path.startswith("/ui/")


class UiSecurityHeadersMiddleware:
    """Adds :data:`UI_HEADERS` to every response under ``/ui``, replacing any the app set."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_ui_path(scope.get("path", "")):
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                kept = [(k, v) for k, v in message.get("headers", []) if k.lower() not in _OURS]
                message["headers"] = kept + list(UI_HEADERS)
            await send(message)

        await self.app(scope, receive, with_headers)


def new_csrf_token() -> str:
    return secrets.token_urlsafe(32)


def csrf_cookie_value(request: Request) -> str | None:
    """The double-submit token this browser holds, if it is one we could have issued."""
    value = request.cookies.get(CSRF_COOKIE)
    return value if value is not None and _CSRF_SHAPE.match(value) else None


def csrf_problem(request: Request, submitted: str | None) -> str | None:
    """Why a form post must be refused, or None when it came from our own page."""
    cross_site = _cross_site(request)
    if cross_site is not None:
        return cross_site
    held = csrf_cookie_value(request)
    if held is None or not submitted:
        return "the form's security token is missing (cookies blocked, or the page is stale)"
    if not hmac.compare_digest(held.encode(), submitted.encode()):
        return "the form's security token does not match this browser's"
    return None


def _cross_site(request: Request) -> str | None:
    """Why the browser says the form came from another site, or None.

    ``Sec-Fetch-Site`` is set by the browser and cannot be forged by a page, so when present it
    decides. ``Origin`` must name this host; it is ``null`` for our own forms because our pages
    send ``Referrer-Policy: no-referrer``, so ``null`` is accepted only when ``Sec-Fetch-Site``
    vouches for the request (an attacker's page can send ``null`` too, but not that header).
    """
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return f"the form was sent from another site (Sec-Fetch-Site: {site})"
    origin = request.headers.get("origin") or _origin_of(request.headers.get("referer"))
    if origin is None:
        return None  # a non-browser client; the double-submit token still has to match
    if origin == "null":
        return None if site == "same-origin" else "the browser did not say where the form came from"
    if urlsplit(origin).netloc.lower() != request.headers.get("host", "").lower():
        return "the form was sent from another site (its Origin is not this server)"
    return None


def _origin_of(referer: str | None) -> str | None:
    if not referer:
        return None
    parts = urlsplit(referer)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else "null"


def safe_next(target: str | None) -> str:
    """``target`` when it is a path under ``/ui``; ``/ui/`` otherwise (no open redirects)."""
    if not target or "\\" in target or target.startswith("//") or not _SAFE_NEXT.match(target):
        return "/ui/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return "/ui/"
    return target
