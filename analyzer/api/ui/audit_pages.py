"""The auditor's pages: serving at an instant, the ledger, one entry, verification, export.

Each needs the permission of the audit API (roles ``auditor``/``admin``) and draws from the same
per-token rate-limit bucket: browsing decision history page by page is as much a
model-extraction risk as sweeping it through the API.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse, StreamingResponse

from analyzer.api import audit_queries
from analyzer.api.auth import Permission
from analyzer.api.deps import ServicesDep
from analyzer.api.ui.forms import (
    TIME_EXAMPLE,
    blank_to_none,
    parse_event_types,
    parse_instant,
    required,
)
from analyzer.api.ui.rendering import HtmlPageRoute, page_url, render
from analyzer.api.ui.session import Viewer, viewer_with
from analyzer.api.ui.summaries import summarize
from analyzer.api.ui.views import (
    entry_view,
    model_names,
    serving_view,
    verify_view,
    visible_rollouts,
)
from analyzer.domain.errors import InvalidInputError
from analyzer.domain.events import EventType
from analyzer.ledger.store import Page

router = APIRouter(route_class=HtmlPageRoute, include_in_schema=False)

AuditViewer = Annotated[Viewer, Depends(viewer_with(Permission.AUDIT, audit_rate=True))]
Text = Annotated[str | None, Query(max_length=320)]
EVENT_TYPES = tuple(t.value for t in EventType)


def _models(services: ServicesDep, viewer: Viewer) -> list[str]:
    return model_names(visible_rollouts(services, viewer))


@router.get("/ui/serving", response_class=HTMLResponse)
def serving_page(
    *,
    request: Request,
    services: ServicesDep,
    viewer: AuditViewer,
    model: Text = None,
    at: Annotated[str | None, Query(max_length=64)] = None,
) -> HTMLResponse:
    """Which revision(s) served ``model`` at the instant ``at``, and why."""
    form = {"model": model or "", "at": at or ""}
    context: dict[str, Any] = {
        "form": form,
        "models": _models(services, viewer),
        "example": TIME_EXAMPLE,
    }
    if blank_to_none(model) is None and blank_to_none(at) is None:
        return render(
            request,
            "serving.html",
            title="Which revision served when",
            viewer=viewer,
            view=None,
            error=None,
            **context,
        )
    try:
        name = required(model, "model", "a model as NAMESPACE/NAME")
        moment = parse_instant(required(at, "at", f"an instant such as {TIME_EXAMPLE}"), "at")
        assert moment is not None
        view = serving_view(services, viewer, name, moment)
    except InvalidInputError as exc:
        return render(
            request,
            "serving.html",
            title="Which revision served when",
            viewer=viewer,
            status=422,
            view=None,
            error=str(exc),
            **context,
        )
    return render(
        request,
        "serving.html",
        title=f"{view.answer.model} at {form['at']}",
        viewer=viewer,
        view=view,
        error=None,
        **context,
    )


@router.get("/ui/events", response_class=HTMLResponse)
def events_page(
    *,
    request: Request,
    services: ServicesDep,
    viewer: AuditViewer,
    model: Text = None,
    rollout: Annotated[str | None, Query(max_length=64)] = None,
    type: Annotated[list[str] | None, Query(max_length=len(EVENT_TYPES))] = None,
    by: Annotated[str | None, Query(alias="actor", max_length=256)] = None,
    since: Annotated[str | None, Query(max_length=64)] = None,
    until: Annotated[str | None, Query(max_length=64)] = None,
    order: Literal["newest", "oldest"] = "newest",
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> HTMLResponse:
    """Ledger entries, filtered and cursor-paged, with links to the matching exports."""
    filters: dict[str, str | list[str] | None] = {
        "model": blank_to_none(model),
        "rollout": blank_to_none(rollout),
        "type": type or [],
        "actor": blank_to_none(by),
        "since": blank_to_none(since),
        "until": blank_to_none(until),
        "order": order,
        "limit": str(limit),
    }
    context: dict[str, Any] = {
        "filters": filters,
        "models": _models(services, viewer),
        "event_types": EVENT_TYPES,
        "example": TIME_EXAMPLE,
        "export": _export_links(filters),
    }
    if filters["model"] is None and viewer.actor.namespaces is not None:
        return render(
            request,
            "events.html",
            title="Ledger",
            viewer=viewer,
            rows=None,
            next_url=None,
            error=None,
            choose_model=True,
            **context,
        )
    try:
        page = _events(services, viewer, filters, cursor=blank_to_none(cursor))
    except InvalidInputError as exc:
        return render(
            request,
            "events.html",
            title="Ledger",
            viewer=viewer,
            status=422,
            rows=None,
            next_url=None,
            error=str(exc),
            choose_model=False,
            **context,
        )
    next_url = None
    if page.next_cursor is not None:
        next_url = page_url("/ui/events", {**filters, "cursor": page.next_cursor})
    rows = [(e, summarize(e)) for e in page.entries]
    return render(
        request,
        "events.html",
        title="Ledger",
        viewer=viewer,
        rows=rows,
        next_url=next_url,
        error=None,
        choose_model=False,
        **context,
    )


def _events(
    services: ServicesDep,
    viewer: Viewer,
    filters: dict[str, str | list[str] | None],
    *,
    cursor: str | None,
) -> Page:
    def text(name: str) -> str | None:
        value = filters[name]
        return value if isinstance(value, str) else None

    types = filters["type"]
    return audit_queries.events(
        services.ledger,
        viewer.actor,
        model=text("model"),
        rollout=text("rollout"),
        types=parse_event_types(types if isinstance(types, list) else []),
        by=text("actor"),
        since=parse_instant(text("since"), "since"),
        until=parse_instant(text("until"), "until"),
        cursor=cursor,
        limit=int(text("limit") or 50),
        newest_first=filters["order"] == "newest",
    )


def _export_links(filters: dict[str, str | list[str] | None]) -> dict[str, str]:
    # Exports take the model and time range (the API's export filters); type and actor filters
    # narrow the page only, so an export is always the complete record of its range.
    kept = {k: filters[k] for k in ("model", "since", "until")}
    return {
        "json": page_url("/ui/export", {"format": "json", **kept}),
        "csv": page_url("/ui/export", {"format": "csv", **kept}),
        "api": page_url("/api/v1/audit/export", {"format": "csv", **kept}),
    }


@router.get("/ui/events/{seq}", response_class=HTMLResponse)
def entry_page(
    request: Request,
    services: ServicesDep,
    viewer: AuditViewer,
    seq: Annotated[int, Path(ge=1, le=2**62)],
) -> HTMLResponse:
    """One entry with every field, its evidence and its place in the hash chain."""
    view = entry_view(services, viewer, seq)
    return render(
        request,
        "entry.html",
        title=f"Ledger entry {seq}",
        viewer=viewer,
        view=view,
        summary=summarize(view.entry),
        data=view.entry.data(),
    )


@router.get("/ui/verify", response_class=HTMLResponse)
def verify_page(request: Request, services: ServicesDep, viewer: AuditViewer) -> HTMLResponse:
    """Recompute the whole hash chain now, as ``GET /api/v1/audit/verify`` does."""
    view = verify_view(services, viewer)
    return render(request, "verify.html", title="Verify the ledger", viewer=viewer, view=view)


@router.get("/ui/export")
def export_download(
    *,
    services: ServicesDep,
    viewer: AuditViewer,
    format: Literal["json", "csv"] = "json",
    model: Text = None,
    since: Annotated[str | None, Query(max_length=64)] = None,
    until: Annotated[str | None, Query(max_length=64)] = None,
) -> StreamingResponse:
    """The audit API's export (same function, same format) for a browser signed in here."""
    response = audit_queries.export(
        services.ledger,
        viewer.actor,
        format=format,
        model=blank_to_none(model),
        since=parse_instant(since, "since"),
        until=parse_instant(until, "until"),
    )
    filename = f"canary-analyzer-ledger.{format}"
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
