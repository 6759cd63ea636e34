"""Flagger webhooks: ``confirm-promotion``, ``rollback`` and ``pre-rollout``.

Flagger reads only the status code (the body goes into its events), with meanings that differ
per hook:

* ``confirm-promotion``: 2xx promotes; anything else holds (asked again next interval). We answer
  200 when the canary's promotion gates are open and 403 with the reason otherwise
  (:mod:`gates.flagger`), and record the gate check in the ledger.
* ``rollback``: **2xx rolls the canary back** (the inverted meaning). We answer 200 only when our
  judge's latest look at that canary says ``fail``; otherwise 409 "no rollback".
* ``pre-rollout``: 2xx lets the canary start. We answer 200 when the database is ready and the
  profile named in ``metadata.profile`` (if any) resolves; otherwise 422/503.

Every answer is evidence for a traffic move Flagger makes, so it is in the ledger: the
confirm-promotion answer inside its ``gate_checked`` entry (``hook``, ``status_code``,
``answer``), rollback and pre-rollout answers as ``webhook_answered`` entries. Flagger asks
rollback every interval, so a rollback or pre-rollout answer is recorded when it differs from
the last one recorded for that model, hook and canary (status, verdict): the first "no
rollback", the "roll back", a change of mind — not the same sentence every minute. A 503 (the
database is not ready) cannot be recorded and is not.

Metadata keys we read (Flagger's ``webhooks[].metadata``, strings only): ``tier``, ``canary``
(the canary revision to match analyses on), ``model_version`` (the registry version a change
request names), ``change_request``, ``initiator``, ``profile``, and ``token`` (the bearer token,
since Flagger webhooks cannot send headers; never recorded).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import PlainTextResponse

from analyzer.api.auth import ensure_namespace
from analyzer.api.deps import Services, ServicesDep, flagger_actor
from analyzer.api.schemas import FlaggerHookIn
from analyzer.db import ensure_schema_current
from analyzer.domain.errors import InvalidInputError
from analyzer.domain.events import EventType, LedgerEvent
from analyzer.domain.model import ModelRef, Tier
from analyzer.domain.rollout import check_artifact_digest, check_model_version
from analyzer.rollouts.control import Actor
from gates.base import GateContext, PromotionGate
from gates.flagger import confirm_promotion_answer
from gates.policy import GateEvaluation, GatePolicyConfig, evaluate_gates

router = APIRouter(prefix="/api/v1/flagger", tags=["Flagger webhooks"])

HookActor = Annotated[Actor, Depends(flagger_actor)]
NO_ROLLBACK = 409
_TEXT: dict[str, Any] = {"content": {"text/plain": {}}}


class PolicyGateEvaluator:
    """Evaluates the gates a model's policy requires (the default ``GateEvaluator``)."""

    def __init__(self, config: GatePolicyConfig, gates: Mapping[str, PromotionGate]) -> None:
        self._config = config
        self._gates = dict(gates)

    @property
    def config(self) -> GatePolicyConfig:
        return self._config

    def evaluate(self, context: GateContext) -> GateEvaluation:
        policy = self._config.policy_for(context.model, context.tier)
        return evaluate_gates(policy, self._gates, context)


def _tier(hook: FlaggerHookIn) -> Tier:
    value = hook.metadata.get("tier", Tier.STANDARD.value)
    try:
        return Tier(value)
    except ValueError as exc:
        known = ", ".join(t.value for t in Tier)
        raise InvalidInputError(f"unknown tier {value!r} ({known})", field="metadata.tier") from exc


def _model_version(hook: FlaggerHookIn) -> str | None:
    version = hook.metadata.get("model_version")
    check_model_version(version, field_name="metadata.model_version")
    return version


def _artifact_digest(hook: FlaggerHookIn) -> str | None:
    digest = hook.metadata.get("artifact_digest")
    check_artifact_digest(digest, field_name="metadata.artifact_digest")
    return digest


def _model(hook: FlaggerHookIn, actor: Actor) -> ModelRef:
    model = ModelRef(namespace=hook.namespace, name=hook.name)
    ensure_namespace(actor, model.namespace)
    return model


