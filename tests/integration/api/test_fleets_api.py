"""Fleet rollouts over HTTP: start, read, looks, abort/resume, roles, tenancy, 422s naming the
field, and the pages."""

from __future__ import annotations

import pytest

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
    ],
)
def test_bad_bodies_are_422_naming_the_field(
    api: Harness, override: dict[str, object], field: str
) -> None:
    answer = api.call("POST", "/api/v1/fleets", "operator", json=fleet_body(**override))
    assert answer.status_code == 422, answer.text
    assert field in answer.text


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
