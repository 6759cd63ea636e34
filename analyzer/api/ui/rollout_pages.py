"""The overview and the rollout pages.

They need the permission of ``GET /api/v1/rollouts`` (``viewer`` and up). The parts that come
from the ledger — what serves now, recent decisions, a rollout's timeline — are audit data, so
they appear only for roles that may read the audit API, and reading them takes a token from the
audit rate-limit bucket; a viewer sees the rollout records and is told what needs more.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse, Response

from analyzer.api.auth import Permission, ensure_namespace
from analyzer.api.deps import ServicesDep
from analyzer.api.ui.forms import blank_to_none
from analyzer.api.ui.pack_view import pack_response
from analyzer.api.ui.pictures import rollout_pictures
from analyzer.api.ui.rendering import HtmlPageRoute, page_url, render
from analyzer.api.ui.session import Viewer, take_audit_token, viewer_with
from analyzer.api.ui.summaries import summarize
from analyzer.api.ui.views import (
    LOOK_TYPES,
    OUTCOMES,
    model_names,
    model_rows,
    recent_decisions,
    rollout_for,
    rollout_health,
    rollout_timeline,
    step_rows,
    timeline_of,
    visible_rollouts,
)
from analyzer.domain.errors import InvalidInputError
from analyzer.domain.model import ModelRef
from analyzer.domain.rollout import Rollout, RolloutState
from analyzer.ledger.chain import EntryRecord

router = APIRouter(route_class=HtmlPageRoute, include_in_schema=False)

Reader = Annotated[Viewer, Depends(viewer_with(Permission.READ_ROLLOUTS))]
MODEL_ROWS = 100  # models shown on the overview, each costing two indexed ledger reads
ROLLOUT_ROWS = 200
STATES = tuple(s.value for s in RolloutState)


@router.get("/ui/", response_class=HTMLResponse)
def overview(request: Request, services: ServicesDep, viewer: Reader) -> HTMLResponse:
    """Models with what serves them now, active rollouts, and the latest decisions."""
    if viewer.may_audit:
        take_audit_token(services, viewer)
    rollouts = visible_rollouts(services, viewer)
    names = model_names(rollouts)
    first = set(names[:MODEL_ROWS])
    shown = [r for r in rollouts if str(r.model) in first]
    now = services.clock()
    return render(
        request,
        "overview.html",
        title="Overview",
        viewer=viewer,
        now=now,
        rows=model_rows(services, viewer, shown, now),
        models_total=len(names),
        models_shown=min(len(names), MODEL_ROWS),
        active=[r for r in rollouts if not r.state.terminal],
        health_of={r.id: rollout_health(r, now) for r in rollouts if not r.state.terminal},
        # Promotions and aborts apart from the routine looks: a day of looks would push the
        # one decision that changed what serves off a mixed list.
        outcomes=[(e, summarize(e)) for e in recent_decisions(services, viewer, names, OUTCOMES)]
        if viewer.may_audit
        else None,
        looks=[
            (e, summarize(e))
            for e in recent_decisions(services, viewer, names, LOOK_TYPES, limit=10)
        ]
        if viewer.may_audit
        else None,
    )


@router.get("/ui/rollouts", response_class=HTMLResponse)
def rollouts_page(
    *,
    request: Request,
    services: ServicesDep,
    viewer: Reader,
    model: Annotated[str | None, Query(max_length=320)] = None,
    state: Annotated[str | None, Query(max_length=16)] = None,
) -> HTMLResponse:
    """Rollouts, newest first, optionally of one model or in one state."""
    form = {"model": blank_to_none(model) or "", "state": blank_to_none(state) or ""}

    def page(*, rollouts: list[Rollout], error: str | None = None) -> HTMLResponse:
        now = services.clock()
        return render(request, "rollouts.html", title="Rollouts", viewer=viewer,
                      status=422 if error else 200, form=form, states=STATES,
                      rollouts=rollouts, error=error,
                      health_of={r.id: rollout_health(r, now) for r in rollouts})  # fmt: skip

    try:
        ref = ModelRef.parse(form["model"]) if form["model"] else None
        chosen = RolloutState(form["state"]) if form["state"] else None
    except InvalidInputError as exc:
        return page(rollouts=[], error=str(exc))
    except ValueError as exc:  # not a RolloutState
        return page(rollouts=[], error=f"state: {exc}")
    if ref is not None:
        ensure_namespace(viewer.actor, ref.namespace)  # as GET /api/v1/rollouts?model= does
    return page(rollouts=visible_rollouts(services, viewer, model=ref, state=chosen)[:ROLLOUT_ROWS])


@router.get("/ui/rollouts/{rollout_id}", response_class=HTMLResponse)
def rollout_page(
    *,
    request: Request,
    services: ServicesDep,
    viewer: Reader,
    rollout_id: Annotated[str, Path(pattern=r"^[A-Za-z0-9_.\-]{1,64}$")],
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> HTMLResponse:
    """One rollout: its plan and how far it got, and (for auditors) its ledger timeline."""
    rollout = rollout_for(services, viewer, rollout_id)
    timeline, next_url, pictures = None, None, None
    every_entry: list[EntryRecord] = []
    if viewer.may_audit:
        take_audit_token(services, viewer)
        if blank_to_none(cursor) is None:
            # The pictures cover the whole rollout, on its first page only; the entries they
            # are drawn from also make that page of the timeline.
            pictures, every_entry = rollout_pictures(services, viewer, rollout)
            timeline = timeline_of(rollout, every_entry)
        else:
            timeline = rollout_timeline(services, viewer, rollout, cursor)
        if timeline.next_cursor is not None:
            next_url = page_url(f"/ui/rollouts/{rollout.id}", {"cursor": timeline.next_cursor})
    steps = timeline.steps if timeline is not None else step_rows(rollout, ())
    entries = (
        [(e, (pictures and pictures.summary(e.seq)) or summarize(e)) for e in timeline.entries]
        if timeline is not None
        else None
    )
    return render(
        request,
        "rollout.html",
        title=f"{rollout.model}: {rollout.baseline_revision} → {rollout.canary_revision}",
        viewer=viewer,
        rollout=rollout,
        problems=rollout_health(rollout, services.clock(), every_entry),
        steps=steps,
        entries=entries,
        next_url=next_url,
        pictures=pictures,
        pack_url=f"/ui/rollouts/{rollout.id}/evidence-pack",
        events_url=page_url(
            "/ui/events", {"model": str(rollout.model), "rollout": rollout.id, "order": "oldest"}
        ),
    )


@router.get("/ui/rollouts/{rollout_id}/evidence-pack")
def evidence_pack_download(
    *,
    services: ServicesDep,
    viewer: Annotated[Viewer, Depends(viewer_with(Permission.AUDIT, audit_rate=True))],
    rollout_id: Annotated[str, Path(pattern=r"^[A-Za-z0-9_.\-]{1,64}$")],
) -> Response:
    """The API's evidence pack, for a browser signed in here (the cookie never reaches /api/)."""
    rollout = rollout_for(services, viewer, rollout_id)
    return pack_response(services, rollout, viewer.actor.subject, "html")
