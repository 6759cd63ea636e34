"""``GET /api/v1/rollouts/{id}/evidence-pack``: one file per rollout for a regulator's question.

The file (``analyzer/api/ui/pack_view.py``) is a printable HTML report — who started the
rollout under which change request, who approved it in which role, the traffic over time, the
evidence over the looks, the last analysis as tables and charts, every entry — with the pack
document (``analyzer/ledger/pack.py``: the entries with their payloads, hashes and chain links)
inside it, so ``canary-analyzer ledger verify --pack FILE`` checks the very file that was read.
``?format=json`` answers the bare pack document.

The rights are the audit API's: the ``audit`` permission, the rollout's namespace, the audit
rate limit. ``canary-analyzer ledger pack ROLLOUT`` makes the same file from the database, and
``/ui/rollouts/{id}/evidence-pack`` for a browser signed in to the pages.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response

from analyzer.api.auth import ensure_namespace
from analyzer.api.deps import AuditorActor, ServicesDep
from analyzer.api.ui.pack_view import pack_response

router = APIRouter(prefix="/api/v1/rollouts", tags=["rollouts"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or invalid token"},
    403: {"description": "Role or namespace not allowed"},
    404: {"description": "No such rollout"},
    429: {"description": "Rate limited (Retry-After)"},
}
RolloutId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_.\-]{1,64}$")]


@router.get(
    "/{rollout_id}/evidence-pack",
    summary="One rollout's evidence pack: a printable report holding its verifiable entries",
    responses={**_ERRORS, 200: {"content": {"text/html": {}, "application/json": {}}}},
)
def evidence_pack(
    rollout_id: RolloutId,
    services: ServicesDep,
    actor: AuditorActor,
    format: Annotated[Literal["html", "json"], Query()] = "html",
) -> Response:
    rollout = services.rollouts.get(rollout_id)
    ensure_namespace(actor, rollout.model.namespace)
    return pack_response(services, rollout, actor.subject, format)
