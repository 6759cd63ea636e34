"""Evaluations over HTTP on PostgreSQL: CI records a suite's result, readers list them."""

from __future__ import annotations

import json
from typing import Any

import pytest

from analyzer.domain.events import EventType
from tests.integration.api.conftest import TENANT_TOKEN, Harness, model_ref

pytestmark = pytest.mark.postgres

DIGEST = "sha256:" + "5e" * 32
COMMIT = "0123456789abcdef0123456789abcdef01234567"
PATH = "/api/v1/evaluations"


def body(namespace: str = "risk-prod", name: str = "credit", **overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "model": {"namespace": namespace, "name": name},
        "model_version": "17",
        "suite": "golden-set",
        "passed": True,
        "metrics": {"auc": 0.91, "ks": 0.42, "rows": 120000},
        "report_url": "https://ci.bank.example/runs/881/report.html",
        "commit": COMMIT,
        "artifact_digest": DIGEST,
    }
    values.update(overrides)
    return values


def test_recording_appends_an_entry_with_the_actor_and_data(api: Harness) -> None:
    response = api.call("POST", PATH, "operator", json=body())
    assert response.status_code == 201, response.text
    answer = response.json()
    assert answer["recorded_by"] == "operator-user"
    assert (answer["model"], answer["model_version"], answer["suite"]) == (
        "risk-prod/credit", "17", "golden-set"
    )  # fmt: skip
    assert answer["passed"] is True

    entry = api.ledger.entry(answer["seq"])
    assert entry is not None
    assert entry.event_type == EventType.EVALUATION_RECORDED.value
    assert entry.actor == "operator-user"
    assert entry.model == "risk-prod/credit"
    assert entry.data() == {
        "model_version": "17", "suite": "golden-set", "passed": True,
        "metrics": {"auc": 0.91, "ks": 0.42, "rows": 120000.0},
        "report_url": "https://ci.bank.example/runs/881/report.html", "commit": COMMIT,
        "artifact_digest": DIGEST,
    }  # fmt: skip
    report = api.ledger.verify()
    assert report.intact, report.summary()
    assert report.head_seq == answer["seq"]


