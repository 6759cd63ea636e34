"""A strict fake Kubernetes API server for namespaced custom objects, over real HTTP.

No kube-apiserver can run on the development machines (see shared/research/environment.md), so
this fake reproduces the parts of the apiserver's behaviour that the traffic targets rely on, as
strictly as the real server, so that code passing against it passes against a cluster:

* the real REST paths for ``inferenceservices`` (serving.kserve.io/v1beta1) and ``rollouts``
  (argoproj.io/v1alpha1), with the ``/status`` subresource, plus discovery (``/apis``,
  ``/apis/{group}/{version}``);
* create answers 201 (409 ``AlreadyExists``); errors are ``Status`` objects (``kind: Status``,
  ``reason``, ``code``, ``details``) like the real ones;
* ``metadata.resourceVersion`` comes from one cluster-wide counter and changes on every write that
  changes the object (a no-op write leaves it alone, as etcd3's store does); a write carrying a
  stale ``metadata.resourceVersion`` is a 409 ``Conflict``; an update (PUT) without one is 422,
  because custom resources do not allow unconditional updates;
* ``metadata.generation`` starts at 1 and grows only when something other than ``metadata`` and
  ``status`` changes;
* with the status subresource enabled (as for both CRDs), ``status`` is dropped on create, the main
  endpoint ignores changes to ``status`` and ``/status`` ignores changes to everything else;
* PATCH accepts ``application/merge-patch+json`` (RFC 7386) and ``application/json-patch+json``
  (RFC 6902); strategic merge is refused with 415 as for every custom resource; server-side
  apply is not implemented (415 too, documented as a gap);
* fault injection (:meth:`KubeApiFake.fail_next`, :attr:`KubeApiFake.latency`,
  :meth:`KubeApiFake.interfere_next` for a concurrent writer) and a request log.

Controllers are simulated by explicit calls (:class:`KServeControllerSim`,
:class:`ArgoControllerSim`) so tests decide when "the cluster" reacts.
"""

from __future__ import annotations

import copy
import itertools
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit
from uuid import uuid4

from kubernetes import client as k8s

JSON = dict[str, Any]
MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"


@dataclass(frozen=True)
class Resource:
    """A custom resource type the fake serves (both have the status subresource enabled)."""

    group: str
    version: str
    plural: str
    kind: str
    short_names: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"

    @property
    def qualified(self) -> str:
        return f"{self.plural}.{self.group}"


