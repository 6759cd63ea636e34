"""Flagger webhooks: confirm-promotion (gates), rollback (inverted meaning), pre-rollout."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pydantic import SecretStr

from analyzer.api.flagger import PolicyGateEvaluator
from analyzer.domain.events import EventType
from analyzer.domain.model import Tier
from analyzer.domain.verdict import Verdict
from analyzer.wiring import LedgerEvaluations
from gates.evaluation import EvaluationGate
from gates.policy import (
    EVALUATION,
    SERVICENOW_CHANGE,
    GatePolicy,
    GatePolicyConfig,
    GateRequirement,
)
from gates.servicenow import BasicCredentials, ServiceNowChangeGate, ServiceNowTableClient
from tests.fakes.servicenow import Choice, DateTime, FakeServiceNow, Ref
from tests.integration.api.conftest import Harness, analysis_body, static_token

pytestmark = pytest.mark.postgres


def hook(**metadata: str) -> dict[str, Any]:
    return {
        "name": "fraud",
        "namespace": "risk-prod",
        "phase": "Progressing",
        "checksum": "6c54544bf9",
        "metadata": metadata,
    }


def test_confirm_promotion_open_gates_is_200_and_recorded(api: Harness) -> None:
    response = api.call(
        "POST", "/api/v1/flagger/confirm-promotion", "analysis", json=hook(tier="long-tail")
    )
    assert response.status_code == 200
    assert response.text.startswith("promotion confirmed")
    checks = api.ledger.events(event_types=[EventType.GATE_CHECKED]).entries
    assert len(checks) == 1
    assert checks[0].actor == "analysis-user"
    assert checks[0].data()["open"] is True


def test_confirm_promotion_closed_gate_is_403_with_the_reason(api: Harness) -> None:
    # regulated needs a ServiceNow change and a manual approval; neither is configured here
    response = api.call(
        "POST", "/api/v1/flagger/confirm-promotion", "analysis", json=hook(tier="regulated")
    )
    assert response.status_code == 403
    assert "servicenow-change" in response.text
    assert (
        api.ledger.events(event_types=[EventType.GATE_CHECKED]).entries[0].data()["open"] is False
    )


@pytest.fixture
def gated(make_api: Callable[..., Harness]) -> Iterator[Harness]:
    """The API with the regulated tier gated by the ServiceNow gate alone, over the fake."""
    with FakeServiceNow() as snow:
        snow.add_table("change_request")
        snow.add_table("sysapproval_approver")
        sys_id = snow.add_record(
            "change_request", number="CHG0031337", state=Choice("-1", "Implement"),
            approval=Choice("approved", "Approved"), start_date=DateTime("2026-11-27 00:00:00"),
            end_date=DateTime("2026-11-28 00:00:00"),
            cmdb_ci=Ref("cmdb_ci_appl", "a" * 32, "fraud"), u_model_version="17",
        )  # fmt: skip
        snow.add_record(
            "sysapproval_approver", sysapproval=Ref("change_request", sys_id, "CHG0031337"),
            approver=Ref("sys_user", "b" * 32, "Maria Risk-Owner"),
            state=Choice("approved", "Approved"), sys_updated_on=DateTime("2026-11-26 09:00:00"),
        )  # fmt: skip
        credentials = BasicCredentials(username="gate.bot", password=SecretStr("bot-password"))
        with ServiceNowTableClient(snow.url, credentials, timeout_seconds=2.0) as client:
            only_the_cr = GatePolicy(requirements=(GateRequirement(gate=SERVICENOW_CHANGE),))
            evaluator = PolicyGateEvaluator(
                GatePolicyConfig(tiers={Tier.REGULATED: only_the_cr}),
                {SERVICENOW_CHANGE: ServiceNowChangeGate(client)},
            )
            yield make_api(gate_evaluator=evaluator)


def regulated(**metadata: str) -> dict[str, Any]:
    return hook(tier="regulated", change_request="CHG0031337", **metadata)


def test_confirm_promotion_matches_metadata_model_version_with_the_cr(gated: Harness) -> None:
    url = "/api/v1/flagger/confirm-promotion"
    matching = gated.call("POST", url, "analysis", json=regulated(model_version="17"))
    assert matching.status_code == 200, matching.text
    other = gated.call("POST", url, "analysis", json=regulated(model_version="18"))
    assert other.status_code == 403
    assert "change request CHG0031337 is for version 17, not 18" in other.text
    missing = gated.call("POST", url, "analysis", json=regulated(canary="fraud-00002"))
    assert missing.status_code == 403
    assert "the rollout names no model version" in missing.text
    checks = gated.ledger.events(event_types=[EventType.GATE_CHECKED]).entries
    assert [(c.data()["model_version"], c.data()["open"]) for c in checks] == [
        ("17", True), ("18", False), (None, False),
    ]  # fmt: skip


def test_confirm_promotion_bad_model_version_is_422(api: Harness) -> None:
    response = api.call(
        "POST", "/api/v1/flagger/confirm-promotion", "analysis",
        json=hook(tier="regulated", model_version="17; drop"),
    )  # fmt: skip
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "metadata.model_version"
    assert api.ledger.events(event_types=[EventType.GATE_CHECKED]).entries == ()


def test_confirm_promotion_bad_artifact_digest_is_422(api: Harness) -> None:
    response = api.call(
        "POST", "/api/v1/flagger/confirm-promotion", "analysis",
        json=hook(tier="regulated", model_version="17", artifact_digest="sha256:nope"),
    )  # fmt: skip
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "metadata.artifact_digest"


def test_confirm_promotion_asks_the_evaluation_gate_with_version_and_digest(
    make_api: Callable[..., Harness],
) -> None:
    holder: dict[str, Harness] = {}

    class Lazy:  # the harness builds the ledger; the gate reads it once it exists
        def results_for(self, model: Any, version: str) -> Any:
            return LedgerEvaluations(holder["api"].ledger).results_for(model, version)

    policy = GatePolicyConfig(
        tiers={Tier.REGULATED: GatePolicy(requirements=(GateRequirement(gate=EVALUATION),))}
    )
    evaluator = PolicyGateEvaluator(policy, {EVALUATION: EvaluationGate(Lazy())})
    api = holder["api"] = make_api(gate_evaluator=evaluator)
    digest = "sha256:" + "d1" * 32
    url = "/api/v1/flagger/confirm-promotion"
    body = hook(tier="regulated", model_version="17", artifact_digest=digest)
    held = api.call("POST", url, "analysis", json=body)
    assert held.status_code == 403
    assert "no golden-set evaluation recorded for risk-prod/fraud version 17" in held.text
    recorded = api.call("POST", "/api/v1/evaluations", "operator", json={
        "model": {"namespace": "risk-prod", "name": "fraud"}, "model_version": "17",
        "suite": "golden-set", "passed": True, "artifact_digest": "sha256:" + "0f" * 32,
    })  # fmt: skip
    assert recorded.status_code == 201
    mismatch = api.call("POST", url, "analysis", json=body)
    assert mismatch.status_code == 403
    assert f"but the rollout deploys {digest}" in mismatch.text
    api.clock.advance(1)
    api.call("POST", "/api/v1/evaluations", "operator", json={
        "model": {"namespace": "risk-prod", "name": "fraud"}, "model_version": "17",
        "suite": "golden-set", "passed": True, "artifact_digest": digest,
    })  # fmt: skip
    assert api.call("POST", url, "analysis", json=body).status_code == 200


def test_confirm_promotion_unknown_tier_is_422(api: Harness) -> None:
    response = api.call(
        "POST", "/api/v1/flagger/confirm-promotion", "analysis", json=hook(tier="gold")
    )
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "metadata.tier"


def test_rollback_only_when_the_judge_failed_the_canary(api: Harness) -> None:
    assert api.analyzer is not None
    none_yet = api.call("POST", "/api/v1/flagger/rollback", "analysis", json=hook())
    assert none_yet.status_code == 409
    api.call("POST", "/api/v1/analyses", "analysis", json=analysis_body())  # pass
    passing = api.call("POST", "/api/v1/flagger/rollback", "analysis", json=hook())
    assert passing.status_code == 409
    assert "pass" in passing.text
    api.analyzer.verdict = Verdict.FAIL
    api.clock.advance(60)
    api.call("POST", "/api/v1/analyses", "analysis", json=analysis_body())
    failing = api.call("POST", "/api/v1/flagger/rollback", "analysis", json=hook())
    assert failing.status_code == 200  # Flagger: 2xx means roll back
    assert failing.text.startswith("roll back risk-prod/fraud")
    other_canary = api.call(
        "POST", "/api/v1/flagger/rollback", "analysis", json=hook(canary="other-00009")
    )
    assert other_canary.status_code == 409


def answers(api: Harness) -> list[dict[str, Any]]:
    return [e.data() for e in api.ledger.events(event_types=[EventType.WEBHOOK_ANSWERED]).entries]


def test_rollback_answers_are_recorded_when_they_change(api: Harness) -> None:
    assert api.analyzer is not None
    rollback = "/api/v1/flagger/rollback"
    api.call("POST", rollback, "analysis", json=hook())  # no analysis yet
    api.call("POST", rollback, "analysis", json=hook())  # the same answer: not re-said
    api.call("POST", "/api/v1/analyses", "analysis", json=analysis_body())  # pass
    for _ in range(3):
        api.call("POST", rollback, "analysis", json=hook())
    api.analyzer.verdict = Verdict.FAIL
    api.clock.advance(60)
    api.call("POST", "/api/v1/analyses", "analysis", json=analysis_body())
    failing = api.call("POST", rollback, "analysis", json=hook())
    assert failing.status_code == 200
    recorded = answers(api)
    assert [(a["status_code"], a["verdict"]) for a in recorded] == [
        (409, None),
        (409, "pass"),
        (200, "fail"),
    ]
    assert all(a["hook"] == "rollback" for a in recorded)
    assert recorded[-1]["answer"] == failing.text
    assert recorded[-1]["analysis"]["looks"] == 2
    assert recorded[-1]["canary"] == "6c54544bf9"  # Flagger's checksum when no canary is named
    entry = api.ledger.events(event_types=[EventType.WEBHOOK_ANSWERED]).entries[-1]
    assert entry.actor == "analysis-user"
    assert str(entry.model) == "risk-prod/fraud"


def test_pre_rollout(api: Harness) -> None:
    ok = api.call("POST", "/api/v1/flagger/pre-rollout", "analysis", json=hook(profile="knative"))
    assert ok.status_code == 200
    bad = api.call("POST", "/api/v1/flagger/pre-rollout", "analysis", json=hook(profile="nope"))
    assert bad.status_code == 422
    assert bad.json()["error"]["field"] == "profile"
    recorded = answers(api)
    assert [(a["hook"], a["status_code"]) for a in recorded] == [
        ("pre-rollout", 200),
        ("pre-rollout", 422),
    ]
    assert recorded[1]["answer"].endswith(bad.json()["error"]["message"])


def test_confirm_promotion_answer_is_in_its_gate_entry(api: Harness) -> None:
    response = api.call(
        "POST", "/api/v1/flagger/confirm-promotion", "analysis", json=hook(tier="regulated")
    )
    data = api.ledger.events(event_types=[EventType.GATE_CHECKED]).entries[0].data()
    assert data["hook"] == "confirm-promotion"
    assert data["status_code"] == response.status_code == 403
    assert data["answer"] == response.text


def test_flagger_payload_must_name_a_valid_canary(api: Harness) -> None:
    response = api.call(
        "POST", "/api/v1/flagger/rollback", "analysis", json={"name": "Fraud!", "namespace": "x"}
    )
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "name"


def test_token_in_webhook_metadata_since_flagger_sends_no_headers(api: Harness) -> None:
    body = hook(tier="long-tail", token=static_token("analysis"))
    response = api.call("POST", "/api/v1/flagger/confirm-promotion", None, json=body)
    assert response.status_code == 200
    entry = api.ledger.events(event_types=[EventType.GATE_CHECKED]).entries[0]
    assert entry.actor == "analysis-user"
    assert static_token("analysis") not in entry.payload  # the token is never recorded
    viewer = hook(tier="long-tail", token=static_token("viewer"))
    assert api.call("POST", "/api/v1/flagger/rollback", None, json=viewer).status_code == 403
    missing = api.call("POST", "/api/v1/flagger/rollback", None, json=hook())
    assert missing.status_code == 401
