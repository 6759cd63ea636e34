"""One JSON error shape for every failure, and the request-body size limit.

Every error answer is ``{"error": {"code": ..., "message": ..., "field": ...}}`` (``field`` only
when one input is to blame). Messages say what to fix; stack traces stay in the server log.
The taxonomy of :mod:`analyzer.domain.errors` maps to statuses here and nowhere else:

=========================  ======  ============================================
``InvalidInputError``      422     ``invalid_input`` (names the field)
``NotFoundError``          404     ``not_found``
``ConflictError``          409     ``conflict``
``PermissionDeniedError``  403     ``forbidden``
``DatabaseNotReadyError``  503     ``database_not_ready``
``IntegrationError``       502     ``integration_failed`` (target or gate backend)
``OperationalError`` (DB)  503     ``database_not_ready``
anything else              500     ``internal`` (logged with a request id)
=========================  ======  ============================================
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from analyzer.domain.errors import (
    ConflictError,
    DatabaseNotReadyError,
    IntegrationError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
)

log = structlog.get_logger(__name__)

_TAXONOMY: tuple[tuple[type[Exception], int, str], ...] = (
    (InvalidInputError, 422, "invalid_input"),
    (NotFoundError, 404, "not_found"),
    (ConflictError, 409, "conflict"),
    (PermissionDeniedError, 403, "forbidden"),
    (DatabaseNotReadyError, 503, "database_not_ready"),
    (IntegrationError, 502, "integration_failed"),
)
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_input",
    429: "rate_limited",
}


class ApiError(Exception):
    """An error answer decided at the edge (auth, rate limit, a missing route parameter)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        field: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.headers = dict(headers or {})


def error_body(code: str, message: str, field: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if field:
        error["field"] = field
    return {"error": error}


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    field: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(error_body(code, message, field), status_code=status, headers=headers)


def _field(loc: Sequence[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    out = ""
    for part in parts:
        out += f"[{part}]" if part.isdigit() else (f".{part}" if out else part)
    return out or "body"


async def _validation(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
    messages = [f"{_field(e['loc'])}: {e['msg']}" for e in errors[:10]]
    return error_response(422, "invalid_input", "; ".join(messages), field=_field(first["loc"]))


async def _api_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.code, exc.message, field=exc.field, headers=exc.headers)


async def _http(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    return error_response(exc.status_code, code, str(exc.detail), headers=exc.headers)


async def _domain(request: Request, exc: Exception) -> JSONResponse:
    for kind, status, code in _TAXONOMY:
        if isinstance(exc, kind):
            field = exc.field if isinstance(exc, InvalidInputError) else None
            message = str(exc)
            if field and message.startswith(f"{field}: "):
                message = message[len(field) + 2 :]
            return error_response(status, code, message, field=field)
    return _internal(request, exc)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    return _internal(request, exc)


def _internal(request: Request, exc: Exception) -> JSONResponse:
    request_id = uuid.uuid4().hex[:12]
    log.error(
        "api.unhandled_error",
        request_id=request_id,
        path=request.url.path,
        error=type(exc).__name__,
        exc_info=exc,
    )
    return error_response(
        500, "internal", f"internal error; quote request id {request_id} to the operators"
    )


async def _database(_: Request, exc: Exception) -> JSONResponse:
    log.warning("api.database_unavailable", error=f"{type(exc).__name__}: {exc}"[:500])
    return error_response(503, "database_not_ready", "the database is unavailable; retry later")


def install_error_handlers(app: FastAPI) -> None:
    # The handlers are ``async`` (they do no I/O): Starlette runs a plain ``def`` handler in
    # the threadpool, a hop per refused request.
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(OperationalError, _database)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http)
    for kind, _status, _code in _TAXONOMY:
        app.add_exception_handler(kind, _domain)
    app.add_exception_handler(Exception, _unexpected)


class BodyLimitMiddleware:
    """Refuses request bodies over ``max_bytes`` with 413, by header and while streaming.

    Checking ``Content-Length`` alone would let a chunked upload through, so the received bytes
    are counted too; the app never buffers more than the limit.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._refuse(send)
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _TooLargeError(self.max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLargeError:
            # Raised past the app's handlers only when the app read the body outside a route.
            if not started:
                await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        body = json.dumps(error_body("payload_too_large", _too_large(self.max_bytes))).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _too_large(limit: int) -> str:
    return f"request body exceeds {limit} bytes; send a smaller body"


class _TooLargeError(StarletteHTTPException):
    # An HTTPException, so FastAPI's body parsing re-raises it instead of answering 400.
    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413, detail=_too_large(limit))
