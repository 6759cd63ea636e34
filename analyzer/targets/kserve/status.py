"""Reading an InferenceService's status: the observed split and whether it reflects the spec.

Pure functions over the object as the apiserver returns it (a dict), so they are unit-tested on
literal data. The rules mirror KServe's Serverless reconciler and ``PropagateStatus``:

* the predictor's Knative traffic is ``[{latestRevision: true, percent: P}, {tag: prev,
  revisionName: latestRolledoutRevision, percent: 100-P}]`` when ``canaryTrafficPercent`` is
  P < 100 and a rolled-out revision exists (even when both entries name the same revision), else
  ``[{latestRevision: true, percent: 100}]``; Knative resolves ``latestRevision`` to the latest
  *ready* revision;
* a ready revision that gets 100 % becomes ``latestRolledoutRevision`` (the former one becomes
  ``previousRolledoutRevision``); a lower percentage afterwards, which first splits over that one
  revision, rolls it back to the previous one, and the next pass re-points ``prev`` there.
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
    """True when the traffic block is the one KServe configures for the current spec and status.

    This, not ``observedGeneration``, is the evidence that a change was applied: KServe copies
    ``observedGeneration`` from the Knative Service, whose generation does not follow the
    InferenceService's. A ``prev`` entry that does not name ``latestRolledoutRevision`` is a
    pass in between (KServe has just moved the rolled-out revision and will re-point ``prev``).
    """
    predictor = predictor_status(obj)
    traffic = _traffic(obj)
    prev = [t.get("revisionName") for t in traffic if t.get("tag") == "prev"]
    latest = sum(int(t.get("percent") or 0) for t in traffic if t.get("latestRevision"))
    requested = requested_percent(obj)
    rolled_out = predictor.get("latestRolledoutRevision")
    if requested in (None, 100) or not rolled_out:
        return not prev and latest == 100
    expected_prev = {rolled_out}
    if rolled_out == predictor.get("latestReadyRevision") and predictor.get(
        "previousRolledoutRevision"
    ):
        # Older KServe (kfserving) builders pointed prev at the previous rolled-out revision
        # after a 100 % rollout was rolled back, without moving latestRolledoutRevision.
        expected_prev.add(predictor["previousRolledoutRevision"])
    return len(prev) == 1 and prev[0] in expected_prev and latest == requested


def revision_in_flight(obj: JSON) -> bool:
    """A revision was created that is not (yet) ready."""
    predictor = predictor_status(obj)
    return predictor.get("latestCreatedRevision") != predictor.get("latestReadyRevision")


def is_ready(obj: JSON) -> bool:
    ready = condition(obj, "Ready")
    return bool(ready and ready.get("status") == "True")


def parse_traffic_state(obj: JSON) -> TrafficState:
    """Read the observed split from ``status.components.predictor.traffic``.

    The entry with ``latestRevision: true`` is the canary unless it names the same revision as
    the ``prev`` entry (no canary); ``prev`` (else ``latestRolledoutRevision``) is stable. With
    ``canaryTrafficPercent: 100`` still in the spec, the rolled-out canary is reported as the
    canary at 100 % and ``previousRolledoutRevision`` as stable.
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
    previous = predictor.get("previousRolledoutRevision")
    if canary is None and requested_percent(obj) == 100 and previous and previous != latest:
        # A canary step at 100 %: KServe already calls the canary rolled out, but the spec
        # still holds the step (promotion removes the field), so report it as a canary at 100 %
        # beside the revision an abort would return to.
        stable, canary = previous, latest
        shares.setdefault(str(previous), 0)
    return TrafficState(
        stable_revision=str(stable) if stable else None,
        canary_revision=str(canary) if canary else None,
        canary_weight=shares.get(str(canary), 0) if canary else 0,
        requested_weight=requested_percent(obj),
        settled=is_ready(obj) and not revision_in_flight(obj) and routing_agrees(obj),
        shares=tuple(RevisionShare(revision=k, percent=v) for k, v in shares.items()),
    )
