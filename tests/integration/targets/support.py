"""Helpers for the traffic-target tests: a fake clock, InferenceService bodies, seeded canaries."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from analyzer.domain.model import ModelRef
from analyzer.targets.kserve import KServeTarget, KServeTargetSettings
from analyzer.targets.kube import RetryPolicy
from tests.fakes.kube_api import INFERENCE_SERVICES, KubeApiFake

MODEL = ModelRef(namespace="models", name="iris")


@dataclass
class FakeClock:
    """A monotonic clock that only moves when something sleeps; ``on_sleep`` plays the cluster."""

    now: float = 0.0
    sleeps: list[float] = field(default_factory=list)
    on_sleep: Callable[[], object] | None = None

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        if self.on_sleep is not None:
            self.on_sleep()


def isvc(
    name: str = MODEL.name,
    *,
    storage_uri: str = "s3://models/iris/v1",
    percent: int | None = None,
    mode: str | None = None,
    namespace: str = MODEL.namespace,
) -> dict[str, Any]:
    predictor: dict[str, Any] = {
        "model": {"modelFormat": {"name": "sklearn"}, "storageUri": storage_uri}
    }
    if percent is not None:
        predictor["canaryTrafficPercent"] = percent
    meta: dict[str, Any] = {"name": name, "namespace": namespace}
    if mode is not None:
        meta["annotations"] = {"serving.kserve.io/deploymentMode": mode}
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": meta,
        "spec": {"predictor": predictor},
    }


def deploy_canary(kube: KubeApiFake, ref: ModelRef = MODEL) -> tuple[str, str]:
    """v1 rolled out, then a v2 predictor applied at 0 %: returns (stable, canary) revisions."""
    kube.seed(INFERENCE_SERVICES, isvc(ref.name, namespace=ref.namespace))
    kube.kserve.reconcile(ref.namespace, ref.name)
    kube.store.write(
        INFERENCE_SERVICES,
        ref.namespace,
        ref.name,
        lambda o: {
            **o,
            "spec": isvc(ref.name, storage_uri="s3://models/iris/v2", percent=0)["spec"],
        },
        status=False,
    )
    status = kube.kserve.reconcile(ref.namespace, ref.name)["status"]["components"]["predictor"]
    return status["latestRolledoutRevision"], status["latestReadyRevision"]


def kserve_target(kube: KubeApiFake, clock: FakeClock, **overrides: Any) -> KServeTarget:
    retry = RetryPolicy(
        max_attempts=overrides.pop("max_attempts", 4), initial_backoff=0.1, max_backoff=1.0
    )
    settings = KServeTargetSettings(
        **{
            "poll_interval": 1.0,
            "ready_timeout": 30.0,
            "request_timeout": 5.0,
            "retry": retry,
            **overrides,
        }
    )
    return KServeTarget(kube.api_client(), settings=settings, clock=clock, sleep=clock.sleep)
