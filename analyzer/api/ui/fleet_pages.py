"""The fleet rollout pages: the list, and one fleet's waves, models and verdicts over time.

They need the permission of ``GET /api/v1/fleets`` (``viewer`` and up) and show only fleets in
the viewer's namespaces (docs/fleets.md).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import HTMLResponse

from analyzer.api.auth import Permission, ensure_namespace
from analyzer.api.deps import ServicesDep
from analyzer.api.errors import ApiError
from analyzer.api.fleets import fleet_json, look_json
from analyzer.api.ui.rendering import HtmlPageRoute, render
from analyzer.api.ui.session import Viewer, viewer_with
from analyzer.fleets.engine import FleetEngine

router = APIRouter(route_class=HtmlPageRoute, include_in_schema=False)

Reader = Annotated[Viewer, Depends(viewer_with(Permission.READ_ROLLOUTS))]


def _engine(services: ServicesDep) -> FleetEngine:
    if services.fleets is None:
        raise ApiError(404, "not_found", "fleet rollouts are not configured on this server")
    return services.fleets


@router.get("/ui/fleets", response_class=HTMLResponse)
def fleets_page(request: Request, services: ServicesDep, viewer: Reader) -> HTMLResponse:
    records = [r for r in _engine(services).recent(limit=200) if viewer.sees(r.spec.namespace)]
    return render(
        request,
        "fleets.html",
        title="Fleet rollouts",
        viewer=viewer,
        fleets=[fleet_json(r) for r in records],
    )


@router.get("/ui/fleets/{fleet_id}", response_class=HTMLResponse)
def fleet_page(
    request: Request,
    services: ServicesDep,
    viewer: Reader,
    fleet_id: Annotated[str, Path(pattern=r"^[A-Za-z0-9_.\-]{1,64}$")],
) -> HTMLResponse:
    engine = _engine(services)
    record = engine.get(fleet_id)
    ensure_namespace(viewer.actor, record.spec.namespace)
    fleet = fleet_json(record, engine.history(record))
    looks = [look_json(lk) for lk in engine.looks(fleet_id)]
    notable = [m for m in fleet["models"] if m["phase"] == "rolled_back"]
    return render(
        request,
        "fleet.html",
        title=f"Fleet {record.spec.namespace}/{record.spec.name}",
        viewer=viewer,
        fleet=fleet,
        looks=looks,
        rolled_back=notable,
    )
