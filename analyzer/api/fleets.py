"""Fleet rollouts: start, list, read (waves, every model's state), the looks over time, and the
operator's abort / resume. Roles and tenancy as the rollout routes: reading needs
``read_rollouts``, starting ``start_rollout``, abort/resume ``operate``, approving a wave gated by
``manual-approval`` ``approve`` (four eyes: never the fleet's initiator); a token scoped to some
namespaces sees and acts on fleets in those namespaces only. See ``docs/fleets.md``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from analyzer.api.auth import ensure_namespace
from analyzer.api.deps import (
    ApproverActor,
    OperatorActor,
    ReaderActor,
    Services,
    ServicesDep,
    StarterActor,
)
from analyzer.api.errors import ApiError
from analyzer.api.schemas import ReasonIn
from analyzer.domain.errors import InvalidInputError
from analyzer.domain.events import EventType
from analyzer.domain.fleet import FleetRateQuery, ModelPhase, ModelVersion
from analyzer.fleets.engine import FleetEngine
from analyzer.fleets.history import (
    FleetHistory,
    FleetWatch,
    Rollback,
    RollbackCause,
    fleet_watch,
    look_watch,
)
from analyzer.fleets.judge import FleetMetric
from analyzer.fleets.plan import WaveSpec
from analyzer.fleets.repository import FleetRecord, LookRecord
from analyzer.fleets.spec import FleetMetricSpec, FleetSpec, spec_to_json
from analyzer.metrics.prometheus.fleet import fleet_query
from analyzer.rollouts.control import Actor

router = APIRouter(prefix="/api/v1/fleets", tags=["fleets"])

FleetId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_.\-]{1,64}$", description="Fleet rollout id")]
_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or invalid token"},
    403: {"description": "Role or namespace refuses it"},
    404: {"description": "No such fleet rollout (or fleets not configured)"},
    409: {"description": "Not allowed in the fleet rollout's current state"},
    422: {"description": "Invalid body"},
}


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class VersionIn(_In):
    name: str = Field(description="The revision name every model gets in the ledger, e.g. v2")
    storage_uri: str = Field(description="The new artifact; {model} is each model's name")
    runtime: str | None = Field(default=None, description="A new ServingRuntime, if any")


_MONTH = 31 * 24 * 3600.0


class WaveIn(_In):
    percent: float = Field(gt=0, le=100, description="Cumulative share of the fleet upgraded")
    dwell_seconds: float = Field(gt=0, le=_MONTH)
    deadline_seconds: float = Field(gt=0, le=_MONTH)
    # the configured gates' names (manual-approval, change-window, servicenow-change, ...)
    gates: list[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_\-]{0,62}$")]] = Field(
        default_factory=list, max_length=10, description="Gates open before this wave moves"
    )


_RATE_ONLY = (
    "a fleet judges rate metrics per model (kind 'rate'): the bad requests (events) or the "
    "requests within a latency bound (good, a histogram bucket) out of all of them (total). "
    "Latency quantiles and other kinds are not judged per model in a fleet: judge the share "
    "of requests slower than a bound instead (docs/fleets.md)"
)


class MetricIn(_In):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_\-]{0,62}$")
    kind: str = Field(default="rate", description="Only 'rate' (docs/fleets.md: latency as a rate)")
    events: str | None = Field(
        default=None, description="Counter selector of the bad events (may use {namespace})"
    )
    good: str | None = Field(
        default=None,
        description="Instead of events: the latency histogram's bucket at the bound, e.g. "
        'modelmesh_api_request_milliseconds_bucket{le="500.0"}; the events are total - good',
    )
    total: str = Field(description="Counter selector of all requests (may use {namespace})")
    model_label: str = "model"
    tolerance: float = Field(ge=0, lt=1, description="Absolute rate increase that matters")
    safety_max: float | None = Field(default=None, gt=0, lt=1)
    weight: float = Field(default=1.0, gt=0)

    @field_validator("kind")
    @classmethod
    def _rate_only(cls, kind: str) -> str:
        if kind != "rate":
            raise ValueError(f"unsupported metric kind {kind!r}: {_RATE_ONLY}")
        return kind

    @model_validator(mode="after")
    def _one_of_events_or_good(self) -> MetricIn:
        if (self.events is None) == (self.good is None):
            raise ValueError("give either events (the bad requests) or good, not both")
        return self


class FleetStartIn(_In):
    name: str = Field(max_length=253, description="The fleet's name (DNS-1123)")
    namespace: str = Field(max_length=63)
    models: list[str] = Field(default_factory=list, max_length=5000)
    selector: dict[str, str] = Field(default_factory=dict, max_length=20)
    version: VersionIn
    from_version: str = Field(default="previous", max_length=63)
    waves: list[WaveIn] = Field(min_length=1, max_length=20)
    metrics: list[MetricIn] = Field(min_length=1, max_length=10)
    alpha: float = Field(default=0.05, gt=0, lt=1)
    pass_alpha: float = Field(default=0.05, gt=0, lt=1)
    max_rollback_share: float = Field(default=0.10, ge=0, le=1)
    look_interval_seconds: float = Field(default=60.0, ge=1, le=24 * 3600.0)
    change_request: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9_\-]{1,64}$", description="For the ServiceNow gate"
    )
    watch_seconds: float = Field(
        default=0.0,
        ge=0,
        le=_MONTH,
        description="After the last wave passes, how long every upgraded model is still watched",
    )

    def spec(self) -> FleetSpec:
        spec = self._spec()
        for i, m in enumerate(spec.metrics):
            try:  # the query the source will send, rendered once for a probe model
                fleet_query(
                    m.query, namespace=spec.namespace, models=["probe"], window_seconds=60,
                    offset_seconds=60,
                )  # fmt: skip
            except InvalidInputError as exc:
                where = exc.field or "query"
                raise InvalidInputError(str(exc), field=f"metrics[{i}].{where}") from exc
        return spec

    def _spec(self) -> FleetSpec:
        return FleetSpec(
            name=self.name,
            namespace=self.namespace,
            models=tuple(self.models),
            selector=dict(self.selector),
            version=ModelVersion(
                name=self.version.name,
                storage_uri=self.version.storage_uri,
                runtime=self.version.runtime,
            ),
            from_version=self.from_version,
            plan=tuple(
                WaveSpec(
                    percent=w.percent,
                    dwell_seconds=w.dwell_seconds,
                    deadline_seconds=w.deadline_seconds,
                    gates=tuple(w.gates),
                )
                for w in self.waves
            ),
            metrics=tuple(
                FleetMetricSpec(
                    metric=FleetMetric(
                        name=m.name, tolerance=m.tolerance, safety_max=m.safety_max, weight=m.weight
                    ),
                    query=FleetRateQuery(
                        name=m.name,
                        events=m.events,
                        good=m.good,
                        total=m.total,
                        model_label=m.model_label,
                    ),
                )
                for m in self.metrics
            ),
            policy_alpha=self.alpha,
            pass_alpha=self.pass_alpha,
            max_rollback_share=self.max_rollback_share,
            look_interval_seconds=self.look_interval_seconds,
            change_request=self.change_request,
            watch_seconds=self.watch_seconds,
        )


class FleetApprovalIn(_In):
    comment: str = Field(default="", max_length=2000)
    wave: int | None = Field(
        default=None,
        ge=1,
        le=20,
        description="The wave (1-based) approved; by default the next wave still to move that "
        "names the manual-approval gate",
    )


def _engine(services: Services) -> FleetEngine:
    if services.fleets is None:
        raise ApiError(404, "not_found", "fleet rollouts are not configured on this server")
    return services.fleets


def _iso(seconds: float | None) -> str | None:
    return datetime.fromtimestamp(seconds, tz=UTC).isoformat() if seconds is not None else None


def fleet_json(record: FleetRecord, history: FleetHistory | None = None) -> dict[str, Any]:
    """A fleet rollout as the API and the pages show it. With its ``history`` (read from the
    ledger: ``FleetEngine.history``) it carries every model, and each wave's rollbacks by cause;
    without (the list) neither."""
    state = record.state
    counts = {p.value: 0 for p in ModelPhase}
    for phase in state.phases.values():
        counts[phase.value] += 1
    watch = (
        history.watch
        if history is not None
        else fleet_watch(state, record.waves, watch_seconds=record.spec.watch_seconds)
    )
    out: dict[str, Any] = {
        "id": record.id,
        "name": record.spec.name,
        "namespace": record.spec.namespace,
        "status": state.status.value,
        "reason": state.reason,
        "wave": state.wave + 1,
        "waiting_for_gates": state.gated,
        "watching_until": _iso(state.watch_until),
        "watch": _watch_json(watch),
        "waves": [
            {
                "number": k + 1,
                "percent": spec.percent,
                "dwell_seconds": spec.dwell_seconds,
                "deadline_seconds": spec.deadline_seconds,
                "gates": list(spec.gates),
                "models": len(wave),
                "phases": {
                    p.value: sum(1 for m in wave if state.phases[m] is p) for p in ModelPhase
                },
                "watched": k in watch.watched_waves,
            }
            for k, (spec, wave) in enumerate(record.waves)
        ],
        "counts": counts,
        "initiator": record.initiator,
        "created_at": record.created_at.isoformat(),
        "updated_at": record.updated_at.isoformat(),
        "next_look_at": record.next_look_at.isoformat() if record.next_look_at else None,
        "spec": spec_to_json(record.spec),
    }
    if history is not None:
        for shown, wave in zip(out["waves"], history.waves, strict=True):
            shown["rolled_back_by"] = {c.value: wave.rolled_back_by[c] for c in RollbackCause}
        out["models"] = _models_json(record, history)
    return out


def _watch_json(watch: FleetWatch) -> dict[str, Any]:
    return {
        "phase": watch.phase.value,
        "watched_waves": [k + 1 for k in watch.watched_waves],
        "watching_until": _iso(watch.watching_until),
        "watch_seconds": watch.watch_seconds,
    }


def _models_json(record: FleetRecord, history: FleetHistory) -> list[dict[str, Any]]:
    state = record.state
    wave_of = {m: k + 1 for k, (_, wave) in enumerate(record.waves) for m in wave}
    return [
        {
            "model": m,
            "wave": wave_of[m],
            "phase": p.value,
            "stopped_log_e": state.frozen.get(m),
            "log_e": state.last_log_e.get(m),
            "rollback_pending": m in record.retry_rollbacks,
            "rollback": _rollback_json(history.rollbacks.get(m)),
        }
        for m, p in sorted(state.phases.items())
    ]


def _rollback_json(rollback: Rollback | None) -> dict[str, Any] | None:
    if rollback is None:
        return None
    return {
        "cause": rollback.cause.value,
        "wave": rollback.wave + 1,
        "at": rollback.at.isoformat() if rollback.at is not None else None,
        "look": rollback.look,
        "entry": rollback.entry,
        "reason": rollback.reason,
        "actor": rollback.actor,
    }


def look_json(look: LookRecord) -> dict[str, Any]:
    split = look_watch(look.summary)
    return {
        "at": look.at.isoformat(),
        "wave": look.wave + 1,
        "verdict": look.verdict,
        "final": look.final,
        "reason": look.reason,
        "rollbacks": list(look.rollbacks),
        "own_rollbacks": list(split.own_rollbacks),
        "watch": [
            {
                "wave": w.wave + 1,
                "final": w.final,
                "controls": w.controls,
                "rollbacks": list(w.rollbacks),
            }
            for w in split.watched
        ],
        "summary": look.summary,
    }


def _full(services: Services, record: FleetRecord) -> dict[str, Any]:
    return fleet_json(record, _engine(services).history(record))


def _scoped(services: Services, fleet_id: str, actor: Actor) -> FleetRecord:
    record = _engine(services).get(fleet_id)
    ensure_namespace(actor, record.spec.namespace)
    return record


@router.post("", status_code=201, summary="Start a fleet rollout", responses=_ERRORS)
def start_fleet(body: FleetStartIn, services: ServicesDep, actor: StarterActor) -> dict[str, Any]:
    ensure_namespace(actor, body.namespace)
    record = _engine(services).start(body.spec(), initiator=actor.subject)
    return _full(services, record)


@router.get("", summary="List fleet rollouts (newest first)", responses=_ERRORS)
def list_fleets(
    services: ServicesDep,
    actor: ReaderActor,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    records = _engine(services).recent(limit=limit)
    visible = [
        r for r in records if actor.namespaces is None or r.spec.namespace in actor.namespaces
    ]
    return {"items": [fleet_json(r) for r in visible]}


@router.get("/{fleet_id}", summary="A fleet rollout: waves and every model", responses=_ERRORS)
def get_fleet(fleet_id: FleetId, services: ServicesDep, actor: ReaderActor) -> dict[str, Any]:
    return _full(services, _scoped(services, fleet_id, actor))


@router.get("/{fleet_id}/looks", summary="The fleet's verdicts over time", responses=_ERRORS)
def get_looks(
    fleet_id: FleetId,
    services: ServicesDep,
    actor: ReaderActor,
    limit: Annotated[int, Query(ge=1, le=2000)] = 500,
) -> dict[str, Any]:
    _scoped(services, fleet_id, actor)
    return {"items": [look_json(lk) for lk in _engine(services).looks(fleet_id, limit=limit)]}


@router.post("/{fleet_id}/abort", summary="Send every upgraded model back", responses=_ERRORS)
def abort_fleet(
    fleet_id: FleetId, body: ReasonIn, services: ServicesDep, actor: OperatorActor
) -> dict[str, Any]:
    _scoped(services, fleet_id, actor)
    record = _engine(services).abort(fleet_id, actor=actor.subject, reason=body.reason)
    return _full(services, record)


@router.post("/{fleet_id}/resume", summary="Accept a held wave and go on", responses=_ERRORS)
def resume_fleet(
    fleet_id: FleetId, body: ReasonIn, services: ServicesDep, actor: OperatorActor
) -> dict[str, Any]:
    _scoped(services, fleet_id, actor)
    record = _engine(services).resume(fleet_id, actor=actor.subject, reason=body.reason)
    return _full(services, record)


@router.post(
    "/{fleet_id}/approvals",
    status_code=201,
    summary="Four-eyes approval of a wave gated by manual-approval (refused for the initiator)",
    responses={
        **_ERRORS,
        409: {"description": "No wave still to move names the manual-approval gate"},
    },
)
def approve_fleet(
    fleet_id: FleetId, body: FleetApprovalIn, services: ServicesDep, actor: ApproverActor
) -> dict[str, Any]:
    _scoped(services, fleet_id, actor)
    record, wave = _engine(services).approve(
        fleet_id,
        actor=actor.subject,
        roles=frozenset(actor.roles),
        comment=body.comment,
        wave=None if body.wave is None else body.wave - 1,
    )
    services.metrics.ledger_appends.labels(event_type=EventType.APPROVAL_GIVEN.value).inc()
    return {**fleet_json(record), "approved_wave": wave + 1}
