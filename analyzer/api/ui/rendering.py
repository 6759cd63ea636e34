"""Turning page data into HTML, and every failure into a page a person can read.

Templates are Jinja2 with autoescaping on for everything and ``StrictUndefined`` (a template
that names a missing value fails in tests instead of printing nothing). No template marks text
as safe: every actor, reason and piece of evidence is untrusted text.

:class:`HtmlPageRoute` wraps each page handler, so the errors of the API's taxonomy become pages
with the same status codes instead of JSON: an unauthenticated request is redirected to the
login form (303), a forbidden one gets a 403 page, bad input a 422 page, a missing thing 404,
rate limiting 429 with ``Retry-After``, a database outage 503, and a bug a 500 page with a
request id (the trace goes to the log, never to the browser).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

import structlog
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import HTMLResponse, RedirectResponse, Response

from analyzer.api.deps import Services
from analyzer.api.errors import ApiError
from analyzer.api.ui.security import csrf_cookie_value
from analyzer.api.ui.session import TOKEN_COOKIE, Viewer, clear_ui_cookie, ui_settings
from analyzer.api.ui.svg import escaped, figure
from analyzer.domain.errors import (
    DatabaseNotReadyError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
)
from analyzer.domain.rollout import Rollout, Strategy
from analyzer.ledger.chain import EntryRecord, format_time

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class UiState:
    """What the pages need beyond the API's services, built once by ``install_ui``."""

    templates: Environment
    stylesheet: bytes
    favicon: bytes


STRATEGY_LABELS = {
    Strategy.CANARY: "canary",
    Strategy.BLUE_GREEN: "blue/green (cut, then verify against the previous revision)",
    Strategy.SHADOW: "shadow (mirrored requests, never served)",
    Strategy.PINNED: "pinned (manual cutover)",
}


def strategy_label(rollout: Rollout) -> str:
    """How the rollout moves traffic, in words (docs/strategies.md)."""
    return STRATEGY_LABELS[rollout.strategy]


