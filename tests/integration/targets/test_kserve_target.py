"""KServeTarget against the fake apiserver over HTTP: conflicts, faults, readiness, modes."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from kubernetes import client
from structlog.testing import capture_logs

from analyzer.domain.errors import FatalIntegrationError, NotFoundError, RetryableError
from analyzer.targets.kserve import KServeTarget
from analyzer.targets.kube import KubeConnectionSettings, build_api_client
from tests.fakes.kube_api import INFERENCE_SERVICES, KubeApiFake
from tests.integration.targets.support import (
    MODEL,
    FakeClock,
    deploy_canary,
    isvc,
    kserve_target,
)

ISVC_PATH = "/apis/serving.kserve.io/v1beta1/namespaces/models/inferenceservices/iris"


def stored_predictor(kube: KubeApiFake) -> dict[str, object]:
    return dict(kube.get(INFERENCE_SERVICES, "models", "iris")["spec"]["predictor"])


def test_patch_is_a_merge_patch_carrying_the_resource_version_it_read(
    kube: KubeApiFake, clock: FakeClock
) -> None:
    deploy_canary(kube)
    kserve_target(kube, clock).set_weight(MODEL, 10)
    patch = kube.requests_to("PATCH", ISVC_PATH)[0]
    read = kube.requests[kube.requests.index(patch) - 1]
    assert patch.content_type == "application/merge-patch+json"
    assert patch.body["spec"] == {"predictor": {"canaryTrafficPercent": 10}}
    assert read.method == "GET"
    assert patch.body["metadata"]["resourceVersion"] == read.response["metadata"]["resourceVersion"]
    assert patch.status == 200


def test_conflict_is_retried_by_reading_again(kube: KubeApiFake, clock: FakeClock) -> None:
    deploy_canary(kube)
    kube.interfere_next(2)
    with capture_logs() as logs:
        state = kserve_target(kube, clock).set_weight(MODEL, 25)
    assert state.canary_weight == 25
    patches = kube.requests_to("PATCH", ISVC_PATH)
    assert [p.status for p in patches] == [409, 409, 200]
    versions = [p.body["metadata"]["resourceVersion"] for p in patches]
    assert len(set(versions)) == 3, "each attempt must carry the version it freshly read"
    failures = [e for e in logs if e["event"] == "kube_call_failed"]
    assert [(e["attempt"], e["will_retry"]) for e in failures] == [(1, True), (2, True)]
    assert all("409" in e["error"] for e in failures)
    assert clock.sleeps[:2] == [0.1, 0.2]  # exponential backoff between attempts


def test_persistent_conflict_is_retryable_and_changes_nothing(
    kube: KubeApiFake, clock: FakeClock
) -> None:
    deploy_canary(kube)
    kube.interfere_next(100)
    target = kserve_target(kube, clock, max_attempts=3)
    with pytest.raises(RetryableError, match="gave up after 3 attempts"):
        target.set_weight(MODEL, 25)
    assert len(kube.requests_to("PATCH", ISVC_PATH)) == 3
    assert stored_predictor(kube)["canaryTrafficPercent"] == 0
    assert target.read_weight(MODEL).canary_weight == 0


def test_stale_resource_version_is_a_real_conflict_from_the_server(kube: KubeApiFake) -> None:
    deploy_canary(kube)
    api = client.CustomObjectsApi(kube.api_client())
    body = {
        "metadata": {"resourceVersion": "1"},
        "spec": {"predictor": {"canaryTrafficPercent": 5}},
    }
    with pytest.raises(client.ApiException) as raised:
        api.patch_namespaced_custom_object(
            "serving.kserve.io", "v1beta1", "models", "inferenceservices", "iris", body
        )
    assert raised.value.status == 409
    assert stored_predictor(kube)["canaryTrafficPercent"] == 0


def test_server_errors_are_retried_then_succeed(kube: KubeApiFake, clock: FakeClock) -> None:
    deploy_canary(kube)
    kube.fail_next(2, status=503, method="PATCH")
    state = kserve_target(kube, clock).set_weight(MODEL, 50)
    assert state.canary_weight == 50
    assert [p.status for p in kube.requests_to("PATCH", ISVC_PATH)] == [503, 503, 200]


def test_server_errors_that_persist_become_retryable_error(
    kube: KubeApiFake, clock: FakeClock
) -> None:
    deploy_canary(kube)
    kube.fail_next(100, status=500)
    with pytest.raises(RetryableError, match="HTTP 500"):
        kserve_target(kube, clock, max_attempts=3).set_weight(MODEL, 50)
    assert len(kube.requests) == 3
    assert stored_predictor(kube)["canaryTrafficPercent"] == 0


def test_client_errors_are_fatal_without_retry(kube: KubeApiFake, clock: FakeClock) -> None:
    deploy_canary(kube)
    kube.fail_next(1, status=403)
    with pytest.raises(FatalIntegrationError, match="HTTP 403"):
        kserve_target(kube, clock).set_weight(MODEL, 10)
    assert len(kube.requests) == 1


def test_timeouts_are_retryable(kube: KubeApiFake, clock: FakeClock) -> None:
    deploy_canary(kube)
    kube.latency = 0.3
    target = kserve_target(kube, clock, max_attempts=2, request_timeout=0.05)
    with pytest.raises(RetryableError, match="gave up after 2 attempts"):
        target.read_weight(MODEL)


def test_promote_removes_the_field(kube: KubeApiFake, clock: FakeClock) -> None:
    _stable, canary = deploy_canary(kube)
    target = kserve_target(kube, clock)
    target.set_weight(MODEL, 50)
    state = target.promote(MODEL)
    last_patch = kube.requests_to("PATCH", ISVC_PATH)[-1]
    assert last_patch.body["spec"] == {"predictor": {"canaryTrafficPercent": None}}
    assert "canaryTrafficPercent" not in stored_predictor(kube)
    assert (state.stable_revision, state.canary_revision) == (canary, None)
    predictor = kube.get(INFERENCE_SERVICES, "models", "iris")["status"]["components"]["predictor"]
    assert predictor["latestRolledoutRevision"] == canary


def test_abort_sets_zero_and_keeps_the_canary_revision(kube: KubeApiFake, clock: FakeClock) -> None:
    stable, canary = deploy_canary(kube)
    target = kserve_target(kube, clock)
    target.set_weight(MODEL, 25)
    state = target.abort(MODEL)
    assert stored_predictor(kube)["canaryTrafficPercent"] == 0
    assert (state.stable_revision, state.canary_revision, state.canary_weight) == (
        stable,
        canary,
        0,
    )


def test_waits_until_the_controller_has_applied_the_change(clock: FakeClock) -> None:
    with KubeApiFake(controller_lag_reads=3) as kube:
        deploy_canary(kube)
        reconciles = kube.kserve.reconciles
        state = kserve_target(kube, clock).set_weight(MODEL, 10)
        assert state.canary_weight == 10
        assert state.settled
        assert kube.kserve.reconciles == reconciles + 1
        assert clock.sleeps == [1.0, 1.0, 1.0]  # three polls before the controller caught up


def test_does_not_trust_observed_generation_which_follows_the_knative_service(
    kube: KubeApiFake, clock: FakeClock
) -> None:
    _stable, canary = deploy_canary(kube)
    # A transformer edit bumps the InferenceService's generation but not the predictor ksvc's,
    # whose generation KServe reports as status.observedGeneration.
    kube.store.write(
        INFERENCE_SERVICES,
        "models",
        "iris",
        lambda o: {**o, "spec": {**o["spec"], "transformer": {"containers": [{"image": "t:2"}]}}},
        status=False,
    )
    kube.kserve.reconcile("models", "iris")
    state = kserve_target(kube, clock).set_weight(MODEL, 25)
    assert state.percent_of(canary) == 25
    obj = kube.get(INFERENCE_SERVICES, "models", "iris")
    assert obj["status"]["observedGeneration"] < obj["metadata"]["generation"]


def test_a_status_not_yet_showing_a_new_predictor_is_waited_for(clock: FakeClock) -> None:
    with KubeApiFake(controller_lag_reads=2) as kube:
        kube.seed(INFERENCE_SERVICES, isvc())
        kube.kserve.reconcile("models", "iris")
        new_spec = isvc(storage_uri="s3://models/iris/v2", percent=0)["spec"]
        kube.store.write(
            INFERENCE_SERVICES, "models", "iris", lambda o: {**o, "spec": new_spec}, status=False
        )
        # The status still shows only v1 (Ready): a target must wait, not declare "no canary".
        state = kserve_target(kube, clock).set_weight(MODEL, 10)
        assert (state.canary_revision, state.canary_weight) == ("iris-predictor-00002", 10)


def test_unobserved_change_times_out_as_retryable_and_reports_the_truth(
    clock: FakeClock,
) -> None:
    with KubeApiFake(controller_lag_reads=None) as kube:  # the controller never reacts
        deploy_canary(kube)
        target = kserve_target(kube, clock, ready_timeout=5.0)
        with pytest.raises(RetryableError, match="set weight 10 not confirmed after 5s"):
            target.set_weight(MODEL, 10)
        assert clock.now >= 5.0
        state = target.read_weight(MODEL)
        assert state.requested_weight == 10
        assert state.canary_weight == 0, "never claim a weight the cluster does not show"
        assert not state.settled


def test_canary_revision_that_never_becomes_ready_is_fatal(
    kube: KubeApiFake, clock: FakeClock
) -> None:
    kube.kserve.never_ready = True  # revisions created from now on never become ready
    kube.seed(INFERENCE_SERVICES, isvc())
    kube.kserve.never_ready = False
    kube.kserve.reconcile("models", "iris")
    kube.kserve.never_ready = True
    kube.store.write(
        INFERENCE_SERVICES,
        "models",
        "iris",
        lambda o: {**o, "spec": isvc(storage_uri="s3://models/iris/broken", percent=0)["spec"]},
        status=False,
    )
    kube.kserve.reconcile("models", "iris")
    target = kserve_target(kube, clock, ready_timeout=10.0)
    with pytest.raises(FatalIntegrationError, match="iris-predictor-00002 never became ready"):
        target.set_weight(MODEL, 10)
    assert clock.now >= 10.0
    state = target.abort(MODEL)  # still possible: all traffic stays on the ready revision
    assert state.canary_weight == 0
    assert state.stable_revision == "iris-predictor-00001"


@pytest.mark.parametrize("mode", ["RawDeployment", "Standard", "ModelMesh"])
def test_non_serverless_modes_are_refused_before_any_write(
    kube: KubeApiFake, clock: FakeClock, mode: str
) -> None:
    kube.seed(INFERENCE_SERVICES, isvc(mode=mode))
    kube.kserve.reconcile("models", "iris")
    assert kube.get(INFERENCE_SERVICES, "models", "iris")["status"]["deploymentMode"] == mode
    target = kserve_target(kube, clock)
    with pytest.raises(FatalIntegrationError, match=f"deploymentMode '{mode}'"):
        target.set_weight(MODEL, 10)
    with pytest.raises(FatalIntegrationError, match=f"deploymentMode '{mode}'"):
        target.promote(MODEL)
    with pytest.raises(FatalIntegrationError, match=f"deploymentMode '{mode}'"):
        target.abort(MODEL)
    assert kube.requests_to("PATCH") == []


def test_missing_inference_service_is_not_found(kube: KubeApiFake, clock: FakeClock) -> None:
    with pytest.raises(NotFoundError, match="not found"):
        kserve_target(kube, clock).abort(MODEL)
    assert len(kube.requests) == 1, "404 is not retried"


def test_kubeconfig_factory_reaches_the_fake(
    kube: KubeApiFake, clock: FakeClock, tmp_path: Path
) -> None:
    _stable, canary = deploy_canary(kube)
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "fake", "cluster": {"server": kube.url}}],
        "users": [{"name": "bot", "user": {"token": "t0ken"}}],
        "contexts": [{"name": "test", "context": {"cluster": "fake", "user": "bot"}}],
        "current-context": "test",
    }
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(kubeconfig))
    api_client = build_api_client(KubeConnectionSettings(in_cluster=False, kubeconfig=str(path)))
    state = KServeTarget(api_client, clock=clock, sleep=clock.sleep).read_weight(MODEL)
    assert state.canary_revision == canary


def test_weight_100_rolls_out_and_abort_still_rolls_back(
    kube: KubeApiFake, clock: FakeClock
) -> None:
    stable, canary = deploy_canary(kube)
    target = kserve_target(kube, clock)
    at_full = target.set_weight(MODEL, 100)
    assert (at_full.stable_revision, at_full.canary_revision) == (stable, canary)
    assert (at_full.canary_weight, at_full.percent_of(stable)) == (100, 0)

    def rolled_out() -> str:
        predictor = kube.get(INFERENCE_SERVICES, "models", "iris")["status"]["components"]
        return str(predictor["predictor"]["latestRolledoutRevision"])

    assert rolled_out() == canary  # KServe: a revision at 100 % is rolled out
    state = target.abort(MODEL)
    assert rolled_out() == stable  # ... and rolled back to the previous one at 0 %
    # The target saw KServe's in-between pass (0/100 split over the canary) and kept waiting.
    in_between = [
        r
        for r in kube.requests_to("GET", ISVC_PATH)
        if r.response["spec"]["predictor"].get("canaryTrafficPercent") == 0
        and {t["revisionName"] for t in r.response["status"]["components"]["predictor"]["traffic"]}
        == {canary}
    ]
    assert in_between, "expected to observe the intermediate status at least once"
    assert (state.stable_revision, state.percent_of(stable)) == (stable, 100)


def test_weight_without_a_canary_is_refused_before_writing(
    kube: KubeApiFake, clock: FakeClock
) -> None:
    kube.seed(INFERENCE_SERVICES, isvc())
    kube.kserve.reconcile("models", "iris")
    with pytest.raises(FatalIntegrationError, match="no canary revision"):
        kserve_target(kube, clock).set_weight(MODEL, 10)
    assert kube.requests_to("PATCH") == []
    assert "canaryTrafficPercent" not in stored_predictor(kube)


def test_in_cluster_factory_uses_the_service_account(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from kubernetes.config import incluster_config

    token, cert = tmp_path / "token", tmp_path / "ca.crt"
    token.write_text("sa-token")
    cert.write_text("-----BEGIN CERTIFICATE-----\n")
    monkeypatch.setattr(incluster_config, "SERVICE_TOKEN_FILENAME", str(token))
    monkeypatch.setattr(incluster_config, "SERVICE_CERT_FILENAME", str(cert))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    api_client = build_api_client(KubeConnectionSettings())  # auto: in-cluster env is present
    assert api_client.configuration.host == "https://10.0.0.1:443"
    assert "sa-token" in api_client.configuration.api_key["BearerToken"]
    assert api_client.configuration.retries is False


def test_promote_waits_for_a_canary_the_controller_has_not_created_yet(clock: FakeClock) -> None:
    with KubeApiFake(controller_lag_reads=2) as kube:
        kube.seed(INFERENCE_SERVICES, isvc())
        kube.kserve.reconcile("models", "iris")
        new_spec = isvc(storage_uri="s3://models/iris/v2", percent=0)["spec"]
        kube.store.write(
            INFERENCE_SERVICES, "models", "iris", lambda o: {**o, "spec": new_spec}, status=False
        )
        state = kserve_target(kube, clock).promote(MODEL)  # the controller lags two reads
        assert (state.stable_revision, state.canary_revision) == ("iris-predictor-00002", None)
        assert "canaryTrafficPercent" not in stored_predictor(kube)
