"""Flagger webhooks: confirm-promotion (gates), rollback (inverted meaning), pre-rollout."""

from __future__ import annotations

from typing import Any

import pytest

from analyzer.domain.events import EventType
from analyzer.domain.verdict import Verdict
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


def test_pre_rollout(api: Harness) -> None:
    ok = api.call("POST", "/api/v1/flagger/pre-rollout", "analysis", json=hook(profile="knative"))
    assert ok.status_code == 200
    bad = api.call("POST", "/api/v1/flagger/pre-rollout", "analysis", json=hook(profile="nope"))
    assert bad.status_code == 422
    assert bad.json()["error"]["field"] == "profile"


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
