"""``serve``'s wiring of the observer: on with a cluster target, off otherwise; series on the
registry it is given (the API's /metrics)."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, generate_latest

from analyzer.config import ObserverSettings, Settings
from analyzer.targets.memory.target import InMemoryTarget
from analyzer.wiring import build_observer, build_service
from tests.fakes.kube_api import INFERENCE_SERVICES, KubeApiFake


def test_observer_runs_with_a_cluster_target_and_exports_its_series(pg_url: str) -> None:
    memory = Settings(database_url=pg_url)
    off = Settings(database_url=pg_url, traffic_target="kserve",
                   observer=ObserverSettings(enabled=False))  # fmt: skip
    watched = ObserverSettings(namespaces=("risk",), kinds=("inferenceservices",))
    on = Settings(database_url=pg_url, traffic_target="kserve", observer=watched)
    assert (memory.observer_enabled(), off.observer_enabled(), on.observer_enabled()) == (
        False, False, True,
    )  # fmt: skip
    service = build_service(on, target=InMemoryTarget())
    registry = CollectorRegistry()
    with KubeApiFake() as kube:
        assert build_observer(memory, service, api_client=kube.api_client()) is None
        kube.seed(INFERENCE_SERVICES, {
            "apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
            "metadata": {"name": "fraud", "namespace": "risk"},
            "spec": {"predictor": {"model": {"storageUri": "s3://m/v1"}}},
        })  # fmt: skip
        kube.kserve.reconcile("risk", "fraud")
        observer = build_observer(on, service, registry=registry, api_client=kube.api_client())
        assert observer is not None
        assert [(w.kind.plural, w.namespace) for w in observer.watches] == [
            ("inferenceservices", "risk")
        ]
        observer.start()
        try:
            assert observer.wait_synced(10)
            deadline = time.monotonic() + 5
            text = ""
            while "observations_total" not in text and time.monotonic() < deadline:
                text = generate_latest(registry).decode()
                time.sleep(0.05)
        finally:
            observer.stop()
            service.close()
    assert (
        'canary_analyzer_observer_events_total{kind="inferenceservices",type="ADDED"} 1.0' in text
    )
    assert 'outcome="recorded"} 1.0' in text
    assert (
        'canary_analyzer_observer_watch_total{kind="inferenceservices",what="relist"} 1.0' in text
    )
    assert 'canary_analyzer_observer_entries_total{event_type="traffic_changed"} 1.0' in text
