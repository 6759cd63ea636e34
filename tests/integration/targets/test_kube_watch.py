"""Watch semantics of the fake apiserver, and the list+watch client against it (real HTTP)."""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from analyzer.targets.kube_watch import (
    INFERENCE_SERVICES,
    ObjectWatch,
    WatchBackoff,
    WatchEvent,
)
from tests.fakes.kube_api import INFERENCE_SERVICES as ISVC
from tests.fakes.kube_api import ROLLOUTS, KubeApiFake

BASE = "/apis/serving.kserve.io/v1beta1/namespaces/models/inferenceservices"


def isvc(name: str, uri: str = "s3://m/v1") -> dict[str, Any]:
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": name, "namespace": "models"},
        "spec": {"predictor": {"model": {"storageUri": uri}}},
    }


def label(kube: KubeApiFake, name: str, value: str) -> dict[str, Any]:
    return kube.store.write(
        ISVC, "models", name,
        lambda o: {**o, "metadata": {**o["metadata"], "labels": {"v": value}}}, status=False,
    )  # fmt: skip


@pytest.fixture
def fake() -> Iterator[KubeApiFake]:
    with KubeApiFake() as kube:
        kube.watches.bookmark_interval = 0.2
        yield kube


@pytest.fixture
def http(fake: KubeApiFake) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fake.url, timeout=10) as client:
        yield client


def read_stream(http: httpx.Client, params: dict[str, str]) -> tuple[httpx.Response, list[Any]]:
    with http.stream("GET", BASE, params={"watch": "true", **params}) as response:
        lines = [json.loads(line) for line in response.iter_lines() if line]
    return response, lines


# -- the fake -------------------------------------------------------------------------------


def test_list_carries_the_collection_resource_version_and_watch_streams_changes(
    fake: KubeApiFake, http: httpx.Client
) -> None:
    fake.seed(ISVC, isvc("iris"))
    listed = http.get(BASE).json()
    rv = listed["metadata"]["resourceVersion"]
    assert rv == listed["items"][0]["metadata"]["resourceVersion"]
    later = label(fake, "iris", "a")
    fake.store.delete(ISVC, "models", "iris")
    response, events = read_stream(http, {"resourceVersion": rv, "timeoutSeconds": "1"})
    assert response.headers["transfer-encoding"] == "chunked"
    assert [e["type"] for e in events] == ["MODIFIED", "DELETED"]
    assert (
        events[0]["object"]["metadata"]["resourceVersion"] == later["metadata"]["resourceVersion"]
    )
    assert int(events[1]["object"]["metadata"]["resourceVersion"]) > int(
        later["metadata"]["resourceVersion"]
    ), "a deletion has a resourceVersion of its own"


def test_watch_without_a_version_starts_with_synthetic_added_events(
    fake: KubeApiFake, http: httpx.Client
) -> None:
    fake.seed(ISVC, isvc("a"))
    fake.seed(ISVC, isvc("b"))
    _, events = read_stream(http, {"timeoutSeconds": "1"})
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "a"),
        ("ADDED", "b"),
    ]


def test_bookmarks_only_when_allowed_and_carry_only_a_version(
    fake: KubeApiFake, http: httpx.Client
) -> None:
    fake.seed(ISVC, isvc("a"))
    rv = http.get(BASE).json()["metadata"]["resourceVersion"]
    fake.seed(ROLLOUTS, {"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
                         "metadata": {"name": "r", "namespace": "other"}})  # fmt: skip
    _, plain = read_stream(http, {"resourceVersion": rv, "timeoutSeconds": "1"})
    assert plain == []
    _, marked = read_stream(
        http, {"resourceVersion": rv, "timeoutSeconds": "1", "allowWatchBookmarks": "true"}
    )
    assert marked
    assert {e["type"] for e in marked} == {"BOOKMARK"}
    assert marked[-1]["object"] == {
        "kind": "InferenceService",
        "apiVersion": "serving.kserve.io/v1beta1",
        "metadata": {"resourceVersion": str(fake.store.last_rv)},
    }, "the bookmark moves past changes of other resources"


def test_a_compacted_version_is_an_error_event_with_a_410_status(
    fake: KubeApiFake, http: httpx.Client
) -> None:
    fake.seed(ISVC, isvc("a"))
    old = http.get(BASE).json()["metadata"]["resourceVersion"]
    label(fake, "a", "x")
    horizon = fake.compact()
    response, events = read_stream(http, {"resourceVersion": old, "timeoutSeconds": "5"})
    assert response.status_code == 200
    assert events == [
        {
            "type": "ERROR",
            "object": {
                "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": f"too old resource version: {old} ({horizon})",
                "reason": "Expired", "code": 410,
            },
        }
    ]  # fmt: skip


