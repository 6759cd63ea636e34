"""``KServeTarget``: canary traffic on a KServe InferenceService in Serverless (Knative) mode.

The split lives in ``spec.predictor.canaryTrafficPercent``: the latest ready revision gets P %,
``status.components.predictor.latestRolledoutRevision`` (tag ``prev``) the rest. A step patches P,
promotion removes the field (merge-patch ``null``), rollback sets 0. Every patch carries the
``metadata.resourceVersion`` it was computed from, so a concurrent writer turns it into a 409,
which is answered by reading again (bounded, with backoff).

After each change the target waits, polling with an injected clock and sleep, until the
controllers report ``Ready``, no revision is still being created, and
``status.components.predictor.traffic`` shows the requested split. The observed split, never the
requested one, is what is returned.

Why not ``status.observedGeneration >= metadata.generation``: KServe copies
``observedGeneration`` from the *Knative Service* (``PropagateStatus`` sets
``ss.ObservedGeneration = serviceStatus.ObservedGeneration``), whose generation counts ksvc
updates, not InferenceService updates. The two drift apart (a transformer or explainer edit bumps
the InferenceService's generation and not the predictor ksvc's; a spec change that yields the same
ksvc bumps neither), so gating on it can wait forever or pass early. The traffic block is the
controllers' own evidence that a split was applied, so the target verifies that instead.

Refused: ``status.deploymentMode`` (or the ``serving.kserve.io/deploymentMode`` annotation) other
than Serverless, because there ``canaryTrafficPercent`` does nothing (KServe 0.20's Standard-mode
``spec.canary[]`` is not supported yet).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from analyzer.domain.errors import FatalIntegrationError, RetryableError
from analyzer.domain.model import ModelRef
from analyzer.targets.base import TrafficState, check_weight
from analyzer.targets.kserve.status import (
    SERVERLESS,
    deployment_mode,
    parse_traffic_state,
    predictor_status,
    revision_in_flight,
    routing_agrees,
)
from analyzer.targets.kube import (
    FIELD_MANAGER,
    JSON,
    MERGE_PATCH,
    CustomObjectTarget,
    RetryPolicy,
    call_with_retry,
    condition,
)

Reached = Callable[[JSON, TrafficState], bool]

GROUP, VERSION, PLURAL = "serving.kserve.io", "v1beta1", "inferenceservices"


@dataclass(frozen=True, kw_only=True, slots=True)
class KServeTargetSettings:
    """Timing of the KServe target (seconds)."""

    poll_interval: float = 2.0
    ready_timeout: float = 300.0
    request_timeout: float = 10.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)


class KServeTarget(CustomObjectTarget[KServeTargetSettings]):
    """A :class:`~analyzer.targets.base.TrafficTarget` over ``serving.kserve.io/v1beta1``.

    ``api_client`` is injected (build it with :func:`analyzer.targets.kube.build_api_client`);
    ``clock`` and ``sleep`` are injected so tests control time.
    """

    RESOURCE = (GROUP, VERSION, PLURAL, "inferenceservice")
    LOGGER = "analyzer.targets.kserve"

    @classmethod
    def default_settings(cls) -> KServeTargetSettings:
        return KServeTargetSettings()

    # -- the TrafficTarget contract ---------------------------------------------------------
    def read_weight(self, ref: ModelRef) -> TrafficState:
        return parse_traffic_state(self._supported(self._get(ref), ref))

    def set_weight(self, ref: ModelRef, weight: int) -> TrafficState:
        check_weight(weight)
        # The revision to verify is the canary as it stands before the change: at 100 % KServe
        # already reports it as the rolled-out (stable) one.
        canary = self._ready_canary(ref) if weight > 0 else self.read_weight(ref).canary_revision
        self._patch_predictor(ref, weight)

        def reached(_obj: JSON, state: TrafficState) -> bool:
            revision = canary or state.canary_revision
            return state.percent_of(revision) == weight if revision else weight == 0

        return self._wait(ref, reached, require_ready=True, action=f"set weight {weight}")

    def promote(self, ref: ModelRef) -> TrafficState:
        # Settle first: promoting while the controller has not yet created or readied the
        # canary would "promote" whatever happens to be ready, or a revision that failed.
        before = self._wait(ref, lambda _o, _s: True, require_ready=True, action="promote")
        self._patch_predictor(ref, None)
        target = before.canary_revision or before.stable_revision

        def promoted(_obj: JSON, state: TrafficState) -> bool:
            return state.canary_revision is None and state.stable_revision == target

        return self._wait(ref, promoted, require_ready=True, action="promote")

    def abort(self, ref: ModelRef) -> TrafficState:
        canary = self.read_weight(ref).canary_revision
        self._patch_predictor(ref, 0)

        def back_to_stable(_obj: JSON, state: TrafficState) -> bool:
            return not state.canary_weight and not (canary and state.percent_of(canary))

        # Ready is not required: aborting a canary whose revision failed must still succeed
        # once the routing shows the change and the failed revision serves nothing.
        return self._wait(ref, back_to_stable, require_ready=False, action="abort")

    def _ready_canary(self, ref: ModelRef) -> str:
        """Wait (bounded) until a ready canary revision serves beside the stable one.

        Waiting rather than refusing at once covers a status that is still stale right after a
        new predictor spec was applied. Nothing is written before a canary exists.
        """

        def no_canary(obj: JSON, state: TrafficState) -> Exception | None:
            if revision_in_flight(obj):
                return None  # a revision is being created: the default (never ready) error
            return FatalIntegrationError(
                f"{ref}: no canary revision to send traffic to: the only ready revision "
                f"{state.stable_revision} is already rolled out (deploy a new predictor first)"
            )

        state = self._wait(
            ref,
            lambda _o, s: s.canary_revision is not None,
            require_ready=True,
            action="find the canary revision",
            on_timeout=no_canary,
        )
        assert state.canary_revision is not None  # guaranteed by the predicate
        return state.canary_revision

    # -- internals --------------------------------------------------------------------------
    def _supported(self, obj: JSON, ref: ModelRef) -> JSON:
        mode = deployment_mode(obj)
        if mode != SERVERLESS:
            raise FatalIntegrationError(
                f"{ref}: deploymentMode {mode!r} is not supported: canaryTrafficPercent only "
                "splits traffic in Serverless (Knative) mode; Standard/RawDeployment canaries "
                "(spec.canary[]) are not implemented by this target"
            )
        return obj

    def _patch_predictor(self, ref: ModelRef, percent: int | None) -> None:
        """Set (or with ``None`` remove) canaryTrafficPercent, re-reading on every conflict."""

        def read_modify_write() -> None:
            obj = self._supported(self._get(ref), ref)
            predictor = (obj.get("spec") or {}).get("predictor") or {}
            if predictor.get("canaryTrafficPercent") == percent:
                return  # already what we want: no write, so no new generation either
            body = {
                "metadata": {"resourceVersion": obj["metadata"]["resourceVersion"]},
                "spec": {"predictor": {"canaryTrafficPercent": percent}},
            }
            self._api.patch_namespaced_custom_object(
                GROUP,
                VERSION,
                ref.namespace,
                PLURAL,
                ref.name,
                body,
                field_manager=FIELD_MANAGER,
                _content_type=MERGE_PATCH,
                _request_timeout=self._settings.request_timeout,
            )
            self._log.info(
                "kserve_canary_patched",
                model=str(ref),
                canary_traffic_percent=percent,
                resource_version=body["metadata"]["resourceVersion"],
            )

        call_with_retry(
            read_modify_write,
            what=f"patch canaryTrafficPercent of {ref}",
            policy=self._settings.retry,
            sleep=self._sleep,
            log=self._log,
        )

    def _wait(
        self,
        ref: ModelRef,
        reached: Reached,
        *,
        require_ready: bool,
        action: str,
        on_timeout: Callable[[JSON, TrafficState], Exception | None] | None = None,
    ) -> TrafficState:
        """Poll until the routing reflects the spec (and, if required, is settled) and ``reached``.

        Bounded by ``ready_timeout``; a poll's own transient errors are retried inside ``_get``.
        """
        deadline = self._clock() + self._settings.ready_timeout
        while True:
            obj = self._supported(self._get(ref), ref)
            state = parse_traffic_state(obj)
            applied = state.settled if require_ready else routing_agrees(obj)
            if applied and reached(obj, state):
                return state
            if self._clock() >= deadline:
                custom = on_timeout(obj, state) if on_timeout else None
                raise custom or self._timeout_error(ref, obj, state, action)
            self._sleep(self._settings.poll_interval)

    def _timeout_error(
        self, ref: ModelRef, obj: JSON, state: TrafficState, action: str
    ) -> Exception:
        predictor = predictor_status(obj)
        created = predictor.get("latestCreatedRevision")
        ready_rev = predictor.get("latestReadyRevision")
        ready = condition(obj, "Ready") or {}
        waited = f"after {self._settings.ready_timeout:g}s"
        if created and created != ready_rev:
            return FatalIntegrationError(
                f"{ref}: {action}: canary revision {created} never became ready {waited} "
                f"(latest ready revision: {ready_rev}); Ready={ready.get('status')} "
                f"reason={ready.get('reason')}: {ready.get('message')}"
            )
        return RetryableError(
            f"{ref}: {action} not confirmed {waited}: Ready={ready.get('status')}, "
            f"observed split {[(x.revision, x.percent) for x in state.shares]}, canary weight "
            f"{state.canary_weight} (requested {state.requested_weight})"
        )
