"""Rollouts over HTTP with the real RolloutService on PostgreSQL and the in-memory target."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from analyzer.domain.events import EventType
from analyzer.domain.verdict import Verdict
from analyzer.rollouts.engine import RolloutEngine
from analyzer.rollouts.ports import OpenGates
from tests.integration.api.conftest import TENANT_TOKEN, Harness, model_ref, start_body
from tests.integration.rollouts.harness import ScriptedAnalyzer
from tests.unit.gates.test_gate_sigstore import BUNDLE_TEXT, WHEEL_DIGEST

pytestmark = pytest.mark.postgres


def _start(api: Harness, namespace: str = "risk-prod", **overrides: Any) -> dict[str, Any]:
    api.target.add_model(
        model_ref(namespace),
        stable_revision="base-00001",
        canary_revision="good-00002",
        weight=25,
    )
    response = api.call(
        "POST", "/api/v1/rollouts", "operator", json=start_body(namespace, **overrides)
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


def test_start_list_and_get(api: Harness) -> None:
    started = _start(api)
    assert started["state"] == "pending"
    assert started["initiator"] == "operator-user"
    assert [s["weight"] for s in started["plan"]["steps"]] == [10, 25, 50, 100]
    listed = api.call("GET", "/api/v1/rollouts", "viewer").json()["rollouts"]
    assert [r["id"] for r in listed] == [started["id"]]
    filtered = api.call("GET", "/api/v1/rollouts?model=analytics/churn", "viewer").json()
    assert filtered["rollouts"] == []
    one = api.call("GET", f"/api/v1/rollouts/{started['id']}", "viewer")
    assert one.status_code == 200
    assert one.json()["model"] == "risk-prod/fraud"


def test_custom_plan_and_invalid_plan(api: Harness) -> None:
    plan = {"steps": [{"weight": 20, "dwell_seconds": 60}, {"weight": 100, "dwell_seconds": 60}]}
    started = _start(api, plan=plan)
    assert [s["weight"] for s in started["plan"]["steps"]] == [20, 100]
    bad = {"steps": [{"weight": 50, "dwell_seconds": 60}, {"weight": 20, "dwell_seconds": 1}]}
    response = api.call(
        "POST", "/api/v1/rollouts", "operator", json=start_body("analytics", plan=bad)
    )
    assert response.status_code == 422
    assert "increase" in response.json()["error"]["message"]


def test_second_active_rollout_of_a_model_is_409(api: Harness) -> None:
    _start(api)
    again = api.call("POST", "/api/v1/rollouts", "operator", json=start_body())
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "conflict"


def test_unknown_rollout_is_404(api: Harness) -> None:
    response = api.call("GET", "/api/v1/rollouts/does-not-exist", "viewer")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    abort = api.call(
        "POST", "/api/v1/rollouts/does-not-exist/abort", "operator", json={"reason": "x"}
    )
    assert abort.status_code == 404


def test_abort_is_immediate_idempotent_and_recorded(api: Harness) -> None:
    started = _start(api)
    assert api.target.read_weight(model_ref()).percent_of("good-00002") == 25
    t0 = time.perf_counter()
    response = api.call(
        "POST",
        f"/api/v1/rollouts/{started['id']}/abort",
        "operator",
        json={"reason": "p99 regression seen on dashboards"},
    )
    while api.target.read_weight(model_ref()).percent_of("good-00002") != 0:
        assert time.perf_counter() - t0 < 1.0
        time.sleep(0.001)
    latency = time.perf_counter() - t0
    print(f"abort latency (POST -> memory target at 0 %): {latency * 1000:.1f} ms")
    assert latency <= 1.0
    assert response.status_code == 200
    assert response.json()["state"] == "aborted"
    again = api.call(
        "POST", f"/api/v1/rollouts/{started['id']}/abort", "operator", json={"reason": "again"}
    )
    assert again.status_code == 200
    assert again.json()["state"] == "aborted"
    aborts = api.ledger.events(event_types=[EventType.ROLLOUT_ABORTED]).entries
    assert len(aborts) == 1
    assert aborts[0].actor == "operator-user"
    assert aborts[0].data()["reason"] == "p99 regression seen on dashboards"


def test_abort_the_target_refuses_answers_202_with_what_it_still_shows(api: Harness) -> None:
    api.target.add_model(model_ref(), stable_revision="base-00001", canary_revision="good-00002")
    started = api.call("POST", "/api/v1/rollouts", "operator", json=start_body()).json()
    engine = RolloutEngine(
        api.engine, api.ledger, api.target, ScriptedAnalyzer(lambda _: Verdict.PASS),
        OpenGates(), clock=api.clock, replica_id="api-test",
    )  # fmt: skip
    engine.tick()  # step 0: the target confirms 10 %
    assert api.target.read_weight(model_ref()).canary_weight == 10
    api.target.fail_next(1)
    path = f"/api/v1/rollouts/{started['id']}/abort"
    refused = api.call("POST", path, "operator", json={"reason": "pager"})
    assert refused.status_code == 202
    body = refused.json()
    assert body["state"] == "aborted"
    assert body["pending"] is True
    assert body["applied_weight"] == 10  # what the target still serves, not the claim
    assert api.target.read_weight(model_ref()).canary_weight == 10
    again = api.call("POST", path, "operator", json={"reason": "pager"})  # idempotent: no retry
    assert again.status_code == 202
    api.clock.advance(10)
    engine.tick()  # the abort retry
    confirmed = api.call("GET", f"/api/v1/rollouts/{started['id']}", "viewer").json()
    assert confirmed["applied_weight"] == 0
    assert confirmed["pending"] is False
    assert api.target.read_weight(model_ref()).canary_weight == 0


def test_abort_needs_a_reason(api: Harness) -> None:
    started = _start(api)
    for body in ({}, {"reason": ""}):
        response = api.call(
            "POST", f"/api/v1/rollouts/{started['id']}/abort", "operator", json=body
        )
        assert response.status_code == 422
        assert response.json()["error"]["field"] == "reason"


def test_pause_resume_and_conflicts(api: Harness) -> None:
    started = _start(api)
    rid = started["id"]
    paused = api.call("POST", f"/api/v1/rollouts/{rid}/pause", "operator", json={"reason": "wait"})
    assert paused.json()["paused"] is True
    resumed = api.call("POST", f"/api/v1/rollouts/{rid}/resume", "operator")
    assert resumed.json()["paused"] is False
    api.call("POST", f"/api/v1/rollouts/{rid}/abort", "operator", json={"reason": "stop"})
    conflict = api.call("POST", f"/api/v1/rollouts/{rid}/resume", "operator")
    assert conflict.status_code == 409
    assert "aborted" in conflict.json()["error"]["message"]


def test_approve_four_eyes(api: Harness) -> None:
    started = _start(api, tier="regulated")
    rid = started["id"]
    # an approver who is not the initiator succeeds, and the approval names them
    ok = api.call("POST", f"/api/v1/rollouts/{rid}/approve", "approver", json={"comment": "ok"})
    assert ok.status_code == 200
    assert (ok.json()["approved_step"], ok.json()["approved_weight"]) == (3, 100)
    approvals = api.ledger.events(event_types=[EventType.APPROVAL_GIVEN]).entries
    assert [a.actor for a in approvals] == ["approver-user"]
    # the initiator (an operator who is also an approver) cannot approve their own rollout
    api.target.add_model(model_ref("analytics", "churn"), stable_revision="base-00001")
    both = {"Authorization": "Bearer " + api.keys.token(sub="olga", roles=["operator", "approver"])}
    body = start_body("analytics", "churn", tier="regulated")
    own = api.call("POST", "/api/v1/rollouts", None, headers=both, json=body)
    assert own.status_code == 201, own.text
    refused = api.call(
        "POST", f"/api/v1/rollouts/{own.json()['id']}/approve", None, headers=both,
        json={"comment": "me"},
    )  # fmt: skip
    assert refused.status_code == 403
    assert "four eyes" in refused.json()["error"]["message"]


def test_tenant_scoping_on_rollouts(api: Harness) -> None:
    other = _start(api, "analytics")
    mine = _start(api, "risk-prod")
    headers = {"Authorization": f"Bearer {TENANT_TOKEN}"}
    listed = api.call("GET", "/api/v1/rollouts", None, headers=headers).json()["rollouts"]
    assert [r["id"] for r in listed] == [mine["id"]]
    read = api.call("GET", f"/api/v1/rollouts/{other['id']}", None, headers=headers)
    assert read.status_code == 403
    abort = api.call(
        "POST",
        f"/api/v1/rollouts/{other['id']}/abort",
        None,
        headers=headers,
        json={"reason": "not mine"},
    )
    assert abort.status_code == 403
    assert api.rollouts.get(other["id"]).state.value == "pending"
    start = api.call(
        "POST", "/api/v1/rollouts", None, headers=headers, json=start_body("analytics", "x")
    )
    assert start.status_code == 403


DIGEST = "sha256:" + "5d41402abc4b2a76b9719d911017c592" * 2


def test_model_version_and_digest_are_taken_shown_and_recorded(api: Harness) -> None:
    started = _start(
        api, model_version="17", artifact_digest=DIGEST, artifact_uri="s3://models/fraud/17"
    )
    assert (started["model_version"], started["artifact_digest"]) == ("17", DIGEST)
    one = api.call("GET", f"/api/v1/rollouts/{started['id']}", "viewer").json()
    assert (one["model_version"], one["artifact_digest"]) == ("17", DIGEST)
    [listed] = api.call("GET", "/api/v1/rollouts", "viewer").json()["rollouts"]
    assert (listed["model_version"], listed["artifact_digest"]) == ("17", DIGEST)

    events = api.ledger.events(rollout_id=started["id"]).entries
    registered = [e.data() for e in events if e.event_type == "revision_registered"]
    assert registered == [
        {
            "artifact_uri": "s3://models/fraud/17",
            "artifact_digest": DIGEST,
            "model_version": "17",
            "baseline_revision": "base-00001",
        }
    ]
    [begun] = [e.data() for e in events if e.event_type == "rollout_started"]
    assert begun["model_version"] == "17"
    assert api.call("GET", "/api/v1/audit/verify", "auditor").json()["intact"] is True


def test_a_rollout_without_a_model_version_answers_nulls(api: Harness) -> None:
    started = _start(api)
    assert started["model_version"] is None
    assert started["artifact_digest"] is None


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("artifact_digest", "sha256:" + "5D41402ABC4B2A76B9719D911017C592" * 2),
        ("artifact_digest", "md5:5d41402abc4b2a76b9719d911017c592"),
        ("artifact_digest", DIGEST[:-1]),
        ("model_version", "7" * 129),
        ("model_version", "3.2 1"),
        ("model_version", "17<script>"),
        ("model_version", ""),
    ],
)
def test_bad_model_version_or_digest_is_422_naming_the_field(
    api: Harness, field: str, value: str
) -> None:
    response = api.call("POST", "/api/v1/rollouts", "operator", json=start_body(**{field: value}))
    assert response.status_code == 422
    assert response.json()["error"]["field"] == field
    assert api.ledger.events().entries == ()


def test_a_tenant_list_is_filtered_before_the_limit(api: Harness) -> None:
    # risk-prod's rollout is the oldest; three newer ones belong to other tenants (and to a
    # namespace that merely starts with the same letters). With limit=2 a filter applied after
    # the limit would show risk-prod nothing.
    mine = _start(api)
    api.clock.advance(1)
    for namespace in ("analytics", "risk-prod-shadow", "risk"):
        _start(api, namespace)
        api.clock.advance(1)
    headers = {"Authorization": f"Bearer {TENANT_TOKEN}"}
    scoped = api.http.get(f"{api.url}/api/v1/rollouts?limit=2", headers=headers)
    assert scoped.status_code == 200
    assert [r["id"] for r in scoped.json()["rollouts"]] == [mine["id"]]
    everyone = api.call("GET", "/api/v1/rollouts?limit=2", "viewer").json()["rollouts"]
    assert [r["model"] for r in everyone] == ["risk/fraud", "risk-prod-shadow/fraud"]


def test_approve_step_errors_and_who_may_approve(api: Harness) -> None:
    rid = _start(api, tier="regulated")["id"]
    path = f"/api/v1/rollouts/{rid}/approve"
    for bad in (-1, 4, 10**6, "two"):
        response = api.call("POST", path, "approver", json={"step": bad})
        assert response.status_code == 422, (bad, response.text)
        assert response.json()["error"]["field"] == "step"
    not_gated = api.call("POST", path, "approver", json={"step": 2})
    assert not_gated.status_code == 409  # the regulated default gates 100 % only
    assert "never be counted" in not_gated.json()["error"]["message"]
    admin = api.call("POST", path, "admin", json={"comment": "I run the service"})
    assert admin.status_code == 403  # separation of duties: the gate counts approvers only
    assert "approver" in admin.json()["error"]["message"]
    standard = _start(api, "analytics")["id"]  # standard tier: no approval gate at all
    nothing = api.call("POST", f"/api/v1/rollouts/{standard}/approve", "approver", json={})
    assert nothing.status_code == 409
    assert "no remaining step" in nothing.json()["error"]["message"]
    assert api.ledger.events(event_types=[EventType.APPROVAL_GIVEN]).entries == ()


def test_a_sigstore_bundle_in_the_start_request_is_recorded_with_the_revision(
    api: Harness,
) -> None:
    bundle = json.loads(BUNDLE_TEXT)
    started = _start(api, artifact_digest=WHEEL_DIGEST, artifact_sigstore_bundle=bundle)
    [registered] = api.ledger.events(
        rollout_id=started["id"], event_types=[EventType.REVISION_REGISTERED]
    ).entries
    assert registered.data()["sigstore_bundle"] == bundle
    for bad in ({"no": "mediaType"}, {}):
        response = api.call("POST", "/api/v1/rollouts", "operator",
                            json=start_body("analytics", artifact_sigstore_bundle=bad))  # fmt: skip
        assert response.status_code == 422, response.text
        assert response.json()["error"]["field"] == "artifact_sigstore_bundle"
    body = start_body("analytics", artifact_sigstore_bundle="{}")
    not_an_object = api.call("POST", "/api/v1/rollouts", "operator", json=body)
    assert not_an_object.status_code == 422
    assert "artifact_sigstore_bundle" in not_an_object.text


def test_strategy_is_started_shown_and_validated(api: Harness) -> None:
    started = _start(api, strategy="blue_green", plan={
        "steps": [{"weight": 100, "dwell_seconds": 600}], "baseline_offset_seconds": 86400,
    })  # fmt: skip
    assert started["strategy"] == "blue_green"
    assert started["plan"]["strategy"] == "blue_green"
    assert started["plan"]["baseline_offset_seconds"] == 86400
    pinned = _start(api, "analytics", strategy="pinned")  # the strategy's default plan
    assert [s["weight"] for s in pinned["plan"]["steps"]] == [100]
    listed = api.call("GET", "/api/v1/rollouts?state=shadow_passed", "viewer")
    assert listed.status_code == 200
    assert listed.json()["rollouts"] == []
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"strategy": "rainbow"}, "strategy", "canary"),
        ({"strategy": "shadow"}, "strategy", "request mirror"),  # no mirror configured here
        ({"strategy": "pinned", "tier": "regulated"}, "strategy", "regulated"),
        ({"strategy": "blue_green", "plan": {"steps": [{"weight": 50, "dwell_seconds": 60}]}},
         "plan.steps", "cut to 100 %"),
        ({"strategy": "blue_green", "plan": {"steps": [{"weight": 100, "dwell_seconds": 600}],
          "baseline_offset_seconds": 60}}, "plan.baseline_offset_seconds", "past the cut"),
        ({"plan": {"steps": [{"weight": 10, "dwell_seconds": 60}, {"weight": 100,
          "dwell_seconds": 60}], "baseline_offset_seconds": 600}},
         "plan.baseline_offset_seconds", "only a blue_green"),
    ]  # fmt: skip
    before = len(api.ledger.events(limit=1000).entries)
    for overrides, field, message in cases:
        response = api.call(
            "POST", "/api/v1/rollouts", "operator", json=start_body("risk", **overrides)
        )
        assert response.status_code == 422, (overrides, response.text)
        error = response.json()["error"]
        assert field in str(error.get("field")), (overrides, error)
        assert message in error["message"] or message in response.text, (overrides, error)
    assert len(api.ledger.events(limit=1000).entries) == before  # nothing started or recorded


def test_the_documented_blue_green_request_starts_one(api: Harness) -> None:
    import json
    import re
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[3] / "docs" / "strategies.md").read_text()
    match = re.search(r"POST /api/v1/rollouts\n(\{.*?\}\})\n```", doc, re.S)
    assert match
    body = json.loads(match.group(1))
    ref = model_ref(body["model"]["namespace"], body["model"]["name"])
    api.target.add_model(ref, stable_revision=body["baseline_revision"],
                         canary_revision=body["canary_revision"])  # fmt: skip
    response = api.call("POST", "/api/v1/rollouts", "operator", json=body)
    assert response.status_code == 201, response.text
    started = response.json()
    assert (started["strategy"], started["plan"]["baseline_offset_seconds"]) == (
        "blue_green",
        86400,
    )
