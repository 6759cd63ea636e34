"""Fleet rollouts over HTTP: start, read, looks, abort/resume, roles, tenancy, 422s naming the
field, and the pages."""

from __future__ import annotations

import pytest

from analyzer.domain.events import EventType
from analyzer.domain.model import ModelRef
from tests.integration.api.conftest import (
    FLEET_MODELS,
    TENANT_TOKEN,
    Harness,
    fleet_body,
)

pytestmark = pytest.mark.postgres


def test_start_read_look_and_abort_a_fleet(api: Harness) -> None:
    started = api.call("POST", "/api/v1/fleets", "operator", json=fleet_body())
    assert started.status_code == 201, started.text
    fleet = started.json()
    assert fleet["status"] == "progressing"
    assert [w["models"] for w in fleet["waves"]] == [3, 27]
    assert fleet["counts"] == {"waiting": 27, "upgraded": 3, "judged": 0, "rolled_back": 0}
    assert fleet["initiator"]
    assert len(fleet["models"]) == len(FLEET_MODELS)

    assert api.fleets is not None
    for _ in range(3):  # three looks, 10 minutes apart
        api.clock.advance(600)
        api.fleets.tick()
    looks = api.call("GET", f"/api/v1/fleets/{fleet['id']}/looks", "viewer")
    assert looks.status_code == 200
    items = looks.json()["items"]
    assert [lk["verdict"] for lk in items][:2] == ["inconclusive", "inconclusive"]
    assert items[-1]["wave"] == 1

    shown = api.call("GET", f"/api/v1/fleets/{fleet['id']}", "viewer").json()
    assert shown["status"] == "progressing"
    listed = api.call("GET", "/api/v1/fleets", "auditor").json()["items"]
    assert [f["id"] for f in listed] == [fleet["id"]]
    assert "models" not in listed[0]

    refused = api.call(
        "POST", f"/api/v1/fleets/{fleet['id']}/abort", "viewer", json={"reason": "x"}
    )
    assert refused.status_code == 403
    aborted = api.call(
        "POST", f"/api/v1/fleets/{fleet['id']}/abort", "operator", json={"reason": "complaints"}
    )
    assert aborted.status_code == 200
    assert aborted.json()["status"] == "aborted"
    assert api.fleet_target is not None
    assert {s for s, _ in _served(api)} == {"v1"}
    again = api.call(
        "POST", f"/api/v1/fleets/{fleet['id']}/resume", "operator", json={"reason": "y"}
    )
    assert again.status_code == 409


def _served(api: Harness) -> list[tuple[str, str]]:
    assert api.fleet_target is not None
    out = []
    for m in FLEET_MODELS:
        uri = api.fleet_target.read(ModelRef(namespace="merchants", name=m)).storage_uri
        out.append((uri.rsplit("/", 1)[-1], m))
    return out


def test_tenancy_hides_other_namespaces_fleets(api: Harness) -> None:
    started = api.call("POST", "/api/v1/fleets", "operator", json=fleet_body()).json()
    tenant = {"Authorization": f"Bearer {TENANT_TOKEN}"}
    assert api.call("GET", "/api/v1/fleets", None, headers=tenant).json()["items"] == []
    one = api.call("GET", f"/api/v1/fleets/{started['id']}", None, headers=tenant)
    assert one.status_code == 403
    start = api.call("POST", "/api/v1/fleets", None, headers=tenant, json=fleet_body(name="b"))
    assert start.status_code == 403


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"waves": [{"percent": 10, "dwell_seconds": 60, "deadline_seconds": 60}]}, "waves"),
        ({"models": ["merchant-000", "Not_A_Name"], "selector": {}}, "models[1]"),
        ({"models": ["merchant-000", "merchant-999"], "selector": {}}, "models[1]"),
        ({"name": "Bad Name"}, "name"),
        ({"version": {"name": "v2", "storage_uri": "no scheme"}}, "storage_uri"),
        ({"from_version": "v2"}, "from_version"),
        ({"selector": {"team": "nobody"}}, "selector"),
        ({"look_interval_seconds": 0}, "look_interval_seconds"),
        (
            {"metrics": [{**fleet_body()["metrics"][0], "events": "rate(x[5m])"}]},
            "metrics[0].events",
        ),
        (
            {"metrics": [{**fleet_body()["metrics"][0], "total": 'x{namespace="{namspace}"}'}]},
            "metrics[0].total",
        ),
        (  # a latency quantile is not judged per model in a fleet: said, not ignored
            {"metrics": [{**fleet_body()["metrics"][0], "kind": "latency_quantile"}]},
            "unsupported metric kind 'latency_quantile': a fleet judges rate metrics",
        ),
        (
            {"metrics": [{**fleet_body()["metrics"][0], "good": 'x_bucket{le="500.0"}'}]},
            "either events",
        ),
    ],
)
def test_bad_bodies_are_422_naming_the_field(
    api: Harness, override: dict[str, object], field: str
) -> None:
    answer = api.call("POST", "/api/v1/fleets", "operator", json=fleet_body(**override))
    assert answer.status_code == 422, answer.text
    assert field in answer.text


