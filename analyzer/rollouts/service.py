"""``RolloutService``: the database-backed implementation of :class:`RolloutControl`.

Every method runs in one transaction that locks the rollout's row (``SELECT … FOR UPDATE``), so a
human action and an engine tick never interleave on the same rollout. ``abort`` calls the traffic
target *inside* that transaction: the canary goes to 0 % at once, not at the next tick, and the
recorded state says what the target confirmed.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Collection, Container, Sequence
from dataclasses import replace
from datetime import datetime

import structlog
from sqlalchemy import Connection, Engine, false, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from analyzer.domain.approvals import counted_approval
from analyzer.domain.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
)
from analyzer.domain.events import EventType, LedgerEvent
from analyzer.domain.model import ModelRef
from analyzer.domain.rollout import CANARY_ONLY_TIERS, Rollout, RolloutState, StepPlan, Strategy
from analyzer.ledger.store import Clock, Ledger, utc_now
from analyzer.registry.base import (
    ModelRegistry,
    RegistryNotFoundError,
    is_registry_uri,
    parse_model_uri,
    resolve,
)
from analyzer.rollouts import records
from analyzer.rollouts.aliases import resolution_record
from analyzer.rollouts.control import Actor, RecordedApproval, StartRollout
from analyzer.rollouts.records import abort_and_confirm
from analyzer.rollouts.repository import from_row, load, plan_to_json, to_row
from analyzer.rollouts.tables import rollouts
from analyzer.targets.base import MirrorTarget, OwnsItsSteps, RegistersModels, TrafficTarget
from analyzer.targets.mirror import target_for

log = structlog.get_logger(__name__)

# (rollout, approver, step, now) -> None; raises PermissionDeniedError to refuse the approval.
ApprovalCheck = Callable[[Rollout, Actor, int, datetime], None]
# rollout -> the plan steps before which the manual-approval gate reads approvals (the wiring
# derives it from the gate policy of the rollout's model and tier).
ApprovalSteps = Callable[[Rollout], Sequence[int]]


def four_eyes(rollout: Rollout, actor: Actor, step: int, now: datetime) -> None:
    """The default approval rule: an ``approver`` who did not start the rollout.

    The ``approver`` role only, not ``admin``: the manual-approval gate counts approvals by
    that role alone (separation of duties: whoever administers the service does not also sign
    off promotions), so an admin's approval would be recorded and never count.
    """
    if actor.subject.strip().casefold() == rollout.initiator.strip().casefold():
        raise PermissionDeniedError(
            f"{actor.subject} started this rollout and cannot approve it (four eyes)"
        )
    if "approver" not in actor.roles:
        raise PermissionDeniedError(
            f"{actor.subject} does not hold the 'approver' role (admin is not enough: "
            "the approval gate counts approvers only)"
        )


def final_step_only(rollout: Rollout) -> Sequence[int]:
    """The default policies' answer: approval is checked before 100 % (the last step) only."""
    return (len(rollout.plan.steps) - 1,)


def approvable_steps(rollout: Rollout, gated: Sequence[int]) -> list[int]:
    """The gated steps an approval can still count for: those not entered or being entered.

    A pending rollout has entered no step; a move in flight has already passed its gates.
    """
    entered = -1 if rollout.state is RolloutState.PENDING else rollout.step_index
    if rollout.pending_move is not None:
        entered = max(entered, rollout.pending_move.step)
    return sorted(step for step in set(gated) if step > entered)


