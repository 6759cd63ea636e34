"""POST /api/v1/analyses: the Argo web-provider contract, evidence accumulation, caching, ledger."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from analyzer.analyses.service import AnalysisService
from analyzer.analyses.tables import analysis_sessions
from analyzer.domain.events import EventType
from analyzer.domain.verdict import Verdict
from tests.integration.api.conftest import TENANT_TOKEN, Harness, analysis_body, model_ref

pytestmark = pytest.mark.postgres


def _analysis_entries(api: Harness) -> list[Any]:
    page = api.ledger.events(event_types=[EventType.ANALYSIS_RECORDED], limit=1000)
    return list(page.entries)


def test_every_verdict_is_200_json_with_a_string_verdict(api: Harness) -> None:
    assert api.analyzer is not None
    for number, verdict in enumerate(Verdict, start=1):
        api.analyzer.verdict = verdict
        api.clock.advance(60)  # past the cache: a fresh look each time
        response = api.call("POST", "/api/v1/analyses", "analysis", json=analysis_body())
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/json")
        body = response.json()
        assert body["verdict"] == verdict.value
        assert body["look"] == number
        assert body["rollout"] == "fraud-rollout"
        assert body["model"] == "risk-prod/fraud"
        assert isinstance(body["metrics"], list)
        entries = _analysis_entries(api)
        assert len(entries) == number
        assert entries[-1].actor == "analysis-user"
        assert entries[-1].data()["result"]["verdict"] == verdict.value
        assert body["ledger_seq"] == entries[-1].seq


def test_cached_inside_ttl_then_a_new_look_with_the_stored_state(api: Harness) -> None:
    assert api.analyzer is not None
    first = api.call("POST", "/api/v1/analyses", "analysis", json=analysis_body()).json()
    api.clock.advance(5)
    second = api.call("POST", "/api/v1/analyses", "analysis", json=analysis_body()).json()
    assert (first["look"], first["cached"]) == (1, False)
    assert (second["look"], second["cached"]) == (1, True)
    assert api.analyzer.calls == 1  # the cached answer did not query the source
    api.clock.advance(10)
    third = api.call("POST", "/api/v1/analyses", "analysis", json=analysis_body()).json()
    assert (third["look"], third["cached"]) == (2, False)
    assert api.analyzer.calls == 2
    # the window keeps its start: evidence is cumulative across looks
    assert third["window"]["start"] == first["window"]["start"]
    assert third["window"]["end"] > first["window"]["end"]
    entries = _analysis_entries(api)
    assert [e.data()["cached"] for e in entries] == [False, True, False]


def test_sessions_never_share_answers(make_api: Any) -> None:
    # Interleaved calls for two canaries of one model (and another model) inside the cache TTL:
    # each must get its own session's look, never another session's cached answer.
    api: Harness = make_api(fixed=False)
    bodies = {
        "good": analysis_body(canary="good-00002"),
        "bad": analysis_body(canary="bad-00003"),
        "other-model": analysis_body(model={"namespace": "risk-prod", "name": "aml"}),
    }
    seen: dict[str, set[tuple[str, str]]] = {name: set() for name in bodies}
    for round_ in range(3):
        for name, body in bodies.items():
            answer = api.call("POST", "/api/v1/analyses", "analysis", json=body).json()
            seen[name].add((answer["canary"], answer["model"]))
            assert answer["cached"] is (round_ > 0)
            entry = api.ledger.events(event_types=[EventType.ANALYSIS_RECORDED], limit=1000)
            last = entry.entries[-1]
            assert (last.revision, last.model) == (body["canary"], answer["model"])
    assert seen["good"] == {("good-00002", "risk-prod/fraud")}
    assert seen["bad"] == {("bad-00003", "risk-prod/fraud")}
    assert seen["other-model"] == {("good-00002", "risk-prod/aml")}
    with api.engine.connect() as conn:
        assert conn.execute(select(analysis_sessions.c.id)).all().__len__() == 3
    bad = api.call("POST", "/api/v1/analyses", "analysis", json=bodies["bad"]).json()
    good = api.call("POST", "/api/v1/analyses", "analysis", json=bodies["good"]).json()
    assert bad["metrics"] != good["metrics"]  # different evidence, not one shared answer


def test_real_judge_accumulates_state_and_fails_a_bad_canary(make_api: Any) -> None:
    api: Harness = make_api(fixed=False)
    verdicts = []
    for _ in range(3):
        response = api.call(
            "POST", "/api/v1/analyses", "analysis", json=analysis_body(canary="bad-00003")
        )
        assert response.status_code == 200
        verdicts.append(response.json()["verdict"])
        api.clock.advance(60)
    assert verdicts[-1] == "fail"
    with api.engine.connect() as conn:
        row = conn.execute(select(analysis_sessions)).one()
    assert row.looks == 3
    state = json.loads(row.judge_state)
    assert state["metrics"]["errors"]["looks"] >= 1  # the sequential state was persisted


def test_source_without_data_is_an_error_verdict_with_200(make_api: Any) -> None:
    api: Harness = make_api(fixed=False)
    response = api.call(
        "POST", "/api/v1/analyses", "analysis", json=analysis_body(canary="missing-00009")
    )
    assert response.status_code == 200
    body = response.json()
    assert body["verdict"] == "error"
    assert any(m["verdict"] == "error" for m in body["metrics"])


def test_concurrent_calls_never_lose_a_look(make_api: Any) -> None:
    api: Harness = make_api(cache_seconds=0)
    assert api.analyzer is not None
    api.analyzer.delay = 0.05

    def call(_: int) -> tuple[int, bool]:
        response = api.call("POST", "/api/v1/analyses", "analysis", json=analysis_body())
        assert response.status_code == 200
        return int(response.json()["look"]), bool(response.json()["cached"])

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(call, range(24)))
    fresh = sorted(look for look, cached in answers if not cached)
    # every look judged from the previous look's state: no number twice, none skipped; calls
    # that arrived while a look was running were answered from the previous one
    assert fresh == list(range(1, api.analyzer.calls + 1))
    assert all(look <= api.analyzer.calls for look, _ in answers)
    assert any(cached for _, cached in answers)  # overlapping calls did not queue behind a look
    with api.engine.connect() as conn:
        assert conn.execute(select(analysis_sessions.c.looks)).scalar_one() == api.analyzer.calls
    assert len(_analysis_entries(api)) == 24  # every call recorded, cached or not
    assert api.ledger.verify().intact


BAD_BODIES: list[tuple[dict[str, Any], str | None]] = [
    ({"canary": "Bad Revision!"}, "canary"),
    ({"model": {"namespace": "risk_prod", "name": "fraud"}}, "model.namespace"),
    ({"weight": 150}, "weight"),
    ({"profile": "no-such-profile"}, "profile"),
    ({"profile": "../../etc/passwd"}, "profile"),
    ({"unexpected": 1}, "unexpected"),
    ({"profile": {"name": "x", "metrics": [{"name": "m", "kind": "nope", "query": {}}]}}, None),
]


def test_bad_bodies_are_422_naming_the_field(api: Harness) -> None:
    for overrides, field in BAD_BODIES:
        response = api.call("POST", "/api/v1/analyses", "analysis", json=analysis_body(**overrides))
        assert response.status_code == 422, overrides
        error = response.json()["error"]
        assert error["code"] == "invalid_input"
        if field is not None:
            assert error["field"] == field
        else:
            assert error["field"].startswith("profile")
    assert _analysis_entries(api) == []


def test_inline_profile_is_judged_and_named(api: Harness) -> None:
    profile = {
        "name": "inline-errors",
        "metrics": [
            {
                "name": "errors",
                "kind": "proportion",
                "tolerance": 0.01,
                "query": {
                    "events": 'e{revision="{revision}"}',
                    "total": 't{revision="{revision}"}',
                },
            }
        ],
    }
    response = api.call("POST", "/api/v1/analyses", "analysis", json=analysis_body(profile=profile))
    assert response.status_code == 200
    assert response.json()["profile"] == "inline:inline-errors"


def test_argo_string_weight_is_accepted(api: Harness) -> None:
    # Argo substitutes {{args.weight}} as a JSON string.
    response = api.call("POST", "/api/v1/analyses", "analysis", json=analysis_body(weight="25"))
    assert response.status_code == 200


def test_tenant_token_cannot_judge_another_namespace(api: Harness) -> None:
    headers = {"Authorization": f"Bearer {TENANT_TOKEN}"}
    body = analysis_body(model={"namespace": "analytics", "name": "churn"})
    denied = api.call("POST", "/api/v1/analyses", None, json=body, headers=headers)
    assert denied.status_code == 403
    assert "risk-prod" in denied.json()["error"]["message"]
    allowed = api.call("POST", "/api/v1/analyses", None, json=analysis_body(), headers=headers)
    assert allowed.status_code == 200


def test_rate_limit_is_429_with_retry_after_then_recovers(make_api: Any) -> None:
    from analyzer.config import RateLimitSettings
    from tests.integration.api.conftest import api_settings

    settings = api_settings(rate_limit_analysis=RateLimitSettings(per_second=0.5, burst=2))
    api: Harness = make_api(settings=settings)
    codes = [
        api.call("POST", "/api/v1/analyses", "analysis", json=analysis_body()).status_code
        for _ in range(3)
    ]
    assert codes == [200, 200, 429]
    limited = api.call("POST", "/api/v1/analyses", "analysis", json=analysis_body())
    assert limited.json()["error"]["code"] == "rate_limited"
    assert int(limited.headers["Retry-After"]) >= 1
    api.clock.advance(2.0)
    assert api.call("POST", "/api/v1/analyses", "analysis", json=analysis_body()).status_code == 200


def test_body_over_the_limit_is_413(api: Harness) -> None:
    big = analysis_body(rollout="x" * 100, padding="y" * 70_000)
    response = api.call("POST", "/api/v1/analyses", "analysis", json=big)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"

    def chunks() -> Any:  # no Content-Length: counted while streaming
        yield b'{"model": {"namespace": "risk-prod", "name": "fraud"}, "x": "'
        for _ in range(20):
            yield b"z" * 4096
        yield b'"}'

    streamed = api.call(
        "POST",
        "/api/v1/analyses",
        "analysis",
        content=chunks(),
        headers={"Content-Type": "application/json"},
    )
    assert streamed.status_code == 413


def test_latest_session_summary_for_flagger(api: Harness) -> None:
    assert api.analyzer is not None
    api.analyzer.verdict = Verdict.FAIL
    api.call("POST", "/api/v1/analyses", "analysis", json=analysis_body())
    summary = api.analyses.latest(model_ref())
    assert summary is not None
    assert (summary.verdict, summary.canary, summary.looks) == ("fail", "good-00002", 1)


DAY = 24 * 3600


def _session_ids(api: Harness) -> set[int]:
    with api.engine.connect() as conn:
        return set(conn.execute(select(analysis_sessions.c.id)).scalars())


def test_idle_sessions_are_pruned_and_the_question_then_starts_afresh(api: Harness) -> None:
    old = api.call("POST", "/api/v1/analyses", "analysis", json=analysis_body()).json()
    api.clock.advance(31 * DAY)
    other = analysis_body(canary="good-00003")
    recent = api.call("POST", "/api/v1/analyses", "analysis", json=other).json()
    assert len(_session_ids(api)) == 2
    assert api.analyses.prune(timedelta(days=30)) == 1
    assert len(_session_ids(api)) == 1
    again = api.call("POST", "/api/v1/analyses", "analysis", json=analysis_body()).json()
    assert (again["look"], again["cached"]) == (1, False)  # a new session, a new window
    assert again["window"]["start"] > old["window"]["start"]
    assert recent["look"] == 1
    # the pruned session's look is still in the ledger
    assert _analysis_entries(api)[0].data()["session"] not in _session_ids(api)
    assert _analysis_entries(api)[0].seq == old["ledger_seq"]


def test_a_replica_whose_memo_holds_a_pruned_session_looks_again(api: Harness) -> None:
    # Two replicas (two services, one database); the other replica prunes while this one
    # still remembers the session's last look: it must not answer that look forever.
    other = AnalysisService(api.engine, api.ledger, api.looks, clock=api.clock)
    try:
        first = api.call("POST", "/api/v1/analyses", "analysis", json=analysis_body()).json()
        api.clock.advance(31 * DAY)
        assert other.prune(timedelta(days=30)) == 1
        after = api.call("POST", "/api/v1/analyses", "analysis", json=analysis_body()).json()
        assert (after["look"], after["cached"]) == (1, False)
        assert after["window"]["end"] > first["window"]["end"]
        assert len(_session_ids(api)) == 1
    finally:
        other.close()