def test_bounded_history_expires_old_versions_on_its_own() -> None:
    with KubeApiFake(history_limit=3) as kube, httpx.Client(base_url=kube.url) as http:
        kube.seed(ISVC, isvc("a"))
        old = http.get(BASE).json()["metadata"]["resourceVersion"]
        for i in range(4):
            label(kube, "a", str(i))
        _, events = read_stream(http, {"resourceVersion": old, "timeoutSeconds": "1"})
        assert events[0]["object"]["code"] == 410


def test_resource_version_match_on_list(fake: KubeApiFake, http: httpx.Client) -> None:
    fake.seed(ISVC, isvc("a"))
    first = http.get(BASE).json()["metadata"]["resourceVersion"]
    label(fake, "a", "new")
    fake.seed(ISVC, isvc("b"))
    exact = http.get(BASE, params={"resourceVersion": first, "resourceVersionMatch": "Exact"})
    assert exact.json()["metadata"]["resourceVersion"] == first
    assert [
        (o["metadata"]["name"], o["metadata"].get("labels")) for o in exact.json()["items"]
    ] == [("a", None)], "the state as it was at that version"
    newer = http.get(
        BASE, params={"resourceVersion": first, "resourceVersionMatch": "NotOlderThan"}
    ).json()
    assert len(newer["items"]) == 2
    assert int(newer["metadata"]["resourceVersion"]) == fake.store.last_rv
    too_new = http.get(BASE, params={"resourceVersion": "999999", "resourceVersionMatch":
                                     "NotOlderThan"})  # fmt: skip
    assert too_new.status_code == 504
    assert "Too large resource version" in too_new.json()["message"]
    assert http.get(BASE, params={"resourceVersionMatch": "Exact"}).status_code == 422
    fake.compact()
    gone = http.get(BASE, params={"resourceVersion": first, "resourceVersionMatch": "Exact"})
    assert (gone.status_code, gone.json()["reason"]) == (410, "Expired")


def test_dropped_streams_break_mid_response(fake: KubeApiFake, http: httpx.Client) -> None:
    fake.seed(ISVC, isvc("a"))
    errors: list[BaseException] = []

    def watch() -> None:
        try:
            read_stream(http, {"resourceVersion": "0", "timeoutSeconds": "30"})
        except httpx.HTTPError as exc:
            errors.append(exc)

    thread = threading.Thread(target=watch)
    thread.start()
    fake.watches.wait_for_watchers(1)
    time.sleep(0.1)
    fake.drop_watches()
    thread.join(5)
    assert not thread.is_alive()
    assert len(errors) == 1, "an incomplete chunked body is an error, not a clean end"


def test_managed_fields_name_the_writer_of_each_field(
    fake: KubeApiFake, http: httpx.Client
) -> None:
    fake.seed(ISVC, isvc("a"))
    http.patch(
        f"{BASE}/a", params={"fieldManager": "canary-analyzer"},
        json={"spec": {"predictor": {"canaryTrafficPercent": 10}}},
        headers={"Content-Type": "application/merge-patch+json"},
    )  # fmt: skip
    obj = fake.person_sets_canary_percent("models", "a", 30)
    managers = {m["manager"]: m for m in obj["metadata"]["managedFields"]}
    path = {"f:spec": {"f:predictor": {"f:canaryTrafficPercent": {}}}}
    assert managers["kubectl-patch"]["fieldsV1"] == path
    assert "canary-analyzer" not in managers, "it lost the only field it owned"
    assert managers["manager"]["subresource"] == "status"
    response = http.patch(
        f"{BASE}/a", json={"metadata": {"labels": {"x": "1"}}},
        headers={"Content-Type": "application/merge-patch+json", "User-Agent": "kubectl/v1.31.0"},
    )  # fmt: skip
    owners = {m["manager"] for m in response.json()["metadata"]["managedFields"]}
    assert "kubectl" in owners, "without fieldManager the User-Agent's product names the writer"


