"""The API when the ledger's head row is gone (the ledger side: ledger/test_head_missing.py)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from analyzer.ledger.store import Ledger
from tests.integration.api.conftest import Harness, start_body
from tests.integration.ledger.test_head_missing import delete_head

pytestmark = pytest.mark.postgres


def test_the_api_answers_broken_not_ready_and_refuses_rollouts_with_503(
    make_api: Callable[..., Harness],
) -> None:
    api = make_api()
    started = api.call("POST", "/api/v1/rollouts", "operator", json=start_body())
    assert started.status_code == 201, started.text
    assert api.call("GET", "/readyz", None).status_code == 200
    delete_head(api.engine)

    verify = api.call("GET", "/api/v1/audit/verify", "auditor")
    assert verify.status_code == 200
    assert verify.json()["intact"] is False
    assert "head row" in verify.json()["problem"]

    ready = api.call("GET", "/readyz", None)
    assert ready.status_code == 503
    assert "head row" in ready.json()["error"]["message"]

    second = api.call("POST", "/api/v1/rollouts", "operator", json=start_body(name="churn"))
    assert second.status_code == 503, second.text
    assert second.json()["error"]["code"] == "database_not_ready"
    assert "head row" in second.json()["error"]["message"]
    assert (
        api.call("GET", "/api/v1/rollouts?model=risk-prod/churn", "viewer").json()["rollouts"] == []
    )  # nothing half-started
    assert Ledger(api.engine).verify().first_bad_seq is not None
