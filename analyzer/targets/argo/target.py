"""``ArgoRolloutTarget``: read, abort and promote an Argo Rollout (``argoproj.io/v1alpha1``).

Argo Rollouts owns its canary steps (``spec.strategy.canary.steps``) and moves the weights
itself; our service judges through the web metric provider and steps in only to abort or to
promote. So this target:

* reads ``status``: ``currentStepIndex``, ``stableRS`` (stable pod-template hash),
  (for a ``blueGreen`` Rollout, ``blueGreen.activeSelector``: the hash the active Service
  routes all traffic to; the preview Service's traffic is not production),
  ``currentPodHash`` (canary hash), ``canary.weights`` (the weights the traffic router applied),
  ``phase``/``message``, ``abort``, the pause state; weights without a traffic router are the
  share of updated (canary) replicas, which is how Argo approximates them;
* aborts exactly like ``kubectl argo rollouts abort``: the JSON merge patch
  ``{"status":{"abort":true}}`` on the ``status`` subresource;
* promotes like ``kubectl argo rollouts promote --full``: ``{"status":{"promoteFull":true}}`` on
  the status subresource, then ``{"spec":{"paused":false}}`` on the main resource if the
  Rollout is paused by spec. (A plain step ``promote`` is not offered: the engine's contract is
  "the canary becomes stable".)
* refuses :meth:`set_weight` with :class:`FatalIntegrationError`: overriding Argo's own steps
  from outside would fight its controller. Change the steps in the Rollout spec instead.

Abort and promote wait (bounded, polling with the injected clock) until the controller shows the
result, so the returned state is observed, not assumed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from analyzer.domain.errors import FatalIntegrationError, RetryableError
from analyzer.domain.model import ModelRef
from analyzer.targets.base import RevisionShare, TrafficState, check_weight
from analyzer.targets.kube import (
    FIELD_MANAGER,
    JSON,
    MERGE_PATCH,
    CustomObjectTarget,
    RetryPolicy,
    call_with_retry,
    observed_generation_current,
)

GROUP, VERSION, PLURAL = "argoproj.io", "v1alpha1", "rollouts"
ABORT_PATCH: JSON = {"status": {"abort": True}}
PROMOTE_FULL_PATCH: JSON = {"status": {"promoteFull": True}}
UNPAUSE_PATCH: JSON = {"spec": {"paused": False}}


@dataclass(frozen=True, kw_only=True, slots=True)
class ArgoTargetSettings:
    """Timing of the Argo target (seconds)."""

    poll_interval: float = 2.0
    confirm_timeout: float = 120.0
    request_timeout: float = 10.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)


@dataclass(frozen=True, kw_only=True, slots=True)
class RolloutStatus:
    """What a Rollout's status says, in the terms the engine needs."""

    phase: str | None
    message: str | None
    current_step_index: int | None
    step_count: int
    stable_hash: str | None
    canary_hash: str | None
    canary_weight: int
    # "traffic-router" (status.canary.weights), "replicas", or "active-service" (blueGreen)
    weight_source: str
    aborted: bool
    paused: bool
    pause_reasons: tuple[str, ...]
    observed: bool

    @property
    def stable_weight(self) -> int:
        return 100 - self.canary_weight


def parse_rollout_status(obj: JSON) -> RolloutStatus:
    """Read a Rollout object's status (see the module docstring for the fields)."""
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    canary_strategy = (spec.get("strategy") or {}).get("canary") or {}
    stable, current = status.get("stableRS"), status.get("currentPodHash")
    has_canary = bool(current) and current != stable
    weights = (status.get("canary") or {}).get("weights") or {}
    if "blueGreen" in (spec.get("strategy") or {}):
        # blueGreen: the active Service's selector is what serves (all of it); the preview
        # Service's traffic is not production. Before the cut the new ReplicaSet serves 0 %,
        # after it (post-promotion analysis) 100 %, until it becomes stableRS or is aborted
        # (the active Service is pointed back at stableRS).
        active = (status.get("blueGreen") or {}).get("activeSelector")
        weight, source = (100 if has_canary and active == current else 0), "active-service"
    elif weights.get("canary"):
        weight, source = int(weights["canary"].get("weight") or 0), "traffic-router"
    else:
        replicas = int(status.get("replicas") or 0)
        updated = int(status.get("updatedReplicas") or 0)
        weight = round(100 * updated / replicas) if replicas else 0
        source = "replicas"
    reasons = tuple(
        str(c.get("reason")) for c in status.get("pauseConditions") or [] if isinstance(c, dict)
    )
    step = status.get("currentStepIndex")
    return RolloutStatus(
        phase=status.get("phase"),
        message=status.get("message"),
        current_step_index=int(step) if step is not None else None,
        step_count=len(canary_strategy.get("steps") or []),
        stable_hash=str(stable) if stable else None,
        canary_hash=str(current) if has_canary else None,
        canary_weight=weight if has_canary else 0,
        weight_source=source,
        aborted=bool(status.get("abort")),
        paused=bool(spec.get("paused") or reasons or status.get("controllerPause")),
        pause_reasons=reasons,
        observed=observed_generation_current(obj),
    )


