"""Health, readiness and Prometheus metrics."""

from __future__ import annotations

from typing import Any

import pytest

from analyzer.db import make_engine
from tests.integration.api.conftest import Harness, analysis_body, build_harness, start_body

pytestmark = pytest.mark.postgres


def test_healthz_and_readyz(api: Harness) -> None:
    assert api.call("GET", "/healthz", None).json() == {"status": "ok", "detail": ""}
    ready = api.call("GET", "/readyz", None)
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"


def test_readyz_is_503_on_an_unmigrated_database(empty_pg_url: str) -> None:
    engine = make_engine(empty_pg_url)
    harness = build_harness(engine)
    try:
        response = harness.call("GET", "/readyz", None)
        assert response.status_code == 503
        assert "canary-analyzer migrate" in response.json()["error"]["message"]
    finally:
        harness.http.close()
        harness._running.stop()  # type: ignore[attr-defined]
        engine.dispose()


def test_metrics_expose_routes_verdicts_rollouts_and_ledger_appends(make_api: Any) -> None:
    api: Harness = make_api(fixed=False)
    api.call("POST", "/api/v1/analyses", "analysis", json=analysis_body(canary="missing-00009"))
    api.call("GET", "/api/v1/rollouts/does-not-exist", "viewer")
    started = api.call("POST", "/api/v1/rollouts", "operator", json=start_body())
    assert started.status_code == 201
    text = api.call("GET", "/metrics", None).text
    assert (
        'canary_analyzer_http_request_duration_seconds_count{method="POST",'
        'route="/api/v1/analyses",status="200"} 1.0'
    ) in text
    assert 'route="/api/v1/rollouts/{rollout_id}"' in text  # the template, not the id
    assert 'canary_analyzer_verdicts_total{kind="overall",verdict="error"} 1.0' in text
    assert 'canary_analyzer_integration_errors_total{integration="source"}' in text
    assert 'canary_analyzer_ledger_appends_total{event_type="analysis_recorded"} 1.0' in text
    assert 'canary_analyzer_rollouts{paused="false",state="pending"} 1.0' in text
    # the analysis record, then the rollout's registration and start: the whole database's head
    assert f"canary_analyzer_ledger_head_seq {float(api.ledger.head()[0])}" in text
    assert api.ledger.head()[0] == 3