def test_the_argo_controller_steps_a_rollout_through_its_canary_steps(fake: KubeApiFake) -> None:
    now = [1000.0]
    fake.argo.clock = lambda: now[0]
    template = {"spec": {"containers": [{"name": "m", "image": "scorer:1"}]}}
    steps = [{"setWeight": 20}, {"pause": {"duration": "30s"}}, {"setWeight": 50}, {"pause": {}}]
    fake.seed(ROLLOUTS, {"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
                         "metadata": {"name": "r", "namespace": "models"},
                         "spec": {"template": template,
                                  "strategy": {"canary": {"steps": steps}}}})  # fmt: skip
    first = fake.argo.step("models", "r")["status"]
    stable = first["stableRS"]
    assert (first["currentPodHash"], first["phase"]) == (stable, "Healthy")
    fake.store.write(ROLLOUTS, "models", "r", lambda o: {**o, "spec": {**o["spec"], "template": {
        "spec": {"containers": [{"name": "m", "image": "scorer:2"}]}}}}, status=False)  # fmt: skip

    def status() -> dict[str, Any]:
        return dict(fake.argo.step("models", "r")["status"])

    def weight(s: dict[str, Any]) -> int:
        return int(s["canary"]["weights"]["canary"]["weight"])

    started = status()
    canary = started["currentPodHash"]
    assert canary != stable
    assert started["currentStepIndex"] == 0
    assert weight(started) == 0
    assert weight(status()) == 20
    paused = status()
    assert paused["phase"] == "Paused"
    assert paused["pauseConditions"][0]["reason"] == "CanaryPauseStep"
    assert status()["currentStepIndex"] == 1, "the pause lasts its duration"
    now[0] += 31
    assert status()["currentStepIndex"] == 2
    assert weight(status()) == 50
    assert status()["phase"] == "Paused"
    now[0] += 3600
    assert status()["phase"] == "Paused", "a pause without a duration waits for a promote"
    fake.store.write(ROLLOUTS, "models", "r",
                     lambda o: {**o, "status": {**o["status"], "pauseConditions": None}},
                     status=True)  # fmt: skip
    assert status()["currentStepIndex"] == 4
    done = status()
    assert (done["stableRS"], done["phase"], weight(done)) == (canary, "Healthy", 0)
    assert done["canary"]["weights"]["stable"]["podTemplateHash"] == canary
    managers = {
        m["manager"] for m in fake.get(ROLLOUTS, "models", "r")["metadata"]["managedFields"]
    }
    assert "rollouts-controller" in managers


# -- the client -----------------------------------------------------------------------------


class Seen:
    def __init__(self) -> None:
        self.events: list[WatchEvent] = []
        self.lock = threading.Lock()

    def __call__(self, event: WatchEvent) -> None:
        with self.lock:
            self.events.append(event)

    def labels(self) -> list[tuple[str, str, str | None]]:
        with self.lock:
            return [
                (
                    e.type,
                    e.obj["metadata"]["name"],
                    (e.obj["metadata"].get("labels") or {}).get("v"),
                )
                for e in self.events
            ]


def eventually(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)


@pytest.fixture
def watching(fake: KubeApiFake) -> Iterator[tuple[ObjectWatch, Seen, list[tuple[str, str]]]]:
    seen, reports = Seen(), []
    watch = ObjectWatch(
        fake.api_client(), INFERENCE_SERVICES, seen, namespace="models", timeout_seconds=30,
        backoff=WatchBackoff(initial=0.05, maximum=0.2), rng=random.Random(1),
        report=lambda plural, what: reports.append((plural, what)),
    )  # fmt: skip
    yield watch, seen, reports
    watch.stop()


def watch_requests(fake: KubeApiFake) -> list[Any]:
    return [r for r in fake.requests_to("GET", "inferenceservices") if r.query.get("watch")]


def test_client_lists_then_watches_from_the_list_version(
    fake: KubeApiFake, watching: tuple[ObjectWatch, Seen, list[tuple[str, str]]]
) -> None:
    watch, seen, _ = watching
    fake.seed(ISVC, isvc("a"))
    listed_rv = str(fake.store.last_rv)
    watch.start()
    assert watch.synced.wait(5)
    fake.watches.wait_for_watchers(1)
    label(fake, "a", "1")
    eventually(lambda: ("MODIFIED", "a", "1") in seen.labels())
    assert seen.labels()[0] == ("ADDED", "a", None)
    assert seen.events[0].relisted
    assert not seen.events[-1].relisted
    first = watch_requests(fake)[0]
    assert first.query["resourceVersion"] == [listed_rv]
    assert first.query["allowWatchBookmarks"] == ["true"]


