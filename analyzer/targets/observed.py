"""What a watched object says it serves: pure translators from an object to its serving split.

The traffic observer turns these into ledger entries; here nothing is read or written, so the
rules are unit-tested on literal objects. The splits themselves come from the targets' own
parsers (:func:`~analyzer.targets.kserve.status.parse_traffic_state`,
:func:`~analyzer.targets.argo.target.parse_rollout_status`), so the observer and the targets
can never disagree about what an object serves.

**Model.** ``namespace/name`` of the object, unless the annotation ``canary-analyzer.io/model``
names another (``NAME`` in the same namespace, or ``NAMESPACE/NAME``).

**Owner** (who made the change), told from ``metadata.managedFields``, the apiserver's record of
which *field manager* last wrote each field:

* an Argo Rollout's traffic is always moved by the Argo controller: ``argo-rollouts``; when the
  latest abort or promotion was asked for by someone (the manager owning ``status.abort`` or
  ``status.promoteFull``), that manager is kept as ``requested_by``;
* an InferenceService's split follows ``spec.predictor.canaryTrafficPercent`` (and the predictor
  template for new revisions): the owner is the manager owning ``canaryTrafficPercent``, or,
  when the field is absent (a promotion removes it), the manager of the latest write to
  ``spec``. Manager names map to owners: ``canary-analyzer`` (ours, sent as ``fieldManager``),
  ``flagger``, ``argo-rollouts`` (``rollouts-controller``), ``manual`` (``kubectl*`` and the
  dashboard), anything else ``other`` (GitOps controllers, Helm, scripts); the raw manager name
  is kept beside it.

Limits: managedFields say who last *wrote* a field, not why; a writer that does not set a
``fieldManager`` is named after its User-Agent; a write that sets a field to the value it
already had changes no ownership; managedFields times have one-second precision.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from analyzer.targets.argo.target import parse_rollout_status
from analyzer.targets.base import RevisionShare
from analyzer.targets.kserve.status import parse_traffic_state, predictor_status
from analyzer.targets.kube import FIELD_MANAGER, JSON

MODEL_ANNOTATION = "canary-analyzer.io/model"
OWNERS = ("canary-analyzer", "argo-rollouts", "flagger", "manual", "other")
_ARGO_MANAGERS = frozenset({"rollouts-controller", "argo-rollouts"})
_MANUAL_PREFIXES = ("kubectl", "Mozilla", "k9s", "lens")


@dataclass(frozen=True, kw_only=True, slots=True)
class ObservedRevision:
    """A revision seen on an object, with the artifact it runs when the object names it."""

    revision: str
    artifact_uri: str | None


@dataclass(frozen=True, kw_only=True, slots=True)
class ObservedSplit:
    """One object's serving split as observed, with the identity of the observation."""

    kind: str  # InferenceService | Rollout
    namespace: str
    name: str
    model: str  # NAMESPACE/NAME the ledger files it under
    uid: str
    generation: int
    resource_version: str
    deleted: bool
    shares: tuple[RevisionShare, ...]  # revisions serving > 0 %
    stable_revision: str | None
    canary_revision: str | None
    canary_weight: int
    phase: str | None  # Rollout phase, or Ready/NotReady for an InferenceService
    step: int | None  # a Rollout's currentStepIndex
    aborted: bool
    owner: str
    owner_manager: str | None
    requested_by: str | None
    changed_at: datetime | None  # the owning manager's write time, when recorded
    revisions: tuple[ObservedRevision, ...]  # revisions this object names, with artifacts

    def split_map(self) -> dict[str, int]:
        return {s.revision: s.percent for s in self.shares if s.percent > 0}


def model_of(obj: JSON) -> str:
    meta = obj.get("metadata") or {}
    namespace = str(meta.get("namespace") or "default")
    named = ((meta.get("annotations") or {}).get(MODEL_ANNOTATION) or "").strip()
    if not named:
        return f"{namespace}/{meta.get('name')}"
    return named if "/" in named else f"{namespace}/{named}"


def owner_of_manager(manager: str | None) -> str:
    if manager is None:
        return "other"
    if manager == FIELD_MANAGER:
        return "canary-analyzer"
    if manager in _ARGO_MANAGERS:
        return "argo-rollouts"
    if manager.startswith("flagger"):
        return "flagger"
    if manager.startswith(_MANUAL_PREFIXES):
        return "manual"
    return "other"


def _owns(fields: Any, path: tuple[str, ...]) -> bool:
    node = fields
    for part in path:
        if not isinstance(node, dict) or f"f:{part}" not in node:
            return False
        node = node[f"f:{part}"]
    return True


def _time(entry: JSON) -> datetime | None:
    try:
        return datetime.fromisoformat(str(entry["time"]).replace("Z", "+00:00")).astimezone(UTC)
    except (KeyError, ValueError):
        return None