class RolloutService:
    def __init__(
        self,
        engine: Engine,
        ledger: Ledger,
        target: TrafficTarget,
        *,
        clock: Clock = utc_now,
        profiles: Container[str] | None = None,
        approval_check: ApprovalCheck = four_eyes,
        approval_steps: ApprovalSteps = final_step_only,
        new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
        registry: ModelRegistry | None = None,
        registry_required: bool = False,
        mirror: MirrorTarget | None = None,
    ) -> None:
        self._engine = engine
        self._mirror = mirror  # shadow runs' request mirror (None: shadow runs are refused)
        self._registry = registry
        # True: every rollout must name a models:/ URI (no free-typed artifact or version).
        self._registry_required = registry_required
        self._ledger = ledger
        self._target = target
        self._clock = clock
        self._profiles = profiles
        self._approval_check = approval_check
        self._approval_steps = approval_steps
        self._new_id = new_id

    def start(self, request: StartRollout, actor: Actor) -> Rollout:
        if self._profiles is not None and request.profile not in self._profiles:
            raise InvalidInputError(
                f"unknown analysis profile {request.profile!r}", field="profile"
            )
        if request.baseline_revision == request.canary_revision:
            raise InvalidInputError("canary and baseline are the same revision", field="canary")
        plan = request.plan or StepPlan.default()
        if plan.strategy not in (Strategy.CANARY, Strategy.SHADOW) and (
            request.tier in CANARY_ONLY_TIERS
        ):
            raise InvalidInputError(
                f"a {request.tier.value} model is rolled out as a canary (or validated in "
                f"shadow first); {plan.strategy.value} is for lower tiers (docs/strategies.md)",
                field="strategy",
            )
        request, resolution = self._resolve(request)
        if plan.strategy is Strategy.SHADOW:
            self._check_mirror(request)
        else:
            self._check_target(request)
        now = self._clock()
        rollout = Rollout(
            id=self._new_id(), model=request.model, tier=request.tier,
            baseline_revision=request.baseline_revision, canary_revision=request.canary_revision,
            profile=request.profile, plan=plan,
            state=RolloutState.PENDING, step_index=-1, paused=False, initiator=actor.subject,
            created_at=now, updated_at=now, next_tick_at=now,
            change_request=request.change_request, artifact_uri=request.artifact_uri,
            model_version=request.model_version, artifact_digest=request.artifact_digest,
        )  # fmt: skip
        try:
            with self._engine.begin() as conn:
                conn.execute(rollouts.insert().values(**to_row(rollout)))
                self._ledger.append_many(conn, _start_events(rollout, actor, request, resolution))
        except IntegrityError as exc:
            raise ConflictError(
                f"model {request.model} already has an active rollout; abort or finish it first"
            ) from exc
        log.info("rollout started", rollout_id=rollout.id, model=str(rollout.model))
        return rollout

    def _resolve(self, request: StartRollout) -> tuple[StartRollout, dict[str, object] | None]:
        """A ``models:/`` URI resolved to one immutable version: the request as it will be
        recorded (``artifact_uri`` pinned to ``models:/NAME/VERSION``, the version and digest
        from the registry) and the resolution for ``revision_registered``.

        Refused with ``InvalidInputError`` (422): a mutable or unpinned URI, a version or alias
        the registry does not know, a version not READY, a ``model_version`` or digest that
        contradicts the registry. A registry that does not answer raises its
        ``IntegrationError`` (502): nothing is started on a guess."""
        uri_text = request.artifact_uri
        if not is_registry_uri(uri_text):
            if self._registry_required:
                raise InvalidInputError(
                    f"{uri_text!r} is not version-addressed: this service requires a registry URI, "
                    "models:/NAME/VERSION or models:/NAME@ALIAS",
                    field="artifact_uri",
                )
            return request, None
        assert uri_text is not None, "is_registry_uri(None) is False"
        uri = parse_model_uri(uri_text)
        if self._registry is None:
            raise InvalidInputError(
                "names a registry model, but no model registry is configured (registry.url)",
                field="artifact_uri",
            )
        try:
            resolved = resolve(self._registry, uri)
        except RegistryNotFoundError as exc:
            raise InvalidInputError(
                f"{uri_text!r} is not in the registry: {exc}", field="artifact_uri"
            ) from exc
        if resolved.status != "READY":
            raise InvalidInputError(
                f"{resolved.pinned} is {resolved.status}, not READY", field="artifact_uri"
            )
        if request.model_version is not None and request.model_version != resolved.version:
            raise InvalidInputError(
                f"is {request.model_version!r}, but {uri_text} is version {resolved.version}",
                field="model_version",
            )
        pinned = replace(
            request, artifact_uri=resolved.pinned, model_version=resolved.version,
            artifact_digest=request.artifact_digest or resolved.digest,
        )  # fmt: skip
        return pinned, resolution_record(uri_text, resolved, self._registry.kind)

    def _check_target(self, request: StartRollout) -> None:
        """Refuse at once a model the target does not know (rather than a rollout that logs a
        target error every tick); a target that registers models (the in-memory one of the
        embedded default) is asked to first."""
        if isinstance(self._target, OwnsItsSteps):
            raise InvalidInputError(self._target.driven_steps_refused(request.model), field="model")
        if isinstance(self._target, RegistersModels):
            self._target.register_rollout(
                request.model, stable_revision=request.baseline_revision,
                canary_revision=request.canary_revision,
            )  # fmt: skip
        try:
            self._target.read_weight(request.model)
        except NotFoundError as exc:
            raise InvalidInputError(
                f"the traffic target has no model {request.model}: {exc}", field="model"
            ) from exc

    def _check_mirror(self, request: StartRollout) -> None:
        """Refuse a shadow run the mesh cannot mirror: no mirror target, or no route for the
        model (the mesh or its VirtualService absent), or a route already mirroring elsewhere."""
        if self._mirror is None:
            raise InvalidInputError(
                "a shadow run needs a request mirror and none is configured (target.mirror: "
                "istio; KServe has no mirror field)",
                field="strategy",
            )
        if isinstance(self._mirror, RegistersModels):  # the embedded default's in-memory mesh
            self._mirror.register_rollout(
                request.model, stable_revision=request.baseline_revision,
                canary_revision=request.canary_revision,
            )  # fmt: skip
        try:
            seen = self._mirror.read_mirror(request.model)
        except NotFoundError as exc:
            raise InvalidInputError(f"cannot mirror {request.model}: {exc}", field="model") from exc
        if seen.serving_revision == request.canary_revision:
            raise InvalidInputError(
                f"{request.canary_revision} already serves {request.model}: there is nothing to "
                "shadow",
                field="canary_revision",
            )
        if seen.mirror_revision not in (None, request.canary_revision):
            raise InvalidInputError(
                f"{request.model}'s route already mirrors to {seen.mirror_revision}; remove that "
                "mirror first",
                field="model",
            )

    def list(
        self,
        *,
        model: ModelRef | None = None,
        state: RolloutState | None = None,
        namespaces: Collection[str] | None = None,
        limit: int = 100,
    ) -> list[Rollout]:
        query = select(rollouts).order_by(rollouts.c.created_at.desc()).limit(limit)
        if model is not None:
            query = query.where(rollouts.c.model == str(model))
        if namespaces is not None:  # the model column is "namespace/name"
            prefixes = [f"{ns}/" for ns in sorted(namespaces)]
            query = query.where(
                or_(false(), *(func.substr(rollouts.c.model, 1, len(p)) == p for p in prefixes))
            )
        if state is not None:
            query = query.where(rollouts.c.state == state.value)
        with self._engine.connect() as conn:
            return [from_row(r) for r in conn.execute(query)]

    def get(self, rollout_id: str) -> Rollout:
        with self._engine.connect() as conn:
            return from_row(load(conn, rollout_id))

    def applied_weight(self, rollout_id: str) -> int | None:
        return self.get(rollout_id).applied_weight

    def abort(self, rollout_id: str, actor: Actor, reason: str) -> Rollout:
        """Abort: the decision is committed first (who, why), then the target is asked for 0 %.

        The returned rollout says what the target confirmed: ``applied_weight`` 0 and nothing
        pending, or (target unreachable, or the process died in between) the abort stays
        unconfirmed and the engine retries it until the target shows 0 % — never the reverse.
        """
        if not reason.strip():
            raise InvalidInputError("an abort needs a reason", field="reason")
        with self._engine.begin() as conn:
            current = from_row(load(conn, rollout_id, for_update=True))
            if current.state in (RolloutState.ABORTED, RolloutState.FAILED):
                return current  # idempotent: traffic is already (being) driven to 0 %
            if current.state is RolloutState.PROMOTED:
                raise ConflictError("the rollout was promoted; start a new rollout to roll back")
            aborted = self._save(
                conn, current, state=RolloutState.ABORTED, reason=reason, next_tick_at=self._clock()
            )
            record = records.about(
                aborted, EventType.ROLLOUT_ABORTED, actor.subject,
                reason=reason, from_weight=current.applied_weight,
            )  # fmt: skip
            self._ledger.append(conn, record)
        log.info("rollout aborted", rollout_id=rollout_id, actor=actor.subject, reason=reason)
        return self._confirm_abort(aborted, actor.subject)

    def _confirm_abort(self, aborted: Rollout, actor: str) -> Rollout:
        with self._engine.begin() as conn:
            current = from_row(load(conn, aborted.id, for_update=True))
            if current.version != aborted.version:
                return current  # the engine confirmed (or is confirming) it meanwhile
            target = target_for(current, self._target, self._mirror)
            events, confirmed = abort_and_confirm(target, current, actor=actor, now=self._clock())
            conn.execute(
                update(rollouts).where(rollouts.c.id == current.id).values(**to_row(confirmed))
            )
            self._ledger.append_many(conn, events)
        if not confirmed.confirmed:
            log.warning("abort could not reach the target", rollout_id=aborted.id)
        return confirmed

    def pause(self, rollout_id: str, actor: Actor, reason: str) -> Rollout:
        with self._engine.begin() as conn:
            current = self._active(conn, rollout_id, "pause")
            if current.paused:
                return current
            paused = self._save(conn, current, paused=True, reason=reason or None)
            self._ledger.append(
                conn, records.about(paused, EventType.ROLLOUT_PAUSED, actor.subject, reason=reason)
            )
        return paused

    def resume(self, rollout_id: str, actor: Actor) -> Rollout:
        with self._engine.begin() as conn:
            current = self._active(conn, rollout_id, "resume")
            if not current.paused:
                return current
            resumed = self._save(conn, current, paused=False, next_tick_at=self._clock())
            self._ledger.append(
                conn, records.about(resumed, EventType.ROLLOUT_RESUMED, actor.subject)
            )
        return resumed

    def approve(
        self, rollout_id: str, actor: Actor, comment: str, step: int | None = None
    ) -> RecordedApproval:
        """Record an approval for ``step`` or, by default, the next step the manual-approval
        gate will check (issue 13: always recording the last step held a rollout gated from
        50 % at 25 % forever)."""
        now = self._clock()
        with self._engine.begin() as conn:
            current = self._active(conn, rollout_id, "approve")
            steps = current.plan.steps
            if step is not None and not 0 <= step < len(steps):
                raise InvalidInputError(
                    f"the plan has no step {step} (steps 0 to {len(steps) - 1})", field="step"
                )
            remaining = approvable_steps(current, self._approval_steps(current))
            target_step = _approval_step(current, step, remaining)
            self._approval_check(current, actor, target_step, now)
            event = records.about(
                current, EventType.APPROVAL_GIVEN, actor.subject, step=target_step,
                comment=comment, roles=sorted(actor.roles),
                change_request=current.change_request,
            )  # fmt: skip
            self._ledger.append(conn, event)
        return RecordedApproval(rollout=current, step=target_step, weight=steps[target_step].weight)

    def _active(self, conn: Connection, rollout_id: str, verb: str) -> Rollout:
        current = from_row(load(conn, rollout_id, for_update=True))
        if current.state.terminal:
            raise ConflictError(f"cannot {verb} a rollout that is {current.state.value}")
        return current

    def _save(self, conn: Connection, current: Rollout, **changes: object) -> Rollout:
        new = replace(current, updated_at=self._clock(), version=current.version + 1, **changes)  # type: ignore[arg-type]
        conn.execute(update(rollouts).where(rollouts.c.id == current.id).values(**to_row(new)))
        return new


