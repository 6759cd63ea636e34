"""The ModelMesh fleet target against the fake apiserver and its ModelMesh controller."""

from __future__ import annotations

import pytest

from analyzer.domain.errors import FatalIntegrationError, InvalidInputError, RetryableError
from analyzer.domain.model import ModelRef
from analyzer.targets.kube import RetryPolicy
from analyzer.targets.modelmesh import ModelMeshTarget, ModelMeshTargetSettings
from tests.fakes.kube_api import INFERENCE_SERVICES, KubeApiFake
from tests.fakes.modelmesh import modelmesh_isvc
from tests.integration.targets.support import FakeClock, isvc

NS = "merchants"
SETTINGS = ModelMeshTargetSettings(
    poll_interval=1.0, ready_timeout=30.0, retry=RetryPolicy(max_attempts=4, initial_backoff=0.01)
)


def _seed(kube: KubeApiFake, name: str, *, team: str = "anomaly") -> ModelRef:
    kube.seed(
        INFERENCE_SERVICES,
        modelmesh_isvc(NS, name, f"s3://models/{name}/v1", "triton-1", {"team": team}),
    )
    kube.modelmesh.reconcile(NS, name)  # loaded
    return ModelRef(namespace=NS, name=name)


def _target(kube: KubeApiFake, clock: FakeClock) -> ModelMeshTarget:
    return ModelMeshTarget(kube.api_client(), settings=SETTINGS, clock=clock, sleep=clock.sleep)


def test_select_lists_the_fleet_by_labels(kube: KubeApiFake, clock: FakeClock) -> None:
    for i in range(5):
        _seed(kube, f"merchant-{i}")
    _seed(kube, "other", team="fraud")
    target = _target(kube, clock)
    assert target.select(NS, {"team": "anomaly"}) == [f"merchant-{i}" for i in range(5)]
    listed = kube.requests_to("GET", "/inferenceservices")[-1]
    assert listed.query["labelSelector"] == ["team=anomaly"]
    before = len(kube.requests)
    for bad in ({"team": 'x"; drop'}, {"bad key!": "x"}, {}):
        with pytest.raises(InvalidInputError):
            target.select(NS, bad)
    assert len(kube.requests) == before  # refused before any request


def test_read_all_reads_the_namespace_in_one_list(kube: KubeApiFake, clock: FakeClock) -> None:
    for i in range(5):
        _seed(kube, f"merchant-{i}")
    serverless = isvc("fraud")  # Serverless: not a fleet model
    serverless["metadata"]["namespace"] = NS
    kube.seed(INFERENCE_SERVICES, serverless)
    before = len(kube.requests)
    got = _target(kube, clock).read_all(NS)
    assert len(kube.requests) == before + 1
    assert sorted(got) == [f"merchant-{i}" for i in range(5)]
    assert got["merchant-3"].storage_uri == "s3://models/merchant-3/v1"
    assert got["merchant-3"].runtime == "triton-1"
    assert got["merchant-3"].ready


def test_a_selector_catching_a_serverless_service_is_refused(
    kube: KubeApiFake, clock: FakeClock
) -> None:
    _seed(kube, "merchant-0")
    serverless = isvc("fraud")
    serverless["metadata"].update(namespace=NS, labels={"team": "anomaly"})
    kube.seed(INFERENCE_SERVICES, serverless)
    with pytest.raises(FatalIntegrationError, match="not in ModelMesh mode: fraud"):
        _target(kube, clock).select(NS, {"team": "anomaly"})
    with pytest.raises(FatalIntegrationError, match="not ModelMesh"):
        _target(kube, clock).read(ModelRef(namespace=NS, name="fraud"))


def test_move_patches_the_model_and_waits_until_loaded(kube: KubeApiFake, clock: FakeClock) -> None:
    ref = _seed(kube, "merchant-0")
    target = _target(kube, clock)
    assert target.read(ref).storage_uri == "s3://models/merchant-0/v1"
    assert target.read(ref).ready
    got = target.move(ref, storage_uri="s3://models/merchant-0/v2", runtime="triton-2")
    assert got.ready
    assert (got.storage_uri, got.runtime) == ("s3://models/merchant-0/v2", "triton-2")
    patch = kube.requests_to("PATCH", "/merchant-0")[-1]
    assert patch.body["spec"] == {
        "predictor": {"model": {"storageUri": "s3://models/merchant-0/v2", "runtime": "triton-2"}}
    }
    assert patch.body["metadata"]["resourceVersion"]
    assert patch.query["fieldManager"] == ["canary-analyzer"]
    assert clock.sleeps  # it waited for the controller rather than trusting the old status
    status = kube.get(INFERENCE_SERVICES, NS, "merchant-0")["status"]["modelStatus"]
    assert status["transitionStatus"] == "UpToDate"
    # moving again to the same place writes nothing
    patches = len(kube.requests_to("PATCH"))
    target.move(ref, storage_uri="s3://models/merchant-0/v2", runtime="triton-2")
    assert len(kube.requests_to("PATCH")) == patches


def test_a_model_evicted_to_standby_after_loading_counts_as_moved(
    kube: KubeApiFake, clock: FakeClock
) -> None:
    ref = _seed(kube, "merchant-0")
    kube.modelmesh.standby.add("s3://models/merchant-0/v2")
    got = _target(kube, clock).move(ref, storage_uri="s3://models/merchant-0/v2", runtime=None)
    assert got.ready
    assert got.storage_uri == "s3://models/merchant-0/v2"
    states = kube.get(INFERENCE_SERVICES, NS, "merchant-0")["status"]["modelStatus"]["states"]
    assert states["activeModelState"] == "Standby"


def test_a_model_that_fails_to_load_is_a_fatal_error_and_the_old_one_serves(
    kube: KubeApiFake, clock: FakeClock
) -> None:
    ref = _seed(kube, "merchant-0")
    kube.modelmesh.failing.add("s3://models/merchant-0/broken")
    with pytest.raises(FatalIntegrationError, match=r"did not load.*failed to load"):
        _target(kube, clock).move(ref, storage_uri="s3://models/merchant-0/broken", runtime=None)
    states = kube.get(INFERENCE_SERVICES, NS, "merchant-0")["status"]["modelStatus"]["states"]
    assert states == {"activeModelState": "Loaded", "targetModelState": "FailedToLoad"}


def test_conflicts_are_answered_by_reading_again(kube: KubeApiFake, clock: FakeClock) -> None:
    ref = _seed(kube, "merchant-0")
    kube.interfere_next(2)
    got = _target(kube, clock).move(ref, storage_uri="s3://models/merchant-0/v2", runtime=None)
    assert got.storage_uri == "s3://models/merchant-0/v2"
    assert [r.status for r in kube.requests_to("PATCH")] == [409, 409, 200]


def test_a_controller_that_never_loads_is_a_retryable_timeout(clock: FakeClock) -> None:
    with KubeApiFake(controller_lag_reads=None) as kube:
        ref = _seed(kube, "merchant-0")
        with pytest.raises(RetryableError, match="not loaded after 30s"):
            _target(kube, clock).move(ref, storage_uri="s3://models/merchant-0/v2", runtime=None)
        assert clock.now >= 30.0