def test_client_resumes_after_a_dropped_stream_without_relisting_or_losing_events(
    fake: KubeApiFake, watching: tuple[ObjectWatch, Seen, list[tuple[str, str]]]
) -> None:
    watch, seen, reports = watching
    fake.seed(ISVC, isvc("a"))
    watch.start()
    fake.watches.wait_for_watchers(1)
    label(fake, "a", "1")
    eventually(lambda: ("MODIFIED", "a", "1") in seen.labels())
    fake.drop_watches()
    label(fake, "a", "2")  # while no stream is open
    eventually(lambda: ("MODIFIED", "a", "2") in seen.labels())
    assert [r for r in reports if r[1] == "relist"] == [("inferenceservices", "relist")]
    assert ("inferenceservices", "error") in reports
    assert seen.labels().count(("MODIFIED", "a", "2")) == 1


def test_client_relists_on_410_and_reports_objects_deleted_meanwhile(
    fake: KubeApiFake, watching: tuple[ObjectWatch, Seen, list[tuple[str, str]]]
) -> None:
    watch, seen, reports = watching
    fake.seed(ISVC, isvc("a"))
    fake.seed(ISVC, isvc("b"))
    fake.watches.bookmark_interval = 30  # no bookmark may rescue the old version
    watch.start()
    fake.watches.wait_for_watchers(1)
    fake.drop_watches()
    with fake.store.lock:  # the gap: changes, a deletion, and a compaction
        label(fake, "a", "gap")
        fake.store.delete(ISVC, "models", "b")
        fake.compact()
    eventually(lambda: ("DELETED", "b", None) in seen.labels())
    eventually(lambda: ("ADDED", "a", "gap") in seen.labels())
    assert ("inferenceservices", "gone") in reports
    assert [r[1] for r in reports].count("relist") == 2
    deleted = [e for e in seen.events if e.type == "DELETED"]
    assert deleted[0].relisted
    # End the open stream now (its next bookmark is 30 s away), so stopping the watch is quick.
    fake.watches.bookmark_interval = 0.2
    fake.drop_watches()


def test_client_moves_its_version_on_bookmarks(
    fake: KubeApiFake, watching: tuple[ObjectWatch, Seen, list[tuple[str, str]]]
) -> None:
    watch, _, _ = watching
    fake.seed(ISVC, isvc("a"))
    watch.start()
    fake.watches.wait_for_watchers(1)
    fake.seed(ROLLOUTS, {"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
                         "metadata": {"name": "r", "namespace": "models"}})  # fmt: skip
    eventually(lambda: watch.resource_version == str(fake.store.last_rv))
    fake.drop_watches()
    eventually(lambda: len(watch_requests(fake)) >= 2)
    assert watch_requests(fake)[1].query["resourceVersion"] == [str(fake.store.last_rv)]


def test_client_backs_off_on_errors_and_logs_each_retry(
    fake: KubeApiFake, watching: tuple[ObjectWatch, Seen, list[tuple[str, str]]]
) -> None:
    watch, seen, reports = watching
    fake.seed(ISVC, isvc("a"))
    fake.fail_next(3, status=503, method="GET", path_contains="inferenceservices")
    started = time.monotonic()
    watch.start()
    assert watch.synced.wait(10)
    assert time.monotonic() - started >= 0.05 + 0.1 * 0.5, "backoff between the attempts"
    assert [r[1] for r in reports][:3] == ["error", "error", "error"]
    assert seen.labels() == [("ADDED", "a", None)]
    watch.stop()
    assert not watch._thread or not watch._thread.is_alive()


def test_client_watches_every_namespace_through_the_cluster_path(fake: KubeApiFake) -> None:
    seen = Seen()
    watch = ObjectWatch(
        fake.api_client(), INFERENCE_SERVICES, seen, namespace=None, timeout_seconds=30,
        backoff=WatchBackoff(initial=0.05, maximum=0.2),
    )  # fmt: skip
    fake.seed(ISVC, isvc("a"))
    other = {**isvc("b"), "metadata": {"name": "b", "namespace": "elsewhere"}}
    watch.start()
    try:
        fake.watches.wait_for_watchers(1)
        fake.seed(ISVC, other)
        eventually(lambda: ("ADDED", "b", None) in seen.labels())
    finally:
        watch.stop()
    assert seen.labels()[0] == ("ADDED", "a", None)
    watched = watch_requests(fake)[0]
    assert watched.path == "/apis/serving.kserve.io/v1beta1/inferenceservices"