def build_templates() -> Environment:
    env = Environment(
        loader=PackageLoader("analyzer.api.ui", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["utc"] = utc_text
    env.filters["utc_precise"] = utc_precise
    env.filters["pretty_json"] = pretty_json
    env.filters["percent"] = percent
    env.filters["path_part"] = lambda value: quote(str(value), safe="")
    env.filters["chart_figure"] = figure
    env.globals["strategy_label"] = strategy_label
    env.globals["entry_table"] = entry_table
    return env


def utc_text(moment: datetime | None) -> str:
    """Seconds precision, always UTC, with the zone shown: ``2026-03-04T02:13:00Z``."""
    if moment is None:
        return "—"
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def utc_precise(moment: datetime | None) -> str:
    """The ledger's own textual form of time (microseconds, ``Z``)."""
    return "—" if moment is None else format_time(moment)


# The ledger-entry table of the timeline, the ledger page and the overview, written here rather
# than in a Jinja macro for speed, like the charts (svg.py): a rollout's timeline shows 200
# entries, and three macro calls per row (link, time, badge) were a sixth of the rollout page's
# time. The markup is the old macro's, byte for byte (tests/unit/api/test_ui_entry_table.py),
# and every value is escaped with autoescaping's rules.
_HEAD = """<table class="entries">
  <thead>
    <tr>
      <th scope="col">Seq</th>
      <th scope="col">Recorded (UTC)</th>
      <th scope="col">Type</th>
{model}      <th scope="col">Actor</th>
      <th scope="col">What</th>
    </tr>
  </thead>
  <tbody>
"""
_MODEL_HEAD = '      <th scope="col">Model</th>\n'


def entry_table(rows: Sequence[tuple[EntryRecord, str]], show_model: bool = True) -> Markup:
    """The table of ``(entry, one-line summary)`` rows."""
    parts = [_HEAD.format(model=_MODEL_HEAD if show_model else "")]
    for entry, summary in rows:
        kind = escaped(entry.event_type)
        badge = escaped(entry.event_type.lower().replace(" ", "-"))
        model = (
            f'      <td class="model">{escaped(entry.model or "—")}</td>\n' if show_model else ""
        )
        parts.append(
            "    <tr>\n"
            f'      <td class="num"><a href="/ui/events/{entry.seq}">#{entry.seq}</a></td>\n'
            f'      <td class="time"><time datetime="{escaped(utc_precise(entry.recorded_at))}">'
            f"{escaped(utc_text(entry.recorded_at))}</time></td>\n"
            f'      <td><span class="badge badge-{badge}">{kind}</span></td>\n'
            f"{model}"
            f'      <td class="actor">{escaped(entry.actor)}</td>\n'
            f'      <td class="what">{escaped(str(summary))}</td>\n'
            "    </tr>\n"
        )
    parts.append("  </tbody>\n</table>")
    return Markup("".join(parts))  # noqa: S704 - every value above is escaped


def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)


def percent(value: float | int | None) -> str:
    if value is None:
        return "—"
    return f"{value:g} %"


def page_url(path: str, params: Mapping[str, str | list[str] | None]) -> str:
    """``path`` with the non-empty ``params`` as its query string."""
    kept = {k: v for k, v in params.items() if v not in (None, "", [])}
    return f"{path}?{urlencode(kept, doseq=True)}" if kept else path


def services_of(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def render(
    request: Request,
    template: str,
    *,
    title: str,
    viewer: Viewer | None,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    ui: UiState = request.app.state.ui
    html = ui.templates.get_template(template).render(
        title=title,
        viewer=viewer,
        csrf=csrf_cookie_value(request) or "",
        path=request.url.path,
        **context,
    )
    return HTMLResponse(html, status_code=status, headers=headers)


def error_page(
    request: Request,
    status: int,
    heading: str,
    message: str,
    *,
    headers: Mapping[str, str] | None = None,
) -> HTMLResponse:
    return render(
        request,
        "error.html",
        title=heading,
        viewer=None,
        status=status,
        headers=headers,
        heading=heading,
        message=message,
    )


def login_redirect(request: Request) -> Response:
    """Where an unauthenticated browser goes: the login form, or a 401 page without one."""
    ui = ui_settings(services_of(request))
    if not ui.login_form:
        return error_page(
            request,
            401,
            "Sign in through your organisation's single sign-on",
            "These pages read the bearer token your SSO proxy sends; none came with this request.",
        )
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    params = {"next": target}
    had_cookie = TOKEN_COOKIE in request.cookies
    if had_cookie:
        params["reason"] = "rejected"
    response = RedirectResponse(page_url("/ui/login", params), status_code=303)
    if had_cookie:
        clear_ui_cookie(response, TOKEN_COOKIE, ui)
    return response


def page_for_error(request: Request, exc: Exception) -> Response:
    """The page (or redirect) for an exception escaping a page handler."""
    if isinstance(exc, ApiError):
        if exc.status == 401:
            return login_redirect(request)
        return error_page(
            request,
            exc.status,
            _HEADINGS.get(exc.status, "Error"),
            exc.message,
            headers=exc.headers,
        )
    for kind, status in _STATUS_OF:
        if isinstance(exc, kind):
            return error_page(request, status, _HEADINGS[status], _message(exc))
    if isinstance(exc, StarletteHTTPException):
        return error_page(
            request, exc.status_code, _HEADINGS.get(exc.status_code, "Error"), str(exc.detail)
        )
    if isinstance(exc, OperationalError | DatabaseNotReadyError):
        log.warning("ui.database_unavailable", error=f"{type(exc).__name__}: {exc}"[:500])
        return error_page(request, 503, _HEADINGS[503], "The database is unavailable; retry later.")
    request_id = uuid.uuid4().hex[:12]
    log.error(
        "ui.unhandled_error",
        request_id=request_id,
        path=request.url.path,
        error=type(exc).__name__,
        exc_info=exc,
    )
    return error_page(
        request,
        500,
        _HEADINGS[500],
        f"Something went wrong on our side; quote request id {request_id} to the operators.",
    )


_STATUS_OF: tuple[tuple[type[Exception], int], ...] = (
    (PermissionDeniedError, 403),
    (InvalidInputError, 422),
    (RequestValidationError, 422),
    (NotFoundError, 404),
)
_HEADINGS = {
    400: "Bad request",
    401: "Not signed in",
    403: "Not allowed",
    404: "Not found",
    405: "Method not allowed",
    413: "Request too large",
    422: "Invalid input",
    429: "Too many requests",
    500: "Internal error",
    503: "Service unavailable",
}


def _message(exc: Exception) -> str:
    if isinstance(exc, RequestValidationError):
        parts = []
        for error in exc.errors()[:5]:
            where = ".".join(str(p) for p in error["loc"] if p not in ("query", "path"))
            parts.append(f"{where}: {error['msg']}")
        return "; ".join(parts) or "invalid request"
    return str(exc)


class HtmlPageRoute(APIRoute):
    """A route whose failures are HTML pages (see the module docstring)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def handle_as_page(request: Request) -> Response:
            try:
                return await handle(request)
            except Exception as exc:
                return page_for_error(request, exc)

        return handle_as_page
