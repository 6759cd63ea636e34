"""The Istio mirror target against the fake apiserver over HTTP (networking.istio.io/v1)."""

from __future__ import annotations

from typing import Any

import pytest

from analyzer.domain.errors import FatalIntegrationError, NotFoundError
from analyzer.domain.model import ModelRef
from analyzer.targets.istio import IstioMirrorSettings, IstioMirrorTarget
from analyzer.targets.kube import RetryPolicy
from analyzer.targets.mirror import ShadowTraffic
from tests.fakes.kube_api import VIRTUAL_SERVICES, KubeApiFake
from tests.integration.targets.support import MODEL, FakeClock

SERVING_HOST = "iris-predictor.models.svc.cluster.local"
CHALLENGER = "iris-predictor-00002"


def virtual_service(name: str = MODEL.name, **route: Any) -> dict[str, Any]:
    http = [
        {"name": "health", "match": [{"uri": {"prefix": "/healthz"}}],
         "route": [{"destination": {"host": "health.models.svc.cluster.local"}}]},
        {"name": "predict", "timeout": "30s",
         "route": [{"destination": {"host": SERVING_HOST}, "weight": 100}], **route},
    ]  # fmt: skip
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": name, "namespace": MODEL.namespace},
        "spec": {
            "hosts": [f"{name}.models.example.com"],
            "gateways": ["knative-serving/gw"],
            "http": http,
        },
    }


def target(kube: KubeApiFake, clock: FakeClock, **settings: Any) -> IstioMirrorTarget:
    retry = RetryPolicy(max_attempts=4, initial_backoff=0.1, max_backoff=1.0)
    return IstioMirrorTarget(
        kube.api_client(),
        settings=IstioMirrorSettings(route_name="predict", retry=retry, **settings),
        sleep=clock.sleep,
    )


def predict_route(kube: KubeApiFake) -> dict[str, Any]:
    obj = kube.store.get(VIRTUAL_SERVICES, MODEL.namespace, MODEL.name)
    route: dict[str, Any] = obj["spec"]["http"][1]
    return route


def test_mirror_set_read_back_and_removed_without_touching_live_routing(
    kube: KubeApiFake, clock: FakeClock
) -> None:
    kube.seed(VIRTUAL_SERVICES, virtual_service())
    mirror = target(kube, clock)
    before = mirror.read_mirror(MODEL)
    assert (before.mirror_revision, before.mirror_percent) == (None, 0)
    assert before.serving_revision == SERVING_HOST
    state = mirror.start_mirror(MODEL, CHALLENGER, 25)
    assert (state.mirror_revision, state.mirror_percent) == (CHALLENGER, 25)
    route = predict_route(kube)
    assert route["mirror"] == {"host": f"{CHALLENGER}.models.svc.cluster.local"}
    assert route["mirrorPercentage"] == {"value": 25.0}
    assert route["route"] == [{"destination": {"host": SERVING_HOST}, "weight": 100}]
    assert route["timeout"] == "30s"  # the rest of the route is kept
    patches = [r for r in kube.requests if r.method == "PATCH"]
    assert len(patches) == 1
    assert patches[0].content_type == "application/merge-patch+json"
    assert patches[0].body["metadata"]["resourceVersion"]  # a conditional write
    assert "/apis/networking.istio.io/v1/namespaces/models/virtualservices/iris" in patches[0].path
    again = mirror.start_mirror(MODEL, CHALLENGER, 25)  # idempotent: no second write
    assert again == state
    assert len([r for r in kube.requests if r.method == "PATCH"]) == 1
    gone = mirror.stop_mirror(MODEL)
    assert (gone.mirror_revision, gone.mirror_percent) == (None, 0)
    assert "mirror" not in predict_route(kube)
    assert "mirrorPercentage" not in predict_route(kube)
    assert predict_route(kube)["route"][0]["destination"]["host"] == SERVING_HOST


def test_a_concurrent_writer_gets_a_409_and_the_write_is_redone_on_fresh_data(
    kube: KubeApiFake, clock: FakeClock
) -> None:
    kube.seed(VIRTUAL_SERVICES, virtual_service())
    kube.interfere_next(1)
    state = target(kube, clock).start_mirror(MODEL, CHALLENGER, 100)
    assert state.mirror_percent == 100
    assert [r.status for r in kube.requests if r.method == "PATCH"] == [409, 200]
    obj = kube.store.get(VIRTUAL_SERVICES, MODEL.namespace, MODEL.name)
    assert obj["metadata"]["annotations"]["example.com/touched"] == "1"  # theirs is kept


def test_no_mesh_or_no_virtual_service_is_a_clear_refusal(clock: FakeClock) -> None:
    with (
        KubeApiFake(mesh=False) as bare,
        pytest.raises(NotFoundError, match="is the mesh installed"),
    ):
        target(bare, clock).read_mirror(MODEL)
    with KubeApiFake() as kube:
        with pytest.raises(NotFoundError, match="no Istio VirtualService models/iris"):
            target(kube, clock).start_mirror(MODEL, CHALLENGER, 10)
        kube.seed(VIRTUAL_SERVICES, virtual_service())
        with pytest.raises(FatalIntegrationError, match="no HTTP route named 'score'"):
            IstioMirrorTarget(
                kube.api_client(), settings=IstioMirrorSettings(route_name="score"),
                sleep=clock.sleep,
            ).read_mirror(MODEL)  # fmt: skip


def test_a_mirror_to_someone_elses_host_is_reported_as_such(
    kube: KubeApiFake, clock: FakeClock
) -> None:
    kube.seed(VIRTUAL_SERVICES, virtual_service(mirror={"host": "audit-sink.ops.svc"}))
    seen = target(kube, clock).read_mirror(MODEL)
    # no mirrorPercentage: Istio mirrors every request
    assert (seen.mirror_revision, seen.mirror_percent) == ("audit-sink.ops.svc", 100)
    shadow = ShadowTraffic(target(kube, clock), CHALLENGER)
    assert shadow.read_weight(MODEL).canary_weight == 0  # not our challenger's mirror


def test_the_apiserver_refuses_a_percentage_out_of_range(kube: KubeApiFake) -> None:
    bad = virtual_service(mirror={"host": "x.models.svc"}, mirrorPercentage={"value": 150})
    with pytest.raises(Exception, match="between 0 and 100"):
        kube.seed(VIRTUAL_SERVICES, bad)


def test_shadow_traffic_speaks_the_traffic_contract_over_the_mirror(
    kube: KubeApiFake, clock: FakeClock
) -> None:
    kube.seed(VIRTUAL_SERVICES, virtual_service())
    shadow = ShadowTraffic(target(kube, clock), CHALLENGER)
    state = shadow.set_weight(MODEL, 40)
    assert (state.canary_revision, state.canary_weight) == (CHALLENGER, 40)
    assert state.percent_of(CHALLENGER) == 0  # mirrored, never served
    assert state.percent_of(SERVING_HOST) == 100
    assert shadow.abort(MODEL).canary_weight == 0
    assert "mirror" not in predict_route(kube)
    shadow.set_weight(MODEL, 40)
    assert shadow.promote(MODEL).canary_revision is None  # "shadow passed": mirror removed
    assert "mirror" not in predict_route(kube)
    other = ModelRef(namespace="models", name="absent")
    with pytest.raises(NotFoundError):
        shadow.read_weight(other)
