"""The pages a person lands on first: ``/`` → ``/ui/``, and the API reference served offline.

Swagger UI (``/docs``) and ReDoc (``/redoc``) normally load their JavaScript and CSS from a
public CDN, which leaves them blank in an air-gapped cluster. ``fastapi-offline`` (MIT) ships
both bundles inside the wheel; the service serves them itself under ``/docs/static``, so the
reference renders with no outside network (tests/e2e/test_offline_docs_browser.py blocks every
non-local request and checks). Two things in the bundles still reach out by default and are
closed here: Swagger UI's validator badge (``validatorUrl``, off) and ReDoc's "powered by" logo
(a CDN image): the reference pages carry a Content-Security-Policy allowing only this origin, so
the browser never even tries another host.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.responses import RedirectResponse
from fastapi_offline import FastAPIOffline
from starlette.types import ASGIApp, Message, Receive, Scope, Send

DOCS_URL = "/docs"
REDOC_URL = "/redoc"
DOCS_STATIC_URL = "/docs/static"

# Swagger UI's page starts itself with an inline script; ReDoc runs its search in a blob worker.
DOCS_CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
_DOCS_PREFIXES = (DOCS_URL, REDOC_URL)

router = APIRouter()


class DocsSecurityHeadersMiddleware:
    """Adds the reference pages' Content-Security-Policy (only this origin) to their answers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not path.startswith(_DOCS_PREFIXES):
            await self.app(scope, receive, send)
            return

        async def send_with_policy(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"content-security-policy", DOCS_CONTENT_SECURITY_POLICY.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_policy)


@router.get("/", include_in_schema=False)
def root() -> RedirectResponse:
    """A browser opening the service's address gets the pages, not a bare JSON 404."""
    return RedirectResponse("/ui/", status_code=307)


def offline_docs_app(**kwargs: Any) -> FastAPI:
    """A FastAPI app whose ``/docs`` and ``/redoc`` use only assets served by itself."""
    app = FastAPIOffline(
        docs_url=DOCS_URL,
        redoc_url=REDOC_URL,
        static_url=DOCS_STATIC_URL,
        # null: no badge image fetched from validator.swagger.io on every page view
        swagger_ui_parameters={"validatorUrl": None},
        **kwargs,
    )
    app.include_router(router)
    app.add_middleware(DocsSecurityHeadersMiddleware)
    return app
