"""Self-tests of the fake apiserver: it must be as strict as a real one where we rely on it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.fakes.kube_api import KubeApiFake, json_patch, merge_patch

BASE = "/apis/serving.kserve.io/v1beta1/namespaces/models/inferenceservices"
MERGE = {"Content-Type": "application/merge-patch+json"}


def body(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": "iris", "labels": {"team": "risk"}},
        "spec": {"predictor": {"model": {"storageUri": "s3://m/v1"}, **spec}},
        "status": {"observedGeneration": 99},
    }


@pytest.fixture
def http(kube: KubeApiFake) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=kube.url, timeout=5) as client:
        yield client


@pytest.fixture
def created(http: httpx.Client) -> dict[str, Any]:
    response = http.post(BASE, json=body())
    assert response.status_code == 201
    return dict(response.json())


def patch(
    http: httpx.Client, path: str, doc: Any, ctype: str = MERGE["Content-Type"]
) -> httpx.Response:
    return http.patch(path, json=doc, headers={"Content-Type": ctype})


def test_create_is_201_with_server_fields_and_without_status(created: dict[str, Any]) -> None:
    meta = created["metadata"]
    assert meta["generation"] == 1
    assert meta["namespace"] == "models"
    assert meta["uid"]
    assert meta["creationTimestamp"]
    assert int(meta["resourceVersion"]) > 0
    assert "status" not in created, "status is dropped on create with the status subresource"


def test_duplicate_create_is_409_already_exists(
    http: httpx.Client, created: dict[str, Any]
) -> None:
    response = http.post(BASE, json=body())
    assert response.status_code == 409
    status = response.json()
    assert (status["kind"], status["status"], status["reason"], status["code"]) == (
        "Status",
        "Failure",
        "AlreadyExists",
        409,
    )


def test_missing_object_is_404_status(http: httpx.Client) -> None:
    response = http.get(f"{BASE}/ghost")
    assert response.status_code == 404
    status = response.json()
    assert status["kind"] == "Status"
    assert status["reason"] == "NotFound"
    assert status["code"] == 404
    assert status["message"] == 'inferenceservices.serving.kserve.io "ghost" not found'
    assert status["details"] == {
        "name": "ghost",
        "group": "serving.kserve.io",
        "kind": "inferenceservices",
    }


def test_resource_version_moves_on_every_change_but_not_on_a_no_op(
    http: httpx.Client, created: dict[str, Any]
) -> None:
    rv0 = int(created["metadata"]["resourceVersion"])
    first = patch(http, f"{BASE}/iris", {"metadata": {"labels": {"a": "1"}}}).json()
    second = patch(http, f"{BASE}/iris", {"metadata": {"labels": {"a": "2"}}}).json()
    same = patch(http, f"{BASE}/iris", {"metadata": {"labels": {"a": "2"}}}).json()
    rv1, rv2 = int(first["metadata"]["resourceVersion"]), int(second["metadata"]["resourceVersion"])
    assert rv0 < rv1 < rv2
    assert same["metadata"]["resourceVersion"] == str(rv2)


def test_stale_resource_version_is_409_conflict_and_changes_nothing(
    http: httpx.Client, created: dict[str, Any]
) -> None:
    stale = created["metadata"]["resourceVersion"]
    patch(http, f"{BASE}/iris", {"spec": {"predictor": {"canaryTrafficPercent": 10}}})
    response = patch(
        http,
        f"{BASE}/iris",
        {
            "metadata": {"resourceVersion": stale},
            "spec": {"predictor": {"canaryTrafficPercent": 50}},
        },
    )
    assert response.status_code == 409
    assert response.json()["reason"] == "Conflict"
    assert "the object has been modified" in response.json()["message"]
    assert http.get(f"{BASE}/iris").json()["spec"]["predictor"]["canaryTrafficPercent"] == 10


def test_a_foreign_uid_is_a_409_precondition_failure(
    http: httpx.Client, created: dict[str, Any]
) -> None:
    response = patch(http, f"{BASE}/iris", {"metadata": {"uid": "another-object"}})
    assert response.status_code == 409
    assert "Precondition failed: UID" in response.json()["message"]
    same = patch(http, f"{BASE}/iris", {"metadata": {"uid": created["metadata"]["uid"]}})
    assert same.status_code == 200


def test_put_requires_the_current_resource_version(
    http: httpx.Client, created: dict[str, Any]
) -> None:
    without = {**body(), "metadata": {"name": "iris"}}
    assert http.put(f"{BASE}/iris", json=without).status_code == 422
    current = {**body(canaryTrafficPercent=5), "metadata": created["metadata"]}
    assert http.put(f"{BASE}/iris", json=current).status_code == 200
    assert http.put(f"{BASE}/iris", json=current).status_code == 409, "now stale"


def test_generation_moves_only_on_spec_changes(http: httpx.Client, created: dict[str, Any]) -> None:
    labels = patch(http, f"{BASE}/iris", {"metadata": {"labels": {"x": "y"}}}).json()
    status = patch(http, f"{BASE}/iris/status", {"status": {"observedGeneration": 1}}).json()
    spec = patch(http, f"{BASE}/iris", {"spec": {"predictor": {"canaryTrafficPercent": 10}}}).json()
    assert [labels["metadata"]["generation"], status["metadata"]["generation"]] == [1, 1]
    assert spec["metadata"]["generation"] == 2


def test_main_endpoint_ignores_status_and_status_endpoint_ignores_the_rest(
    http: httpx.Client, created: dict[str, Any]
) -> None:
    main = patch(
        http,
        f"{BASE}/iris",
        {"status": {"deploymentMode": "Serverless"}, "metadata": {"labels": {"k": "v"}}},
    ).json()
    assert "status" not in main
    assert main["metadata"]["labels"]["k"] == "v"
    sub = patch(
        http,
        f"{BASE}/iris/status",
        {
            "status": {"deploymentMode": "Serverless"},
            "spec": {"predictor": {"canaryTrafficPercent": 7}},
        },
    ).json()
    assert sub["status"] == {"deploymentMode": "Serverless"}
    assert "canaryTrafficPercent" not in sub["spec"]["predictor"]
    assert sub["metadata"]["generation"] == 1


def test_merge_patch_null_deletes_and_json_patch_applies(
    http: httpx.Client, created: dict[str, Any]
) -> None:
    patch(http, f"{BASE}/iris", {"spec": {"predictor": {"canaryTrafficPercent": 10}}})
    removed = patch(http, f"{BASE}/iris", {"spec": {"predictor": {"canaryTrafficPercent": None}}})
    assert "canaryTrafficPercent" not in removed.json()["spec"]["predictor"]
    ops = [{"op": "add", "path": "/spec/predictor/canaryTrafficPercent", "value": 30}]
    added = patch(http, f"{BASE}/iris", ops, "application/json-patch+json")
    assert added.json()["spec"]["predictor"]["canaryTrafficPercent"] == 30
    failing = [{"op": "test", "path": "/spec/predictor/canaryTrafficPercent", "value": 99}]
    assert patch(http, f"{BASE}/iris", failing, "application/json-patch+json").status_code == 422


@pytest.mark.parametrize(
    "ctype",
    ["application/strategic-merge-patch+json", "application/apply-patch+yaml", "text/plain"],
)
def test_unsupported_patch_media_types_are_415(
    http: httpx.Client, created: dict[str, Any], ctype: str
) -> None:
    response = patch(http, f"{BASE}/iris", {"spec": {}}, ctype)
    assert response.status_code == 415
    assert response.json()["reason"] == "UnsupportedMediaType"


def test_schema_rejects_a_bad_canary_percent(http: httpx.Client, created: dict[str, Any]) -> None:
    for value in (101, -1, "10"):
        response = patch(
            http, f"{BASE}/iris", {"spec": {"predictor": {"canaryTrafficPercent": value}}}
        )
        assert response.status_code == 422
        assert response.json()["reason"] == "Invalid"


def test_wrong_kind_is_400(http: httpx.Client) -> None:
    response = http.post(BASE, json={**body(), "kind": "Rollout"})
    assert response.status_code == 400


def test_injected_faults_apply_nothing_and_are_logged(
    kube: KubeApiFake, http: httpx.Client, created: dict[str, Any]
) -> None:
    kube.fail_next(2, status=503, method="PATCH")
    doc = {"spec": {"predictor": {"canaryTrafficPercent": 10}}}
    codes = [patch(http, f"{BASE}/iris", doc).status_code for _ in range(3)]
    assert codes == [503, 503, 200]
    assert [r.status for r in kube.requests_to("PATCH")] == codes
    assert kube.requests_to("PATCH")[0].body == doc


def test_latency_is_added(kube: KubeApiFake, http: httpx.Client) -> None:
    kube.latency = 0.2
    response = http.get("/apis")
    assert response.elapsed.total_seconds() >= 0.2


def test_discovery_lists_the_status_subresource(http: httpx.Client) -> None:
    groups = {g["name"] for g in http.get("/apis").json()["groups"]}
    assert {"serving.kserve.io", "argoproj.io"} <= groups
    resources = http.get("/apis/argoproj.io/v1alpha1").json()["resources"]
    assert {r["name"] for r in resources} == {"rollouts", "rollouts/status"}


def test_controller_sim_splits_traffic_from_canary_percent(
    kube: KubeApiFake, http: httpx.Client, created: dict[str, Any]
) -> None:
    kube.kserve.reconcile("models", "iris")
    patch(
        http,
        f"{BASE}/iris",
        {"spec": {"predictor": {"model": {"storageUri": "s3://m/v2"}, "canaryTrafficPercent": 30}}},
    )
    status = kube.kserve.reconcile("models", "iris")["status"]
    traffic = {
        t["revisionName"]: (t["percent"], t.get("tag"))
        for t in status["components"]["predictor"]["traffic"]
    }
    assert traffic == {"iris-predictor-00001": (70, "prev"), "iris-predictor-00002": (30, None)}
    assert status["observedGeneration"] == 2


def test_merge_and_json_patch_helpers_follow_the_rfcs() -> None:
    assert merge_patch({"a": {"b": 1, "c": 2}}, {"a": {"b": None, "d": [1]}}) == {
        "a": {"c": 2, "d": [1]}
    }
    assert merge_patch({"a": 1}, {"a": {"b": None}}) == {"a": {}}
    doc = {"l": [1, 2], "o": {"x": 1}}
    ops = [
        {"op": "add", "path": "/l/-", "value": 3},
        {"op": "move", "from": "/o/x", "path": "/o/y"},
        {"op": "remove", "path": "/l/0"},
    ]
    assert json_patch(doc, ops) == {"l": [2, 3], "o": {"y": 1}}
    assert doc == {"l": [1, 2], "o": {"x": 1}}, "the input is not mutated"


def test_controller_sim_rolls_back_after_a_full_rollout_in_two_passes(
    kube: KubeApiFake, http: httpx.Client, created: dict[str, Any]
) -> None:
    kube.kserve.reconcile("models", "iris")
    v2 = {"model": {"storageUri": "s3://m/v2"}, "canaryTrafficPercent": 100}
    patch(http, f"{BASE}/iris", {"spec": {"predictor": v2}})
    full = kube.kserve.reconcile("models", "iris")["status"]["components"]["predictor"]
    assert full["traffic"] == [
        {"revisionName": "iris-predictor-00002", "percent": 100, "latestRevision": True}
    ]
    assert full["latestRolledoutRevision"] == "iris-predictor-00002"
    patch(http, f"{BASE}/iris", {"spec": {"predictor": {"canaryTrafficPercent": 0}}})
    first = kube.kserve.reconcile("models", "iris", converge=False)["status"]
    prev = [t for t in first["components"]["predictor"]["traffic"] if t.get("tag") == "prev"]
    assert prev[0]["revisionName"] == "iris-predictor-00002"  # split over the rolled-out one
    assert first["components"]["predictor"]["latestRolledoutRevision"] == "iris-predictor-00001"
    second = kube.kserve.reconcile("models", "iris", converge=False)["status"]
    prev = [t for t in second["components"]["predictor"]["traffic"] if t.get("tag") == "prev"]
    assert (prev[0]["revisionName"], prev[0]["percent"]) == ("iris-predictor-00001", 100)