def _traffic_state(status: RolloutStatus) -> TrafficState:
    shares = []
    if status.stable_hash:
        shares.append(RevisionShare(revision=status.stable_hash, percent=status.stable_weight))
    if status.canary_hash:
        shares.append(RevisionShare(revision=status.canary_hash, percent=status.canary_weight))
    return TrafficState(
        stable_revision=status.stable_hash,
        canary_revision=status.canary_hash,
        canary_weight=status.canary_weight,
        requested_weight=None,  # Argo's steps own the desired weight, not a field we set
        settled=status.observed and status.phase not in (None, "Progressing"),
        shares=tuple(shares),
    )


class ArgoRolloutTarget(CustomObjectTarget[ArgoTargetSettings]):
    """A :class:`~analyzer.targets.base.TrafficTarget` for Argo Rollouts (abort and promote)."""

    RESOURCE = (GROUP, VERSION, PLURAL, "rollout")
    LOGGER = "analyzer.targets.argo"

    @classmethod
    def default_settings(cls) -> ArgoTargetSettings:
        return ArgoTargetSettings()

    def read_status(self, ref: ModelRef) -> RolloutStatus:
        return parse_rollout_status(self._get(ref))

    def read_weight(self, ref: ModelRef) -> TrafficState:
        return _traffic_state(self.read_status(ref))

    def set_weight(self, ref: ModelRef, weight: int) -> TrafficState:
        check_weight(weight)
        raise FatalIntegrationError(
            f"{ref}: Argo Rollouts owns the canary weights through spec.strategy.canary.steps; "
            "this target only aborts and promotes (edit the Rollout's steps to change weights)"
        )

    def driven_steps_refused(self, ref: ModelRef) -> str:
        return (
            f"{ref} is an Argo Rollout: Argo moves its weights through "
            "spec.strategy.canary.steps, so canary-analyzer cannot drive its steps. Judge it "
            "with the AnalysisTemplate (docs/argo.md); abort it with the Argo CLI or the Rollout"
        )

    def abort(self, ref: ModelRef) -> TrafficState:
        before = self.read_status(ref)
        if before.canary_hash is None and not before.aborted:
            # Fully promoted (stableRS == currentPodHash): there is nothing to send back, and
            # an abort flag on a finished Rollout would only mark it Degraded.
            return _traffic_state(before)
        self._patch(ref, ABORT_PATCH, status=True)
        return self._wait(ref, lambda s: s.aborted and s.canary_weight == 0, "abort")

    def promote(self, ref: ModelRef) -> TrafficState:
        before = self.read_status(ref)
        if before.canary_hash is None:
            return _traffic_state(before)  # nothing in flight: already promoted
        if before.aborted:
            raise FatalIntegrationError(
                f"{ref}: the Rollout is aborted; retry it (status.abort=false) before promoting"
            )
        self._patch(ref, PROMOTE_FULL_PATCH, status=True)
        if self._get(ref).get("spec", {}).get("paused"):
            self._patch(ref, UNPAUSE_PATCH, status=False)
        target = before.canary_hash
        return self._wait(
            ref, lambda s: s.stable_hash == target and s.canary_hash is None, "promote"
        )

    def _patch(self, ref: ModelRef, body: JSON, *, status: bool) -> None:
        # No resourceVersion precondition, like the CLI: these patches set single control
        # fields, and an abort must win over whatever else changed meanwhile.
        patch = (
            self._api.patch_namespaced_custom_object_status
            if status
            else self._api.patch_namespaced_custom_object
        )

        def send() -> None:
            patch(
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

        what = f"patch rollout {ref}{'/status' if status else ''}"
        call_with_retry(
            send, what=what, policy=self._settings.retry, sleep=self._sleep, log=self._log
        )
        self._log.info("argo_rollout_patched", model=str(ref), body=body, subresource=status)

    def _wait(
        self, ref: ModelRef, done: Callable[[RolloutStatus], bool], action: str
    ) -> TrafficState:
        deadline = self._clock() + self._settings.confirm_timeout
        while True:
            status = self.read_status(ref)
            if done(status):
                return _traffic_state(status)
            if self._clock() >= deadline:
                raise RetryableError(
                    f"{ref}: {action} was accepted but the Argo controller has not shown it "
                    f"after {self._settings.confirm_timeout:g}s (phase={status.phase}, "
                    f"canary weight {status.canary_weight}, stableRS={status.stable_hash}, "
                    f"currentPodHash={status.canary_hash or status.stable_hash})"
                )
            self._sleep(self._settings.poll_interval)