@router.post(
    "/confirm-promotion",
    summary="200 when the canary's promotion gates are open, 403 with the reason otherwise",
    response_class=PlainTextResponse,
    responses={200: _TEXT, 403: _TEXT},
)
def confirm_promotion(
    hook: FlaggerHookIn, services: ServicesDep, actor: HookActor
) -> PlainTextResponse:
    model = _model(hook, actor)
    canary = hook.metadata.get("canary") or hook.checksum or "unknown"
    context = GateContext(
        model=model,
        tier=_tier(hook),
        rollout_id=f"flagger:{model}"[:64],
        canary_revision=canary,
        target_step=0,
        target_weight=100,
        initiator=hook.metadata.get("initiator", "flagger"),
        now=services.clock(),
        change_request=hook.metadata.get("change_request"),
        canary_version=_model_version(hook),
        artifact_digest=_artifact_digest(hook),
    )
    evaluation = services.gates.evaluate(context)
    for decision in evaluation.decisions:
        if not decision.open and "error" in decision.evidence:
            services.metrics.integration_errors.labels(integration="gate").inc()
    answer = confirm_promotion_answer(evaluation)
    event = LedgerEvent(
        type=EventType.GATE_CHECKED,
        actor=actor.subject,
        model=model,
        revision=_revision(canary),
        data={
            "source": "flagger",
            "hook": "confirm-promotion",
            "phase": hook.phase,
            "model_version": context.canary_version,
            "status_code": answer.status_code,
            "answer": answer.body,
            **evaluation.to_json(),
        },
    )
    services.ledger.record(event)
    services.metrics.ledger_appends.labels(event_type=EventType.GATE_CHECKED.value).inc()
    return PlainTextResponse(answer.body, status_code=answer.status_code)


@router.post(
    "/rollback",
    summary="200 (roll back!) when our judge failed this canary, 409 (no rollback) otherwise",
    response_class=PlainTextResponse,
    responses={200: _TEXT, NO_ROLLBACK: _TEXT},
)
def rollback(hook: FlaggerHookIn, services: ServicesDep, actor: HookActor) -> PlainTextResponse:
    model = _model(hook, actor)
    summary = services.analyses.latest(model, canary=hook.metadata.get("canary"))
    if summary is None:
        status, body = NO_ROLLBACK, f"no rollback: no analysis of {model} recorded yet"
        evidence: dict[str, Any] = {"verdict": None}
    else:
        evidence = {
            "verdict": summary.verdict,
            "analysis": {
                "canary": summary.canary,
                "baseline": summary.baseline,
                "profile": summary.profile,
                "looks": summary.looks,
                "last_look_at": summary.last_look_at.isoformat(),
                "reason": summary.reason[:1000],
            },
        }
        if summary.verdict == "fail":
            status, body = (
                200,
                (
                    f"roll back {model}: canary {summary.canary} failed look {summary.looks}: "
                    f"{summary.reason}"[:1000]
                ),
            )
        else:
            status, body = (
                NO_ROLLBACK,
                (f"no rollback: latest verdict for canary {summary.canary} is {summary.verdict}"),
            )
    _record_answer(
        services,
        actor,
        model,
        name="rollback",
        hook=hook,
        status_code=status,
        body=body,
        evidence=evidence,
    )
    return PlainTextResponse(body, status_code=status)


@router.post(
    "/pre-rollout",
    summary="200 when the service is ready to judge this canary",
    response_class=PlainTextResponse,
    responses={200: _TEXT},
)
def pre_rollout(hook: FlaggerHookIn, services: ServicesDep, actor: HookActor) -> PlainTextResponse:
    model = _model(hook, actor)
    ensure_schema_current(services.engine)
    profile = hook.metadata.get("profile")
    if profile is not None:
        try:
            services.profiles.resolve(profile)
        except InvalidInputError as exc:
            evidence = {"verdict": "refused", "profile": profile, "field": exc.field}
            _record_answer(
                services,
                actor,
                model,
                name="pre-rollout",
                hook=hook,
                status_code=422,
                body=str(exc),
                evidence=evidence,
            )
            raise
    body = f"ready to judge {model}"
    _record_answer(
        services,
        actor,
        model,
        name="pre-rollout",
        hook=hook,
        status_code=200,
        body=body,
        evidence={"profile": profile},
    )
    return PlainTextResponse(body)


def _revision(canary: str | None) -> str | None:
    return canary if canary is not None and len(canary) <= 253 else None


def _record_answer(
    services: Services,
    actor: Actor,
    model: ModelRef,
    *,
    name: str,
    hook: FlaggerHookIn,
    status_code: int,
    body: str,
    evidence: Mapping[str, Any],
) -> None:
    """Append a ``webhook_answered`` entry unless it repeats the last one recorded for this
    model, hook and canary (same status and verdict)."""
    canary = hook.metadata.get("canary") or hook.checksum
    key = {"hook": name, "canary": canary, "status_code": status_code,
           "verdict": evidence.get("verdict")}  # fmt: skip
    recent = services.ledger.events(
        model=model, event_types=[EventType.WEBHOOK_ANSWERED], newest_first=True, limit=20
    ).entries
    last = next((e.data() for e in recent if e.data().get("hook") == name
                 and e.data().get("canary") == canary), None)  # fmt: skip
    if last is not None and all(last.get(k) == v for k, v in key.items()):
        return
    event = LedgerEvent(
        type=EventType.WEBHOOK_ANSWERED,
        actor=actor.subject,
        model=model,
        revision=_revision(canary),
        data={"source": "flagger", "phase": hook.phase, **evidence, **key, "answer": body},
    )
    services.ledger.record(event)
    services.metrics.ledger_appends.labels(event_type=EventType.WEBHOOK_ANSWERED.value).inc()
