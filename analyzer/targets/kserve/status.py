"""Reading an InferenceService's status: the observed split and whether it reflects the spec.

Pure functions over the object as the apiserver returns it (a dict), so they are unit-tested on
literal data. The rules mirror KServe's Serverless reconciler and ``PropagateStatus``:

* the predictor's Knative traffic is ``[{tag: prev, revisionName: latestRolledoutRevision,
  percent: 100-P}, {tag: latest, latestRevision: true, percent: P}]`` when
  ``canaryTrafficPercent`` is P and a rolled-out revision exists, else
  ``[{latestRevision: true, percent: 100}]`` (even when both entries name the same revision);
* a ready revision that gets 100 % becomes ``latestRolledoutRevision`` (the former one becomes
  ``previousRolledoutRevision``); a lower percentage afterwards rolls it back to the previous one,
  unless a newer revision is still being created.
"""

from __future__ import annotations

from typing import Any

from analyzer.targets.base import RevisionShare, TrafficState
from analyzer.targets.kube import JSON, condition

SERVERLESS = "Serverless"
_MODE_ANNOTATION = "serving.kserve.io/deploymentMode"


def deployment_mode(obj: JSON) -> str:
    """The mode the controller reports, else the annotation that asks for one, else Serverless."""
    status_mode = (obj.get("status") or {}).get("deploymentMode")
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    return str(status_mode or annotations.get(_MODE_ANNOTATION) or SERVERLESS)


def predictor_status(obj: JSON) -> JSON:
    components = (obj.get("status") or {}).get("components") or {}
    return dict(components.get("predictor") or {})


def requested_percent(obj: JSON) -> int | None:
    value = ((obj.get("spec") or {}).get("predictor") or {}).get("canaryTrafficPercent")
    return int(value) if value is not None else None


def _traffic(obj: JSON) -> list[dict[str, Any]]:
    return [t for t in predictor_status(obj).get("traffic") or [] if isinstance(t, dict)]


def routing_agrees(obj: JSON) -> bool:
    """True when the traffic block is the one KServe configures for the current spec.

    This, not ``observedGeneration``, is the evidence that a change was applied: KServe copies
    ``observedGeneration`` from the Knative Service, whose generation does not follow the
    InferenceService's.
    """
    traffic = _traffic(obj)
    has_prev = any(t.get("tag") == "prev" for t in traffic)
    latest = sum(int(t.get("percent") or 0) for t in traffic if t.get("latestRevision"))
    requested = requested_percent(obj)
    if requested is None or not predictor_status(obj).get("latestRolledoutRevision"):
        return not has_prev and latest == 100
    return has_prev and latest == requested


def revision_in_flight(obj: JSON) -> bool:
    """A revision was created that is not (yet) ready."""
    predictor = predictor_status(obj)
    return predictor.get("latestCreatedRevision") != predictor.get("latestReadyRevision")


def rollback_pending(obj: JSON) -> bool:
    """KServe will roll ``latestRolledoutRevision`` back to the previous one on its next pass.

    That is the case when the traffic splits over one revision at less than 100 % for the latest
    entry while a different previous rolled-out revision exists and nothing is in flight.
    """
    predictor = predictor_status(obj)
    previous = predictor.get("previousRolledoutRevision")
    rolled_out = predictor.get("latestRolledoutRevision")
    latest = [t for t in _traffic(obj) if t.get("latestRevision")]
    split_over_one = {t.get("revisionName") for t in _traffic(obj)} == {rolled_out}
    below_full = any(int(t.get("percent") or 0) < 100 for t in latest)
    return bool(previous and previous != rolled_out and split_over_one and below_full) and (
        not revision_in_flight(obj)
    )


def is_ready(obj: JSON) -> bool:
    ready = condition(obj, "Ready")
    return bool(ready and ready.get("status") == "True")


def parse_traffic_state(obj: JSON) -> TrafficState:
    """Read the observed split from ``status.components.predictor.traffic``.

    The entry with ``latestRevision: true`` is the canary unless it names the same revision as
    the ``prev`` entry (no canary); ``prev`` (else ``latestRolledoutRevision``) is stable.
    ``settled`` means Ready, no revision in flight, and the routing agrees with the spec.
    """
    predictor = predictor_status(obj)
    traffic = _traffic(obj)
    shares: dict[str, int] = {}
    for entry in traffic:
        if entry.get("revisionName"):
            name = str(entry["revisionName"])
            shares[name] = shares.get(name, 0) + int(entry.get("percent") or 0)
    latest = next((t.get("revisionName") for t in traffic if t.get("latestRevision")), None)
    prev = next((t.get("revisionName") for t in traffic if t.get("tag") == "prev"), None)
    stable = prev or predictor.get("latestRolledoutRevision") or latest
    canary = latest if latest and latest != stable else None
    return TrafficState(
        stable_revision=str(stable) if stable else None,
        canary_revision=str(canary) if canary else None,
        canary_weight=shares.get(str(canary), 0) if canary else 0,
        requested_weight=requested_percent(obj),
        settled=is_ready(obj) and not revision_in_flight(obj) and routing_agrees(obj),
        shares=tuple(RevisionShare(revision=k, percent=v) for k, v in shares.items()),
    )