INFERENCE_SERVICES = Resource(
    "serving.kserve.io", "v1beta1", "inferenceservices", "InferenceService", ("isvc",)
)
ROLLOUTS = Resource("argoproj.io", "v1alpha1", "rollouts", "Rollout", ("ro",))
RESOURCES = (INFERENCE_SERVICES, ROLLOUTS)


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the fake received it, for assertions."""

    method: str
    path: str
    query: dict[str, list[str]]
    content_type: str | None
    body: Any
    status: int
    response: Any = None


class ApiError(Exception):
    """Raised inside the fake to answer with a ``Status`` object."""

    def __init__(self, code: int, reason: str, message: str, details: JSON | None = None) -> None:
        super().__init__(message)
        self.code, self.reason, self.details = code, reason, details

    def status_body(self) -> JSON:
        body: JSON = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": str(self),
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            body["details"] = self.details
        return body


def _not_found(res: Resource, name: str) -> ApiError:
    return ApiError(
        404,
        "NotFound",
        f'{res.qualified} "{name}" not found',
        {"name": name, "group": res.group, "kind": res.plural},
    )


def _conflict(res: Resource, name: str) -> ApiError:
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {res.qualified} "{name}": the object has '
        "been modified; please apply your changes to the latest version and try again",
        {"name": name, "group": res.group, "kind": res.plural},
    )


def _invalid(res: Resource, name: str, field_path: str, detail: str) -> ApiError:
    return ApiError(
        422,
        "Invalid",
        f'{res.kind}.{res.group} "{name}" is invalid: {field_path}: {detail}',
        {
            "name": name,
            "group": res.group,
            "kind": res.kind,
            "causes": [{"reason": "FieldValueInvalid", "message": detail, "field": field_path}],
        },
    )


# ---------------------------------------------------------------------------------------------
# Patch semantics


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: objects merge recursively, ``null`` deletes, the rest replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise ValueError(f"JSON pointer {path!r} must start with '/'")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _container(doc: Any, tokens: list[str]) -> Any:
    for token in tokens:
        doc = doc[int(token)] if isinstance(doc, list) else doc[token]
    return doc


def _json_patch_op(doc: Any, op: JSON) -> Any:
    kind, tokens = op["op"], _pointer(op["path"])
    if not tokens:
        raise ValueError("operations on the document root are not supported")
    parent, last = _container(doc, tokens[:-1]), tokens[-1]
    if kind == "test":
        current = parent[int(last)] if isinstance(parent, list) else parent[last]
        if current != op["value"]:
            raise ValueError(f"test operation failed at {op['path']}")
    elif kind == "remove":
        del parent[int(last) if isinstance(parent, list) else last]
    elif kind in ("add", "replace"):
        value = copy.deepcopy(op["value"])
        if isinstance(parent, list):
            index = len(parent) if last == "-" else int(last)
            if kind == "add":
                parent.insert(index, value)
            else:
                parent[index] = value
        else:
            if kind == "replace" and last not in parent:
                raise ValueError(f"replace operation does not apply: {op['path']} is missing")
            parent[last] = value
    elif kind in ("move", "copy"):
        value = copy.deepcopy(_container(doc, _pointer(op["from"])))
        if kind == "move":
            doc = _json_patch_op(doc, {"op": "remove", "path": op["from"]})
        doc = _json_patch_op(doc, {"op": "add", "path": op["path"], "value": value})
    else:
        raise ValueError(f"unknown JSON patch operation {kind!r}")
    return doc


def json_patch(target: Any, ops: Any) -> Any:
    """RFC 6902 JSON patch (add, remove, replace, move, copy, test) applied atomically."""
    if not isinstance(ops, list):
        raise ApiError(
            400, "BadRequest", "json: cannot unmarshal object into Go value of type jsonpatch.Patch"
        )
    doc = copy.deepcopy(target)
    try:
        for op in ops:
            doc = _json_patch_op(doc, op)
    except (KeyError, IndexError, ValueError, TypeError) as exc:
        # The apiserver answers a patch that does not apply with 422 and the library's message.
        raise ApiError(
            422, "Invalid", f"the server rejected our request due to an error in our request: {exc}"
        ) from exc
    return doc


# ---------------------------------------------------------------------------------------------
# The object store


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _with_status(obj: JSON, status: JSON) -> JSON:
    return {**obj, "status": copy.deepcopy(status)}


def _without(obj: JSON, *keys: str) -> JSON:
    return {k: v for k, v in obj.items() if k not in keys}


class ObjectStore:
    """Thread-safe storage with the apiserver's write rules: resourceVersion, generation, status."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._objects: dict[tuple[str, str, str], JSON] = {}
        self._rv = itertools.count(1000)
        self.validators: dict[str, Callable[[JSON], None]] = {}
        self.on_write: list[Callable[[Resource, JSON], None]] = []

    def _key(self, res: Resource, ns: str, name: str) -> tuple[str, str, str]:
        return (res.qualified, ns, name)

    def get(self, res: Resource, ns: str, name: str) -> JSON:
        with self.lock:
            obj = self._objects.get(self._key(res, ns, name))
            if obj is None:
                raise _not_found(res, name)
            return copy.deepcopy(obj)

    def list(self, res: Resource, ns: str) -> JSON:
        with self.lock:
            items = [
                copy.deepcopy(o)
                for (q, n, _), o in sorted(self._objects.items())
                if q == res.qualified and n == ns
            ]
            return {
                "apiVersion": res.api_version,
                "kind": f"{res.kind}List",
                "metadata": {"resourceVersion": str(self._current_rv())},
                "items": items,
            }

    def _current_rv(self) -> int:
        rvs = [int(o["metadata"]["resourceVersion"]) for o in self._objects.values()]
        return max(rvs, default=999)

    def create(self, res: Resource, ns: str, body: JSON) -> JSON:
        self._check_identity(res, ns, body, None)
        meta = body.setdefault("metadata", {})
        name = meta.get("name")
        if not name:
            raise _invalid(res, "", "metadata.name", "Required value: name is required")
        if meta.get("resourceVersion"):
            raise _invalid(
                res,
                name,
                "metadata.resourceVersion",
                "Invalid value: resourceVersion should not be set on objects to be created",
            )
        obj = _without(body, "status")  # the status subresource is enabled: status is dropped
        obj["metadata"] = {
            **meta,
            "namespace": ns,
            "uid": str(uuid4()),
            "generation": 1,
            "creationTimestamp": _now(),
        }
        self._validate(res, obj)
        with self.lock:
            if self._key(res, ns, name) in self._objects:
                raise ApiError(
                    409,
                    "AlreadyExists",
                    f'{res.qualified} "{name}" already exists',
                    {"name": name, "group": res.group, "kind": res.plural},
                )
            return self._store(res, obj)

    def delete(self, res: Resource, ns: str, name: str) -> JSON:
        with self.lock:
            obj = self.get(res, ns, name)
            del self._objects[self._key(res, ns, name)]
            return obj

    def write(
        self,
        res: Resource,
        ns: str,
        name: str,
        change: Callable[[JSON], JSON],
        *,
        status: bool,
        require_rv: bool = False,
    ) -> JSON:
        """Apply ``change`` to the stored object under the main-resource or status rules."""
        with self.lock:
            old = self.get(res, ns, name)
            new = change(copy.deepcopy(old))
            if not isinstance(new, dict):
                raise ApiError(400, "BadRequest", "the patched object is not a JSON object")
            self._check_identity(res, ns, new, name)
            self._check_precondition(res, name, old, new, require_rv)
            result = self._merge_rules(old, new, status=status)
            self._validate(res, result)
            if result == old:
                return old  # a no-op write does not bump resourceVersion
            return self._store(res, result)

    def _check_precondition(
        self, res: Resource, name: str, old: JSON, new: JSON, require_rv: bool
    ) -> None:
        sent = (new.get("metadata") or {}).get("resourceVersion")
        if require_rv and not sent:
            raise _invalid(
                res,
                name,
                "metadata.resourceVersion",
                "Invalid value: 0x0: must be specified for an update",
            )
        if sent and sent != old["metadata"]["resourceVersion"]:
            raise _conflict(res, name)

    @staticmethod
    def _merge_rules(old: JSON, new: JSON, *, status: bool) -> JSON:
        if status:
            # The status endpoint keeps everything from the stored object except `status`.
            result = copy.deepcopy(old)
            result.pop("status", None)
            if "status" in new:
                result["status"] = new["status"]
            return result
        result = _without(new, "status")
        if "status" in old:
            result["status"] = old["status"]
        immutable = (
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "generation",
            "resourceVersion",
        )
        result["metadata"] = {
            **(new.get("metadata") or {}),
            **{k: old["metadata"][k] for k in immutable},
        }
        if _without(result, "metadata", "status") != _without(old, "metadata", "status"):
            result["metadata"]["generation"] = old["metadata"]["generation"] + 1
        return result

    def _store(self, res: Resource, obj: JSON) -> JSON:
        obj["metadata"]["resourceVersion"] = str(next(self._rv))
        meta = obj["metadata"]
        self._objects[self._key(res, meta["namespace"], meta["name"])] = obj
        for hook in self.on_write:
            hook(res, copy.deepcopy(obj))
        return copy.deepcopy(obj)

    @staticmethod
    def _check_identity(res: Resource, ns: str, body: JSON, name: str | None) -> None:
        if body.get("apiVersion") != res.api_version or body.get("kind") != res.kind:
            raise ApiError(
                400,
                "BadRequest",
                f"the API version in the data ({body.get('apiVersion')}) or kind "
                f"({body.get('kind')}) does not match the expected "
                f"{res.api_version}, Kind={res.kind}",
            )
        meta = body.get("metadata") or {}
        if meta.get("namespace") not in (None, "", ns):
            raise ApiError(
                400,
                "BadRequest",
                "the namespace of the provided object does not "
                "match the namespace sent on the request",
            )
        if name is not None and meta.get("name") not in (None, name):
            raise ApiError(
                400,
                "BadRequest",
                "the name of the object "
                f"({meta.get('name')}) does not match the name on the URL ({name})",
            )

    def _validate(self, res: Resource, obj: JSON) -> None:
        validator = self.validators.get(res.qualified)
        if validator is not None:
            validator(obj)


