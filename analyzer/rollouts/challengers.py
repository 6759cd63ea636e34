"""Start a rollout when a registered model version gets the ``challenger`` alias (optional).

A model team's pipeline registers a version in MLflow, deploys it beside the stable revision
(KServe makes it the newest revision, at 0 %), and points the ``challenger`` alias at it. For each
watched registered model, :meth:`ChallengerPoller.poll` reads the alias and, for a version no
rollout has been started for, starts one from the pinned ``models:/NAME/VERSION`` — baseline and
canary revisions as the traffic target shows them — exactly as ``POST /api/v1/rollouts`` would
(same resolution, refusals and ledger entries), as the actor ``canary-analyzer/registry-poller``.

Replicas: every replica runs the poller; each poll of a registered model first takes its lease in
``registry_watch_leases`` (one UPDATE that succeeds only when the lease is free, expired or its
own), like the engine's claim of a due rollout, so one replica asks the registry while the
others skip it. Starting twice is harmless anyway: a version that already has a rollout of the
model is skipped, and the service refuses a second active rollout of a model (409).

Failures are data: a registry that does not answer, a target without a canary, a refused start
are outcomes of the poll (logged, returned), never exceptions out of the timer; the next poll
tries again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from sqlalchemy import Engine, and_, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from analyzer.domain.errors import CanaryAnalyzerError, ConflictError
from analyzer.domain.model import ModelRef, Tier
from analyzer.domain.rollout import StepPlan
from analyzer.registry.base import CHALLENGER, ModelRegistry, RegistryError, pinned_uri
from analyzer.rollouts.control import Actor, StartRollout
from analyzer.rollouts.service import RolloutService
from analyzer.rollouts.tables import registry_watch_leases, rollouts
from analyzer.targets.base import TrafficTarget

log = structlog.get_logger(__name__)

POLLER = Actor(subject="canary-analyzer/registry-poller", roles=frozenset({"operator"}))


@dataclass(frozen=True, kw_only=True, slots=True)
class ChallengerWatch:
    """A registered model whose ``challenger`` versions start rollouts of a served model."""

    registered_model: str
    model: ModelRef
    profile: str
    tier: Tier = Tier.STANDARD
    change_request: str | None = None
    plan: StepPlan | None = None  # None: the service's default plan


@dataclass(frozen=True, kw_only=True, slots=True)
class PollOutcome:
    registered_model: str
    action: str  # started, skipped, held, refused
    reason: str
    version: str | None = None
    rollout_id: str | None = None


class ChallengerPoller:
    def __init__(
        self,
        engine: Engine,
        registry: ModelRegistry,
        service: RolloutService,
        target: TrafficTarget,
        watches: Sequence[ChallengerWatch],
        *,
        clock: Callable[[], datetime],
        replica_id: str,
        lease: timedelta = timedelta(seconds=60),
        alias: str = CHALLENGER,
    ) -> None:
        self._engine = engine
        self._registry = registry
        self._service = service
        self._target = target
        self._watches = tuple(watches)
        self._clock = clock
        self._replica = replica_id
        self._lease = lease
        self._alias = alias

    def poll(self) -> list[PollOutcome]:
        """One pass over the watched registered models whose lease this replica gets."""
        outcomes = []
        for watch in self._watches:
            if not self._take_lease(watch.registered_model):
                continue
            outcome = self._poll_one(watch)
            log.info("registry challenger poll", model=str(watch.model),
                     registered_model=watch.registered_model, action=outcome.action,
                     version=outcome.version, reason=outcome.reason)  # fmt: skip
            outcomes.append(outcome)
        return outcomes

    def _poll_one(self, watch: ChallengerWatch) -> PollOutcome:
        name = watch.registered_model

        def outcome(action: str, reason: str, **more: str | None) -> PollOutcome:
            return PollOutcome(registered_model=name, action=action, reason=reason, **more)

        try:
            version = self._registry.aliases(name).get(self._alias)
        except RegistryError as exc:
            return outcome("held", f"the registry did not answer: {exc}")
        if version is None:
            return outcome("skipped", f"no version has the {self._alias!r} alias")
        uri = pinned_uri(name, version)
        if self._started_before(watch.model, uri):
            return outcome("skipped", f"{uri} already has a rollout", version=version)
        try:
            state = self._target.read_weight(watch.model)
        except CanaryAnalyzerError as exc:
            return outcome("held", f"the traffic target did not answer: {exc}", version=version)
        if state.stable_revision is None or state.canary_revision is None:
            return outcome("held", f"{watch.model} has no canary revision deployed beside its "
                           "stable one yet", version=version)  # fmt: skip
        request = StartRollout(
            model=watch.model, tier=watch.tier, baseline_revision=state.stable_revision,
            canary_revision=state.canary_revision, profile=watch.profile,
            change_request=watch.change_request, artifact_uri=uri, plan=watch.plan,
        )  # fmt: skip
        try:
            started = self._service.start(request, POLLER)
        except ConflictError as exc:  # a rollout of the model is running: try when it is done
            return outcome("held", str(exc), version=version)
        except (CanaryAnalyzerError, RegistryError) as exc:
            return outcome("refused", str(exc), version=version)
        return outcome("started", f"{uri} has the {self._alias!r} alias", version=version,
                       rollout_id=started.id)  # fmt: skip

    def _started_before(self, model: ModelRef, uri: str) -> bool:
        query = select(rollouts.c.id).where(
            rollouts.c.model == str(model), rollouts.c.artifact_uri == uri
        )
        with self._engine.connect() as conn:
            return conn.execute(query.limit(1)).first() is not None

    def _take_lease(self, registered_model: str) -> bool:
        """True when this replica holds the registered model's lease (now taken or renewed)."""
        now = self._clock()
        until = now + self._lease
        t = registry_watch_leases.c
        with self._engine.begin() as conn:
            taken = conn.execute(
                update(registry_watch_leases)
                .where(
                    and_(
                        t.registered_model == registered_model,
                        or_(t.leased_until < now, t.leased_by == self._replica),
                    )
                )
                .values(leased_by=self._replica, leased_until=until)
            ).rowcount
        if taken:
            return True
        try:
            with self._engine.begin() as conn:  # the first poll of this registered model
                conn.execute(insert(registry_watch_leases).values(
                    registered_model=registered_model, leased_by=self._replica,
                    leased_until=until))  # fmt: skip
        except IntegrityError:  # another replica holds it (or inserted it just now)
            return False
        return True
