"""Argo's fresh looks that repeat the previous verdicts are written compactly (issue 20).

Real service, judge (``fixed=False``: the embedded synthetic source) and PostgreSQL: a session's
looks after its first whole one are stored as the delta over it; ``ledger verify`` proves them,
and the ledger and the audit API give back exactly the result the call answered.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from analyzer.analyses.catalog import ProfileCatalog
from analyzer.analyses.service import AnalysisRequest, AnalysisService
from analyzer.analyses.tables import analysis_sessions
from analyzer.domain.events import EventType
from analyzer.domain.model import ModelRef
from analyzer.domain.verdict import Verdict
from analyzer.ledger.chain import EntryRecord, canonical_json
from analyzer.ledger.compact import base_of
from analyzer.ledger.export import entry_json, iter_selected
from tests.integration.api.conftest import Harness, analysis_body

pytestmark = pytest.mark.postgres


def _looks(api: Harness) -> list[EntryRecord]:
    page = api.ledger.events(event_types=[EventType.ANALYSIS_RECORDED], limit=1000)
    return [e for e in page.entries if not e.stored_data()["cached"]]


def _answered(api: Harness, canary: str = "good-00002") -> dict[str, Any]:
    """The session's last result, as the call answered it (the row keeps it whole)."""
    with api.engine.connect() as conn:
        row = conn.execute(
            select(analysis_sessions.c.last_result).where(analysis_sessions.c.canary == canary)
        ).one()
    result: dict[str, Any] = json.loads(row.last_result)
    # canonical: the look's compaction cut this very text rather than encoding the result again
    assert row.last_result == canonical_json(result)
    return result


def _look(api: Harness, **body: Any) -> dict[str, Any]:
    response = api.call("POST", "/api/v1/analyses", "analysis", json=analysis_body(**body))
    assert response.status_code == 200
    api.clock.advance(60)  # past the answer cache: the next call is a fresh look
    answer: dict[str, Any] = response.json()
    return answer


def test_repeated_fresh_looks_are_compact_and_read_back_whole(make_api: Any) -> None:
    api: Harness = make_api(fixed=False)
    answered = []
    for _ in range(6):
        _look(api)
        answered.append(_answered(api))
    verdicts = [r["verdict"] for r in answered]
    assert len(set(verdicts[1:])) == 1, verdicts  # a healthy canary: one verdict repeated
    stored = _looks(api)
    bases = [base_of(e.stored_data()) for e in stored]
    # the first look is whole; the others repeat the previous verdicts: compact over it
    # (the second may be whole too, if the first's verdict differed)
    assert bases[0] is None
    whole = [e.seq for e, b in zip(stored, bases, strict=True) if b is None]
    assert len(whole) <= 2
    assert all(b == whole[-1] for b in bases[len(whole) :])
    assert len(bases) - len(whole) >= 4
    # read back, each look is exactly what the call answered (the counts moved every look)
    assert [e.data()["result"] for e in stored] == answered
    counts = [json.dumps(r["metrics"]) for r in answered]
    assert len(set(counts)) == len(counts)
    compact = [e for e, b in zip(stored, bases, strict=True) if b is not None]
    assert max(len(e.payload) for e in compact) < min(len(e.payload) for e in stored[:1]) / 2
    assert all("result" not in e.stored_data() for e in compact)
    # one entry read alone is expanded too (its base read from the ledger)
    alone = api.ledger.entry(compact[-1].seq)
    assert alone is not None
    assert alone.data()["result"] == answered[-1]
    assert api.ledger.verify().intact
    # the audit API: the data as hashed, and the expansion beside it
    events = api.call(
        "GET",
        "/api/v1/audit/events",
        "auditor",
        params={"model": "risk-prod/fraud", "type": "analysis_recorded", "limit": 100},
    ).json()["entries"]
    fresh = [e for e in events if not e["data"]["cached"]]
    assert [(e["expanded"] or e["data"])["result"] for e in fresh] == answered
    assert all("repeats" in e["data"] for e in fresh if e["expanded"])
    assert sum(1 for e in fresh if e["expanded"]) == len(compact)
    assert api.call("GET", "/api/v1/audit/verify", "auditor").json()["intact"] is True
    # the export carries the expansion beside the data as hashed, as the audit API does
    fraud = ModelRef(namespace="risk-prod", name="fraud")
    everything = iter_selected(api.ledger, model=fraud, since=None, until=None)
    exported = [entry_json(e) for e in everything if e.event_type == "analysis_recorded"]
    fresh_exported = [e for e in exported if not e["data"]["cached"]]
    assert [e.get("expanded", e["data"])["result"] for e in fresh_exported] == answered