def validate_inference_service(obj: JSON) -> None:
    """The CRD schema types canaryTrafficPercent as an integer; KServe allows 0..100."""
    name = obj["metadata"]["name"]
    spec = obj.get("spec") or {}
    for component in ("predictor", "transformer", "explainer"):
        value = (spec.get(component) or {}).get("canaryTrafficPercent")
        path = f"spec.{component}.canaryTrafficPercent"
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            raise _invalid(
                INFERENCE_SERVICES,
                name,
                path,
                f'Invalid value: "{type(value).__name__}": {path} in body must be of type integer',
            )
        if not 0 <= value <= 100:
            raise _invalid(
                INFERENCE_SERVICES, name, path, f"Invalid value: {value}: must be between 0 and 100"
            )


# ---------------------------------------------------------------------------------------------
# Controller simulations


def _condition(kind: str, ok: bool, reason: str = "", message: str = "") -> JSON:
    cond: JSON = {"type": kind, "status": "True" if ok else "False", "lastTransitionTime": _now()}
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
        if res is INFERENCE_SERVICES and meta["generation"] != seen:
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
                    INFERENCE_SERVICES, ns, name, partial(_with_status, status=status), status=True
                )
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
            status["conditions"] = [_condition("Ready", True)]
            return status, False
        revs = self._revisions.setdefault((meta["namespace"], meta["name"]), _IsvcRevisions())
        predictor = spec.get("predictor") or {}
        created, ready = self._revision_names(meta["name"], revs, predictor)
        traffic = self._ksvc_traffic(revs, ready, predictor.get("canaryTrafficPercent"))
        self._write_ksvc(revs, json.dumps(_without(predictor, "canaryTrafficPercent")), traffic)
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
        template = json.dumps(_without(predictor, "canaryTrafficPercent"), sort_keys=True)
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
            _condition("PredictorReady", not failed, reason, message),
            _condition("IngressReady", ready is not None),
            _condition("Ready", not failed, reason, message),
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
    """Plays the Argo Rollouts controller's reaction to abort and full promotion.

    :meth:`reconcile` on an aborted Rollout sets the canary weight to 0 (and, as without a
    traffic router the canary ReplicaSet is scaled down, ``updatedReplicas`` to 0), phase
    ``Degraded`` and ``abortedAt``; on ``promoteFull`` it makes the canary pod hash stable
    (``updatedReplicas = replicas``), phase ``Healthy``, and clears ``promoteFull`` and the pause.
    ``status.observedGeneration`` is the generation as a string, as Argo writes it.
    """

    def __init__(self, store: ObjectStore) -> None:
        self._store = store

    def reconcile(self, ns: str, name: str) -> JSON:
        with self._store.lock:
            obj = self._store.get(ROLLOUTS, ns, name)
            status = copy.deepcopy(obj.get("status") or {})
            status["observedGeneration"] = str(obj["metadata"]["generation"])
            if status.get("abort"):
                self._abort(status)
            elif status.get("promoteFull"):
                self._promote_full(status, obj.get("spec") or {})
            return self._store.write(
                ROLLOUTS, ns, name, partial(_with_status, status=status), status=True
            )

    @staticmethod
    def _abort(status: JSON) -> None:
        status.update(
            phase="Degraded",
            message=f"RolloutAborted: Rollout aborted update to revision "
            f"{status.get('currentPodHash')}",
            abortedAt=status.get("abortedAt") or _now(),
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


# ---------------------------------------------------------------------------------------------
# HTTP


_OBJECT_PATH = re.compile(
    r"^/apis/(?P<group>[^/]+)/(?P<version>[^/]+)/namespaces/(?P<ns>[^/]+)/"
    r"(?P<plural>[^/]+)(?:/(?P<name>[^/]+)(?:/(?P<sub>[^/]+))?)?$"
)


@dataclass
class _Fault:
    status: int
    remaining: int
    method: str | None
    path_contains: str | None

    def matches(self, method: str, path: str) -> bool:
        return (
            self.remaining > 0
            and self.method in (None, method)
            and (self.path_contains is None or self.path_contains in path)
        )


class KubeApiFake:
    """The fake apiserver: ``with KubeApiFake() as kube: ApiClient(host=kube.url)``."""

    def __init__(self, *, controller_lag_reads: int | None = None) -> None:
        self.store = ObjectStore()
        self.store.validators[INFERENCE_SERVICES.qualified] = validate_inference_service
        self.kserve = KServeControllerSim(self.store, lag_reads=controller_lag_reads)
        self.argo = ArgoControllerSim(self.store)
        self.requests: list[RecordedRequest] = []
        self.latency = 0.0
        self._faults: list[_Fault] = []
        self._interfere = 0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------
    @property
    def url(self) -> str:
        assert self._server is not None, "the fake is not started"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> KubeApiFake:
        handler = type("Handler", (_Handler,), {"fake": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> KubeApiFake:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def api_client(self, *, retries: int | bool = False) -> k8s.ApiClient:
        """A kubernetes ApiClient pointed at the fake (urllib3's own retries off by default)."""
        config = k8s.Configuration(host=self.url)
        config.retries = retries
        return k8s.ApiClient(config)

    # -- fault injection ------------------------------------------------------------------
    def fail_next(
        self,
        count: int,
        *,
        status: int = 503,
        method: str | None = None,
        path_contains: str | None = None,
    ) -> None:
        """Answer the next ``count`` matching requests with ``status`` (nothing is applied)."""
        with self._lock:
            self._faults.append(_Fault(status, count, method, path_contains))

    def interfere_next(self, count: int) -> None:
        """Before each of the next ``count`` writes, let another client change the object.

        The other writer adds an annotation (as ``kubectl annotate`` would), so the object's
        resourceVersion moves on and a write that carries the version it read gets a real 409.
        """
        with self._lock:
            self._interfere = count

    # -- direct access for tests (no request is logged) -----------------------------------
    def seed(self, res: Resource, obj: JSON, *, status: JSON | None = None) -> JSON:
        """Create ``obj`` and, if given, write ``status`` through the status rules."""
        ns = obj["metadata"].get("namespace", "default")
        created = self.store.create(res, ns, copy.deepcopy(obj))
        if status is None:
            return created
        return self.store.write(
            res,
            ns,
            created["metadata"]["name"],
            lambda o: {**o, "status": copy.deepcopy(status)},
            status=True,
        )

    def get(self, res: Resource, ns: str, name: str) -> JSON:
        return self.store.get(res, ns, name)

    def requests_to(self, method: str, path_contains: str = "") -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == method and path_contains in r.path]

    # -- request handling -----------------------------------------------------------------
    def handle(
        self, method: str, raw_path: str, content_type: str | None, raw_body: bytes
    ) -> tuple[int, JSON]:
        parts = urlsplit(raw_path)
        body: Any = None
        status, answer = 500, cast(JSON, {})
        try:
            body = json.loads(raw_body) if raw_body else None
            if self.latency:
                time.sleep(self.latency)
            self._inject_fault(method, parts.path)
            status, answer = self._dispatch(method, parts.path, content_type, body)
        except ApiError as exc:
            status, answer = exc.code, exc.status_body()
        except json.JSONDecodeError as exc:
            status, answer = 400, ApiError(400, "BadRequest", str(exc)).status_body()
        with self._lock:
            self.requests.append(
                RecordedRequest(
                    method,
                    parts.path,
                    parse_qs(parts.query),
                    content_type,
                    body,
                    status,
                    copy.deepcopy(answer),
                )
            )
        return status, answer

    def _inject_fault(self, method: str, path: str) -> None:
        with self._lock:
            for fault in self._faults:
                if fault.matches(method, path):
                    fault.remaining -= 1
                    reason = {
                        500: "InternalError",
                        503: "ServiceUnavailable",
                        504: "Timeout",
                        429: "TooManyRequests",
                    }.get(fault.status, "Unknown")
                    raise ApiError(fault.status, reason, f"injected fault ({fault.status})")
            if method in ("PUT", "PATCH") and self._interfere > 0:
                self._interfere -= 1
                self._foreign_write(path)

    def _foreign_write(self, path: str) -> None:
        match = _OBJECT_PATH.match(path)
        if match is None or match["name"] is None:
            return
        res = self._resource(match["group"], match["version"], match["plural"])

        def annotate(obj: JSON) -> JSON:
            notes = obj["metadata"].setdefault("annotations", {})
            notes["example.com/touched"] = str(int(notes.get("example.com/touched", "0")) + 1)
            return obj

        self.store.write(res, match["ns"], match["name"], annotate, status=False)

    @staticmethod
    def _resource(group: str, version: str, plural: str) -> Resource:
        for res in RESOURCES:
            if (res.group, res.version, res.plural) == (group, version, plural):
                return res
        raise ApiError(404, "NotFound", "the server could not find the requested resource")

    def _dispatch(
        self, method: str, path: str, content_type: str | None, body: Any
    ) -> tuple[int, JSON]:
        if path.rstrip("/") == "/apis" and method == "GET":
            return 200, _group_list()
        discovery = re.match(r"^/apis/([^/]+)/([^/]+)/?$", path)
        if discovery and method == "GET":
            return 200, _resource_list(discovery[1], discovery[2])
        match = _OBJECT_PATH.match(path)
        if match is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        res = self._resource(match["group"], match["version"], match["plural"])
        ns, name, sub = match["ns"], match["name"], match["sub"]
        if sub not in (None, "status"):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if name is None:
            return self._collection(method, res, ns, content_type, body)
        return self._object(method, res, ns, name, sub == "status", content_type, body)

    def _collection(
        self, method: str, res: Resource, ns: str, content_type: str | None, body: Any
    ) -> tuple[int, JSON]:
        if method == "GET":
            return 200, self.store.list(res, ns)
        if method == "POST":
            _require_json(content_type)
            if not isinstance(body, dict):
                raise ApiError(400, "BadRequest", "the request body is not a JSON object")
            return 201, self.store.create(res, ns, body)
        raise _method_not_allowed(method)

    def _object(
        self,
        method: str,
        res: Resource,
        ns: str,
        name: str,
        status: bool,
        content_type: str | None,
        body: Any,
    ) -> tuple[int, JSON]:
        if method == "GET":
            obj = self.store.get(res, ns, name)
            if res is INFERENCE_SERVICES and not status:
                self.kserve.observe_read(ns, name)
                obj = self.store.get(res, ns, name)
            return 200, obj
        if method == "DELETE" and not status:
            return 200, self.store.delete(res, ns, name)
        if method == "PUT":
            _require_json(content_type)
            if not isinstance(body, dict):
                raise ApiError(400, "BadRequest", "the request body is not a JSON object")
            return 200, self.store.write(
                res, ns, name, lambda _old: body, status=status, require_rv=True
            )
        if method == "PATCH":
            change = _patcher(content_type, body)
            return 200, self.store.write(res, ns, name, change, status=status)
        raise _method_not_allowed(method)


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";")[0].strip().lower()


def _require_json(content_type: str | None) -> None:
    # Like the apiserver's NegotiateInputSerializer, a missing Content-Type means the first
    # supported type (JSON); the kubernetes client sends none on create.
    if _media_type(content_type) not in ("", "application/json"):
        raise ApiError(
            415,
            "UnsupportedMediaType",
            f"the body of the request was in an unknown format - accepted media "
            f"types include: application/json, application/yaml, "
            f'application/vnd.kubernetes.protobuf (got "{content_type}")',
        )


def _patcher(content_type: str | None, body: Any) -> Callable[[JSON], Any]:
    media = _media_type(content_type)
    if media == MERGE_PATCH:
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "merge patch body must be a JSON object")
        return lambda old: merge_patch(old, body)
    if media == JSON_PATCH:
        return lambda old: json_patch(old, body)
    # Custom resources accept neither strategic merge patch (no patch strategy in a CRD schema)
    # nor anything else; server-side apply is real but not implemented by this fake.
    raise ApiError(
        415,
        "UnsupportedMediaType",
        "the body of the request was in an unknown format - accepted media types "
        f"include: {JSON_PATCH}, {MERGE_PATCH}, application/apply-patch+yaml "
        f'(got "{content_type}")',
    )


