"""The ModelMesh controller, simulated for InferenceServices in ModelMesh mode.

ModelMesh serving (``serving.kserve.io/deploymentMode: ModelMesh``) has no revisions and no
traffic split: changing ``spec.predictor.model.storageUri`` (or ``runtime``) makes ModelMesh load
the new model beside the old one, which keeps answering until the new one is loaded. The
InferenceService's status tells it (KServe ``ModelStatus``)::

    status.modelStatus.transitionStatus: UpToDate | InProgress | BlockedByFailedLoad | InvalidSpec
    status.modelStatus.states.activeModelState: Pending | Standby | Loading | Loaded | FailedToLoad
      (Standby: in place but not in memory, e.g. evicted for capacity; loaded on first use)
    status.modelStatus.states.targetModelState: the same set, "" when no transition is under way
    status.modelStatus.lastFailureInfo: {reason, message}
    status.conditions: [{type: Ready, status: "True"|"False"}]

A write that changes the spec starts a transition (``InProgress``, target ``Loading``, the old
model still ``Loaded``); the controller finishes it after ``lag_reads`` further GETs (or when a
test calls :meth:`reconcile`): ``UpToDate`` and ``Loaded``, or, for an artifact in
:attr:`failing`, ``BlockedByFailedLoad`` with target ``FailedToLoad`` while the old model keeps
serving. ``status.observedGeneration`` follows ``metadata.generation`` once the controller has
seen the spec. Service objects in other modes are left to the KServe simulation.
"""

from __future__ import annotations

import copy

from tests.fakes.kube_store import INFERENCE_SERVICES, JSON, ObjectStore, Resource

MODELMESH = "ModelMesh"
ANNOTATION = "serving.kserve.io/deploymentMode"


def is_modelmesh(obj: JSON) -> bool:
    return ((obj.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION) == MODELMESH


def storage_uri(obj: JSON) -> str | None:
    return ((obj.get("spec") or {}).get("predictor") or {}).get("model", {}).get("storageUri")


class ModelMeshControllerSim:
    def __init__(self, store: ObjectStore, *, lag_reads: int | None = 1) -> None:
        self._store = store
        self.lag_reads = lag_reads
        self.failing: set[str] = set()  # storage URIs that fail to load
        # storage URIs that load and are then evicted for capacity before anyone asks: ModelMesh
        # reports the model ``Standby`` (in place; loaded again on its first request)
        self.standby: set[str] = set()
        self.reconciles = 0
        self._pending: dict[tuple[str, str], int] = {}
        self._seen: dict[tuple[str, str], int] = {}
        store.on_write.append(self._note_write)

    def _note_write(self, res: Resource, obj: JSON) -> None:
        if res is not INFERENCE_SERVICES or not is_modelmesh(obj):
            return
        meta = obj["metadata"]
        key = (meta["namespace"], meta["name"])
        if meta["generation"] != self._seen.get(key):
            self._seen[key] = meta["generation"]
            self._pending[key] = 0
            self._store.write(
                INFERENCE_SERVICES, key[0], key[1], self._start_transition, status=True
            )

    def observe_read(self, ns: str, name: str) -> None:
        key = (ns, name)
        if self.lag_reads is None or key not in self._pending:
            return
        self._pending[key] += 1
        if self._pending[key] > self.lag_reads:
            self.reconcile(ns, name)

    def reconcile(self, ns: str, name: str) -> JSON:
        """Finish the model's transition now."""
        self.reconciles += 1
        self._pending.pop((ns, name), None)
        return self._store.write(INFERENCE_SERVICES, ns, name, self._finish, status=True)

    @staticmethod
    def _start_transition(obj: JSON) -> JSON:
        obj = copy.deepcopy(obj)
        status = obj.setdefault("status", {})
        model = status.setdefault("modelStatus", {})
        active = (model.get("states") or {}).get("activeModelState") or "Pending"
        model["transitionStatus"] = "InProgress"
        model["states"] = {"activeModelState": active, "targetModelState": "Loading"}
        status["observedGeneration"] = obj["metadata"]["generation"]
        status["conditions"] = [_ready(active == "Loaded")]
        return obj

    def _finish(self, obj: JSON) -> JSON:
        obj = copy.deepcopy(obj)
        status = obj.setdefault("status", {})
        model = status.setdefault("modelStatus", {})
        active = (model.get("states") or {}).get("activeModelState") or "Pending"
        if storage_uri(obj) in self.failing:
            model["transitionStatus"] = "BlockedByFailedLoad"
            model["states"] = {"activeModelState": active, "targetModelState": "FailedToLoad"}
            model["lastFailureInfo"] = {
                "reason": "ModelLoadFailed",
                "message": f"failed to load {storage_uri(obj)}",
            }
        else:
            active = "Standby" if storage_uri(obj) in self.standby else "Loaded"
            model["transitionStatus"] = "UpToDate"
            model["states"] = {"activeModelState": active, "targetModelState": ""}
            model.pop("lastFailureInfo", None)
        status["observedGeneration"] = obj["metadata"]["generation"]
        status["conditions"] = [_ready(active in ("Loaded", "Standby"))]
        return obj


def _ready(ok: bool) -> JSON:
    return {"type": "Ready", "status": "True" if ok else "False"}


def modelmesh_isvc(
    namespace: str, name: str, uri: str, runtime: str, labels: dict[str, str]
) -> JSON:
    """An InferenceService in ModelMesh mode, as a platform team would apply it."""
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": dict(labels),
            "annotations": {ANNOTATION: MODELMESH},
        },
        "spec": {
            "predictor": {
                "model": {
                    "modelFormat": {"name": "sklearn"},
                    "runtime": runtime,
                    "storageUri": uri,
                }
            }
        },
    }