def test_a_replica_that_did_not_write_the_base_reads_it_from_the_ledger(make_api: Any) -> None:
    api: Harness = make_api(fixed=False)
    _look(api)  # the first look, whole, by the harness's service
    other = AnalysisService(
        api.engine, api.ledger, api.looks, clock=api.clock, lookback=timedelta(minutes=30)
    )
    try:
        request_body = analysis_body()
        first = _looks(api)[0]
        for _ in range(2):
            answer = other.analyze(_request(request_body), "argo-2")
            api.clock.advance(60)
            entry = api.ledger.entry(answer.ledger_seq)
            assert entry is not None
            assert base_of(entry.stored_data()) == first.seq
            assert entry.data()["result"] == answer.result
    finally:
        other.close()
    assert api.ledger.verify().intact


def _request(body: dict[str, Any]) -> AnalysisRequest:
    """The service's request for ``body`` (as the route builds it)."""
    name, loaded = ProfileCatalog(None).resolve(body["profile"])
    return AnalysisRequest(
        model=ModelRef(**body["model"]),
        canary=body["canary"],
        baseline=body["baseline"],
        profile_name=name,
        profile=loaded,
        weight=body.get("weight"),
        rollout=body.get("rollout"),
    )


def test_a_changed_verdict_is_written_whole_and_becomes_the_new_base(api: Harness) -> None:
    assert api.analyzer is not None
    plan = [Verdict.INCONCLUSIVE, Verdict.INCONCLUSIVE, Verdict.FAIL, Verdict.FAIL]
    for verdict in plan:
        api.analyzer.verdict = verdict
        _look(api)
    stored = _looks(api)
    assert [e.data()["result"]["verdict"] for e in stored] == [v.value for v in plan]
    bases = [base_of(e.stored_data()) for e in stored]
    assert bases == [None, stored[0].seq, None, stored[2].seq]
    assert api.ledger.verify().intact


def test_a_base_that_is_not_the_sessions_whole_look_is_never_used(make_api: Any) -> None:
    api: Harness = make_api(fixed=False)
    _look(api, canary="bad-00003")
    _look(api)
    _look(api)
    other_sessions = _looks(api)[0]  # bad-00003's whole look
    with api.engine.begin() as conn:  # a row naming another session's look as its base
        conn.execute(
            update(analysis_sessions)
            .where(analysis_sessions.c.canary == "good-00002")
            .values(look_base_seq=other_sessions.seq)
        )
    _look(api)
    _look(api)
    stored = [e for e in _looks(api) if e.revision == "good-00002"]
    bases = [base_of(e.stored_data()) for e in stored]
    assert bases[2] is None  # written whole, and the new base
    assert bases[3] == stored[2].seq
    assert stored[3].data()["result"] == _answered(api)


def test_a_remembered_base_is_not_used_once_another_replica_wrote_a_new_one(api: Harness) -> None:
    assert api.analyzer is not None
    other = AnalysisService(
        api.engine, api.ledger, api.looks, clock=api.clock, lookback=timedelta(minutes=30)
    )
    try:
        api.analyzer.verdict = Verdict.INCONCLUSIVE
        _look(api)  # whole: this replica remembers it as the base
        _look(api)  # compact over it
        api.analyzer.verdict = Verdict.FAIL
        other.analyze(_request(analysis_body()), "argo-2")  # whole: the session's new base
        api.clock.advance(60)
        answer = _look(api)  # this replica still remembers the first base
    finally:
        other.close()
    stored = _looks(api)
    assert [base_of(e.stored_data()) for e in stored] == [None, stored[0].seq, None, stored[2].seq]
    assert answer["verdict"] == "fail"
    assert stored[3].data()["result"] == _answered(api)  # expanded over the new base
    assert api.ledger.verify().intact