def test_only_the_required_fields_are_needed(api: Harness) -> None:
    minimal = {
        "model": {"namespace": "risk-prod", "name": "credit"},
        "model_version": "3.2.1-rc.1",
        "suite": "load-test",
        "passed": False,
    }
    response = api.call("POST", PATH, "admin", json=minimal)
    assert response.status_code == 201, response.text
    data = api.ledger.entry(response.json()["seq"]).data()  # type: ignore[union-attr]
    assert data["passed"] is False
    assert (data["metrics"], data["report_url"], data["commit"]) == ({}, None, None)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"model_version": "17 beta"}, "model_version"),
        ({"model_version": "v" * 129}, "model_version"),
        ({"suite": "golden set"}, "suite"),
        ({"passed": "yes"}, "passed"),
        ({"metrics": {"auc": "high"}}, "metrics.auc"),
        ({"metrics": {"auc": True}}, "metrics.auc"),
        ({"metrics": {f"m{i}": i for i in range(51)}}, "metrics"),
        ({"metrics": {"bad name!": 1}}, "metrics.bad name!.[key]"),
        ({"report_url": "http://ci.bank.example/r"}, "report_url"),
        ({"report_url": "javascript:alert(1)"}, "report_url"),
        ({"report_url": "https://ci.bank.example/" + "x" * 2100}, "report_url"),
        ({"report_url": "https://ci:hunter2@ci.bank.example/r"}, "report_url"),
        ({"commit": "not-a-sha"}, "commit"),
        ({"commit": COMMIT.upper()}, "commit"),
        ({"artifact_digest": "sha256:abc"}, "artifact_digest"),
        ({"model": {"namespace": "Risk_Prod", "name": "credit"}}, "model.namespace"),
        ({"extra": 1}, "extra"),
    ],
)
def test_invalid_bodies_are_422_naming_the_field(
    api: Harness, change: dict[str, Any], field: str
) -> None:
    response = api.call("POST", PATH, "operator", json=body(**change))
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_input"
    assert error["field"] == field, error
    assert api.ledger.head()[0] == 0  # nothing recorded


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_metrics_are_422(api: Harness, number: str) -> None:
    raw = json.dumps(body(metrics={})).replace('"metrics": {}', f'"metrics": {{"auc": {number}}}')
    response = api.call(
        "POST", PATH, "operator", content=raw, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == "metrics.auc"
    assert api.ledger.head()[0] == 0


@pytest.mark.parametrize("role", ["viewer", "auditor", "approver", "analysis"])
def test_roles_other_than_operator_and_admin_may_not_record(api: Harness, role: str) -> None:
    response = api.call("POST", PATH, role, json=body())
    assert response.status_code == 403
    assert "record_evaluation" in response.json()["error"]["message"]


def test_a_tenant_token_records_and_reads_only_its_namespace(api: Harness) -> None:
    tenant = {"Authorization": f"Bearer {TENANT_TOKEN}"}
    own = api.call("POST", PATH, None, headers=tenant, json=body("risk-prod"))
    assert own.status_code == 201, own.text
    other = api.call("POST", PATH, None, headers=tenant, json=body("analytics"))
    assert other.status_code == 403
    assert "analytics" in other.json()["error"]["message"]
    assert api.ledger.head()[0] == own.json()["seq"]  # the refused one left no entry

    assert api.call("POST", PATH, "admin", json=body("analytics")).status_code == 201
    read_other = api.call("GET", PATH, None, headers=tenant, params={"model": "analytics/credit"})
    assert read_other.status_code == 403
    read_own = api.call("GET", PATH, None, headers=tenant, params={"model": "risk-prod/credit"})
    assert read_own.status_code == 200
    assert [e["seq"] for e in read_own.json()["evaluations"]] == [own.json()["seq"]]


def test_listing_is_newest_first_and_filtered_by_model_and_version(api: Harness) -> None:
    seqs = []
    for version, suite, passed in [
        ("16", "golden-set", True),
        ("17", "golden-set", False),
        ("17", "load-test", True),
        ("17", "golden-set", True),
    ]:
        api.clock.advance(60)
        response = api.call(
            "POST", PATH, "operator", json=body(model_version=version, suite=suite, passed=passed)
        )
        assert response.status_code == 201, response.text
        seqs.append(response.json()["seq"])
    api.call("POST", PATH, "operator", json=body(name="other", model_version="17"))

    listed = api.call(
        "GET", PATH, "viewer", params={"model": "risk-prod/credit", "model_version": "17"}
    )
    assert listed.status_code == 200, listed.text
    got = listed.json()["evaluations"]
    assert [e["seq"] for e in got] == [seqs[3], seqs[2], seqs[1]]
    assert [(e["suite"], e["passed"]) for e in got] == [
        ("golden-set", True), ("load-test", True), ("golden-set", False)
    ]  # fmt: skip
    assert got[0]["metrics"] == {"auc": 0.91, "ks": 0.42, "rows": 120000.0}
    assert got[0]["recorded_by"] == "operator-user"

    every = api.call("GET", PATH, "viewer", params={"model": "risk-prod/credit"}).json()
    assert [e["seq"] for e in every["evaluations"]] == seqs[::-1]
    one_suite = api.call(
        "GET", PATH, "viewer",
        params={"model": "risk-prod/credit", "suite": "golden-set", "limit": 2},
    ).json()  # fmt: skip
    assert [e["seq"] for e in one_suite["evaluations"]] == [seqs[3], seqs[1]]


def test_listing_needs_a_model_and_a_reading_role(api: Harness) -> None:
    assert api.call("GET", PATH, "viewer").status_code == 422
    bad = api.call("GET", PATH, "viewer", params={"model": "no-slash"})
    assert bad.status_code == 422
    assert bad.json()["error"]["field"] == "model"
    assert api.call("GET", PATH, "analysis", params={"model": "a/b"}).status_code == 403
    assert api.call("GET", PATH, None, params={"model": "a/b"}).status_code == 401


def test_recorded_evaluations_show_in_the_audit_events(api: Harness) -> None:
    api.call("POST", PATH, "operator", json=body())
    events = api.call(
        "GET",
        "/api/v1/audit/events",
        "auditor",
        params={"model": str(model_ref(name="credit")), "type": "evaluation_recorded"},
    )
    assert events.status_code == 200, events.text
    [entry] = events.json()["entries"]
    assert entry["event_type"] == "evaluation_recorded"
    assert entry["data"]["suite"] == "golden-set"


def test_a_runaway_number_of_entries_is_a_409_saying_so_not_a_500(
    api: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    from analyzer.ledger import evaluations

    monkeypatch.setattr(evaluations, "PAGE", 2)
    monkeypatch.setattr(evaluations, "MAX_SCANNED", 4)
    for _ in range(6):  # version 16 six times: filtering for 17 must walk past the bound
        api.clock.advance(60)
        assert api.call("POST", PATH, "operator", json=body(model_version="16")).status_code == 201
    params = {"model": "risk-prod/credit", "model_version": "17"}
    response = api.call("GET", PATH, "viewer", params=params)
    assert response.status_code == 409
    assert "more than 4 evaluation entries" in response.json()["error"]["message"]