def test_a_latency_is_judged_as_the_share_of_requests_slower_than_a_bound(api: Harness) -> None:
    bucket = "modelmesh_api_request_milliseconds_bucket"
    slow = {
        "name": "slow",
        "good": bucket + '{namespace="{namespace}",le="500.0"}',
        "total": bucket + '{namespace="{namespace}",le="+Inf"}',
        "model_label": "vModelId",
        "tolerance": 0.02,
    }
    body = fleet_body(metrics=[*fleet_body()["metrics"], slow])
    started = api.call("POST", "/api/v1/fleets", "operator", json=body)
    assert started.status_code == 201, started.text
    metrics = started.json()["spec"]["metrics"]
    assert [(m["name"], m.get("good"), m["events"]) for m in metrics][1] == (
        "slow",
        slow["good"],
        None,
    )


def test_a_model_moves_in_one_active_fleet_at_a_time(api: Harness) -> None:
    assert api.call("POST", "/api/v1/fleets", "operator", json=fleet_body()).status_code == 201
    other = api.call("POST", "/api/v1/fleets", "operator", json=fleet_body(name="other"))
    assert other.status_code == 409
    assert "active fleet rollout" in other.text


def test_the_fleet_pages(api: Harness) -> None:
    started = api.call("POST", "/api/v1/fleets", "operator", json=fleet_body()).json()
    assert api.fleets is not None
    api.clock.advance(600)
    api.fleets.tick()
    page = api.call("GET", f"/ui/fleets/{started['id']}", "viewer")
    assert page.status_code == 200
    assert "Verdicts over time" in page.text
    assert "merchant-000" in page.text
    listing = api.call("GET", "/ui/fleets", "viewer")
    assert f"/ui/fleets/{started['id']}" in listing.text


def _gated_body() -> dict[str, object]:
    waves = [
        {"percent": 10, "dwell_seconds": 1800, "deadline_seconds": 5400},
        {"percent": 100, "dwell_seconds": 1800, "deadline_seconds": 5400,
         "gates": ["manual-approval"]},
    ]  # fmt: skip
    return fleet_body(waves=waves)


def test_a_wave_gated_by_manual_approval_moves_once_another_person_approves(
    api: Harness,
) -> None:
    # alice may start and approve; four eyes refuse her approval of her own fleet
    alice = {"Authorization": f"Bearer {api.keys.token(roles=['operator', 'approver'])}"}
    started = api.call("POST", "/api/v1/fleets", None, headers=alice, json=_gated_body())
    assert started.status_code == 201, started.text
    fleet_id = started.json()["id"]
    path = f"/api/v1/fleets/{fleet_id}/approvals"
    assert api.call("POST", path, None, json={}).status_code == 401
    assert api.call("POST", path, "operator", json={}).status_code == 403  # not an approver
    own = api.call("POST", path, None, headers=alice, json={"comment": "mine"})
    assert own.status_code == 403
    assert "four eyes" in own.text
    assert api.call("POST", path, "approver", json={"wave": 1}).status_code == 409  # moved
    assert api.call("POST", path, "approver", json={"wave": 9}).status_code == 422

    assert api.fleets is not None
    for _ in range(4):  # wave 1 passes; wave 2 waits for its approval
        api.clock.advance(600)
        api.fleets.tick()
    waiting = api.call("GET", f"/api/v1/fleets/{fleet_id}", "viewer").json()
    assert waiting["waiting_for_gates"], waiting["reason"]
    assert "0 of 1 required approvals" in waiting["reason"]
    assert {s for s, _ in _served(api)} == {"v1", "v2"}

    given = api.call("POST", path, "approver", json={"comment": "looks fine"})
    assert given.status_code == 201, given.text
    assert given.json()["approved_wave"] == 2
    api.clock.advance(600)
    api.fleets.tick()
    moved = api.call("GET", f"/api/v1/fleets/{fleet_id}", "viewer").json()
    assert not moved["waiting_for_gates"]
    assert moved["wave"] == 2
    assert {s for s, _ in _served(api)} == {"v2"}
    entries = api.ledger.events(rollout_id=fleet_id, event_types=[EventType.APPROVAL_GIVEN])
    assert [(e.actor, e.data()["wave"]) for e in entries.entries] == [("approver-user", 2)]
    gates = api.ledger.events(rollout_id=fleet_id, event_types=[EventType.GATE_CHECKED])
    assert [e.data()["open"] for e in gates.entries][-1] is True
    assert api.call("POST", path, "approver", json={}).status_code == 409  # nothing left