def _method_not_allowed(method: str) -> ApiError:
    return ApiError(
        405,
        "MethodNotAllowed",
        f"the server does not allow this method on the requested resource ({method})",
    )


def _group_list() -> JSON:
    groups = []
    for res in RESOURCES:
        gv = {"groupVersion": res.api_version, "version": res.version}
        groups.append({"name": res.group, "versions": [gv], "preferredVersion": gv})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def _resource_list(group: str, version: str) -> JSON:
    found = [r for r in RESOURCES if (r.group, r.version) == (group, version)]
    if not found:
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    verbs = ["delete", "get", "list", "patch", "create", "update"]
    resources: list[JSON] = []
    for res in found:
        resources.append(
            {
                "name": res.plural,
                "singularName": res.kind.lower(),
                "namespaced": True,
                "kind": res.kind,
                "verbs": verbs,
                "shortNames": list(res.short_names),
            }
        )
        resources.append(
            {
                "name": f"{res.plural}/status",
                "singularName": "",
                "namespaced": True,
                "kind": res.kind,
                "verbs": ["get", "patch", "update"],
            }
        )
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}",
        "resources": resources,
    }


class _Handler(BaseHTTPRequestHandler):
    fake: KubeApiFake

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        status, answer = self.fake.handle(
            self.command, self.path, self.headers.get("Content-Type"), raw
        )
        data = json.dumps(answer).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (e.g. its timeout fired during injected latency)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve  # noqa: N815

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default per-request stderr logging; the request log is the record."""
