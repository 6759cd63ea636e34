"""Flagger ``confirm-promotion`` webhook answers, decided from a gate evaluation.

Flagger treats any status up to 202 as "go" and anything else (or a timeout) as "hold": the
canary stays in ``WaitingPromotion`` while its metric checks keep running, and Flagger asks
again every interval without counting a failure. The response body becomes the message in
Flagger's events and logs, so a held promotion answers with a short plain-text reason.

403 (not 412) is used for "closed": the promotion is not allowed *yet*, which is a permission
answer rather than a failed check, and it keeps rollback-counting semantics out of gates.
"""

from __future__ import annotations

from dataclasses import dataclass

from gates.policy import GateEvaluation

PROMOTE = 200
HOLD = 403
_MAX_BODY = 1000  # Flagger copies the body into a Kubernetes event; keep it readable


@dataclass(frozen=True, kw_only=True, slots=True)
class WebhookAnswer:
    """What the API endpoint sends back: status code and a plain-text body."""

    status_code: int
    body: str
    media_type: str = "text/plain; charset=utf-8"


def confirm_promotion_answer(evaluation: GateEvaluation) -> WebhookAnswer:
    """200 when every required gate is open, 403 with the reason otherwise."""
    if evaluation.open:
        return WebhookAnswer(status_code=PROMOTE, body=f"promotion confirmed: {evaluation.reason}")
    body = f"promotion held: {evaluation.reason}"
    if len(body) > _MAX_BODY:
        body = body[: _MAX_BODY - 1] + "…"
    return WebhookAnswer(status_code=HOLD, body=body)
