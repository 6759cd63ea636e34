"""The traffic observer against the fake apiserver (real HTTP) and PostgreSQL: exactly one entry
per real change, across two replicas, restarts, relists after 410 and replays."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine

from analyzer.db import make_engine
from analyzer.domain.events import EventType, LedgerEvent
from analyzer.domain.model import ModelRef
from analyzer.ledger.chain import EntryRecord
from analyzer.ledger.store import Ledger
from analyzer.observer import ObservedTrafficRecorder, TrafficObserver
from analyzer.targets.kube_watch import WatchBackoff
from tests.fakes.kube_api import INFERENCE_SERVICES, KubeApiFake, merge_patch

MODEL = ModelRef(namespace="risk", name="fraud")


def isvc(uri: str = "s3://models/fraud/v1") -> dict[str, Any]:
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": "fraud", "namespace": "risk"},
        "spec": {"predictor": {"model": {"storageUri": uri}}},
    }


def new_canary(kube: KubeApiFake, uri: str, percent: int, manager: str = "kubectl-patch") -> None:
    """Someone deploys a new model version as a canary at ``percent`` in one patch."""
    patch = {"spec": {"predictor": {"model": {"storageUri": uri}, "canaryTrafficPercent": percent}}}
    kube.store.write(
        INFERENCE_SERVICES, "risk", "fraud", lambda o: merge_patch(o, patch), status=False,
        manager=manager,
    )  # fmt: skip
    kube.kserve.reconcile("risk", "fraud")


@pytest.fixture
def kube() -> Iterator[KubeApiFake]:
    with KubeApiFake() as fake:
        fake.watches.bookmark_interval = 0.2
        fake.seed(INFERENCE_SERVICES, isvc())
        fake.kserve.reconcile("risk", "fraud")
        yield fake


class Replicas:
    """Observers as separate replicas would run them: each with its own engine and watches."""

    def __init__(self, url: str, kube: KubeApiFake) -> None:
        self._url, self._kube = url, kube
        self.running: list[tuple[TrafficObserver, Engine]] = []

    def start(self) -> TrafficObserver:
        engine = make_engine(self._url)
        recorder = ObservedTrafficRecorder(engine, Ledger(engine))
        observer = TrafficObserver(
            self._kube.api_client(), recorder, kinds=["inferenceservices"], namespaces=["risk"],
            registry=CollectorRegistry(), backoff=WatchBackoff(initial=0.05, maximum=0.2),
        )  # fmt: skip
        observer.start()
        assert observer.wait_synced(10)
        self.running.append((observer, engine))
        return observer

    def stop_all(self) -> None:
        for observer, engine in self.running:
            observer.stop()
            engine.dispose()
        self.running.clear()


@pytest.fixture
def replicas(pg_url: str, kube: KubeApiFake) -> Iterator[Replicas]:
    group = Replicas(pg_url, kube)
    yield group
    group.stop_all()


def traffic(ledger: Ledger) -> list[EntryRecord]:
    page = ledger.events(model=MODEL, event_types=[EventType.TRAFFIC_CHANGED], limit=1000)
    return list(page.entries)


def splits(ledger: Ledger) -> list[dict[str, int]]:
    return [{s["revision"]: s["weight"] for s in e.data()["split"]} for e in traffic(ledger)]


def eventually(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.05)


def settle(ledger: Ledger, count: int) -> None:
    """Wait for ``count`` traffic entries, then long enough for any duplicate to show up."""
    eventually(lambda: len(traffic(ledger)) >= count)
    time.sleep(0.6)
    assert len(traffic(ledger)) == count


def test_two_replicas_record_each_change_once_with_identity_owner_and_artifacts(
    pg_engine: Engine, kube: KubeApiFake, replicas: Replicas
) -> None:
    ledger = Ledger(pg_engine)
    first, second = replicas.start(), replicas.start()
    settle(ledger, 1)
    new_canary(kube, "s3://models/fraud/v2", 10)
    kube.person_sets_canary_percent("risk", "fraud", 50)
    settle(ledger, 3)
    v1, v2 = "fraud-predictor-00001", "fraud-predictor-00002"
    assert splits(ledger) == [{v1: 100}, {v2: 10, v1: 90}, {v2: 50, v1: 50}]
    last = traffic(ledger)[-1]
    data = last.data()
    obj = kube.get(INFERENCE_SERVICES, "risk", "fraud")
    assert (data["source"], data["owner"], data["owner_manager"]) == (
        "observed", "manual", "kubectl-patch",
    )  # fmt: skip
    assert (data["uid"], data["resource_version"], data["kind"]) == (
        obj["metadata"]["uid"], obj["metadata"]["resourceVersion"], "InferenceService",
    )  # fmt: skip
    assert (data["canary_weight"], data["cause"], data["links"]) == (
        50, "canary at 50%", {"rollout": None},
    )  # fmt: skip
    assert last.actor == "observed:kubectl-patch"
    registered = ledger.events(model=MODEL, event_types=[EventType.REVISION_REGISTERED]).entries
    assert [(e.revision, e.data()["artifact_uri"]) for e in registered] == [
        (v1, "s3://models/fraud/v1"), (v2, "s3://models/fraud/v2"),
    ]  # fmt: skip
    answer = ledger.serving_at(MODEL, last.recorded_at)
    assert {(r.revision, r.weight, r.artifact_uri) for r in answer.revisions} == {
        (v1, 50.0, "s3://models/fraud/v1"), (v2, 50.0, "s3://models/fraud/v2"),
    }  # fmt: skip
    outcomes = [first.metrics.outcomes, second.metrics.outcomes]
    replayed = sum(
        m.labels(kind="inferenceservices", outcome="replayed")._value.get() for m in outcomes
    )
    assert replayed >= 2, "the other replica found each change already recorded"
    assert ledger.verify().intact


def test_restart_relist_after_410_and_replays_change_nothing(
    pg_engine: Engine, kube: KubeApiFake, replicas: Replicas
) -> None:
    ledger = Ledger(pg_engine)
    replicas.start()
    new_canary(kube, "s3://models/fraud/v2", 25)
    settle(ledger, 2)
    replicas.stop_all()
    kube.person_sets_canary_percent("risk", "fraud", 40)  # while no observer runs
    observer = replicas.start()  # the restart lists: the change it missed is recorded once
    settle(ledger, 3)
    assert splits(ledger)[-1] == {"fraud-predictor-00002": 40, "fraud-predictor-00001": 60}
    with kube.store.lock:  # the watch resumes from a compacted version: 410, relist
        kube.drop_watches()
        kube.store.delete(INFERENCE_SERVICES, "risk", "fraud")  # deleted in the gap
        kube.compact()
    eventually(lambda: observer.metrics.watch.labels(kind="inferenceservices", what="gone")
               ._value.get() >= 1)  # fmt: skip
    settle(ledger, 4)  # the relist finds it gone: recorded once, as serving nothing
    gone = traffic(ledger)[-1]
    assert gone.data()["split"] == []
    assert gone.data()["cause"].endswith("serves nothing")
    kube.seed(INFERENCE_SERVICES, isvc())  # re-created: a new uid, serving again
    kube.kserve.reconcile("risk", "fraud")
    settle(ledger, 5)
    assert list(splits(ledger)[-1].values()) == [100]
    kube.store.delete(INFERENCE_SERVICES, "risk", "fraud")
    settle(ledger, 6)
    gone = traffic(ledger)[-1]
    assert gone.data()["split"] == []
    assert gone.data()["cause"].endswith("serves nothing")
    assert ledger.serving_at(MODEL, gone.recorded_at).revisions == ()
    assert ledger.verify().intact


def test_a_split_the_ledger_already_holds_is_not_recorded_again(
    pg_engine: Engine, kube: KubeApiFake, replicas: Replicas
) -> None:
    ledger = Ledger(pg_engine)
    ledger.record(
        LedgerEvent(
            type=EventType.TRAFFIC_CHANGED, actor="engine", model=MODEL, rollout_id=None,
            revision="fraud-predictor-00001",
            data={"split": [{"revision": "fraud-predictor-00001", "weight": 100}],
                  "step": 0, "canary_weight": 0, "cause": "promoted"},
        )
    )  # fmt: skip
    observer = replicas.start()
    time.sleep(0.5)
    assert [e.actor for e in traffic(ledger)] == ["engine"]
    unchanged = observer.metrics.outcomes.labels(kind="inferenceservices", outcome="unchanged")
    assert unchanged._value.get() == 1
    new_canary(kube, "s3://models/fraud/v2", 10, manager="canary-analyzer")
    settle(ledger, 2)
    assert traffic(ledger)[-1].data()["owner"] == "canary-analyzer"
