"""``KServeTarget``: canary traffic on a KServe InferenceService in Serverless (Knative) mode.

The split lives in ``spec.predictor.canaryTrafficPercent``: the latest ready revision gets P %,
``status.components.predictor.latestRolledoutRevision`` (tag ``prev``) the rest. A step patches P,
promotion removes the field (merge-patch ``null``), rollback sets 0. Every patch carries the
``metadata.resourceVersion`` it was computed from, so a concurrent writer turns it into a 409,
which is answered by reading again (bounded, with backoff).

After each change the target waits, polling with an injected clock and sleep, until the
controllers have observed the new generation (``status.observedGeneration >= generation``),
report ``Ready`` and show the requested split in ``status.components.predictor.traffic``. The
observed split, never the requested one, is what is returned.

Refused: ``status.deploymentMode`` (or the ``serving.kserve.io/deploymentMode`` annotation) other
than Serverless, because there ``canaryTrafficPercent`` does nothing (KServe 0.20's Standard-mode
``spec.canary[]`` is not supported yet).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from kubernetes import client as k8s

from analyzer.domain.errors import FatalIntegrationError, RetryableError
from analyzer.domain.model import ModelRef
from analyzer.targets.base import RevisionShare, TrafficState, check_weight
from analyzer.targets.kube import (
    JSON,
    MERGE_PATCH,
    RetryPolicy,
    as_json,
    call_with_retry,
    condition,
    observed_generation_current,
)

GROUP, VERSION, PLURAL = "serving.kserve.io", "v1beta1", "inferenceservices"
SERVERLESS = "Serverless"
_MODE_ANNOTATION = "serving.kserve.io/deploymentMode"


@dataclass(frozen=True, kw_only=True, slots=True)
class KServeTargetSettings:
    """Timing of the KServe target (seconds)."""

    poll_interval: float = 2.0
    ready_timeout: float = 300.0
    request_timeout: float = 10.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)


def deployment_mode(obj: JSON) -> str:
    """The mode the controller reports, else the annotation that asks for one, else Serverless."""
    status_mode = (obj.get("status") or {}).get("deploymentMode")
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    return str(status_mode or annotations.get(_MODE_ANNOTATION) or SERVERLESS)


def _predictor_status(obj: JSON) -> JSON:
    components = (obj.get("status") or {}).get("components") or {}
    return dict(components.get("predictor") or {})


def parse_traffic_state(obj: JSON) -> TrafficState:
    """Read the observed split from ``status.components.predictor.traffic``.

    The entry with ``latestRevision: true`` is the canary unless it points at the same revision
    as the ``prev`` entry (no canary); ``prev`` (else ``latestRolledoutRevision``) is stable.
    """
    predictor = _predictor_status(obj)
    traffic = [t for t in predictor.get("traffic") or [] if isinstance(t, dict)]
    shares: dict[str, int] = {}
    for entry in traffic:
        if entry.get("revisionName"):
            name = str(entry["revisionName"])
            shares[name] = shares.get(name, 0) + int(entry.get("percent") or 0)
    latest = next((t.get("revisionName") for t in traffic if t.get("latestRevision")), None)
    prev = next((t.get("revisionName") for t in traffic if t.get("tag") == "prev"), None)
    stable = prev or predictor.get("latestRolledoutRevision") or latest
    canary = latest if latest and latest != stable else None
    ready = condition(obj, "Ready")
    requested = ((obj.get("spec") or {}).get("predictor") or {}).get("canaryTrafficPercent")
    return TrafficState(
        stable_revision=str(stable) if stable else None,
        canary_revision=str(canary) if canary else None,
        canary_weight=shares.get(str(canary), 0) if canary else 0,
        requested_weight=int(requested) if requested is not None else None,
        settled=observed_generation_current(obj) and bool(ready and ready["status"] == "True"),
        shares=tuple(RevisionShare(revision=k, percent=v) for k, v in shares.items()),
    )


class KServeTarget:
    """A :class:`~analyzer.targets.base.TrafficTarget` over ``serving.kserve.io/v1beta1``.

    ``api_client`` is injected (build it with :func:`analyzer.targets.kube.build_api_client`);
    ``clock`` and ``sleep`` are injected so tests control time.
    """

    def __init__(
        self,
        api_client: k8s.ApiClient,
        *,
        settings: KServeTargetSettings | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        logger: Any = None,
    ) -> None:
        self._api = k8s.CustomObjectsApi(api_client)
        self._settings = settings or KServeTargetSettings()
        self._clock = clock
        self._sleep = sleep
        self._log = logger or structlog.get_logger("analyzer.targets.kserve")

    # -- the TrafficTarget contract ---------------------------------------------------------
    def read_weight(self, ref: ModelRef) -> TrafficState:
        return parse_traffic_state(self._supported(self._get(ref), ref))

    def set_weight(self, ref: ModelRef, weight: int) -> TrafficState:
        check_weight(weight)
        before = self._refuse_without_canary(ref, weight)
        self._patch_predictor(ref, weight)

        def reached(state: TrafficState) -> bool:
            # Verify the share of the revision that was the canary when we started, not of
            # whatever the status calls canary now: at 100 % KServe already calls it rolled out.
            revision = before.canary_revision or state.canary_revision
            if revision is None:
                if weight == 0:
                    return True
                raise FatalIntegrationError(f"{ref}: no canary revision to send {weight} % to")
            return state.percent_of(revision) == weight

        return self._wait(ref, reached, require_ready=True, action=f"set weight {weight}")

    def promote(self, ref: ModelRef) -> TrafficState:
        # Settle first: promoting while the controller has not yet created or readied the
        # canary would "promote" whatever happens to be ready, or a revision that failed.
        before = self._wait(ref, lambda _state: True, require_ready=True, action="promote")
        self._patch_predictor(ref, None)
        target = before.canary_revision or before.stable_revision

        def promoted(state: TrafficState) -> bool:
            return state.canary_revision is None and state.stable_revision == target

        return self._wait(ref, promoted, require_ready=True, action="promote")

    def abort(self, ref: ModelRef) -> TrafficState:
        before = self.read_weight(ref)
        self._patch_predictor(ref, 0)

        def back_to_stable(state: TrafficState) -> bool:
            canary = before.canary_revision
            return state.canary_weight == 0 and (canary is None or state.percent_of(canary) == 0)

        # Not requiring Ready: aborting a canary whose revision failed must still succeed once
        # the controller has observed the change and the failed revision serves nothing.
        return self._wait(ref, back_to_stable, require_ready=False, action="abort")

    def _refuse_without_canary(self, ref: ModelRef, weight: int) -> TrafficState:
        """Refuse, before writing anything, a weight for a model that has no canary at all."""
        obj = self._supported(self._get(ref), ref)
        state = parse_traffic_state(obj)
        predictor = _predictor_status(obj)
        nothing_new = predictor.get("latestCreatedRevision") == predictor.get("latestReadyRevision")
        if weight > 0 and state.settled and state.canary_revision is None and nothing_new:
            raise FatalIntegrationError(
                f"{ref}: no canary revision to send {weight} % to: the only ready revision "
                f"{state.stable_revision} is already rolled out (deploy a new predictor first)"
            )
        return state

    # -- internals --------------------------------------------------------------------------
    def _get(self, ref: ModelRef) -> JSON:
        def get() -> JSON:
            obj = self._api.get_namespaced_custom_object(
                GROUP,
                VERSION,
                ref.namespace,
                PLURAL,
                ref.name,
                _request_timeout=self._settings.request_timeout,
            )
            return as_json(obj, f"inferenceservice {ref}")

        return call_with_retry(
            get,
            what=f"get inferenceservice {ref}",
            policy=self._settings.retry,
            sleep=self._sleep,
            log=self._log,
        )

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
        reached: Callable[[TrafficState], bool],
        *,
        require_ready: bool,
        action: str,
    ) -> TrafficState:
        """Poll until the controller shows ``reached``; bounded by ``ready_timeout``."""
        deadline = self._clock() + self._settings.ready_timeout
        while True:
            obj = self._supported(self._get(ref), ref)
            state = parse_traffic_state(obj)
            observed = observed_generation_current(obj)
            if observed and (state.settled or not require_ready) and reached(state):
                return state
            if self._clock() >= deadline:
                raise self._timeout_error(ref, obj, state, action)
            self._sleep(self._settings.poll_interval)

    def _timeout_error(
        self, ref: ModelRef, obj: JSON, state: TrafficState, action: str
    ) -> Exception:
        predictor = _predictor_status(obj)
        created = predictor.get("latestCreatedRevision")
        ready_rev = predictor.get("latestReadyRevision")
        ready = condition(obj, "Ready") or {}
        waited = f"after {self._settings.ready_timeout:g}s"
        if observed_generation_current(obj) and created and created != ready_rev:
            return FatalIntegrationError(
                f"{ref}: {action}: canary revision {created} never became ready {waited} "
                f"(latest ready revision: {ready_rev}); Ready={ready.get('status')} "
                f"reason={ready.get('reason')}: {ready.get('message')}"
            )
        generation = obj["metadata"].get("generation")
        observed = (obj.get("status") or {}).get("observedGeneration")
        return RetryableError(
            f"{ref}: {action} not confirmed {waited}: observedGeneration={observed} "
            f"generation={generation}, Ready={ready.get('status')}, observed canary weight "
            f"{state.canary_weight} (requested {state.requested_weight})"
        )
