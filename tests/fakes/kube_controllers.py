"""Controller simulations for the fake apiserver: KServe/Knative and Argo Rollouts.

Tests call them explicitly (or let the KServe one run after a few reads) so they decide when
"the cluster" reacts. Part of the fake Kubernetes API server (see :mod:`tests.fakes.kube_api`).
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

from tests.fakes.kube_store import (
    INFERENCE_SERVICES,
    JSON,
    ROLLOUTS,
    ObjectStore,
    Resource,
    now_rfc3339,
    with_status,
    without,
)

MODE_ANNOTATION = "serving.kserve.io/deploymentMode"


def condition(kind: str, ok: bool, reason: str = "", message: str = "") -> JSON:
    cond: JSON = {
        "type": kind,
        "status": "True" if ok else "False",
        "lastTransitionTime": now_rfc3339(),
    }
    if reason:
        cond["reason"] = reason
    if message:
        cond["message"] = message
    return cond


@dataclass
class _IsvcRevisions:
    templates: list[str] = field(default_factory=list)  # predictor template per revision
    ready: list[bool] = field(default_factory=list)
    rolled_out: str | None = None
    previous_rolled_out: str | None = None
    ksvc_spec: str | None = None  # the Knative Service spec KServe last wrote
    ksvc_generation: int = 0
    seen_generation: int = 0  # the InferenceService generation last reconciled


class KServeControllerSim:
    """Plays the KServe + Knative controllers for InferenceServices in Serverless mode.

    One *pass* of :meth:`reconcile` follows KServe's code: a changed predictor template (anything
    but ``canaryTrafficPercent``) creates revision ``{name}-predictor-0000N``; the Knative Service
    gets ``[{latestRevision: true, percent: P}, {tag: prev, revisionName:
    latestRolledoutRevision, percent: 100-P}]`` when P is set and a rolled-out revision exists
    (no ``prev`` entry at 100), else ``[{latestRevision: true, percent: 100}]``; each ksvc change
    is a ksvc generation, which KServe reports as ``status.observedGeneration``; then
    ``PropagateStatus`` moves ``latestRolledoutRevision`` (a ready revision at 100 % is rolled
    out; a lower percentage over the same revision rolls back to the previous one). When that
    moved the rolled-out revision, KServe reconciles again at once: :meth:`reconcile` runs up to
    three passes unless ``converge=False``, and the auto mode leaves the intermediate status
    visible for ``lag_reads`` more reads. With :attr:`never_ready`, new revisions never become
    ready (``Ready=False``, reason ``RevisionFailed``) and ``latestRevision`` routes to the
    latest *ready* revision, as Knative does.

    With ``lag_reads`` set, an object is reconciled automatically after that many GETs following
    a write that changed its generation, like a controller that reacts a little later.
    """

    def __init__(self, store: ObjectStore, *, lag_reads: int | None = None) -> None:
        self._store = store
        self._revisions: dict[tuple[str, str], _IsvcRevisions] = {}
        self.never_ready = False
        self.lag_reads = lag_reads
        self.reconciles = 0
        self._pending: dict[tuple[str, str], int] = {}
        store.on_write.append(self._note_write)

    def _note_write(self, res: Resource, obj: JSON) -> None:
        meta = obj["metadata"]
        revs = self._revisions.get((meta["namespace"], meta["name"]))
        seen = revs.seen_generation if revs else 0
        modelmesh = (meta.get("annotations") or {}).get(MODE_ANNOTATION) == "ModelMesh"
        if res is INFERENCE_SERVICES and meta["generation"] != seen and not modelmesh:
            # (ModelMesh services are the ModelMesh simulation's: tests/fakes/modelmesh.py)
            self._pending.setdefault((meta["namespace"], meta["name"]), 0)

    def observe_read(self, ns: str, name: str) -> None:
        """Called by the server on every GET of an InferenceService (auto-reconcile clock)."""
        key = (ns, name)
        if self.lag_reads is None or key not in self._pending:
            return
        self._pending[key] += 1
        if self._pending[key] > self.lag_reads:
            self.reconcile(ns, name, converge=False)

    def reconcile(self, ns: str, name: str, *, converge: bool = True) -> JSON:
        """Reconcile one InferenceService now and return the stored object."""
        with self._store.lock:
            self.reconciles += 1
            self._pending.pop((ns, name), None)
            for _ in range(3 if converge else 1):
                obj = self._store.get(INFERENCE_SERVICES, ns, name)
                status, moved = self._one_pass(obj)
                obj = self._store.write(
                    INFERENCE_SERVICES, ns, name, partial(with_status, status=status),
                    status=True, manager="manager",  # KServe's controller-manager
                )  # fmt: skip
                if not moved:
                    return obj
            self._pending[(ns, name)] = 0  # KServe will reconcile again
            return obj

    def _one_pass(self, obj: JSON) -> tuple[JSON, bool]:
        meta, spec = obj["metadata"], obj.get("spec") or {}
        mode = (meta.get("annotations") or {}).get("serving.kserve.io/deploymentMode", "Serverless")
        status: JSON = {
            "observedGeneration": meta["generation"],  # raw mode: the Deployment's, not modelled
            "deploymentMode": mode,
            "url": f"http://{meta['name']}.{meta['namespace']}.example.com",
        }
        if mode != "Serverless":
            # Raw deployments have no Knative revisions; canaryTrafficPercent does nothing.
            status["conditions"] = [condition("Ready", True)]
            return status, False
        revs = self._revisions.setdefault((meta["namespace"], meta["name"]), _IsvcRevisions())
        predictor = spec.get("predictor") or {}
        created, ready = self._revision_names(meta["name"], revs, predictor)
        traffic = self._ksvc_traffic(revs, ready, predictor.get("canaryTrafficPercent"))
        self._write_ksvc(revs, json.dumps(without(predictor, "canaryTrafficPercent")), traffic)
        before = revs.rolled_out
        self._propagate(revs, traffic, ready, created)
        component: JSON = {"traffic": traffic, "latestCreatedRevision": created}
        for key, value in (
            ("latestReadyRevision", ready),
            ("latestRolledoutRevision", revs.rolled_out),
            ("previousRolledoutRevision", revs.previous_rolled_out),
        ):
            if value:
                component[key] = value
        status["components"] = {"predictor": component}
        status["observedGeneration"] = revs.ksvc_generation  # KServe copies the ksvc's
        status["conditions"] = self._conditions(created, ready)
        revs.seen_generation = meta["generation"]
        return status, revs.rolled_out != before

    def _revision_names(
        self, name: str, revs: _IsvcRevisions, predictor: JSON
    ) -> tuple[str, str | None]:
        """Create a revision for a new predictor template; return (latest created, latest ready)."""
        template = json.dumps(without(predictor, "canaryTrafficPercent"), sort_keys=True)
        if not revs.templates or revs.templates[-1] != template:
            revs.templates.append(template)
            revs.ready.append(not self.never_ready)
        names = [f"{name}-predictor-{i + 1:05d}" for i in range(len(revs.templates))]
        ready = [n for n, ok in zip(names, revs.ready, strict=True) if ok]
        return names[-1], (ready[-1] if ready else None)

    @staticmethod
    def _conditions(created: str, ready: str | None) -> list[JSON]:
        failed = created != ready
        reason = "RevisionFailed" if failed else ""
        message = (
            f'Revision "{created}" failed with message: Container failed with: model failed '
            "to load."
            if failed
            else ""
        )
        return [
            condition("PredictorReady", not failed, reason, message),
            condition("IngressReady", ready is not None),
            condition("Ready", not failed, reason, message),
        ]

    @staticmethod
    def _ksvc_traffic(revs: _IsvcRevisions, ready: str | None, percent: int | None) -> list[JSON]:
        """KServe's ksvc route, as Knative reports it (``latestRevision`` -> latest ready)."""
        if ready is None:
            return []
        if percent is None or revs.rolled_out is None:
            return [{"revisionName": ready, "percent": 100, "latestRevision": True}]
        traffic: list[JSON] = [{"revisionName": ready, "percent": percent, "latestRevision": True}]
        if percent < 100:
            traffic.append(
                {
                    "tag": "prev",
                    "revisionName": revs.rolled_out,
                    "percent": 100 - percent,
                    "latestRevision": False,
                }
            )
        return traffic

    @staticmethod
    def _write_ksvc(revs: _IsvcRevisions, template: str, traffic: list[JSON]) -> None:
        """KServe updates the ksvc only when its spec changes; each update is a ksvc generation."""
        routes = [
            (t.get("tag"), "@latest" if t["latestRevision"] else t["revisionName"], t["percent"])
            for t in traffic
        ]
        spec = json.dumps([template, routes])
        if spec != revs.ksvc_spec:
            revs.ksvc_spec, revs.ksvc_generation = spec, revs.ksvc_generation + 1

    @staticmethod
    def _propagate(
        revs: _IsvcRevisions, traffic: list[JSON], ready: str | None, created: str
    ) -> None:
        """KServe's PropagateStatus rules for latestRolledoutRevision."""
        per_revision: dict[str, int] = {}
        for entry in traffic:
            name = entry["revisionName"]
            per_revision[name] = per_revision.get(name, 0) + entry["percent"]
        for entry in traffic:
            if entry["revisionName"] != ready or not entry["latestRevision"]:
                continue
            if revs.rolled_out != ready:
                if entry["percent"] == 100:  # the newest ready revision is fully rolled out
                    revs.previous_rolled_out, revs.rolled_out = revs.rolled_out, ready
            elif (
                ready == created
                and entry["percent"] < 100
                and per_revision[ready] == 100
                and revs.previous_rolled_out
            ):
                # Rolled out at 100 % and then rolled back: the previous one is stable again.
                revs.rolled_out = revs.previous_rolled_out


