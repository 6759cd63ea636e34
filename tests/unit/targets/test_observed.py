"""The pure translators from watched objects to observed splits, on literal objects."""

from __future__ import annotations

from typing import Any

import pytest

from analyzer.targets.observed import (
    model_of,
    observe,
    observe_inference_service,
    observe_rollout,
    owner_of_manager,
)

PCT = {"f:spec": {"f:predictor": {"f:canaryTrafficPercent": {}}}}


def isvc(managers: list[dict[str, Any]], percent: int | None = 25) -> dict[str, Any]:
    predictor: dict[str, Any] = {"model": {"storageUri": "s3://models/fraud/v2"}}
    if percent is not None:
        predictor["canaryTrafficPercent"] = percent
    return {
        "kind": "InferenceService",
        "metadata": {"name": "fraud", "namespace": "risk", "uid": "u-1", "generation": 3,
                     "resourceVersion": "1234", "managedFields": managers},
        "spec": {"predictor": predictor},
        "status": {
            "conditions": [{"type": "Ready", "status": "True"}],
            "components": {"predictor": {
                "latestCreatedRevision": "fraud-predictor-00002",
                "latestReadyRevision": "fraud-predictor-00002",
                "latestRolledoutRevision": "fraud-predictor-00001",
                "traffic": [
                    {"revisionName": "fraud-predictor-00002", "percent": 25,
                     "latestRevision": True},
                    {"revisionName": "fraud-predictor-00001", "percent": 75, "tag": "prev",
                     "latestRevision": False},
                ]}},
        },
    }  # fmt: skip


def test_inference_service_split_identity_artifact_and_owner() -> None:
    seen = observe_inference_service(
        isvc(
            [
                {
                    "manager": "kubectl-patch",
                    "operation": "Update",
                    "time": "2026-12-05T10:00:01Z",
                    "fieldsV1": PCT,
                }
            ]
        )
    )
    assert seen.split_map() == {"fraud-predictor-00002": 25, "fraud-predictor-00001": 75}
    assert (seen.model, seen.uid, seen.generation, seen.resource_version) == (
        "risk/fraud", "u-1", 3, "1234",
    )  # fmt: skip
    assert (seen.canary_revision, seen.stable_revision, seen.canary_weight) == (
        "fraud-predictor-00002", "fraud-predictor-00001", 25,
    )  # fmt: skip
    assert (seen.owner, seen.owner_manager) == ("manual", "kubectl-patch")
    assert seen.changed_at is not None
    assert seen.changed_at.second == 1
    assert [(r.revision, r.artifact_uri) for r in seen.revisions] == [
        ("fraud-predictor-00002", "s3://models/fraud/v2")
    ]


def test_without_the_percent_field_the_latest_spec_writer_owns_the_change() -> None:
    managers = [
        {"manager": "argocd-controller", "time": "2026-12-05T09:00:00Z",
         "fieldsV1": {"f:spec": {"f:predictor": {"f:model": {}}}}},
        {"manager": "canary-analyzer", "time": "2026-12-05T10:00:00Z",
         "fieldsV1": {"f:spec": {"f:predictor": {"f:minReplicas": {}}}}},
        {"manager": "manager", "subresource": "status", "time": "2026-12-05T11:00:00Z",
         "fieldsV1": {"f:status": {}}},
    ]  # fmt: skip
    assert observe_inference_service(isvc(managers, percent=None)).owner == "canary-analyzer"


@pytest.mark.parametrize(
    ("manager", "owner"),
    [("canary-analyzer", "canary-analyzer"), ("rollouts-controller", "argo-rollouts"),
     ("flagger", "flagger"), ("kubectl-edit", "manual"), ("kubectl", "manual"),
     ("argocd-controller", "other"), (None, "other")],
)  # fmt: skip
def test_manager_names_map_to_owners(manager: str | None, owner: str) -> None:
    assert owner_of_manager(manager) == owner


def test_model_annotation_overrides_the_object_name() -> None:
    meta = {"name": "fraud-isvc", "namespace": "risk"}
    assert model_of({"metadata": meta}) == "risk/fraud-isvc"
    assert (
        model_of({"metadata": {**meta, "annotations": {"canary-analyzer.io/model": "fraud"}}})
        == "risk/fraud"
    )
    assert (
        model_of({"metadata": {**meta, "annotations": {"canary-analyzer.io/model": "x/y"}}})
        == "x/y"
    )


def rollout(**status: Any) -> dict[str, Any]:
    return {
        "kind": "Rollout",
        "metadata": {"name": "scorer", "namespace": "risk", "uid": "r-1", "generation": 2,
                     "resourceVersion": "77", "managedFields": [
                         {"manager": "rollouts-controller", "subresource": "status",
                          "time": "2026-12-05T10:00:00Z",
                          "fieldsV1": {"f:status": {"f:phase": {}}}},
                         {"manager": "canary-analyzer", "subresource": "status",
                          "time": "2026-12-05T10:00:02Z",
                          "fieldsV1": {"f:status": {"f:abort": {}}}},
                     ]},
        "spec": {"template": {"spec": {"containers": [{"name": "m", "image": "scorer:2"}]}},
                 "strategy": {"canary": {"steps": [{"setWeight": 20}, {"pause": {}}]}}},
        "status": {"stableRS": "aaa", "currentPodHash": "bbb", "currentStepIndex": 1,
                   "phase": "Paused", "observedGeneration": "2",
                   "canary": {"weights": {"canary": {"podTemplateHash": "bbb", "weight": 20},
                                          "stable": {"podTemplateHash": "aaa", "weight": 80}}},
                   **status},
    }  # fmt: skip


def test_rollout_split_from_pod_template_hashes_and_weights() -> None:
    seen = observe_rollout(rollout())
    assert seen.split_map() == {"aaa": 80, "bbb": 20}
    assert (seen.owner, seen.step, seen.phase, seen.aborted) == (
        "argo-rollouts",
        1,
        "Paused",
        False,
    )
    assert [(r.revision, r.artifact_uri) for r in seen.revisions] == [("bbb", "scorer:2")]
    assert seen.requested_by == "canary-analyzer", "the abort flag's writer asked for it"


def test_aborted_rollout_serves_stable_only_and_deleted_serves_nothing() -> None:
    aborted = rollout(abort=True, canary={"weights": {
        "canary": {"podTemplateHash": "bbb", "weight": 0},
        "stable": {"podTemplateHash": "aaa", "weight": 100}}})  # fmt: skip
    seen = observe_rollout(aborted)
    assert seen.aborted
    assert seen.split_map() == {"aaa": 100}
    gone = observe("Rollout", rollout(), deleted=True)
    assert gone.deleted
    assert gone.split_map() == {}
    assert gone.canary_weight == 0
    with pytest.raises(ValueError, match="no translator"):
        observe("Deployment", {})