def _approval_step(rollout: Rollout, asked: int | None, remaining: Sequence[int]) -> int:
    """The step an approval is recorded for; ``ConflictError`` when no gate check will count it."""
    weights = [s.weight for s in rollout.plan.steps]
    return counted_approval(
        asked,
        remaining,
        describe=lambda s: f"step {s} ({weights[s]} %)",
        nothing_left="no remaining step of this rollout needs a manual approval under its gate "
        "policy",
    )


def _start_events(
    rollout: Rollout,
    actor: Actor,
    request: StartRollout,
    resolution: dict[str, object] | None,
) -> list[LedgerEvent]:
    # New keys only ever join new entries' data: entries already in the chain keep their bytes.
    provenance: dict[str, object] = {}
    if resolution is not None:
        provenance["registry"] = resolution
    if request.artifact_signature is not None:
        provenance["signature"] = request.artifact_signature
    if request.artifact_sigstore_bundle is not None:  # an object in the entry, as it was given
        provenance["sigstore_bundle"] = json.loads(request.artifact_sigstore_bundle)
    registered = records.about(
        rollout, EventType.REVISION_REGISTERED, actor.subject,
        artifact_uri=rollout.artifact_uri, artifact_digest=rollout.artifact_digest,
        model_version=rollout.model_version, baseline_revision=rollout.baseline_revision,
        **provenance,
    )  # fmt: skip
    started = records.about(
        rollout, EventType.ROLLOUT_STARTED, actor.subject, tier=rollout.tier.value,
        baseline_revision=rollout.baseline_revision, canary_revision=rollout.canary_revision,
        model_version=rollout.model_version, profile=rollout.profile,
        change_request=rollout.change_request, plan=[s.weight for s in rollout.plan.steps],
        # the whole plan (dwells, interval, bake): a backtest re-judges each step as it ran
        step_plan=plan_to_json(rollout.plan),
        **({} if rollout.strategy is Strategy.CANARY else {"strategy": rollout.strategy.value}),
    )  # fmt: skip
    return [registered, started]