class ArgoControllerSim:
    """Plays the Argo Rollouts controller: canary steps, abort and full promotion.

    :meth:`reconcile` on an aborted Rollout sets the canary weight to 0 (and, as without a
    traffic router the canary ReplicaSet is scaled down, ``updatedReplicas`` to 0), phase
    ``Degraded`` and ``abortedAt``; on ``promoteFull`` it makes the canary pod hash stable
    (``updatedReplicas = replicas``), phase ``Healthy``, and clears ``promoteFull`` and the pause.
    ``status.observedGeneration`` is the generation as a string, as Argo writes it.

    :meth:`step` is one reconcile of the whole controller, moving traffic on its own the way
    Argo does: a Rollout seen first becomes stable at once (``stableRS = currentPodHash`` = the
    template's hash); a new pod template (a new hash) starts an update at step 0; then each call
    takes one action of ``spec.strategy.canary.steps``: ``setWeight`` moves
    ``status.canary.weights`` and advances, ``pause`` adds a ``CanaryPauseStep`` pause condition
    (phase ``Paused``) that ends after its ``duration`` (by :attr:`clock`) or, without one, when
    someone promotes (clears ``pauseConditions`` / ``spec.paused``); past the last step the
    canary is promoted (``stableRS`` moves, phase ``Healthy``). Abort and ``promoteFull`` win
    over the steps. Writes are made by the field manager ``rollouts-controller``, as Argo's are.
    """

    MANAGER = "rollouts-controller"

    def __init__(self, store: ObjectStore) -> None:
        self._store = store
        self.clock: Callable[[], float] = time.time
        self._paused_since: dict[tuple[str, str], float] = {}

    def reconcile(self, ns: str, name: str) -> JSON:
        with self._store.lock:
            obj = self._store.get(ROLLOUTS, ns, name)
            status = copy.deepcopy(obj.get("status") or {})
            status["observedGeneration"] = str(obj["metadata"]["generation"])
            if status.get("abort"):
                self._abort(status)
            elif status.get("promoteFull"):
                self._promote_full(status, obj.get("spec") or {})
            return self._write(ns, name, status)

    def step(self, ns: str, name: str) -> JSON:
        """One reconcile with the canary steps (see the class docstring)."""
        with self._store.lock:
            obj = self._store.get(ROLLOUTS, ns, name)
            spec = obj.get("spec") or {}
            status = copy.deepcopy(obj.get("status") or {})
            status["observedGeneration"] = str(obj["metadata"]["generation"])
            current = pod_template_hash(spec.get("template") or {})
            steps = ((spec.get("strategy") or {}).get("canary") or {}).get("steps") or []
            if "blueGreen" in (spec.get("strategy") or {}):
                self._blue_green(status, current)
                return self._write(ns, name, status)
            if not status.get("stableRS"):
                self._first_deploy(status, current, len(steps))
            elif status.get("abort"):
                self._abort(status)
            elif status.get("promoteFull"):
                self._promote_full(status, spec)
            elif current != status.get("currentPodHash"):
                self._start_update(status, current)
            elif status["currentPodHash"] != status["stableRS"]:
                self._next_action((ns, name), status, spec, steps)
            return self._write(ns, name, status)

    @staticmethod
    def _blue_green(status: JSON, current: str) -> None:
        """One reconcile of ``spec.strategy.blueGreen`` (autoPromotionEnabled, analyses run by
        the test through the web provider): a new template gets the preview Service; the next
        step cuts the active Service over (post-promotion analysis runs); the next makes it
        stableRS. An abort points the active Service back at stableRS."""
        selectors = status.setdefault("blueGreen", {})
        if not status.get("stableRS"):
            status.update(currentPodHash=current, stableRS=current, phase="Healthy")
            selectors.update(activeSelector=current, previewSelector=current)
        elif status.get("abort"):
            selectors["activeSelector"] = status["stableRS"]
            status.update(
                phase="Degraded", abortedAt=status.get("abortedAt") or now_rfc3339(),
                message=f"RolloutAborted: Rollout aborted update to revision "
                f"{status.get('currentPodHash')}",
            )  # fmt: skip
        elif current != status.get("currentPodHash"):
            status.update(currentPodHash=current, phase="Progressing", message="")
            selectors["previewSelector"] = current  # pre-promotion analysis on the preview
        elif selectors.get("activeSelector") != current:
            selectors["activeSelector"] = current  # the cut; post-promotion analysis runs
        elif status["stableRS"] != current:
            status.update(stableRS=current, phase="Healthy")  # post-promotion analysis passed

    def _write(self, ns: str, name: str, status: JSON) -> JSON:
        return self._store.write(
            ROLLOUTS, ns, name, partial(with_status, status=status), status=True,
            manager=self.MANAGER,
        )  # fmt: skip

    @staticmethod
    def _weights(status: JSON, canary_weight: int) -> None:
        status["canary"] = {
            "weights": {
                "canary": {"podTemplateHash": status["currentPodHash"], "weight": canary_weight},
                "stable": {"podTemplateHash": status["stableRS"], "weight": 100 - canary_weight},
            }
        }

    def _first_deploy(self, status: JSON, current: str, step_count: int) -> None:
        status.update(
            currentPodHash=current, stableRS=current, currentStepIndex=step_count,
            phase="Healthy", replicas=status.get("replicas", 4), updatedReplicas=4,
        )  # fmt: skip
        self._weights(status, 0)

    def _start_update(self, status: JSON, current: str) -> None:
        status.update(currentPodHash=current, currentStepIndex=0, phase="Progressing", message="")
        for key in ("abort", "abortedAt", "pauseConditions", "controllerPause"):
            status.pop(key, None)
        self._weights(status, 0)

    def _next_action(
        self, key: tuple[str, str], status: JSON, spec: JSON, steps: list[JSON]
    ) -> None:
        index = int(status.get("currentStepIndex") or 0)
        if index >= len(steps):
            self._promote(status, len(steps))
            return
        action = steps[index]
        if "setWeight" in action:
            self._weights(status, int(action["setWeight"]))
            status.update(currentStepIndex=index + 1, phase="Progressing")
        elif "pause" in action:
            self._pause(key, status, spec, action["pause"] or {}, index)
        else:
            status["currentStepIndex"] = index + 1  # other step kinds are not modelled

    def _pause(
        self, key: tuple[str, str], status: JSON, spec: JSON, pause: JSON, index: int
    ) -> None:
        conditions = status.get("pauseConditions") or []
        if not conditions and not status.get("controllerPause"):
            status.update(
                pauseConditions=[{"reason": "CanaryPauseStep", "startTime": now_rfc3339()}],
                controllerPause=True, phase="Paused",
            )  # fmt: skip
            self._paused_since[key] = self.clock()
            return
        duration = _seconds(pause.get("duration"))
        elapsed = self.clock() - self._paused_since.get(key, self.clock())
        promoted = not conditions and not spec.get("paused")  # `kubectl argo rollouts promote`
        if promoted or (duration is not None and elapsed >= duration):
            status.pop("pauseConditions", None)
            self._paused_since.pop(key, None)
            status.update(controllerPause=False, currentStepIndex=index + 1, phase="Progressing")

    def _promote(self, status: JSON, step_count: int) -> None:
        status.update(
            stableRS=status["currentPodHash"], currentStepIndex=step_count, phase="Healthy",
            updatedReplicas=status.get("replicas", 4), controllerPause=False,
        )  # fmt: skip
        self._weights(status, 0)

    @staticmethod
    def _abort(status: JSON) -> None:
        status.update(
            phase="Degraded",
            message=f"RolloutAborted: Rollout aborted update to revision "
            f"{status.get('currentPodHash')}",
            abortedAt=status.get("abortedAt") or now_rfc3339(),
            controllerPause=False,
            updatedReplicas=0,
        )
        status.pop("pauseConditions", None)
        weights = (status.get("canary") or {}).get("weights")
        if weights:
            weights["canary"]["weight"], weights["stable"]["weight"] = 0, 100

    @staticmethod
    def _promote_full(status: JSON, spec: JSON) -> None:
        steps = ((spec.get("strategy") or {}).get("canary") or {}).get("steps") or []
        status.update(
            phase="Healthy",
            message="",
            stableRS=status.get("currentPodHash"),
            currentStepIndex=len(steps),
            controllerPause=False,
            updatedReplicas=status.get("replicas", 0),
        )
        for key in ("promoteFull", "pauseConditions"):
            status.pop(key, None)
        weights = (status.get("canary") or {}).get("weights")
        if weights:
            weights["stable"]["podTemplateHash"] = status["stableRS"]
            weights["canary"]["weight"], weights["stable"]["weight"] = 0, 100


_SAFE = "bcdfghjklmnpqrstvwxz2456789"  # k8s.io/apimachinery rand.SafeEncodeString alphabet


def pod_template_hash(template: JSON) -> str:
    """A stable, Argo-looking hash of a pod template (Argo: fnv32a + SafeEncodeString)."""
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).digest()
    return "".join(_SAFE[b % len(_SAFE)] for b in digest[:10])


def _seconds(duration: object) -> float | None:
    """Argo durations: an int of seconds or "30s", "5m", "1h"; None waits for a promote."""
    if duration is None:
        return None
    if isinstance(duration, int | float):
        return float(duration)
    match = re.fullmatch(r"(\d+)([smh]?)", str(duration))
    if match is None:
        raise ValueError(f"not an Argo duration: {duration!r}")
    return float(match[1]) * {"": 1, "s": 1, "m": 60, "h": 3600}[match[2]]
