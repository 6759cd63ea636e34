"""The auditor's pages: serving at an instant, the ledger, one entry, verification, export.

Each needs the permission of the audit API (roles ``auditor``/``admin``) and draws from the same
per-token rate-limit bucket: browsing decision history page by page is as much a
model-extraction risk as sweeping it through the API.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse, StreamingResponse

from analyzer.api import audit_queries
from analyzer.api.auth import Permission
from analyzer.api.deps import ServicesDep
from analyzer.api.ui.evidence import analysis_evidence
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
    ServingView,
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
    now: Annotated[str | None, Query(max_length=8)] = None,
) -> HTMLResponse:
    """Which revision(s) served ``model`` at the instant ``at``, and why; the *Now* button
    (``now``) asks about this instant (no script on these pages to fill the field)."""
    if blank_to_none(now) is not None:
        at = services.clock().isoformat()
    form = {"model": model or "", "at": at or ""}

    def page(*, view: ServingView | None = None, error: str | None = None) -> HTMLResponse:
        title = f"{view.answer.model} at {form['at']}" if view else "Which revision served when"
        return render(request, "serving.html", title=title, viewer=viewer,
                      status=422 if error else 200, view=view, error=error, form=form,
                      models=_models(services, viewer), example=TIME_EXAMPLE,
                      now=services.clock())  # fmt: skip

    if blank_to_none(model) is None and blank_to_none(at) is None:
        return page()  # just the form
    try:
        name = required(model, "model", "a model as NAMESPACE/NAME")
        moment = parse_instant(required(at, "at", f"an instant such as {TIME_EXAMPLE}"), "at")
        assert moment is not None  # required() refused an empty field
        return page(view=serving_view(services, viewer, name, moment))
    except InvalidInputError as exc:
        return page(error=str(exc))


@dataclass(frozen=True, kw_only=True, slots=True)
class EventFilters:
    """The ledger page's filters as typed into its form (text; parsed by the query)."""

    model: str | None
    rollout: str | None
    type: tuple[str, ...]
    actor: str | None
    since: str | None
    until: str | None
    order: Literal["newest", "oldest"]
    limit: int

    def params(self) -> dict[str, str | list[str] | None]:
        return {
            "model": self.model, "rollout": self.rollout, "type": list(self.type),
            "actor": self.actor, "since": self.since, "until": self.until, "order": self.order,
            "limit": str(self.limit),
        }  # fmt: skip

    def export_links(self) -> dict[str, str]:
        # Exports take the model and time range (the export API's filters); type, actor and
        # rollout narrow the page only, so an export is always the complete record of its range.
        kept = {"model": self.model, "since": self.since, "until": self.until}
        return {
            "json": page_url("/ui/export", {"format": "json", **kept}),
            "csv": page_url("/ui/export", {"format": "csv", **kept}),
            "api": page_url("/api/v1/audit/export", {"format": "csv", **kept}),
        }


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
    filters = EventFilters(
        model=blank_to_none(model), rollout=blank_to_none(rollout), type=tuple(type or ()),
        actor=blank_to_none(by), since=blank_to_none(since), until=blank_to_none(until),
        order=order, limit=limit,
    )  # fmt: skip

    def page(*, found: Page | None = None, error: str | None = None) -> HTMLResponse:
        rows = [(e, summarize(e)) for e in found.entries] if found is not None else None
        next_url = None
        if found is not None and found.next_cursor is not None:
            next_url = page_url("/ui/events", {**filters.params(), "cursor": found.next_cursor})
        return render(request, "events.html", title="Ledger", viewer=viewer,
                      status=422 if error else 200, filters=filters, rows=rows,
                      next_url=next_url, error=error, export=filters.export_links(),
                      choose_model=filters.model is None and viewer.actor.namespaces is not None,
                      models=_models(services, viewer), event_types=EVENT_TYPES,
                      example=TIME_EXAMPLE)  # fmt: skip

    if filters.model is None and viewer.actor.namespaces is not None:
        return page()  # a scoped token picks one of its models first
    try:
        return page(found=_events(services, viewer, filters, cursor=blank_to_none(cursor)))
    except InvalidInputError as exc:
        return page(error=str(exc))


def _events(
    services: ServicesDep, viewer: Viewer, filters: EventFilters, *, cursor: str | None
) -> Page:
    return audit_queries.events(
        services.ledger,
        viewer.actor,
        model=filters.model,
        rollout=filters.rollout,
        types=parse_event_types(filters.type),
        by=filters.actor,
        since=parse_instant(filters.since, "since"),
        until=parse_instant(filters.until, "until"),
        cursor=cursor,
        limit=filters.limit,
        newest_first=filters.order == "newest",
    )


@router.get("/ui/events/{seq}", response_class=HTMLResponse)
def entry_page(
    request: Request,
    services: ServicesDep,
    viewer: AuditViewer,
    seq: Annotated[int, Path(ge=1, le=2**62)],
) -> HTMLResponse:
    """One entry with every field, its evidence and its place in the hash chain."""
    view = entry_view(services, viewer, seq)
    data = view.entry.data()
    evidence = None
    if view.entry.event_type == EventType.ANALYSIS_RECORDED.value:
        evidence = analysis_evidence(data, key=f"e{seq}")
    return render(
        request,
        "entry.html",
        title=f"Ledger entry {seq}",
        viewer=viewer,
        view=view,
        summary=summarize(view.entry),
        data=data,
        evidence=evidence,
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