def field_owner(obj: JSON, path: tuple[str, ...]) -> JSON | None:
    """The managedFields entry owning ``path`` (main resource or status, as the path says)."""
    for entry in (obj.get("metadata") or {}).get("managedFields") or []:
        if isinstance(entry, dict) and _owns(entry.get("fieldsV1") or {}, path):
            return entry
    return None


def latest_writer(obj: JSON, top: str) -> JSON | None:
    """The managedFields entry with the latest write owning something under ``top``."""
    found = [
        e
        for e in (obj.get("metadata") or {}).get("managedFields") or []
        if isinstance(e, dict) and _owns(e.get("fieldsV1") or {}, (top,))
    ]
    return max(found, key=lambda e: _time(e) or datetime.min.replace(tzinfo=UTC), default=None)


def _identity(obj: JSON, kind: str, deleted: bool) -> dict[str, Any]:
    meta = obj.get("metadata") or {}
    return {
        "kind": kind,
        "namespace": str(meta.get("namespace") or "default"),
        "name": str(meta.get("name")),
        "model": model_of(obj),
        "uid": str(meta.get("uid") or ""),
        "generation": int(meta.get("generation") or 0),
        "resource_version": str(meta.get("resourceVersion") or ""),
        "deleted": deleted,
    }


def storage_uri(obj: JSON) -> str | None:
    """The predictor's ``storageUri`` (``model:`` or a framework key such as ``sklearn:``)."""
    predictor = (obj.get("spec") or {}).get("predictor") or {}
    for value in predictor.values():
        if isinstance(value, dict) and value.get("storageUri"):
            return str(value["storageUri"])
    return None


def observe_inference_service(obj: JSON, *, deleted: bool = False) -> ObservedSplit:
    """A KServe InferenceService's split from ``status.components.predictor.traffic``."""
    state = parse_traffic_state(obj)
    predictor = predictor_status(obj)
    writer = field_owner(obj, ("spec", "predictor", "canaryTrafficPercent")) or latest_writer(
        obj, "spec"
    )
    manager = str(writer["manager"]) if writer else None
    created = predictor.get("latestCreatedRevision")
    revisions = (
        (ObservedRevision(revision=str(created), artifact_uri=storage_uri(obj)),) if created else ()
    )
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (obj.get("status") or {}).get("conditions") or []
        if isinstance(c, dict)
    )
    return ObservedSplit(
        **_identity(obj, "InferenceService", deleted),
        shares=() if deleted else tuple(s for s in state.shares if s.percent > 0),
        stable_revision=state.stable_revision,
        canary_revision=state.canary_revision,
        canary_weight=0 if deleted else state.canary_weight,
        phase="Ready" if ready else "NotReady",
        step=None,
        aborted=False,
        owner=owner_of_manager(manager),
        owner_manager=manager,
        requested_by=None,
        changed_at=_time(writer) if writer else None,
        revisions=revisions,
    )


def _image(obj: JSON) -> str | None:
    containers = (((obj.get("spec") or {}).get("template") or {}).get("spec") or {}).get(
        "containers"
    ) or []
    first = containers[0] if containers and isinstance(containers[0], dict) else {}
    return str(first["image"]) if first.get("image") else None


def observe_rollout(obj: JSON, *, deleted: bool = False) -> ObservedSplit:
    """An Argo Rollout's split from its status (stable/canary pod-template hashes, weights)."""
    status = parse_rollout_status(obj)
    shares = []
    if status.stable_hash and status.stable_weight > 0:
        shares.append(RevisionShare(revision=status.stable_hash, percent=status.stable_weight))
    if status.canary_hash and status.canary_weight > 0:
        shares.append(RevisionShare(revision=status.canary_hash, percent=status.canary_weight))
    requester = field_owner(obj, ("status", "abort")) or field_owner(obj, ("status", "promoteFull"))
    writer = latest_writer(obj, "status")
    current = (obj.get("status") or {}).get("currentPodHash")
    revisions = (
        (ObservedRevision(revision=str(current), artifact_uri=_image(obj)),) if current else ()
    )
    return ObservedSplit(
        **_identity(obj, "Rollout", deleted),
        shares=() if deleted else tuple(shares),
        stable_revision=status.stable_hash,
        canary_revision=status.canary_hash,
        canary_weight=0 if deleted else status.canary_weight,
        phase=status.phase,
        step=status.current_step_index,
        aborted=status.aborted,
        owner="argo-rollouts",
        owner_manager=str(writer["manager"]) if writer else None,
        requested_by=str(requester["manager"]) if requester else None,
        changed_at=_time(writer) if writer else None,
        revisions=revisions,
    )


def observe(kind: str, obj: JSON, *, deleted: bool = False) -> ObservedSplit:
    """Dispatch on the object's kind (``InferenceService`` or ``Rollout``)."""
    if kind == "InferenceService":
        return observe_inference_service(obj, deleted=deleted)
    if kind == "Rollout":
        return observe_rollout(obj, deleted=deleted)
    raise ValueError(f"no translator for kind {kind!r}")
